//! The Redis backend when Redis fails: answers `Unavailable` within the timeouts
//! (never local data), recovers by itself, and keeps acknowledged writes across a
//! SIGKILL + restart (AOF `appendfsync always`); scripts survive `SCRIPT FLUSH`.

mod support;

use std::time::{Duration, Instant};

use aside_cluster::KvBackend;
use aside_store::{Error, JsonText, Limits, SetCondition};
use support::RedisExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable_then_recovers_with_every_acknowledged_write() {
    let Some(mut redis) = support::Redis::start().await else {
        return;
    };
    let kv = redis.kv(Limits::default());
    let v = JsonText::parse(r#"{"z":1,"a":1.0}"#).unwrap();
    let a = kv
        .set("keep/a", v.clone(), None, SetCondition::Always)
        .await
        .unwrap();

    redis.kill().await;
    let started = Instant::now();
    let e = kv.get("keep/a").await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e}");
    assert!(e.to_string().contains("unavailable"), "{e}");
    let e = kv
        .set("keep/b", v.clone(), None, SetCondition::Always)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded");

    redis.restart().await;
    // The connection manager reconnects in the background: poll with a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let item = loop {
        match kv.get("keep/a").await {
            Ok(item) => break item,
            Err(Error::Unavailable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let item = item.expect("acknowledged write survives kill -9");
    assert_eq!(item.value.as_str(), v.as_str());
    assert_eq!(item.version, a.version);
    // The version counter survived too: no version is issued twice.
    let b = kv
        .set("keep/b", v, None, SetCondition::Always)
        .await
        .unwrap();
    assert!(b.version > a.version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_reload_after_script_flush() {
    let Some(redis) = support::Redis::start().await else {
        return;
    };
    let kv = redis.kv(Limits::default());
    kv.set("a", JsonText::from_i64(1), None, SetCondition::Always)
        .await
        .unwrap();
    let mut admin = aside_cluster::connection(&redis.settings("x:")).unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    kv.set("a", JsonText::from_i64(2), None, SetCondition::Always)
        .await
        .unwrap();
    assert_eq!(kv.get("a").await.unwrap().unwrap().value.as_str(), "2");
}
