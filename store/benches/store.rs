//! Criterion benches for the targets: hot get, cold get, durable sets with
//! 64 concurrent writers, cache fills. Run with
//! `cargo bench -p aside-store --bench store -- --warm-up-time 1 --measurement-time 3`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aside_store::{CacheEntry, SetCondition, Store, StoreConfig};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open(rt: &tokio::runtime::Runtime, dir: &tempfile::TempDir, hot: u64) -> Store {
    let mut cfg = StoreConfig::new(dir.path().join("bench.redb"));
    cfg.hot_capacity = hot;
    // To compare redb page-cache sizes (BENCHMARKS.md, "redb reads of large values").
    if let Ok(mib) = std::env::var("ASIDE_BENCH_REDB_CACHE_MIB") {
        cfg.redb_cache_bytes = mib.parse::<usize>().expect("a number of MiB") << 20;
    }
    rt.block_on(Store::open(cfg)).unwrap()
}

fn value_1k() -> serde_json::Value {
    json!("v".repeat(1022)) // 1024 bytes serialized
}

fn entry(i: u64) -> CacheEntry {
    entry_sized(i, 1024)
}

fn entry_sized(i: u64, body: usize) -> CacheEntry {
    let now = std::time::SystemTime::now();
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

fn gets(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&rt, &dir, 256 * 1024 * 1024);
    rt.block_on(store.set("bench/hot", value_1k(), None, SetCondition::Always))
        .unwrap();
    c.bench_function("hot_get_1k", |b| {
        b.to_async(&rt).iter(|| async {
            let item = store.get("bench/hot").await.unwrap();
            assert!(item.is_some());
        })
    });
    drop(store);

    // Hot tier of 0 bytes: every get is a cold read (file in the OS page cache).
    let dir = tempfile::tempdir().unwrap();
    let store = open(&rt, &dir, 0);
    rt.block_on(store.set("bench/cold", value_1k(), None, SetCondition::Always))
        .unwrap();
    c.bench_function("cold_get_1k", |b| {
        b.to_async(&rt).iter(|| async {
            let item = store.get("bench/cold").await.unwrap();
            assert!(item.is_some());
        })
    });
    drop(store);

    // Cache entries with 16 KiB bodies (the cold-tier scenario of bench/PROFILE.md),
    // hot tier of 0 bytes: every lookup reads the cold tier.
    let dir = tempfile::tempdir().unwrap();
    let store = open(&rt, &dir, 0);
    const COLD_KEYS: u64 = 1000;
    rt.block_on(async {
        for i in 0..COLD_KEYS {
            store.cache_fill(entry_sized(i, 16 * 1024)).await.unwrap();
        }
        store.flush().await.unwrap();
    });
    let next = std::sync::atomic::AtomicU64::new(0);
    let hash_of = |i: u64| entry_sized(i, 0).hash;
    c.bench_function("cold_lookup_16k", |b| {
        b.to_async(&rt).iter(|| async {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % COLD_KEYS;
            let found = store.cache_lookup(&hash_of(i)).await.unwrap();
            assert!(found.is_some());
        })
    });
    c.bench_function("cold_lookup_miss", |b| {
        b.to_async(&rt).iter(|| async {
            let found = store.cache_lookup(&hash_of(COLD_KEYS + 7)).await.unwrap();
            assert!(found.is_none());
        })
    });
    let mut g = c.benchmark_group("cold_concurrent");
    g.throughput(Throughput::Elements(64));
    g.sample_size(10);
    let s = store.clone();
    g.bench_function("cold_lookup_16k_64_tasks", |b| {
        b.iter_custom(|iters| {
            let s = s.clone();
            concurrent(&rt, 64, iters, move |w, i| {
                let s = s.clone();
                async move {
                    let h = entry_sized((w * 131 + i) % COLD_KEYS, 0).hash;
                    assert!(s.cache_lookup(&h).await.unwrap().is_some());
                }
            })
        })
    });
    g.finish();
    drop(s);
    drop(store);

    // A miss storm's shape on pingora's 1-worker runtime: 1,000 concurrent
    // lookups of one cold key (plus the thread count they leave behind).
    let rt1 = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&rt1, &dir, 0);
    rt1.block_on(async {
        store.cache_fill(entry_sized(1, 16 * 1024)).await.unwrap();
        store.flush().await.unwrap();
    });
    let mut g = c.benchmark_group("storm");
    g.throughput(Throughput::Elements(1000));
    g.sample_size(10);
    g.bench_function("cold_lookup_1000_one_key_1_worker", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                rt1.block_on(async {
                    let tasks: Vec<_> = (0..1000)
                        .map(|_| {
                            let s = store.clone();
                            tokio::spawn(async move {
                                let h = entry_sized(1, 0).hash;
                                assert!(s.cache_lookup(&h).await.unwrap().is_some());
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
            }
            start.elapsed()
        })
    });
    g.finish();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(t) = status.lines().find(|l| l.starts_with("Threads:")) {
        eprintln!("after the storm bench: {t}");
    }
}

/// `iters` rounds of `writers` concurrent operations; returns the elapsed time.
fn concurrent<F, Fut>(rt: &tokio::runtime::Runtime, writers: u64, iters: u64, op: F) -> Duration
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    rt.block_on(async move {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let op = op.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..iters {
                    op(w, i).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

fn writes(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&rt, &dir, 64 * 1024 * 1024);
    let mut g = c.benchmark_group("writes");
    g.throughput(Throughput::Elements(64));
    g.sample_size(10);
    let s = store.clone();
    g.bench_function("durable_set_64_writers", |b| {
        b.iter_custom(|iters| {
            let s = s.clone();
            concurrent(&rt, 64, iters, move |w, i| {
                let s = s.clone();
                async move {
                    s.set(
                        &format!("w{w}/{}", i % 1000),
                        json!({"w": w, "i": i}),
                        None,
                        SetCondition::Always,
                    )
                    .await
                    .unwrap();
                }
            })
        })
    });
    let s = store.clone();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // `cache_fill` returns once the entry is queued, so each sample ends with a
    // flush: the time counts every fill committed, not just accepted by the queue.
    g.bench_function("cache_fill_1k_64_fillers", |b| {
        b.iter_custom(|iters| {
            let s = s.clone();
            let counter = counter.clone();
            let fills = concurrent(&rt, 64, iters, {
                let s = s.clone();
                move |_, _| {
                    let s = s.clone();
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    async move {
                        s.cache_fill(entry(n % 200_000)).await.unwrap();
                    }
                }
            });
            let start = Instant::now();
            rt.block_on(s.flush()).unwrap();
            fills + start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, gets, writes);
criterion_main!(benches);
