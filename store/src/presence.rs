//! Which hashes the cold tier holds, in memory, so that a cache lookup of a hash
//! it does not hold (every plain miss: 10% of a Zipf load, a whole miss storm)
//! answers at once instead of queueing a redb read.
//!
//! The set keeps the first 8 bytes of each hash (about 9-18 bytes per entry,
//! instead of ~36 for full hashes). It may say "maybe" for an absent hash (a
//! prefix shared with a present hash, a fill whose commit failed, a load racing
//! a delete): that only costs a redb read. It never says "absent" for a present
//! hash:
//! - the writer inserts a hash *before* committing the fill that adds it;
//! - it removes a prefix only *after* the commit that deleted the last hash with
//!   that prefix (checked in the write transaction, see `tables`), on the writer
//!   thread itself, so a later batch's insert cannot be undone by it;
//! - until the background load of the existing file finishes (`complete`),
//!   every lookup goes to redb. Open does not wait for the load, so opening a
//!   large file stays O(1).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use redb::{Database, ReadableDatabase};

use crate::cold::{self, Hash};
use crate::Result;

const SHARDS: usize = 64;

/// The prefix kept for a hash; its order matches the `cache` table's key order,
/// so "any hash with this prefix" is one range query.
pub(crate) fn prefix(h: &Hash) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_be_bytes(b)
}

/// The smallest and largest hash with the prefix of `h`.
pub(crate) fn prefix_range(h: &Hash) -> (Hash, Hash) {
    let mut lo = [0u8; 16];
    lo[..8].copy_from_slice(&h[..8]);
    let mut hi = [0xffu8; 16];
    hi[..8].copy_from_slice(&h[..8]);
    (lo, hi)
}

/// Mixes a `u64` (pingora's hashes are uniform, test hashes are not).
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        let x = (v ^ (v >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

type PrefixSet = HashSet<u64, BuildHasherDefault<Mix>>;

pub(crate) struct ColdPresence {
    /// Sharded so that the writer's inserts and the readers' checks rarely meet
    /// on one lock.
    shards: Box<[RwLock<PrefixSet>]>,
    /// The existing file's hashes are all in the set; until then it is not
    /// trusted.
    complete: AtomicBool,
    /// Tells a running load to stop (shutdown).
    cancel: AtomicBool,
}

impl ColdPresence {
    pub(crate) fn new() -> ColdPresence {
        ColdPresence {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(PrefixSet::default()))
                .collect(),
            complete: AtomicBool::new(false),
            cancel: AtomicBool::new(false),
        }
    }

    fn shard(&self, p: u64) -> &RwLock<PrefixSet> {
        let mut m = Mix::default();
        m.write_u64(p);
        &self.shards[(m.finish() >> 58) as usize % SHARDS]
    }

    /// `false` only when the cold tier certainly does not hold `h`.
    pub(crate) fn may_contain(&self, h: &Hash) -> bool {
        if !self.complete.load(Ordering::Acquire) {
            return true;
        }
        let p = prefix(h);
        self.shard(p).read().contains(&p)
    }

    /// Writer: `h` is about to be committed.
    pub(crate) fn insert(&self, h: &Hash) {
        let p = prefix(h);
        self.shard(p).write().insert(p);
    }

    /// Writer: the last hash with this prefix is gone (committed).
    pub(crate) fn remove_prefix_of(&self, h: &Hash) {
        let p = prefix(h);
        self.shard(p).write().remove(&p);
    }

    #[cfg(test)]
    pub(crate) fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    pub(crate) fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }

    /// Adds every hash of the file (from the small `lru` index, one row per
    /// entry, rather than the `cache` table with its bodies), then marks the set
    /// complete. Runs on its own thread; the writer keeps the set current
    /// meanwhile (a hash deleted after the snapshot may stay as a false "maybe").
    pub(crate) fn load(&self, db: &Database) -> Result<()> {
        use crate::cold::Ctx;
        use redb::ReadableTable;
        let txn = db.begin_read().ctx("loading the cold-tier hash set")?;
        let lru = txn
            .open_table(cold::LRU)
            .ctx("loading the cold-tier hash set")?;
        let mut n = 0u64;
        for row in lru.iter().ctx("loading the cold-tier hash set")? {
            let (k, _) = row.ctx("loading the cold-tier hash set")?;
            self.insert(k.value().1);
            n += 1;
            if n.is_multiple_of(4096) && self.cancel.load(Ordering::Acquire) {
                return Ok(());
            }
        }
        self.complete.store(true, Ordering::Release);
        tracing::debug!(entries = n, "cold-tier hash set loaded");
        Ok(())
    }
}

/// Starts the background load.
pub(crate) fn start_load(
    presence: Arc<ColdPresence>,
    db: Arc<Database>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("aside-store-presence".into())
        .spawn(move || {
            if let Err(e) = presence.load(&db) {
                // Stays incomplete: every lookup keeps going to redb.
                tracing::warn!(error = %e, "cannot load the cold-tier hash set");
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_range_brackets_the_hash() {
        let h: Hash = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        let (lo, hi) = prefix_range(&h);
        assert!(lo <= h && h <= hi);
        assert_eq!(prefix(&lo), prefix(&h));
        assert_eq!(prefix(&hi), prefix(&h));
    }

    #[test]
    fn incomplete_set_says_maybe() {
        let p = ColdPresence::new();
        assert!(p.may_contain(&[9; 16]));
        p.complete.store(true, Ordering::Release);
        assert!(!p.may_contain(&[9; 16]));
        p.insert(&[9; 16]);
        // Same prefix, other suffix: a false "maybe", allowed.
        let mut other = [9; 16];
        other[15] = 0;
        assert!(p.may_contain(&other));
        p.remove_prefix_of(&[9; 16]);
        assert!(!p.may_contain(&[9; 16]));
    }
}
