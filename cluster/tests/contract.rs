//! The KV contract, run against both backends: the embedded store and Redis (a real
//! `redis-server` per test). Each scenario is written once against `&dyn KvBackend`;
//! the `contract!` macro makes one test per backend, so they cannot drift apart.

mod support;

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aside_cluster::KvBackend;
use aside_store::{Check, Error, JsonText, Limits, ListQuery, Mutation, SetCondition};
use serde_json::json;

fn j(text: &str) -> JsonText {
    JsonText::parse(text).expect("valid JSON")
}

fn limits() -> Limits {
    Limits {
        max_value_bytes: 1000,
        ..Limits::default()
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _dir) = crate::support::store(crate::limits()).await;
                    let kv: std::sync::Arc<dyn aside_cluster::KvBackend> = std::sync::Arc::new(store);
                    crate::$name(kv).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(redis) = crate::support::Redis::start().await else { return };
                    let kv: std::sync::Arc<dyn aside_cluster::KvBackend> =
                        std::sync::Arc::new(crate::support::RedisExt::kv(&redis, crate::limits()));
                    crate::$name(kv).await;
                }
            )*
        }
    };
}

contract!(
    set_get_delete_keep_the_text,
    conditional_writes,
    expiry_is_never_returned,
    listing_order_pages_and_totals,
    get_many_in_order,
    atomic_all_or_nothing,
    increments,
    same_input_errors,
    concurrent_increments_are_all_counted,
);

type Kv = Arc<dyn KvBackend>;

async fn set_get_delete_keep_the_text(kv: Kv) {
    let text = r#"{"theme":"dark","notifications":true,"n":1.0,"big":18446744073709551617}"#;
    let a = kv
        .set("prefs/u1", j(text), None, SetCondition::Always)
        .await
        .unwrap();
    assert_eq!(a.value.as_str(), text);
    assert_eq!(a.expires_at, None);
    let got = kv.get("prefs/u1").await.unwrap().unwrap();
    assert_eq!(got.value.as_str(), text);
    assert_eq!(got.version, a.version);
    let b = kv
        .set("prefs/u1", j("2"), None, SetCondition::Always)
        .await
        .unwrap();
    assert!(b.version > a.version, "versions grow");
    assert!(kv.delete("prefs/u1").await.unwrap());
    assert!(!kv.delete("prefs/u1").await.unwrap());
    assert!(kv.get("prefs/u1").await.unwrap().is_none());
    // Re-created: a version never seen before (no ABA).
    let c = kv
        .set("prefs/u1", j("3"), None, SetCondition::Always)
        .await
        .unwrap();
    assert!(c.version > b.version);
}

async fn conditional_writes(kv: Kv) {
    let a = kv
        .set("k", j("1"), None, SetCondition::IfAbsent)
        .await
        .unwrap();
    let e = kv
        .set("k", j("2"), None, SetCondition::IfAbsent)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::PreconditionFailed { ref key } if key == "k"),
        "{e}"
    );
    let b = kv
        .set("k", j("2"), None, SetCondition::IfVersion(a.version))
        .await
        .unwrap();
    let e = kv
        .set("k", j("3"), None, SetCondition::IfVersion(a.version))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PreconditionFailed { .. }), "{e}");
    assert_eq!(kv.get("k").await.unwrap().unwrap().version, b.version);
    kv.delete("k").await.unwrap();
    let e = kv
        .set("k", j("4"), None, SetCondition::IfVersion(b.version))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PreconditionFailed { .. }), "{e}");
}

