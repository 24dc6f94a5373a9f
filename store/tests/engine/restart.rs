//! Drop the engine, reopen the same file: everything is there, expired items are not.

use std::sync::Arc;
use std::time::Duration;

use aside_store::{MockClock, SetCondition, Store};
use serde_json::json;

use crate::basic::entry;
use crate::config;

#[tokio::test]
async fn reopen_keeps_everything_but_expired() {
    let dir = tempfile::tempdir().unwrap();
    let clock = MockClock::default();
    let open = || Store::open_with_clock(config(&dir), Arc::new(clock.clone()));
    let (last_version, stats) = {
        let s = open().await.unwrap();
        for i in 0..100 {
            s.set(
                &format!("keep/{i:03}"),
                json!({ "i": i }),
                None,
                SetCondition::Always,
            )
            .await
            .unwrap();
        }
        for i in 0..10 {
            s.set(
                &format!("short/{i}"),
                json!(i),
                Some(Duration::from_secs(5)),
                SetCondition::Always,
            )
            .await
            .unwrap();
        }
        let now = s.clock().now();
        s.cache_fill(entry(1, "http://a/1", "a", &["t"], now))
            .await
            .unwrap();
        let last = s
            .set("last", json!(true), None, SetCondition::Always)
            .await
            .unwrap();
        // No flush: dropping the last handle must commit durably.
        (last.version, s.stats())
    };
    clock.advance(Duration::from_secs(10));
    let s = open().await.unwrap();
    assert_eq!(
        s.stats().cold_entries,
        stats.cold_entries,
        "counters survive"
    );
    assert_eq!(s.stats().cold_bytes, stats.cold_bytes);
    for i in 0..100 {
        let item = s.get(&format!("keep/{i:03}")).await.unwrap().unwrap();
        assert_eq!(item.value, json!({ "i": i }));
    }
    for i in 0..10 {
        assert!(s.get(&format!("short/{i}")).await.unwrap().is_none());
    }
    let page = s
        .list(aside_store::ListQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 101);
    let (e, tier) = s.cache_lookup(&[1; 16]).await.unwrap().unwrap();
    assert_eq!(tier, aside_store::Tier::Cold);
    assert_eq!(e.url, "http://a/1");
    // Versions continue after the restart, never reused.
    let next = s
        .set("last", json!(false), None, SetCondition::Always)
        .await
        .unwrap();
    assert!(next.version > last_version);
    // GC after restart removes the expired items through the expiry index.
    assert_eq!(s.collect_garbage().await.unwrap(), 10);
}

/// Issue 13: a value's JSON text (key order, `1.0`, integers beyond u64, escapes) is
/// what the file holds and what comes back, from the hot tier, after a restart (cold
/// tier), in listings and after an atomic write.
#[tokio::test]
async fn values_come_back_as_written_across_restarts() {
    use aside_store::{JsonText, Mutation};
    let dir = tempfile::tempdir().unwrap();
    let clock = MockClock::default();
    let open = || Store::open_with_clock(config(&dir), Arc::new(clock.clone()));
    let text = r#"{"theme":"dark","notifications":true,"n":1.0,"big":18446744073709551617,"dec":0.1000000000000000000001,"s":"\u00e9\n"}"#;
    let value = JsonText::parse(text).unwrap();
    {
        let s = open().await.unwrap();
        let item = s
            .set("prefs", value.clone(), None, SetCondition::Always)
            .await
            .unwrap();
        assert_eq!(item.value.as_str(), text);
        assert_eq!(s.get("prefs").await.unwrap().unwrap().value.as_str(), text);
        s.atomic(
            vec![],
            vec![Mutation::Set {
                key: "atomic".into(),
                value: value.clone(),
                ttl: None,
            }],
        )
        .await
        .unwrap();
    }
    let s = open().await.unwrap();
    assert_eq!(s.get("prefs").await.unwrap().unwrap().value.as_str(), text);
    assert_eq!(s.get("atomic").await.unwrap().unwrap().value.as_str(), text);
    let page = s.list(aside_store::ListQuery::default()).await.unwrap();
    assert!(page.items.iter().all(|i| i.value.as_str() == text));
}
