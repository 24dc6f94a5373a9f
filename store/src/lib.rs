//! `aside-store`: the two-tier engine behind Aside, holding application KV items
//! (JSON values under `/`-separated keys) and cached HTTP responses (keyed by
//! pingora's 16-byte hash, indexed by url, host and tag).
//!
//! # Architecture
//!
//! A [`Store`] is a cheap handle over shared state. Reads look in the **hot tier**
//! first (a moka cache bounded in bytes, see `hot`), then in the **cold tier**
//! (one redb file, see `cold`) through `spawn_blocking`, promoting what they find.
//! Every write goes to a **writer thread** owned by the store (see `writer`) over a
//! bounded channel; it applies all queued requests in one redb transaction and
//! commits once (group commit): fsynced for KV writes and purges, non-durable for
//! cache fills (made durable within `cache_flush_interval`). After the commit it
//! updates the hot tier in commit order and answers each caller through a oneshot
//! channel, which works from any tokio runtime. The writer also runs garbage
//! collection (see `gc`) through an expiry index and enforces the cold byte budget
//! through an LRU index; counters kept in a meta table make opening O(1).
//! Time comes from an injectable [`Clock`]; every read checks expiry against it,
//! so an expired entry is never returned, whatever the GC has done.

mod cache;
mod catalog;
mod clock;
mod cold;
mod config;
mod error;
mod gc;
mod hot;
pub mod key;
mod kv;
mod store;
mod tables;
mod version;
mod writer;

pub use cache::{CacheEntry, CacheFilter, CachePage, CacheSelector, CacheSummary, PurgeMode, Tier};
pub use clock::{Clock, MockClock, SystemClock};
pub use config::{Limits, StoreConfig};
pub use error::{Error, Result};
pub use kv::{
    AtomicResult, Check, KvItem, ListPage, ListQuery, Mutation, SetCondition, DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
};
pub use store::{Store, StoreStats};
pub use version::Version;
