//! The hot tier: a moka future cache bounded in bytes, holding decoded KV items
//! and cache entries, so a hot read is a hash lookup plus an `Arc` clone.
//!
//! Consistency with the cold tier: only the writer thread inserts written values,
//! after the commit and in commit order, so the hot tier never goes back in time.
//! Readers promote cold hits only when no write to the same key shard committed
//! since the read began (`epochs`), checked before and after their insert, so a
//! slow reader cannot leave behind a value that a newer write replaced or deleted.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use moka::future::Cache;
use moka::Expiry;

use crate::cold::Hash;
use crate::{CacheEntry, Clock, JsonText, Version};

/// Bytes charged per entry on top of key + value: moka's own bookkeeping, the
/// `Arc`s, the decoded struct and enum wrappers. Calibrated with the memory bench
/// (see BENCHMARKS.md): 240 gave 126% of the budget in RSS.
pub(crate) const ENTRY_OVERHEAD: u64 = 560;

const EPOCH_SHARDS: usize = 256;

/// Inserted bytes past which moka's pending writes are applied at once: a
/// sixteenth of the capacity, at least 1 MiB (small entries reach moka's own
/// 64-write trigger first).
const SETTLE_FRACTION: u64 = 16;
const MIN_SETTLE_BYTES: u64 = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HotKey {
    Kv(Arc<str>),
    Cache(Hash),
}

/// A decoded KV item.
#[derive(Debug)]
pub(crate) struct KvRecord {
    pub(crate) version: Version,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) value: JsonText,
}

