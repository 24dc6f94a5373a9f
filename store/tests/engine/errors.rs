//! Every error the API can return for bad input or a bad file.

use std::sync::Arc;
use std::time::Duration;

use aside_store::{Error, Limits, Mutation, SetCondition, Store, StoreConfig, SystemClock};
use serde_json::json;

use crate::{config, fixture};

#[tokio::test]
async fn bad_keys_are_rejected_with_reason() {
    let f = fixture().await;
    let s = &f.store;
    let long = "k".repeat(513);
    for key in [
        "",
        "a//b",
        "/a",
        "a/",
        "a/./b",
        "a/../b",
        "a\tb",
        long.as_str(),
    ] {
        let e = s
            .set(key, json!(1), None, SetCondition::Always)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidKey { .. }), "{key:?}: {e}");
        assert!(matches!(s.get(key).await, Err(Error::InvalidKey { .. })));
        assert!(matches!(s.delete(key).await, Err(Error::InvalidKey { .. })));
    }
    let e = s.get("a//b").await.unwrap_err();
    assert_eq!(e.to_string(), "invalid key \"a//b\": empty part");
}

#[tokio::test]
async fn too_large_value_has_the_exact_message() {
    let f = fixture().await;
    // 1,264,189 bytes serialized = 1234.56 KB.
    let big = "x".repeat(1_264_189 - 2);
    let e = f
        .store
        .set("big", json!(big), None, SetCondition::Always)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Value size (1234.56 KB) exceeds the maximum allowed size of 1 MB (1024 KB)"
    );
    // Exactly at the limit is fine.
    let ok = "x".repeat(1024 * 1024 - 2);
    f.store
        .set("ok", json!(ok), None, SetCondition::Always)
        .await
        .unwrap();
    // Atomic sets are checked too, and nothing is written.
    let e = f
        .store
        .atomic(
            vec![],
            vec![
                Mutation::Set {
                    key: "a".into(),
                    value: json!(1).into(),
                    ttl: None,
                },
                Mutation::Set {
                    key: "b".into(),
                    value: json!(big).into(),
                    ttl: None,
                },
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ValueTooLarge { .. }));
    assert!(f.store.get("a").await.unwrap().is_none());
}

#[tokio::test]
async fn ttl_bounds() {
    let f = fixture().await;
    let s = &f.store;
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(365 * 86400 + 1),
    ] {
        let e = s
            .set("t", json!(1), Some(ttl), SetCondition::Always)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidTtl { .. }), "{ttl:?}");
    }
    s.set(
        "t",
        json!(1),
        Some(Duration::from_secs(1)),
        SetCondition::Always,
    )
    .await
    .unwrap();
    s.set(
        "t",
        json!(1),
        Some(Duration::from_secs(365 * 86400)),
        SetCondition::Always,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn increment_errors() {
    let f = fixture().await;
    let s = &f.store;
    s.set("s", json!("text"), None, SetCondition::Always)
        .await
        .unwrap();
    s.set("max", json!(i64::MAX), None, SetCondition::Always)
        .await
        .unwrap();
    let inc = |k: &str| Mutation::Increment {
        key: k.into(),
        delta: json!(1).into(),
        ttl: None,
    };
    assert!(matches!(
        s.atomic(vec![], vec![inc("s")]).await,
        Err(Error::NotANumber { .. })
    ));
    assert!(matches!(
        s.atomic(vec![], vec![inc("max")]).await,
        Err(Error::Overflow { .. })
    ));
    let too_many = (0..1001).map(|i| inc(&format!("k{i}"))).collect();
    assert!(matches!(
        s.atomic(vec![], too_many).await,
        Err(Error::TooManyOperations { .. })
    ));
}

#[tokio::test]
async fn non_redb_file_is_an_open_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
    std::fs::write(
        &cfg.path,
        b"this is not a redb file, just some text ".repeat(200),
    )
    .unwrap();
    let e = Store::open(cfg.clone()).await.err().expect("must fail");
    assert!(
        matches!(&e, Error::Open { path, .. } if path == &cfg.path),
        "{e}"
    );
    assert!(e.to_string().contains(&cfg.path.display().to_string()));
}

#[tokio::test]
async fn corrupt_redb_file_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    {
        let s = Store::open(cfg.clone()).await.unwrap();
        for i in 0..200 {
            s.set(
                &format!("k{i}"),
                json!("v".repeat(500)),
                None,
                SetCondition::Always,
            )
            .await
            .unwrap();
        }
    }
    // Overwrite the middle of the file with garbage, and separately truncate it.
    let bytes = std::fs::read(&cfg.path).unwrap();
    let mut garbled = bytes.clone();
    let mid = garbled.len() / 2;
    for b in &mut garbled[mid..mid + 4096.min(bytes.len() - mid)] {
        *b = 0xa5;
    }
    for variant in [
        garbled,
        bytes[..bytes.len() / 3].to_vec(),
        bytes[..100].to_vec(),
    ] {
        std::fs::write(&cfg.path, &variant).unwrap();
        match Store::open(cfg.clone()).await {
            Ok(s) => {
                // redb may repair; reads must then answer or error, not panic.
                for i in 0..200 {
                    let _ = s.get(&format!("k{i}")).await;
                }
            }
            Err(e) => {
                assert!(
                    matches!(&e, Error::Open { path, .. } if path == &cfg.path),
                    "{e}"
                );
            }
        }
    }
}

#[tokio::test]
async fn second_open_of_the_same_file_is_locked() {
    let f = fixture().await;
    let cfg = config(&f.dir);
    let e = Store::open_with_clock(cfg.clone(), Arc::new(SystemClock))
        .await
        .err()
        .expect("second open must fail");
    assert!(
        matches!(&e, Error::Open { path, .. } if path == &cfg.path),
        "{e}"
    );
    // The first store still works.
    f.store
        .set("a", json!(1), None, SetCondition::Always)
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_config_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.limits = Limits {
        min_ttl: Duration::from_secs(10),
        max_ttl: Duration::from_secs(1),
        ..Limits::default()
    };
    assert!(matches!(Store::open(cfg).await, Err(Error::Open { .. })));
    let _ = StoreConfig::new("x");
}

#[tokio::test]
async fn bad_versions_and_cursors() {
    assert!(matches!(
        "nope".parse::<aside_store::Version>(),
        Err(Error::InvalidVersion { .. })
    ));
    let f = fixture().await;
    assert!(matches!(
        f.store
            .cache_list(&Default::default(), 10, Some("bm9wZQ"))
            .await,
        Err(Error::InvalidCursor)
    ));
}

#[tokio::test]
async fn file_of_an_older_format_is_an_open_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    std::fs::create_dir_all(cfg.path.parent().unwrap()).unwrap();
    // What a format-1 store leaves: counters in `meta`, no format version.
    {
        let db = redb::Database::create(&cfg.path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(def).unwrap();
            meta.insert("next_version", 7).unwrap();
        }
        txn.commit().unwrap();
    }
    let e = Store::open(cfg.clone()).await.err().expect("must fail");
    assert!(
        matches!(&e, Error::Open { path, .. } if path == &cfg.path),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains(&cfg.path.display().to_string()), "{msg}");
    assert!(msg.contains("format version 1"), "{msg}");

    // A fresh file is stamped and reopens.
    let fresh = tempfile::tempdir().unwrap();
    drop(Store::open(config(&fresh)).await.unwrap());
    drop(Store::open(config(&fresh)).await.unwrap());
}
