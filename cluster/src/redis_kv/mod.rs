//! The KV contract over Redis (or Valkey): Redis is the source of truth, so every
//! node sees the same items, versions and listing.
//!
//! Layout (one configurable prefix `P`, default `aside:`; `{kv}` is a hash tag, so
//! every key below lives in one Cluster slot and one script may touch them all):
//!
//! | key | type | contents |
//! |---|---|---|
//! | `P{kv}:i:<member>` | hash | `v` value text, `ver` version, `exp` expiry ms (0 = none); `PEXPIREAT` |
//! | `P{kv}:idx` | zset | score 0, every member: listing order is `ZRANGE BYLEX` |
//! | `P{kv}:exp` | zset | score = expiry ms: what the listing sweep removes |
//! | `P{kv}:seq` | string | the version counter (`INCR`) |
//!
//! `<member>` is the key with `/` written as 0x00 (keys hold no control characters),
//! so the byte order of members is the part-wise order of keys, as in the embedded
//! store. Every write that touches more than one key is one Lua script, atomic inside
//! Redis; scripts check first and write last, since Redis does not roll back a
//! script that fails half-way. Expiry runs on the server's clock (`TIME`), one clock
//! for every node. `increment` is computed here, by the same code as the embedded
//! store, from a snapshot whose versions the script then requires (retried when a
//! concurrent write moved them): same numbers, same errors, on both backends.

mod atomic;
mod ops;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aside_store::key::stored_key;
use aside_store::{
    AtomicResult, Check, Error, JsonText, KvItem, Limits, ListPage, ListQuery, Mutation, Result,
    SetCondition, Version,
};
use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{RedisError, Script};

use crate::backend::KvBackend;
use crate::connect::{connection, ConnectError, RedisSettings};
use crate::latency::timed;

#[derive(Clone, Debug)]
struct Names {
    /// `P{kv}:i:`; an item is this plus its member.
    item: Vec<u8>,
    idx: String,
    exp: String,
    seq: String,
}

impl Names {
    fn new(prefix: &str) -> Names {
        Names {
            item: format!("{prefix}{{kv}}:i:").into_bytes(),
            idx: format!("{prefix}{{kv}}:idx"),
            exp: format!("{prefix}{{kv}}:exp"),
            seq: format!("{prefix}{{kv}}:seq"),
        }
    }

    fn item(&self, member: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.item.len() + member.len());
        k.extend_from_slice(&self.item);
        k.extend_from_slice(member);
        k
    }
}

struct Scripts {
    set: Script,
    delete: Script,
    list: Script,
    atomic: Script,
}

/// How long an atomic call with increments keeps retrying while concurrent
/// writes move its keys (optimistic: read, compute, write if unchanged).
const ATOMIC_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// The KV contract over Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisKv {
    /// Made on first use, so that its background tasks (reconnects) run on the
    /// runtime that serves the calls, and a node starts while Redis is down.
    conn: Arc<tokio::sync::OnceCell<ConnectionManager>>,
    settings: Arc<RedisSettings>,
    names: Arc<Names>,
    limits: Limits,
    scripts: Arc<Scripts>,
}

impl RedisKv {
    /// A backend for `settings`, enforcing `limits` (those of the embedded store, so
    /// both backends refuse the same input). Connects on first use.
    ///
    /// # Errors
    /// [`ConnectError::Url`] for an address redis-rs does not accept.
    pub fn new(
        settings: RedisSettings,
        limits: Limits,
    ) -> std::result::Result<RedisKv, ConnectError> {
        use redis::IntoConnectionInfo;
        settings
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| ConnectError::Url(e.to_string()))?;
        Ok(RedisKv {
            conn: Arc::new(tokio::sync::OnceCell::new()),
            names: Arc::new(Names::new(&settings.key_prefix)),
            settings: Arc::new(settings),
            limits,
            scripts: Arc::new(Scripts {
                set: Script::new(include_str!("../lua/set.lua")),
                delete: Script::new(include_str!("../lua/delete.lua")),
                list: Script::new(include_str!("../lua/list.lua")),
                atomic: Script::new(include_str!("../lua/atomic.lua")),
            }),
        })
    }

    /// The shared connection (a clone: it multiplexes).
    async fn conn(&self) -> Result<ConnectionManager> {
        self.conn
            .get_or_try_init(|| async { connection(&self.settings) })
            .await
            .cloned()
            .map_err(|e| Error::Unavailable {
                reason: e.to_string(),
            })
    }

    /// `HMGET v ver exp` of each key's hash, in one MULTI/EXEC: a snapshot of
    /// the keys, in their order.
    async fn fields_of<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Result<Vec<Fields>> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for k in keys {
            pipe.cmd("HMGET")
                .arg(self.names.item(&stored_key(k)))
                .arg("v")
                .arg("ver")
                .arg("exp");
        }
        let mut conn = self.conn().await?;
        pipe.query_async(&mut conn).await.map_err(unavailable)
    }

    /// Whether Redis answers `PING` now.
    pub async fn ping(&self) -> bool {
        let Ok(mut conn) = self.conn().await else {
            return false;
        };
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }
}

