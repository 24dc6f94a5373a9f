//! The hot tier: a moka future cache bounded in bytes, holding decoded KV items
//! and cache entries, so a hot read is a hash lookup plus an `Arc` clone.
//!
//! Consistency with the cold tier: only the writer thread inserts written values,
//! after the commit and in commit order, so the hot tier never goes back in time.
//! Readers promote cold hits with `or_insert` (never overwriting) and only when no
//! write to the same key shard committed since the read began (`epochs`), so a
//! slow reader cannot re-insert a value that a newer write replaced.

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
        self.cache.insert(key, value).await;
    }

    /// Writer only: a committed delete.
    pub(crate) async fn remove(&self, key: &HotKey) {
        self.epochs[self.shard(key)].fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(key).await;
    }

    /// Reader: promote a cold hit read while the shard epoch was `epoch`.
    pub(crate) async fn promote(&self, key: HotKey, value: HotValue, epoch: u64) {
        if self.epoch(&key) != epoch {
            return;
        }
        self.cache.entry(key).or_insert(value).await;
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
