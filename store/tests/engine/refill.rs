//! Refills of a hash with another URL, host, tags or deadline keep every index
//! exact: a refill writes only the index rows that changed, so listings by tag,
//! host and URL prefix, purges and garbage collection are checked against a
//! model after random sequences of fills.

use std::collections::BTreeMap;
use std::time::Duration;

use aside_store::{CacheFilter, CacheSelector, Clock, PurgeMode};
use proptest::prelude::*;

use crate::basic::entry;
use crate::fixture;

const TAGS: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Debug)]
struct Fill {
    hash: u8,
    host: u8,
    path: u8,
    /// A bit per tag of `TAGS`.
    tags: u8,
    /// Stale deadline in hundreds of seconds from the start.
    stale: u64,
}

#[derive(Clone, Debug)]
struct Current {
    url: String,
    host: String,
    tags: Vec<&'static str>,
    stale: u64,
}

fn fill() -> impl Strategy<Value = Fill> {
    (1..5u8, 0..2u8, 0..3u8, 0..8u8, 1..4u64).prop_map(|(hash, host, path, tags, stale)| Fill {
        hash,
        host,
        path,
        tags,
        stale,
    })
}

async fn listed(store: &aside_store::Store, filter: CacheFilter) -> Vec<u8> {
    let page = store.cache_list(&filter, 100, None).await.unwrap();
    let mut hashes: Vec<u8> = page.entries.iter().map(|e| e.hash[0]).collect();
    hashes.sort_unstable();
    hashes
}

fn model_hashes(model: &BTreeMap<u8, Current>, keep: impl Fn(&Current) -> bool) -> Vec<u8> {
    model
        .iter()
        .filter(|(_, c)| keep(c))
        .map(|(h, _)| *h)
        .collect()
}

async fn run(fills: Vec<Fill>, flush_every: usize) {
    let f = fixture().await;
    let s = &f.store;
    let start = f.clock.now();
    let mut model: BTreeMap<u8, Current> = BTreeMap::new();
    for (i, op) in fills.iter().enumerate() {
        let host = format!("h{}", op.host);
        let url = format!("http://{host}/p{}", op.path);
        let tags: Vec<&'static str> = (0..3)
            .filter(|b| op.tags & (1 << b) != 0)
            .map(|b| TAGS[b])
            .collect();
        let mut e = entry(op.hash, &url, &host, &tags, start);
        e.fresh_until = start + Duration::from_secs(50);
        e.stale_until = start + Duration::from_secs(op.stale * 100);
        s.cache_fill(e).await.unwrap();
        model.insert(
            op.hash,
            Current {
                url,
                host,
                tags,
                stale: op.stale,
            },
        );
        // Refills in one batch and across batches.
        if i % flush_every == 0 {
            s.flush().await.unwrap();
        }
    }
    s.flush().await.unwrap();

    for tag in TAGS {
        let filter = CacheFilter {
            tag: Some(tag.into()),
            ..Default::default()
        };
        let want = model_hashes(&model, |c| c.tags.contains(&tag));
        assert_eq!(listed(s, filter).await, want, "tag {tag}");
        let sel = CacheSelector {
            tags: vec![tag.into()],
            ..Default::default()
        };
        let n = s.cache_purge(&sel, PurgeMode::Hard, true).await.unwrap();
        assert_eq!(n, want.len() as u64, "dry-run purge of tag {tag}");
    }
    for host in ["h0", "h1"] {
        let filter = CacheFilter {
            host: Some(host.into()),
            ..Default::default()
        };
        assert_eq!(
            listed(s, filter).await,
            model_hashes(&model, |c| c.host == host),
            "host {host}"
        );
        let filter = CacheFilter {
            prefix: Some(format!("http://{host}/")),
            ..Default::default()
        };
        assert_eq!(
            listed(s, filter).await,
            model_hashes(&model, |c| c.url.starts_with(&format!("http://{host}/"))),
            "prefix of {host}"
        );
    }

    // Garbage collection follows the expiry index: at each deadline, exactly the
    // entries whose window has passed are collected.
    for step in 1..=3u64 {
        f.clock.set(start + Duration::from_secs(step * 100 + 1));
        s.collect_garbage().await.unwrap();
        s.flush().await.unwrap();
        let live = model.values().filter(|c| c.stale > step).count() as u64;
        assert_eq!(s.stats().cold_entries, live, "after {}s", step * 100 + 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn refills_keep_every_index_exact(
        fills in prop::collection::vec(fill(), 1..30),
        flush_every in 1..5usize,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(fills, flush_every));
    }
}
