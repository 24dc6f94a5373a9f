//! The KV contract the admin API talks to, and its embedded implementation.
//!
//! Two implementations keep the same wire shapes, limits, errors and ordering: the
//! node's own [`Store`] (standalone mode) and [`crate::RedisKv`] (cluster mode,
//! Redis as the source of truth). One contract test suite (`tests/contract.rs`) runs
//! against both.

use std::sync::Arc;
use std::time::Duration;

use aside_store::{
    AtomicResult, Check, JsonText, KvItem, Limits, ListPage, ListQuery, Mutation, Result,
    SetCondition, Store,
};
use async_trait::async_trait;

/// Where KV items live. Semantics are those of [`Store`]'s KV methods: expired items
/// are never returned, every write gets a new version, listing is in part-wise key
/// order, atomic calls are all or nothing. A backend that cannot be reached answers
/// `Error::Unavailable` (the admin API's 503), never local data.
#[async_trait]
pub trait KvBackend: Send + Sync + 'static {
    /// `"embedded"` or `"redis"`: for `/healthz`, logs and metrics.
    fn kind(&self) -> &'static str;

    /// The key, value and TTL limits this backend enforces.
    fn limits(&self) -> &Limits;

    /// The live item under `key`.
    ///
    /// # Errors
    /// `InvalidKey`, `Unavailable`, `Io`.
    async fn get(&self, key: &str) -> Result<Option<KvItem>>;

    /// Writes `value` under `key` if `condition` holds.
    ///
    /// # Errors
    /// `InvalidKey`, `ValueTooLarge`, `InvalidTtl`, `PreconditionFailed`, `Unavailable`.
    async fn set(
        &self,
        key: &str,
        value: JsonText,
        ttl: Option<Duration>,
        condition: SetCondition,
    ) -> Result<KvItem>;

    /// Deletes `key`; whether a live item existed.
    ///
    /// # Errors
    /// `InvalidKey`, `Unavailable`.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// One page of a listing.
    ///
    /// # Errors
    /// `InvalidCursor`, `Unavailable`.
    async fn list(&self, query: ListQuery) -> Result<ListPage>;

    /// Several gets, same order, `None` for missing keys.
    ///
    /// # Errors
    /// `InvalidKey`, `Unavailable`.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<KvItem>>>;

    /// Checks then mutations, all or nothing.
    ///
    /// # Errors
    /// `CheckFailed`, `NotANumber`, `IntegerOutOfRange`, `Overflow`, input errors,
    /// `Unavailable`.
    async fn atomic(&self, checks: Vec<Check>, mutations: Vec<Mutation>) -> Result<AtomicResult>;
}

/// A shared backend, as the admin state holds it.
pub type SharedKv = Arc<dyn KvBackend>;

/// Standalone mode: the node's own two-tier store.
#[async_trait]
impl KvBackend for Store {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn limits(&self) -> &Limits {
        Store::limits(self)
    }

    async fn get(&self, key: &str) -> Result<Option<KvItem>> {
        Store::get(self, key).await
    }

    async fn set(
        &self,
        key: &str,
        value: JsonText,
        ttl: Option<Duration>,
        condition: SetCondition,
    ) -> Result<KvItem> {
        Store::set(self, key, value, ttl, condition).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        Store::delete(self, key).await
    }

    async fn list(&self, query: ListQuery) -> Result<ListPage> {
        Store::list(self, query).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<KvItem>>> {
        Store::get_many(self, keys).await
    }

    async fn atomic(&self, checks: Vec<Check>, mutations: Vec<Mutation>) -> Result<AtomicResult> {
        Store::atomic(self, checks, mutations).await
    }
}
