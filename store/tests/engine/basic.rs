//! The KV and cache calls, one behaviour per test.

use std::time::Duration;

use aside_store::{
    CacheEntry, CacheFilter, CacheSelector, Check, Error, ListQuery, Mutation, PurgeMode,
    SetCondition, Tier,
};
use bytes::Bytes;
use serde_json::json;

use crate::fixture;

#[tokio::test]
async fn set_get_delete() {
    let f = fixture().await;
    let s = &f.store;
    assert!(s.get("a").await.unwrap().is_none());
    let item = s
        .set("a", json!({"x": 1}), None, SetCondition::Always)
        .await
        .unwrap();
    assert_eq!(item.value, json!({"x": 1}));
    let got = s.get("a").await.unwrap().unwrap();
    assert_eq!(got, item);
    let item2 = s
        .set("a", json!(2), None, SetCondition::Always)
        .await
        .unwrap();
    assert!(item2.version > item.version);
    assert!(s.delete("a").await.unwrap());
    assert!(!s.delete("a").await.unwrap());
    assert!(s.get("a").await.unwrap().is_none());
}

#[tokio::test]
async fn conditions() {
    let f = fixture().await;
    let s = &f.store;
    let a = s
        .set("k", json!(1), None, SetCondition::IfAbsent)
        .await
        .unwrap();
    assert!(matches!(
        s.set("k", json!(2), None, SetCondition::IfAbsent).await,
        Err(Error::PreconditionFailed { .. })
    ));
    let b = s
        .set("k", json!(3), None, SetCondition::IfVersion(a.version))
        .await
        .unwrap();
    assert!(matches!(
        s.set("k", json!(4), None, SetCondition::IfVersion(a.version))
            .await,
        Err(Error::PreconditionFailed { .. })
    ));
    assert_eq!(s.get("k").await.unwrap().unwrap().version, b.version);
}

#[tokio::test]
async fn ttl_expiry_uses_the_clock() {
    let f = fixture().await;
    let s = &f.store;
    s.set(
        "t",
        json!(1),
        Some(Duration::from_secs(10)),
        SetCondition::Always,
    )
    .await
    .unwrap();
    f.clock.advance(Duration::from_secs(9));
    assert!(s.get("t").await.unwrap().is_some());
    f.clock.advance(Duration::from_secs(1));
    assert!(s.get("t").await.unwrap().is_none());
    let page = s.list(ListQuery::default()).await.unwrap();
    assert_eq!(page.total, 0);
    // Absent again: IfAbsent succeeds.
    s.set("t", json!(2), None, SetCondition::IfAbsent)
        .await
        .unwrap();
    // GC removes the expired row of another key.
    s.set(
        "u",
        json!(1),
        Some(Duration::from_secs(1)),
        SetCondition::Always,
    )
    .await
    .unwrap();
    f.clock.advance(Duration::from_secs(5));
    assert_eq!(s.collect_garbage().await.unwrap(), 1);
    assert_eq!(s.stats().cold_entries, 1);
}

/// An overwrite replaces the record, its expiry row and its share of the
/// counters: nothing of the old one is left to count or to collect.
#[tokio::test]
async fn overwrites_keep_the_expiry_index_and_counters_exact() {
    let f = fixture().await;
    let s = &f.store;
    let ttl = |secs| Some(Duration::from_secs(secs));
    s.set("r", json!("v"), ttl(10), SetCondition::Always)
        .await
        .unwrap();
    let one = s.stats();
    assert_eq!(one.cold_entries, 1);
    // The same value again, without a TTL: same bytes, the old expiry row gone.
    s.set("r", json!("v"), None, SetCondition::Always)
        .await
        .unwrap();
    assert_eq!(s.stats().cold_entries, 1);
    assert_eq!(
        s.stats().cold_bytes,
        one.cold_bytes,
        "a record without TTL is as long"
    );
    f.clock.advance(Duration::from_secs(15));
    assert_eq!(s.collect_garbage().await.unwrap(), 0);
    assert!(s.get("r").await.unwrap().is_some());
    // A TTL again, then the same deadline's second again: one row, collected once.
    s.set("r", json!("w"), ttl(10), SetCondition::Always)
        .await
        .unwrap();
    s.set("r", json!("w2"), ttl(10), SetCondition::Always)
        .await
        .unwrap();
    // A later deadline moves the row.
    s.set("q", json!(1), ttl(5), SetCondition::Always)
        .await
        .unwrap();
    s.set("q", json!(1), ttl(30), SetCondition::Always)
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(11));
    assert_eq!(s.collect_garbage().await.unwrap(), 1);
    assert!(s.get("r").await.unwrap().is_none());
    assert_eq!(s.get("q").await.unwrap().unwrap().value, json!(1));
    assert_eq!(s.stats().cold_entries, 1);
    f.clock.advance(Duration::from_secs(20));
    assert_eq!(s.collect_garbage().await.unwrap(), 1);
    let empty = s.stats();
    assert_eq!((empty.cold_entries, empty.cold_bytes), (0, 0));
}

