//! Store configuration: plain structs with defaults; the proxy maps its TOML onto them.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

/// Most checks + mutations in one `atomic` call: bounds the size of one request's
/// share of a transaction, so a single request cannot stall the group commit.
pub const MAX_ATOMIC_OPS: usize = 1000;

/// Input limits enforced on every write, before anything reaches the writer thread.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest key, in bytes. Default: 512.
    pub max_key_bytes: usize,
    /// Largest value after JSON serialization, in bytes. Default: 1 MiB.
    pub max_value_bytes: usize,
    /// Shortest TTL accepted. Default: 1 s.
    pub min_ttl: Duration,
    /// Longest TTL accepted. Default: 365 days.
    pub max_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 512,
            max_value_bytes: 1024 * 1024,
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// How to open a store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The redb file; parent directories are created. Cache bodies over 2 KiB
    /// go to segment files in the directory `<path>.bodies` beside it.
    pub path: PathBuf,
    /// Hot tier (memory) budget in bytes. Default: 256 MiB.
    pub hot_capacity: u64,
    /// Cold tier (file) budget in bytes of stored keys + values. Default: 10 GiB.
    pub cold_capacity: u64,
    /// Key / value / TTL limits. Default: [`Limits::default`].
    pub limits: Limits,
    /// How often expired entries are collected and the cold budget enforced. Default: 5 s.
    pub gc_interval: Duration,
    /// How long a committed cache fill may stay non-durable. Default: 1 s.
    pub cache_flush_interval: Duration,
    /// redb page cache; kept small because the hot tier is moka's job and the OS
    /// page cache holds the file. Default: 4 MiB.
    pub redb_cache_bytes: usize,
    /// Largest size at which a body segment file is closed and a new one
    /// started (see the crate docs: bodies over 2 KiB live in segment files
    /// beside the redb file). Smaller segments are emptied and reclaimed sooner;
    /// larger ones mean fewer files. The store uses at most 1/32 of
    /// `cold_capacity` (and at least 1 MiB) whatever this says: see
    /// [`StoreConfig::segment_bytes`]. Default: 64 MiB.
    pub body_segment_bytes: u64,
}

/// Segments are at most this share of the cold capacity (see
/// [`StoreConfig::segment_bytes`]).
const SEGMENTS_PER_CAPACITY: u64 = 32;

impl StoreConfig {
    /// The segment size the store uses: `body_segment_bytes`, but no more than
    /// 1/32 of `cold_capacity` (and no less than 1 MiB, unless
    /// `body_segment_bytes` is smaller). The segment being appended to and the
    /// one being compacted are space on top of the bodies held; with 64 MiB
    /// segments in a 256 MiB tier they were half as much again.
    pub fn segment_bytes(&self) -> u64 {
        let share = (self.cold_capacity / SEGMENTS_PER_CAPACITY).max(1024 * 1024);
        self.body_segment_bytes.min(share)
    }

    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            hot_capacity: 256 * 1024 * 1024,
            cold_capacity: 10 * 1024 * 1024 * 1024,
            limits: Limits::default(),
            gc_interval: Duration::from_secs(5),
            cache_flush_interval: Duration::from_secs(1),
            redb_cache_bytes: 4 * 1024 * 1024,
            body_segment_bytes: 64 * 1024 * 1024,
        }
    }

    /// Checks the values that would make the store misbehave.
    ///
    /// # Errors
    /// `Error::Open` naming the path and the bad field.
    pub fn validate(self) -> Result<Self> {
        let bad = |reason: &str| Error::Open {
            path: self.path.clone(),
            reason: reason.to_string(),
        };
        if self.limits.min_ttl > self.limits.max_ttl {
            return Err(bad("limits.min_ttl is greater than limits.max_ttl"));
        }
        if self.gc_interval.is_zero() {
            return Err(bad("gc_interval must be positive"));
        }
        if self.body_segment_bytes < 64 * 1024 {
            return Err(bad("body_segment_bytes must be at least 64 KiB"));
        }
        if self.cache_flush_interval.is_zero() {
            return Err(bad("cache_flush_interval must be positive"));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::StoreConfig;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn segments_are_sized_to_the_cold_capacity() {
        let mut c = StoreConfig::new("/x");
        // The default 10 GiB tier keeps the 64 MiB default.
        assert_eq!(c.segment_bytes(), 64 * MIB);
        c.cold_capacity = 256 * MIB;
        assert_eq!(c.segment_bytes(), 8 * MIB);
        c.cold_capacity = 8 * MIB;
        assert_eq!(c.segment_bytes(), MIB);
        // A smaller configured size wins.
        c.body_segment_bytes = 64 * 1024;
        assert_eq!(c.segment_bytes(), 64 * 1024);
    }
}
