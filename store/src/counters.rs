//! The engine's counters (entries, bytes, evictions, errors) as atomics: loaded
//! from the meta table at open, published by the writer after each commit, read
//! by `Store::stats` without touching the file.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::tables::Meta;
use crate::Result;

/// Counters published to `Store::stats` after each commit.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) kv_entries: AtomicU64,
    pub(crate) kv_bytes: AtomicU64,
    pub(crate) cache_entries: AtomicU64,
    pub(crate) cache_bytes: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) expired_collected: AtomicU64,
    pub(crate) write_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn load(table: &impl redb::ReadableTable<&'static str, u64>) -> Result<Counters> {
        let c = Counters::default();
        c.publish(&Meta::load(table)?);
        Ok(c)
    }

    pub(crate) fn publish(&self, m: &Meta) {
        self.kv_entries.store(m.kv_entries, Ordering::Relaxed);
        self.kv_bytes.store(m.kv_bytes, Ordering::Relaxed);
        self.cache_entries.store(m.cache_entries, Ordering::Relaxed);
        self.cache_bytes.store(m.cache_bytes, Ordering::Relaxed);
    }
}