impl KvRecord {
    pub(crate) fn is_live(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}

#[derive(Clone, Debug)]
pub(crate) enum HotValue {
    Kv(Arc<KvRecord>),
    Cache(Arc<CacheEntry>),
}

/// Tells moka when to drop an entry by itself: at its expiry (KV) or at the end of
/// its stale window (cache). Reads still check the store clock; this only frees memory.
struct Deadline {
    clock: Arc<dyn Clock>,
}

impl Deadline {
    fn until(&self, v: &HotValue) -> Option<Duration> {
        let at = match v {
            HotValue::Kv(r) => r.expires_at?,
            HotValue::Cache(e) => e.stale_until,
        };
        Some(
            at.duration_since(self.clock.now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

impl Expiry<HotKey, HotValue> for Deadline {
    fn expire_after_create(&self, _: &HotKey, v: &HotValue, _: Instant) -> Option<Duration> {
        self.until(v)
    }

    fn expire_after_update(
        &self,
        _: &HotKey,
        v: &HotValue,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.until(v)
    }
}

fn weigh(k: &HotKey, v: &HotValue) -> u32 {
    let key = match k {
        HotKey::Kv(s) => s.len() as u64,
        HotKey::Cache(_) => 16,
    };
    let value = match v {
        HotValue::Kv(r) => r.value.len() as u64,
        HotValue::Cache(e) => {
            (e.body.len()
                + e.meta_internal.len()
                + e.meta_header.len()
                + e.url.len()
                + e.host.len()
                + e.tags.iter().map(|t| t.len() + 24).sum::<usize>()) as u64
        }
    };
    u32::try_from(key + value + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
}

/// The hot tier. Cheap to clone (moka and the epochs are shared).
#[derive(Clone)]
pub(crate) struct HotTier {
    /// The bounded cache itself.
    /// foldhash instead of moka's default SipHash: every lookup hashes its key
    /// (SipHash was ~5% of a cold hit); seeded per process.
    cache: Cache<HotKey, HotValue, foldhash::quality::RandomState>,
    /// Per-shard write counters, bumped by the writer after each commit, read by
    /// readers around a cold read to decide whether promoting is still safe.
    epochs: Arc<[AtomicU64]>,
    /// Chooses a shard for a key; fixed seed so every clone agrees.
    hasher: foldhash::fast::FixedState,
    /// Entries moka dropped to stay within capacity (they stay in the cold tier).
    evicted: Arc<AtomicU64>,
    /// Bytes inserted since this tier last had moka apply its pending writes.
    /// moka applies them (and evicts) every 64 writes, so 64 large bodies could
    /// sit over capacity: 64 MiB past a 64 MiB tier with 1 MiB bodies. Past
    /// `settle_every` bytes the inserting task applies them itself.
    unsettled: Arc<AtomicU64>,
    settle_every: u64,
}

impl HotTier {
    pub(crate) fn new(capacity: u64, clock: Arc<dyn Clock>) -> HotTier {
        let evicted = Arc::new(AtomicU64::new(0));
        let counter = evicted.clone();
        let cache = Cache::builder()
            .max_capacity(capacity)
            .weigher(weigh)
            .expire_after(Deadline { clock })
            .eviction_listener(move |_key, _value, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build_with_hasher(foldhash::quality::RandomState::default());
        let epochs: Vec<AtomicU64> = (0..EPOCH_SHARDS).map(|_| AtomicU64::new(0)).collect();
        HotTier {
            cache,
            epochs: epochs.into(),
            hasher: Default::default(),
            evicted,
            unsettled: Arc::new(AtomicU64::new(0)),
            settle_every: (capacity / SETTLE_FRACTION).max(MIN_SETTLE_BYTES),
        }
    }

    /// Entries evicted to stay within capacity since the store opened.
    pub(crate) fn evictions(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn shard(&self, key: &HotKey) -> usize {
        (self.hasher.hash_one(key) as usize) % EPOCH_SHARDS
    }

    pub(crate) fn epoch(&self, key: &HotKey) -> u64 {
        self.epochs[self.shard(key)].load(Ordering::Acquire)
    }

    pub(crate) async fn get(&self, key: &HotKey) -> Option<HotValue> {
        self.cache.get(key).await
    }

    pub(crate) fn contains(&self, key: &HotKey) -> bool {
        self.cache.contains_key(key)
    }

    /// Writer only: a committed write.
    pub(crate) async fn put(&self, key: HotKey, value: HotValue) {
        self.epochs[self.shard(&key)].fetch_add(1, Ordering::AcqRel);
        let w = weigh(&key, &value);
        self.cache.insert(key, value).await;
        self.settle_after(w).await;
    }

    /// Writer only: a committed delete.
    pub(crate) async fn remove(&self, key: &HotKey) {
        self.epochs[self.shard(key)].fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(key).await;
    }

    /// Reader: promote a cold hit read while the shard epoch was `epoch`.
    ///
    /// The writer bumps a shard's epoch before each of its own changes to the
    /// hot tier. A write that lands between the check below and the insert
    /// (an insert of a newer value, or a delete) is therefore seen by the
    /// second check, and the promoted value, possibly stale, is dropped: the
    /// hot tier may lose the newer value then, never keep an older one (the
    /// cold tier has the newer one committed). A plain insert: moka's
    /// `entry().or_insert` took a key lock and a lookup, ~9,000 instructions
    /// of a cold hit, and still let a value deleted in that window back in.
    pub(crate) async fn promote(&self, key: HotKey, value: HotValue, epoch: u64) {
        if self.epoch(&key) != epoch {
            return;
        }
        let w = weigh(&key, &value);
        self.cache.insert(key.clone(), value).await;
        if self.epoch(&key) != epoch {
            self.cache.invalidate(&key).await;
        }
        self.settle_after(w).await;
    }

    /// Counts `w` inserted bytes; past `settle_every`, applies moka's pending
    /// writes so that the tier is back within capacity.
    async fn settle_after(&self, w: u32) {
        let total = self.unsettled.fetch_add(u64::from(w), Ordering::Relaxed) + u64::from(w);
        if total >= self.settle_every {
            self.unsettled.store(0, Ordering::Relaxed);
            self.cache.run_pending_tasks().await;
        }
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    pub(crate) fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    pub(crate) async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SystemClock;

    fn entry(i: u8, body: usize) -> (HotKey, HotValue) {
        let now = SystemTime::now();
        let e = CacheEntry {
            hash: [i; 16],
            url: format!("http://t/{i}"),
            host: "t".into(),
            tags: vec![],
            status: 200,
            meta_internal: bytes::Bytes::new(),
            meta_header: bytes::Bytes::new(),
            body: bytes::Bytes::from(vec![i; body]),
            stored_at: now,
            fresh_until: now + Duration::from_secs(60),
            stale_until: now + Duration::from_secs(60),
            soft_purged: false,
        };
        (HotKey::Cache([i; 16]), HotValue::Cache(Arc::new(e)))
    }

    /// A promotion never leaves an older value behind a write to its shard:
    /// made after the write, it is refused; the write's epoch bump, made
    /// before its hot-tier change, makes either check refuse it.
    #[tokio::test]
    async fn a_promotion_behind_a_write_is_dropped() {
        let hot = HotTier::new(1 << 20, Arc::new(SystemClock));
        let (k, old) = entry(1, 10);
        // Read began, then a delete committed: the stale value stays out.
        let epoch = hot.epoch(&k);
        hot.remove(&k).await;
        hot.promote(k.clone(), old.clone(), epoch).await;
        assert!(hot.get(&k).await.is_none());
        // Read began, then a newer value was written: it stays.
        let epoch = hot.epoch(&k);
        let (_, newer) = entry(1, 20);
        hot.put(k.clone(), newer).await;
        hot.promote(k.clone(), old.clone(), epoch).await;
        match hot.get(&k).await {
            Some(HotValue::Cache(e)) => assert_eq!(e.body.len(), 20),
            _ => panic!("the newer value is gone"),
        }
        // No write since the read: promoted.
        let (k2, v2) = entry(2, 10);
        let epoch = hot.epoch(&k2);
        hot.promote(k2.clone(), v2, epoch).await;
        assert!(hot.get(&k2).await.is_some());
    }

    /// Large bodies must not pile up past capacity while moka waits for its
    /// 64-write trigger: 48 bodies of 256 KiB into a 4 MiB tier held up to
    /// 12 MiB before `settle_after`.
    #[tokio::test]
    async fn large_inserts_stay_near_capacity() {
        const CAP: u64 = 4 * 1024 * 1024;
        const BODY: usize = 256 * 1024;
        let hot = HotTier::new(CAP, Arc::new(SystemClock));
        let mut peak = 0u64;
        for i in 0..48u8 {
            let (k, v) = entry(i, BODY);
            if i % 2 == 0 {
                hot.put(k, v).await;
            } else {
                let epoch = hot.epoch(&k);
                hot.promote(k, v, epoch).await;
            }
            let held = (0..=i)
                .filter(|j| hot.contains(&HotKey::Cache([*j; 16])))
                .count() as u64;
            peak = peak.max(held * BODY as u64);
        }
        let bound = CAP + MIN_SETTLE_BYTES + BODY as u64;
        assert!(peak <= bound, "held {peak} bytes, bound {bound}");
    }
}