#[tokio::test]
async fn list_prefix_pages_and_reverse() {
    let f = fixture().await;
    let s = &f.store;
    for k in [
        "notes",
        "notes/a",
        "notes/b",
        "notes/c/d",
        "notes-x",
        "notesx",
        "other",
    ] {
        s.set(k, json!(k), None, SetCondition::Always)
            .await
            .unwrap();
    }
    let q = |limit, cursor: Option<String>, reverse| ListQuery {
        prefix: Some("notes".into()),
        limit,
        cursor,
        reverse,
        ..ListQuery::default()
    };
    let p1 = s.list(q(2, None, false)).await.unwrap();
    let keys: Vec<_> = p1.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["notes", "notes/a"]);
    assert_eq!(p1.total, 4);
    let p2 = s.list(q(2, p1.cursor, false)).await.unwrap();
    let keys: Vec<_> = p2.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["notes/b", "notes/c/d"]);
    assert!(p2.cursor.is_none());
    let r = s.list(q(3, None, true)).await.unwrap();
    let keys: Vec<_> = r.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["notes/c/d", "notes/b", "notes/a"]);
    let r2 = s.list(q(3, r.cursor, true)).await.unwrap();
    assert_eq!(r2.items.len(), 1);
    assert_eq!(r2.items[0].key, "notes");
    let se = s
        .list(ListQuery {
            start: Some("notes/b".into()),
            end: Some("other".into()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    let keys: Vec<_> = se.items.iter().map(|i| i.key.as_str()).collect();
    // Part by part, "notes-x" sorts after every "notes/..." key.
    assert_eq!(keys, ["notes/b", "notes/c/d", "notes-x", "notesx"]);
    assert!(matches!(
        s.list(ListQuery {
            cursor: Some("garbage!".into()),
            ..ListQuery::default()
        })
        .await,
        Err(Error::InvalidCursor)
    ));
}

/// ARCHITECTURE.md: listing is ordered part by part, so "a/b" < "a-b" (part "a" <
/// "a-b"), where plain byte order would put "a-b" first ('-' < '/').
#[tokio::test]
async fn list_orders_keys_part_by_part() {
    let f = fixture().await;
    let s = &f.store;
    let keys = [
        "a-b", "ab", "a/b", "a", "a/b/c", "a-b/c", "a/b-c", "a/c", "b",
    ];
    for k in keys {
        s.set(k, json!(k), None, SetCondition::Always)
            .await
            .unwrap();
    }
    let order = [
        "a", "a/b", "a/b/c", "a/b-c", "a/c", "a-b", "a-b/c", "ab", "b",
    ];
    let list = |q: ListQuery| async move {
        let page = s.list(q).await.unwrap();
        let keys: Vec<String> = page.items.into_iter().map(|i| i.key).collect();
        (keys, page.total, page.cursor)
    };
    let (all, total, _) = list(ListQuery::default()).await;
    assert_eq!(all, order);
    assert_eq!(total, 9);
    let (rev, _, _) = list(ListQuery {
        reverse: true,
        ..ListQuery::default()
    })
    .await;
    assert_eq!(rev, order.iter().rev().copied().collect::<Vec<_>>());
    // Pages of 2 both ways, through the cursor.
    for reverse in [false, true] {
        let mut got = Vec::new();
        let mut cursor = None;
        loop {
            let (keys, _, next) = list(ListQuery {
                limit: 2,
                cursor,
                reverse,
                ..ListQuery::default()
            })
            .await;
            got.extend(keys);
            cursor = next;
            if cursor.is_none() {
                break;
            }
        }
        let mut expected: Vec<_> = order.to_vec();
        if reverse {
            expected.reverse();
        }
        assert_eq!(got, expected, "reverse={reverse}");
    }
    // start inclusive, end exclusive, in the same order.
    let (win, total, _) = list(ListQuery {
        start: Some("a/b".into()),
        end: Some("a-b/c".into()),
        ..ListQuery::default()
    })
    .await;
    assert_eq!(win, ["a/b", "a/b/c", "a/b-c", "a/c", "a-b"]);
    assert_eq!(total, 5);
    // Prefixes match whole parts, and their window follows part order.
    let (under_a, _, _) = list(ListQuery {
        prefix: Some("a".into()),
        reverse: true,
        ..ListQuery::default()
    })
    .await;
    assert_eq!(under_a, ["a/c", "a/b-c", "a/b/c", "a/b", "a"]);
    let (under_ab, _, _) = list(ListQuery {
        prefix: Some("a-b".into()),
        start: Some("a-b/a".into()),
        ..ListQuery::default()
    })
    .await;
    assert_eq!(under_ab, ["a-b/c"]);
}

#[tokio::test]
async fn atomic_all_or_nothing() {
    let f = fixture().await;
    let s = &f.store;
    let a = s
        .set("a", json!(1), None, SetCondition::Always)
        .await
        .unwrap();
    let r = s
        .atomic(
            vec![
                Check {
                    key: "a".into(),
                    version: Some(a.version),
                },
                Check {
                    key: "b".into(),
                    version: None,
                },
            ],
            vec![
                Mutation::Increment {
                    key: "a".into(),
                    delta: json!(5).into(),
                    ttl: None,
                },
                Mutation::Increment {
                    key: "c".into(),
                    delta: json!(2).into(),
                    ttl: None,
                },
                Mutation::Set {
                    key: "b".into(),
                    value: json!("x").into(),
                    ttl: None,
                },
                Mutation::Delete { key: "zz".into() },
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.versions.len(), 4);
    assert_eq!(s.get("a").await.unwrap().unwrap().value, json!(6));
    assert_eq!(s.get("c").await.unwrap().unwrap().value, json!(2));
    // A failed check writes nothing.
    let e = s
        .atomic(
            vec![Check {
                key: "a".into(),
                version: Some(a.version),
            }],
            vec![Mutation::Set {
                key: "d".into(),
                value: json!(1).into(),
                ttl: None,
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::CheckFailed { .. }), "{e}");
    assert!(s.get("d").await.unwrap().is_none());
    // A failed increment writes nothing either.
    let e = s
        .atomic(
            vec![],
            vec![
                Mutation::Set {
                    key: "d".into(),
                    value: json!(1).into(),
                    ttl: None,
                },
                Mutation::Increment {
                    key: "b".into(),
                    delta: json!(1).into(),
                    ttl: None,
                },
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotANumber { .. }), "{e}");
    assert!(s.get("d").await.unwrap().is_none());
}

pub fn entry(
    hash: u8,
    url: &str,
    host: &str,
    tags: &[&str],
    now: std::time::SystemTime,
) -> CacheEntry {
    CacheEntry {
        hash: [hash; 16],
        url: url.into(),
        host: host.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        status: 200,
        meta_internal: Bytes::from_static(b"internal"),
        meta_header: Bytes::from_static(b"header"),
        body: Bytes::from(vec![hash; 100]),
        stored_at: now,
        fresh_until: now + Duration::from_secs(60),
        stale_until: now + Duration::from_secs(120),
        soft_purged: false,
    }
}

#[tokio::test]
async fn cache_fill_lookup_list_purge() {
    let f = fixture().await;
    let s = &f.store;
    let now = s.clock().now();
    s.cache_fill(entry(1, "http://a.com/x", "a.com", &["t1"], now))
        .await
        .unwrap();
    s.cache_fill(entry(2, "http://a.com/x", "a.com", &["t2"], now))
        .await
        .unwrap();
    s.cache_fill(entry(3, "http://a.com/y", "a.com", &["t1"], now))
        .await
        .unwrap();
    s.cache_fill(entry(4, "http://b.com/x", "b.com", &["t1"], now))
        .await
        .unwrap();
    let (e, tier) = s.cache_lookup(&[1; 16]).await.unwrap().unwrap();
    assert_eq!(tier, Tier::Hot);
    assert_eq!(e.body.len(), 100);

    let all = s
        .cache_list(&CacheFilter::default(), 2, None)
        .await
        .unwrap();
    let urls: Vec<_> = all
        .entries
        .iter()
        .map(|e| (e.url.as_str(), e.hash[0]))
        .collect();
    assert_eq!(urls, [("http://a.com/x", 1), ("http://a.com/x", 2)]);
    let rest = s
        .cache_list(&CacheFilter::default(), 10, all.cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.entries.len(), 2);
    assert!(rest.cursor.is_none());
    let t1 = CacheFilter {
        tag: Some("t1".into()),
        host: Some("a.com".into()),
        ..Default::default()
    };
    let l = s.cache_list(&t1, 10, None).await.unwrap();
    assert_eq!(
        l.entries.iter().map(|e| e.hash[0]).collect::<Vec<_>>(),
        [1, 3]
    );
    let p = CacheFilter {
        prefix: Some("http://a.com/".into()),
        ..Default::default()
    };
    assert_eq!(s.cache_list(&p, 10, None).await.unwrap().entries.len(), 3);

    // Soft purge by tag keeps entries, marks them.
    let sel = CacheSelector {
        tags: vec!["t2".into()],
        ..Default::default()
    };
    assert_eq!(s.cache_purge(&sel, PurgeMode::Soft, true).await.unwrap(), 1);
    assert_eq!(
        s.cache_purge(&sel, PurgeMode::Soft, false).await.unwrap(),
        1
    );
    let (e, _) = s.cache_lookup(&[2; 16]).await.unwrap().unwrap();
    assert!(e.soft_purged);
    assert!(e.fresh_until <= s.clock().now());
    // Hard purge by url removes all variants.
    let sel = CacheSelector {
        urls: vec!["http://a.com/x".into()],
        ..Default::default()
    };
    assert_eq!(
        s.cache_purge(&sel, PurgeMode::Hard, false).await.unwrap(),
        2
    );
    assert!(s.cache_lookup(&[1; 16]).await.unwrap().is_none());
    assert!(s.cache_lookup(&[2; 16]).await.unwrap().is_none());
    let sel = CacheSelector {
        hosts: vec!["b.com".into()],
        prefixes: vec!["http://a.com/".into()],
        ..Default::default()
    };
    assert_eq!(
        s.cache_purge(&sel, PurgeMode::Hard, false).await.unwrap(),
        2
    );
    assert_eq!(s.stats().cold_entries, 0);
}

#[tokio::test]
async fn cache_update_meta_expire_delete_and_stale_window() {
    let f = fixture().await;
    let s = &f.store;
    let now = s.clock().now();
    s.cache_fill(entry(9, "http://a/z", "a", &[], now))
        .await
        .unwrap();
    assert!(s.cache_expire(&[9; 16]).await.unwrap());
    let later = now + Duration::from_secs(500);
    assert!(s
        .cache_update_meta(
            &[9; 16],
            Bytes::from_static(b"m2"),
            Bytes::from_static(b"h2"),
            later,
            later
        )
        .await
        .unwrap());
    let (e, _) = s.cache_lookup(&[9; 16]).await.unwrap().unwrap();
    assert_eq!(&e.meta_internal[..], b"m2");
    assert!(!e.soft_purged);
    assert_eq!(e.body.len(), 100);
    f.clock.advance(Duration::from_secs(500));
    assert!(s.cache_lookup(&[9; 16]).await.unwrap().is_none());
    assert!(!s
        .cache_update_meta(&[9; 16], Bytes::new(), Bytes::new(), later, later)
        .await
        .unwrap());
    assert!(!s.cache_delete(&[9; 16]).await.unwrap());
    assert!(!s.cache_delete(&[9; 16]).await.unwrap());
}

/// `cache_fill` returns once queued: the fill must still be visible to lookups,
/// listings and dry runs at once, and a purge queued after it must win (the
/// writer applies requests in queue order), even with a hot tier that admits
/// nothing (the fill is then served from the queue, then from the cold tier).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_fills_are_seen_at_once_and_never_outlive_a_later_purge() {
    for hot_capacity in [0, 16 * 1024 * 1024] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config(&dir);
        cfg.hot_capacity = hot_capacity;
        let s = aside_store::Store::open(cfg).await.unwrap();
        let now = s.clock().now();
        for round in 0..20u8 {
            for i in 0..50u8 {
                let mut e = entry(i, &format!("http://q.com/{i}"), "q.com", &["t"], now);
                e.body = Bytes::from(vec![round; 10]);
                s.cache_fill(e).await.unwrap();
                let (got, _) = s.cache_lookup(&[i; 16]).await.unwrap().expect("visible");
                assert_eq!(got.body[0], round, "the newest fill wins");
            }
            let sel = CacheSelector {
                hosts: vec!["q.com".into()],
                ..Default::default()
            };
            assert_eq!(
                s.cache_purge(&sel, PurgeMode::Hard, true).await.unwrap(),
                50
            );
            let listed = s
                .cache_list(&CacheFilter::default(), 1000, None)
                .await
                .unwrap();
            assert_eq!(listed.entries.len(), 50);
            // Fills queued right before a purge: the purge removes them all.
            for i in 0..50u8 {
                s.cache_fill(entry(i, &format!("http://q.com/{i}"), "q.com", &[], now))
                    .await
                    .unwrap();
            }
            assert_eq!(
                s.cache_purge(&sel, PurgeMode::Hard, false).await.unwrap(),
                50
            );
            for i in 0..50u8 {
                assert!(s.cache_lookup(&[i; 16]).await.unwrap().is_none(), "{i}");
            }
            assert_eq!(s.stats().cold_entries, 0);
        }
        // Nothing resurrects later either (after the writer drained everything).
        s.flush().await.unwrap();
        for i in 0..50u8 {
            assert!(s.cache_lookup(&[i; 16]).await.unwrap().is_none());
        }
    }
}
