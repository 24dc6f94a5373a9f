//! Regression test for the thread explosion of `block_in_place` cold reads
//! (bench/PROFILE.md, "Threads and memory": a 1,000-request miss storm on
//! pingora's 1-worker runtime grew the process from 7 to 520 threads).
//!
//! Its own test binary, so that no other test's threads are counted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aside_store::{CacheEntry, Store, StoreConfig};
use bytes::Bytes;

fn threads_now() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn entry(i: u64) -> CacheEntry {
    let now = SystemTime::now();
    let mut hash = [0u8; 16];
    hash[..8].copy_from_slice(&i.to_le_bytes());
    hash[15] = 1;
    CacheEntry {
        hash,
        url: format!("http://t.local/{i}"),
        host: "t.local".into(),
        tags: vec![],
        status: 200,
        meta_internal: Bytes::from_static(b"mi"),
        meta_header: Bytes::from_static(b"mh"),
        body: Bytes::from(vec![b'x'; 16 * 1024]),
        stored_at: now,
        fresh_until: now + Duration::from_secs(3600),
        stale_until: now + Duration::from_secs(7200),
        soft_purged: false,
    }
}

#[test]
fn concurrent_cold_lookups_do_not_grow_threads() {
    let dir = tempfile::tempdir().unwrap();
    // pingora's runtime with 1 worker.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = StoreConfig::new(dir.path().join("threads.redb"));
    cfg.hot_capacity = 0; // every lookup reads the cold tier
    let store = rt.block_on(Store::open(cfg)).unwrap();
    const KEYS: u64 = 500;
    rt.block_on(async {
        for i in 0..KEYS {
            store.cache_fill(entry(i)).await.unwrap();
        }
        store.flush().await.unwrap();
        // One lookup first, so that anything started lazily exists before counting.
        assert!(store.cache_lookup(&entry(0).hash).await.unwrap().is_some());
    });
    let before = threads_now();

    // Sample the thread count while the storm runs.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(before));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(threads_now(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    rt.block_on(async {
        let mut tasks = Vec::new();
        // Hits of distinct keys, 1,000 lookups of one key, and misses.
        for t in 0..2000u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let (key, hit) = match t % 3 {
                    0 => (entry(t % KEYS).hash, true),
                    1 => (entry(7).hash, true),
                    _ => (entry(KEYS + t).hash, false),
                };
                let found = store.cache_lookup(&key).await.unwrap();
                assert_eq!(found.is_some(), hit, "lookup {t}");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    // Idle blocking threads linger for 10 s, so the count after the storm
    // shows any growth the sampler missed.
    let after = threads_now();
    let peak = peak.load(Ordering::Relaxed).max(after);
    // The sampler itself is one extra thread while it runs; allow one more.
    assert!(
        peak <= before + 2,
        "threads grew from {before} to {peak} during 2,000 concurrent cold lookups"
    );
}
