//! `aside-cluster`: everything of Aside that talks to Redis (or Valkey).
//!
//! # Architecture
//!
//! The admin KV API talks to one trait, [`KvBackend`], with two implementations:
//! the node's embedded [`aside_store::Store`] (standalone, the default) and
//! [`RedisKv`] (cluster mode: Redis is the source of truth, so every node answers
//! alike). Both share the value type ([`aside_store::JsonText`]), the key rules,
//! the limits, the cursor format and the increment arithmetic of `aside-store`, and
//! one contract test suite (`tests/contract.rs`) runs against both. `aside-store`
//! knows nothing of Redis; this crate knows nothing of HTTP.
//!
//! Purges fan out through a Redis Stream ([`Purges`], module `purge`): every node
//! appends the purges it takes and replays the others' from its last applied entry.
//!
//! Request budgets of rate-limited upstreams are shared through one token bucket
//! per upstream in Redis ([`SharedBudget`]). With `shared-cache`, cached responses
//! are copied to Redis after a fill and read back by the other nodes
//! ([`SharedCache`]); purges reach that copy before they are announced.
//!
//! Redis facts this code relies on (and the notes that checked them) are in
//! `redis_kv`'s module documentation and the Lua scripts under `src/lua/`.

mod backend;
mod budget;
mod connect;
pub mod latency;
mod purge;
mod redis_kv;
mod shared;

pub use backend::{KvBackend, SharedKv};
pub use budget::SharedBudget;
pub use connect::{connection, ConnectError, RedisSettings};
pub use purge::{
    ClusterView, Cursor, NodeView, Published, PurgeEvent, PurgeSettings, PurgeStats, Purges,
    Receipt, StreamId, WaitOutcome,
};
pub use redis_kv::RedisKv;
pub use shared::{Lookup, SharedCache, SharedSettings, SharedStats};
