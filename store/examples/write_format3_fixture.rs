//! Writes the store fixture of the upgrade test (`tests/engine/bodies.rs`) with
//! the store code of the commit it runs at: run at cbb37ef (format 3), gzipped,
//! it made `tests/fixtures/format3.redb.gz`. Keep it for the next format change.
//!
//! `cargo run -p aside-store --example write_format3_fixture -- /tmp/store.redb`
use std::time::{Duration, UNIX_EPOCH};

use aside_store::{CacheEntry, SetCondition, Store, StoreConfig};
use bytes::Bytes;

#[tokio::main]
async fn main() {
    let path = std::env::args().nth(1).expect("path");
    let store = Store::open(StoreConfig::new(&path)).await.unwrap();
    // Far-future times so the fixture stays live for the test.
    let t0 = UNIX_EPOCH + Duration::from_secs(4_000_000_000);
    for (i, size) in [(1u8, 100usize), (2, 3000), (3, 20_000), (4, 300_000)] {
        let e = CacheEntry {
            hash: [i; 16],
            url: format!("http://h{i}/x"),
            host: format!("h{i}"),
            tags: vec!["t".into()],
            status: 200,
            meta_internal: Bytes::from_static(b"internal"),
            meta_header: Bytes::from_static(b"header"),
            body: Bytes::from((0..size).map(|n| (n % 251) as u8 ^ i).collect::<Vec<u8>>()),
            stored_at: t0,
            fresh_until: t0 + Duration::from_secs(60),
            stale_until: t0 + Duration::from_secs(120),
            soft_purged: false,
        };
        store.cache_fill(e).await.unwrap();
    }
    store
        .set(
            "a/b",
            serde_json::json!({"x": 1}),
            None,
            SetCondition::Always,
        )
        .await
        .unwrap();
    store.flush().await.unwrap();
}
