//! `aside-store`: the two-tier engine behind Aside, holding application KV items
//! (JSON values under `/`-separated keys) and cached HTTP responses (keyed by
//! pingora's 16-byte hash, indexed by url, host and tag).
//!
//! # Architecture
//!
//! A [`Store`] is a cheap handle over shared state. Reads look in the **hot tier**
//! first (a moka cache bounded in bytes, see `hot`), then in the **cold tier**
//! (one redb file, see `cold`, plus append-only segment files for cache bodies
//! over 2 KiB, see `bodies` and `compact`) off the tokio workers, promoting what
//! they find.
//! Cold reads whose bytes are in the OS page cache run on the caller's thread,
//! read with `RWF_NOWAIT` so that they never wait for the disk there (see
//! `nowait`); the others run on a small fixed pool of reader threads owned by the
//! store (see `reader`), fed by a bounded queue, so that concurrency queues instead
//! of growing threads. A lookup of a hash the cold tier does not hold skips redb
//! altogether (see `presence`).
//! Every write goes to a **writer thread** owned by the store (see `writer`) over a
//! bounded channel (the requests are in `op`); it applies all queued requests in
//! one redb transaction (see `apply_kv`, `apply_cache`) and commits once (group
//! commit): fsynced for KV writes and purges, non-durable for cache fills (made
//! durable within `cache_flush_interval`). After the commit a settler thread (see
//! `settle`) updates the hot tier in commit order and answers each caller through
//! a oneshot channel, which works from any tokio runtime. Cache fills are the
//! exception: they are answered as soon as they are queued, and wait in a
//! `pending` map (see `pending`; lookups consult it first) until committed. The
//! writer also runs garbage collection (see `gc`) through an expiry index and
//! enforces the cold byte budget through an LRU index; counters kept in a meta
//! table make opening O(1) (see `counters`). The value types are in `types`.
//! Time comes from an injectable [`Clock`]; every read checks expiry against it,
//! so an expired entry is never returned, whatever the GC has done.
//!
//! Choices worth knowing:
//! - listing order is by key, part by part: keys compare as sequences of
//!   `/`-separated parts, each part bytewise ("a/b" < "a-b"). The cold tier
//!   stores KV keys with `/` as 0x00 (below every byte a key may hold), so redb's
//!   byte order is that order; prefixes match whole parts;
//! - `cache_fill` returns once the fill is queued (bounded queue + byte budget:
//!   it waits for space, it never drops). Lookups see it at once (pending map,
//!   then hot tier); every later request, purges included, is applied after it
//!   (one queue, applied in order); listings and dry-run purges first wait for
//!   the queued fills to commit. A fill whose batch fails to commit is lost
//!   (counted in `write_errors`); an fsynced commit follows within
//!   `cache_flush_interval`;
//! - the LRU order of the cold budget is updated on fill, revalidation and cold
//!   hit (cold hits are noted in memory and written with the next batch); hot
//!   hits do not touch it, so an entry that lives in the hot tier may age out of
//!   the cold tier first. Only cache entries are evicted for space: KV items are
//!   application data and leave only when deleted or expired;
//! - the cold budget counts stored keys + records, not indexes or free pages;
//! - GC and budget enforcement run on the writer thread (every `gc_interval`,
//!   bounded per pass), since they need the single redb write transaction anyway.

mod apply_cache;
mod apply_kv;
mod bodies;
mod cache;
mod catalog;
mod clock;
mod cold;
mod compact;
mod config;
mod counters;
mod error;
mod gc;
mod hot;
pub mod key;
mod kv;
mod nowait;
mod op;
mod pending;
mod presence;
mod reader;
mod settle;
mod store;
mod stream;
mod tables;
mod types;
mod value;
mod version;
mod writer;

pub use clock::{Clock, MockClock, SystemClock};
pub use config::{Limits, StoreConfig, MAX_ATOMIC_OPS};
pub use error::{Error, Result};
pub use kv::{decode_cursor, encode_cursor};
pub use store::{Store, StoreStats};
pub use stream::{ColdBody, CHUNK, STREAM_MIN};
pub use types::{
    increment, AtomicResult, CacheEntry, CacheFilter, CacheHit, CachePage, CacheSelector,
    CacheSummary, Check, KvItem, ListPage, ListQuery, Mutation, PurgeMode, SetCondition, Tier,
    DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
};
pub use value::{AddError, JsonText, Numeric};
pub use version::Version;