async fn expiry_is_never_returned(kv: Kv) {
    let before = SystemTime::now();
    let item = kv
        .set(
            "t/short",
            j("1"),
            Some(Duration::from_secs(1)),
            SetCondition::Always,
        )
        .await
        .unwrap();
    let at = item.expires_at.expect("expiresAt");
    assert!(at >= before + Duration::from_millis(900), "{at:?}");
    assert!(
        at <= SystemTime::now() + Duration::from_millis(1100),
        "{at:?}"
    );
    kv.set(
        "t/long",
        j("2"),
        Some(Duration::from_secs(3600)),
        SetCondition::Always,
    )
    .await
    .unwrap();
    kv.set("t/none", j("3"), None, SetCondition::Always)
        .await
        .unwrap();
    assert_eq!(
        kv.get("t/short").await.unwrap().unwrap().expires_at,
        Some(at)
    );
    // Poll until the short one is gone everywhere (deadline, no fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(5);
    while kv.get("t/short").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(SystemTime::now() >= at);
    let page = kv
        .list(ListQuery {
            prefix: Some("t".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<_> = page.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["t/long", "t/none"]);
    assert_eq!(page.total, 2);
    let many = kv.get_many(&["t/short".into()]).await.unwrap();
    assert!(many[0].is_none());
    // An expired key counts as absent for conditions and atomic checks.
    kv.set("t/short", j("4"), None, SetCondition::IfAbsent)
        .await
        .unwrap();
}

/// Part-wise order: keys compare as lists of `/`-separated parts, each bytewise.
fn partwise(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

async fn listing_order_pages_and_totals(kv: Kv) {
    let keys = [
        "a", "a/b", "a/b/c", "a/b0", "a/c", "a/z/y", "a/é", "a-b/c", "ab", "b", "b/a",
    ];
    for (i, k) in keys.iter().rev().enumerate() {
        kv.set(k, json!(i).into(), None, SetCondition::Always)
            .await
            .unwrap();
    }
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_by(|a, b| partwise(a, b));
    let list = |q: ListQuery| {
        let kv = kv.clone();
        async move { kv.list(q).await.unwrap() }
    };
    let all = list(ListQuery::default()).await;
    let got: Vec<_> = all.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(got, expected);
    assert_eq!(all.total, keys.len() as u64);
    assert_eq!(all.cursor, None);

    // Prefix: whole parts, the prefix itself included; trailing '/' ignored.
    for prefix in ["a", "a/"] {
        let page = list(ListQuery {
            prefix: Some(prefix.into()),
            ..Default::default()
        })
        .await;
        let got: Vec<_> = page.items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(got, ["a", "a/b", "a/b/c", "a/b0", "a/c", "a/z/y", "a/é"]);
        assert_eq!(page.total, 7);
    }
    // start inclusive, end exclusive, with a prefix: the tighter bound wins.
    let page = list(ListQuery {
        prefix: Some("a".into()),
        start: Some("a/b0".into()),
        end: Some("a/z".into()),
        ..Default::default()
    })
    .await;
    let got: Vec<_> = page.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(got, ["a/b0", "a/c"]);
    assert_eq!(page.total, 2);
    // Empty window.
    let page = list(ListQuery {
        start: Some("b".into()),
        end: Some("a".into()),
        ..Default::default()
    })
    .await;
    assert!(page.items.is_empty() && page.total == 0 && page.cursor.is_none());

    // Pages of 3 with the cursor, both directions, cover everything once.
    for reverse in [false, true] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = list(ListQuery {
                limit: 3,
                cursor: cursor.clone(),
                reverse,
                ..Default::default()
            })
            .await;
            assert_eq!(page.total, keys.len() as u64);
            assert!(page.items.len() <= 3);
            seen.extend(page.items.into_iter().map(|i| i.key));
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        if reverse {
            want.reverse();
        }
        assert_eq!(seen, want, "reverse={reverse}");
    }
    // An exact last page has no cursor.
    let page = list(ListQuery {
        prefix: Some("b".into()),
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.cursor, None);
    // A forged cursor is refused.
    let e = kv
        .list(ListQuery {
            cursor: Some("!!".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidCursor), "{e}");
}

async fn get_many_in_order(kv: Kv) {
    kv.set("m/1", j(r#"{"b":1,"a":2}"#), None, SetCondition::Always)
        .await
        .unwrap();
    kv.set("m/2", j("[2.50]"), None, SetCondition::Always)
        .await
        .unwrap();
    let got = kv
        .get_many(&["m/2".into(), "m/none".into(), "m/1".into(), "m/2".into()])
        .await
        .unwrap();
    let texts: Vec<Option<&str>> = got
        .iter()
        .map(|i| i.as_ref().map(|i| i.value.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            Some("[2.50]"),
            None,
            Some(r#"{"b":1,"a":2}"#),
            Some("[2.50]")
        ]
    );
    assert!(kv.get_many(&[]).await.unwrap().is_empty());
}

async fn atomic_all_or_nothing(kv: Kv) {
    let a = kv
        .set("x/a", j("1"), None, SetCondition::Always)
        .await
        .unwrap();
    // A failed check names the key, expected and actual; nothing is written.
    let e = kv
        .atomic(
            vec![
                Check {
                    key: "x/a".into(),
                    version: Some(a.version),
                },
                Check {
                    key: "x/b".into(),
                    version: Some(a.version),
                },
            ],
            vec![Mutation::Set {
                key: "x/c".into(),
                value: j("1"),
                ttl: None,
            }],
        )
        .await
        .unwrap_err();
    match e {
        Error::CheckFailed {
            key,
            expected,
            actual,
        } => {
            assert_eq!(key, "x/b");
            assert_eq!(expected, Some(a.version));
            assert_eq!(actual, None);
        }
        other => panic!("{other}"),
    }
    assert!(kv.get("x/c").await.unwrap().is_none());
    // Absent check + set + delete + increment, in one commit, each its own version.
    let r = kv
        .atomic(
            vec![
                Check {
                    key: "x/lock".into(),
                    version: None,
                },
                Check {
                    key: "x/a".into(),
                    version: Some(a.version),
                },
            ],
            vec![
                Mutation::Set {
                    key: "x/lock".into(),
                    value: j(r#"{"by":"w1","n":1.0}"#),
                    ttl: Some(Duration::from_secs(60)),
                },
                Mutation::Delete { key: "x/a".into() },
                Mutation::Increment {
                    key: "x/n".into(),
                    delta: j("5"),
                    ttl: None,
                },
                Mutation::Increment {
                    key: "x/n".into(),
                    delta: j("2"),
                    ttl: None,
                },
            ],
        )
        .await
        .unwrap();
    let keys: Vec<_> = r.versions.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["x/lock", "x/a", "x/n", "x/n"]);
    assert!(r.versions[1].1.is_none());
    let (v0, v2, v3) = (
        r.versions[0].1.unwrap(),
        r.versions[2].1.unwrap(),
        r.versions[3].1.unwrap(),
    );
    assert!(v0 > a.version && v2 > v0 && v3 > v2, "{r:?}");
    let lock = kv.get("x/lock").await.unwrap().unwrap();
    assert_eq!(lock.value.as_str(), r#"{"by":"w1","n":1.0}"#);
    assert_eq!(lock.version, v0);
    assert!(lock.expires_at.is_some());
    assert!(kv.get("x/a").await.unwrap().is_none());
    let n = kv.get("x/n").await.unwrap().unwrap();
    assert_eq!(n.value.as_str(), "7");
    assert_eq!(n.version, v3);
    // Too many operations.
    let many = (0..aside_store::MAX_ATOMIC_OPS + 1)
        .map(|i| Mutation::Delete {
            key: format!("d/{i}"),
        })
        .collect();
    let e = kv.atomic(vec![], many).await.unwrap_err();
    assert!(matches!(e, Error::TooManyOperations { .. }), "{e}");
}

async fn increments(kv: Kv) {
    let inc = |key: &'static str, delta: &str, ttl: Option<u64>| {
        let kv = kv.clone();
        let delta = j(delta);
        async move {
            kv.atomic(
                vec![],
                vec![Mutation::Increment {
                    key: key.into(),
                    delta,
                    ttl: ttl.map(Duration::from_secs),
                }],
            )
            .await
        }
    };
    let value = |key: &'static str| {
        let kv = kv.clone();
        async move {
            kv.get(key)
                .await
                .unwrap()
                .map(|i| i.value.as_str().to_owned())
        }
    };
    inc("i/a", "9223372036854775806", None).await.unwrap();
    inc("i/a", "1", None).await.unwrap();
    assert_eq!(value("i/a").await.unwrap(), "9223372036854775807");
    assert!(matches!(
        inc("i/a", "1", None).await,
        Err(Error::Overflow { .. })
    ));
    inc("i/f", "1.5", None).await.unwrap();
    inc("i/f", "1", None).await.unwrap();
    assert_eq!(value("i/f").await.unwrap(), "2.5");
    kv.set(
        "i/big",
        j("18446744073709551617"),
        None,
        SetCondition::Always,
    )
    .await
    .unwrap();
    assert!(matches!(
        inc("i/big", "1", None).await,
        Err(Error::IntegerOutOfRange { delta: false, .. })
    ));
    assert!(matches!(
        inc("i/a", "-18446744073709551617", None).await,
        Err(Error::IntegerOutOfRange { delta: true, .. })
    ));
    assert_eq!(value("i/big").await.unwrap(), "18446744073709551617");
    kv.set("i/s", j(r#""x""#), None, SetCondition::Always)
        .await
        .unwrap();
    assert!(matches!(
        inc("i/s", "1", None).await,
        Err(Error::NotANumber { .. })
    ));
    assert!(matches!(
        inc("i/z", r#""1""#, None).await,
        Err(Error::NotANumber { .. })
    ));
    // The TTL is kept unless given.
    let t = kv
        .set(
            "i/t",
            j("1"),
            Some(Duration::from_secs(600)),
            SetCondition::Always,
        )
        .await
        .unwrap();
    inc("i/t", "1", None).await.unwrap();
    let after = kv.get("i/t").await.unwrap().unwrap();
    assert_eq!(after.value.as_str(), "2");
    let drift = match (after.expires_at, t.expires_at) {
        (Some(a), Some(b)) => a.duration_since(b).unwrap_or_else(|e| e.duration()),
        other => panic!("{other:?}"),
    };
    assert!(drift < Duration::from_millis(2), "{drift:?}");
    inc("i/t", "1", Some(3600)).await.unwrap();
    let later = kv.get("i/t").await.unwrap().unwrap().expires_at.unwrap();
    assert!(later > t.expires_at.unwrap() + Duration::from_secs(2000));
}

async fn same_input_errors(kv: Kv) {
    for bad in ["", "a//b", "/a", "a/", "a/../b", "a\u{1}b"] {
        let e = kv
            .set(bad, j("1"), None, SetCondition::Always)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidKey { .. }), "{bad:?}: {e}");
        assert!(matches!(kv.get(bad).await, Err(Error::InvalidKey { .. })));
    }
    let long = "k".repeat(513);
    assert!(matches!(kv.get(&long).await, Err(Error::InvalidKey { .. })));
    let big = JsonText::from(json!("x".repeat(1000)));
    let e = kv
        .set("v", big, None, SetCondition::Always)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Value size (0.99 KB) exceeds the maximum allowed size of 0.00 MB (0.98 KB)"
    );
    for ttl in [
        Duration::from_millis(500),
        Duration::from_secs(366 * 86_400),
    ] {
        let e = kv
            .set("v", j("1"), Some(ttl), SetCondition::Always)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidTtl { .. }), "{e}");
    }
    assert!(kv.get("v").await.unwrap().is_none());
}

async fn concurrent_increments_are_all_counted(kv: Kv) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    kv.atomic(
                        vec![],
                        vec![Mutation::Increment {
                            key: "c/hits".into(),
                            delta: j("1"),
                            ttl: None,
                        }],
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        kv.get("c/hits").await.unwrap().unwrap().value.as_str(),
        "400"
    );
}
