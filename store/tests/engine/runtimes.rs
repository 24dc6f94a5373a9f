//! The proxy calls the store from several pingora runtimes at once.

use std::time::Duration;

use aside_store::{SetCondition, Store};
use serde_json::json;

use crate::config;

#[test]
fn works_from_several_runtimes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    // Opened in a runtime that is then dropped: the store must not depend on it.
    let store = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(Store::open(cfg)).unwrap()
    };
    let mut threads = Vec::new();
    for t in 0..4 {
        let store = store.clone();
        threads.push(std::thread::spawn(move || {
            let rt = if t % 2 == 0 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
            };
            rt.block_on(async {
                for i in 0..50 {
                    let key = format!("rt{t}/{i}");
                    store
                        .set(&key, json!(i), None, SetCondition::Always)
                        .await
                        .unwrap();
                    assert_eq!(store.get(&key).await.unwrap().unwrap().value, json!(i));
                }
                tokio::time::timeout(Duration::from_secs(10), store.flush())
                    .await
                    .unwrap()
                    .unwrap();
            });
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.stats().cold_entries, 200);
}