fn unavailable(e: RedisError) -> Error {
    tracing::warn!(target: "aside::cluster", error = %e, "redis call failed");
    Error::Unavailable {
        reason: if e.is_timeout() {
            "Redis did not answer in time".to_owned()
        } else if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
            "cannot reach Redis".to_owned()
        } else {
            format!("Redis refused the command: {e}")
        },
    }
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::Corrupt { what: what.into() }
}

fn parse_u64(text: &str, what: &str) -> Result<u64> {
    text.parse()
        .map_err(|_| corrupt(format!("{what} {text:?} in Redis is not a number")))
}

fn expiry(ms: u64) -> Option<SystemTime> {
    (ms != 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

fn ttl_ms(ttl: Duration) -> u128 {
    ttl.as_millis().max(1)
}

/// An item from its stored fields.
fn item(key: String, value: &[u8], version: &str, exp: &str) -> Result<KvItem> {
    let value = JsonText::from_stored(value)
        .map_err(|e| corrupt(format!("kv value of {key:?} in Redis: {e}")))?;
    Ok(KvItem {
        value,
        version: Version::from_u64(parse_u64(version, "version")?),
        expires_at: expiry(parse_u64(exp, "expiry")?),
        key,
    })
}

/// `(value, version, expiry)` fields of an `HMGET item v ver exp`.
type Fields = (Option<Vec<u8>>, Option<String>, Option<String>);

fn item_from_fields(key: &str, f: Fields) -> Result<Option<KvItem>> {
    match f {
        (Some(v), Some(ver), exp) => {
            item(key.to_owned(), &v, &ver, exp.as_deref().unwrap_or("0")).map(Some)
        }
        _ => Ok(None),
    }
}

/// One lex bound: `[x`, `(x`, `-` or `+`.
fn bound(prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(key.len() + 1);
    b.push(prefix);
    b.extend_from_slice(key);
    b
}

/// A key's expiry as the atomic script takes it.
#[derive(Clone, Copy, Debug)]
enum Expiry {
    None,
    /// Milliseconds from the script's `TIME`.
    Relative(u128),
    /// Absolute milliseconds since the epoch.
    Absolute(u64),
}

impl Expiry {
    fn args(self) -> (&'static str, String) {
        match self {
            Expiry::None => ("n", "0".to_owned()),
            Expiry::Relative(ms) => ("r", ms.to_string()),
            Expiry::Absolute(ms) => ("a", ms.to_string()),
        }
    }
}

/// A mutation ready for the script.
enum Planned {
    Set {
        key: String,
        value: JsonText,
        expiry: Expiry,
    },
    Delete {
        key: String,
    },
}

#[async_trait]
impl KvBackend for RedisKv {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn get(&self, key: &str) -> Result<Option<KvItem>> {
        timed(self.op_get(key)).await
    }

    async fn set(
        &self,
        key: &str,
        value: JsonText,
        ttl: Option<Duration>,
        condition: SetCondition,
    ) -> Result<KvItem> {
        timed(self.op_set(key, value, ttl, condition)).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        timed(self.op_delete(key)).await
    }

    async fn list(&self, query: ListQuery) -> Result<ListPage> {
        timed(self.op_list(query)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<KvItem>>> {
        timed(self.op_get_many(keys)).await
    }

    async fn atomic(&self, checks: Vec<Check>, mutations: Vec<Mutation>) -> Result<AtomicResult> {
        timed(self.op_atomic(checks, mutations)).await
    }
}
