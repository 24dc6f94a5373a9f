//! kill -9 a real writer process at random moments; every acknowledged write must
//! be in the file afterwards, and no entry torn.
//!
//! The child is this test binary itself, re-executed with `ASIDE_CRASH_CHILD` set
//! and filtered to `crash::crash_child`, which then writes until it is killed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aside_store::{ListQuery, SetCondition, Store, StoreConfig};
use rand::Rng;
use serde_json::json;

use crate::basic::entry;

const CHILD_ENV: &str = "ASIDE_CRASH_CHILD";

fn value_for(key: &str, n: u64) -> serde_json::Value {
    let pad = "p".repeat((n as usize * 37) % 3000);
    json!({ "key": key, "n": n, "len": pad.len(), "pad": pad })
}

/// Cache bodies of fill `n`: inline, and in segment files (over 2 KiB).
fn body_len(n: u64) -> usize {
    [100, 3000, 20_000][(n % 3) as usize]
}

fn untorn(key: &str, v: &serde_json::Value) -> bool {
    v["key"] == json!(key)
        && v["pad"].as_str().map(str::len) == v["len"].as_u64().map(|l| l as usize)
}

/// Not a test on its own: the child process's body, run by
/// `kill9_keeps_every_acknowledged_write` (returns at once without the env var).
#[test]
#[ignore = "child process body of kill9_keeps_every_acknowledged_write, which runs it with --ignored"]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let round: u64 = std::env::var("ASIDE_CRASH_ROUND")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut cfg = StoreConfig::new(path);
        cfg.cache_flush_interval = Duration::from_millis(50);
        // Small segments and frequent GC: segments fill, empty, get compacted
        // and deleted while the child is killed.
        cfg.body_segment_bytes = 64 * 1024;
        cfg.gc_interval = Duration::from_millis(50);
        let store = Store::open(cfg).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..16u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let key = format!("r{round}/w{w}/{n}");
                    store
                        .set(&key, value_for(&key, n), None, SetCondition::Always)
                        .await
                        .unwrap();
                    // Overwrite an older key too: its value must be whole old or whole new.
                    let old = format!("shared/{}", n % 7);
                    store
                        .set(&old, value_for(&old, n), None, SetCondition::Always)
                        .await
                        .unwrap();
                    let now = store.clock().now();
                    let mut e = entry(
                        (n % 251) as u8,
                        &format!("http://h/{w}/{n}"),
                        "h",
                        &["t"],
                        now,
                    );
                    e.body = vec![e.hash[0]; body_len(n)].into();
                    // Half of the fills expire at once: GC deletes them, which
                    // leaves segments sparse for compaction.
                    e.stale_until = now
                        + if n % 2 == 0 {
                            Duration::from_secs(3600)
                        } else {
                            Duration::from_millis(100)
                        };
                    store.cache_fill(e).await.unwrap();
                    if n % 40 == 39 {
                        let selector = aside_store::CacheSelector {
                            prefixes: vec![format!("http://h/{w}/")],
                            ..Default::default()
                        };
                        store
                            .cache_purge(&selector, aside_store::PurgeMode::Hard, false)
                            .await
                            .unwrap();
                    }
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {key} END").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut total_acked = 0;
    for round in 0..5u64 {
        let mut child = Command::new(&exe)
            .args([
                "crash::crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .env("ASIDE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = acked.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(key) = line
                    .strip_prefix("ACK ")
                    .and_then(|l| l.strip_suffix(" END"))
                {
                    sink.lock().unwrap().push(key.to_string());
                }
            }
        });
        // Wait until the child writes, then kill it at a random moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "child never acknowledged a write"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();

        let acked = acked.lock().unwrap().clone();
        total_acked += acked.len();
        let store = Store::open(StoreConfig::new(&path)).await.unwrap();
        for key in &acked {
            let item = store.get(key).await.unwrap();
            let item = item.unwrap_or_else(|| panic!("round {round}: acknowledged {key} lost"));
            assert!(
                untorn(key, &item.value.to_value()),
                "torn value under {key}"
            );
        }
        // Every item in the file is whole, acknowledged or not.
        let mut cursor = None;
        loop {
            let page = store
                .list(ListQuery {
                    limit: 1000,
                    cursor,
                    ..Default::default()
                })
                .await
                .unwrap();
            for item in &page.items {
                assert!(
                    untorn(&item.key, &item.value.to_value()),
                    "torn value under {}",
                    item.key
                );
            }
            cursor = page.cursor;
            if cursor.is_none() {
                break;
            }
        }
        // Cache entries that survived are whole too.
        let page = store
            .cache_list(&Default::default(), 1000, None)
            .await
            .unwrap();
        for s in page.entries {
            let Some((e, _)) = store.cache_lookup(&s.hash).await.unwrap() else {
                // Only an entry that expired since the listing may be gone.
                assert!(
                    s.stale_until <= std::time::SystemTime::now(),
                    "{} lost",
                    s.url
                );
                continue;
            };
            let n: u64 = e.url.rsplit('/').next().unwrap().parse().unwrap();
            assert_eq!(e.body.len(), body_len(n), "body of {}", e.url);
            assert!(
                e.body.iter().all(|b| *b == e.hash[0]),
                "torn body of {}",
                e.url
            );
        }
    }
    assert!(total_acked > 0);
}
