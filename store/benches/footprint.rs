//! Not a criterion bench: two one-shot measurements printed as text.
//! 1. open time of a store holding 1,000,000 entries (target < 1 s);
//! 2. hot-tier memory under 10x more distinct keys than fit (target: budget + 10%).
//!
//! `cargo bench -p aside-store --bench footprint` (set ASIDE_BENCH_ENTRIES to change 1M).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aside_store::{CacheEntry, Store, StoreConfig};
use bytes::Bytes;

fn entry(i: u64, body: usize) -> CacheEntry {
    let now = SystemTime::now();
    let mut hash = [0u8; 16];
    hash[..8].copy_from_slice(&i.to_le_bytes());
    CacheEntry {
        hash,
        url: format!("http://bench.local/item/{i}"),
        host: "bench.local".into(),
        tags: vec![],
        status: 200,
        meta_internal: Bytes::from_static(b"meta-internal"),
        meta_header: Bytes::from_static(b"meta-header"),
        body: Bytes::from(vec![b'x'; body]),
        stored_at: now,
        fresh_until: now + Duration::from_secs(3600),
        stale_until: now + Duration::from_secs(7200),
        soft_purged: false,
    }
}

async fn fill(store: &Store, n: u64, body: usize) {
    let workers = 64;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                store.cache_fill(entry(i, body)).await.unwrap();
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // ---- open time with 1M entries
        let n: u64 = std::env::var("ASIDE_BENCH_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("open.redb");
        let mut cfg = StoreConfig::new(&path);
        cfg.hot_capacity = 8 * 1024 * 1024;
        let t = Instant::now();
        {
            let store = Store::open(cfg.clone()).await.unwrap();
            fill(&store, n, 64).await;
            store.flush().await.unwrap();
            println!("filled {} entries in {:.1?} ({:.0}/s)", store.stats().cold_entries, t.elapsed(), n as f64 / t.elapsed().as_secs_f64());
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let store = Store::open(cfg.clone()).await.unwrap();
            let elapsed = t.elapsed();
            assert_eq!(store.stats().cold_entries, n);
            times.push(elapsed);
            drop(store);
        }
        times.sort();
        println!("open_1m_entries: file {:.0} MiB, median {:.2?}, max {:.2?} (target < 1 s)", size as f64 / 1048576.0, times[2], times[4]);
        drop(dir);

        // ---- hot memory with 10x more distinct keys than fit
        let budget: u64 = 64 * 1024 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(dir.path().join("mem.redb"));
        cfg.hot_capacity = budget;
        cfg.redb_cache_bytes = 1024 * 1024;
        let store = Arc::new(Store::open(cfg).await.unwrap());
        let before = rss_bytes();
        // Entries of ~1 KiB body; about budget / 1.3 KiB fit, write 10x that.
        let fit = budget / 1300;
        fill(&store, fit * 10, 1024).await;
        store.sync_hot_tier().await;
        let stats = store.stats();
        let after = rss_bytes();
        let delta = after.saturating_sub(before);
        println!(
            "hot_memory: budget {} MiB, wrote {} entries, hot entries {}, hot weighted {:.1} MiB, RSS growth {:.1} MiB = {:.0}% of budget (target <= 110%)",
            budget / 1048576,
            fit * 10,
            stats.hot_entries,
            stats.hot_bytes as f64 / 1048576.0,
            delta as f64 / 1048576.0,
            delta as f64 * 100.0 / budget as f64
        );
    });
}
