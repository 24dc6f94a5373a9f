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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aside_store::key::{
    check_value, key_from_stored, normalize_prefix, stored_key, stored_prefix_end, validate_key,
    validate_ttl,
};
use aside_store::{
    decode_cursor, encode_cursor, increment, AtomicResult, Check, Error, JsonText, KvItem, Limits,
    ListPage, ListQuery, Mutation, Result, SetCondition, Version, DEFAULT_LIST_LIMIT,
    MAX_ATOMIC_OPS, MAX_LIST_LIMIT,
};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script, Value};

use crate::backend::KvBackend;
use crate::latency::timed;

/// How to reach Redis. Built by the binary from the `[cluster]` config section.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://`, `rediss://` (TLS, verified), `redis+unix://`, `valkey://`, ...
    pub url: String,
    /// ACL user; overrides the URL's.
    pub username: Option<String>,
    /// Password; overrides the URL's.
    pub password: Option<String>,
    /// Prefix of every key (must not contain `{` or `}`).
    pub key_prefix: String,
    /// Longest wait to (re)connect.
    pub connect_timeout: Duration,
    /// Longest wait for one answer; past it the call is `Unavailable`.
    pub command_timeout: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

/// Errors of building a connection (a malformed URL); everything later is an
/// `aside_store::Error::Unavailable`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error("invalid Redis address: {0}")]
    Url(String),
}

/// A client for `settings` (RESP3, the settings' user and password).
///
/// # Errors
/// [`ConnectError::Url`] for an address redis-rs does not accept.
pub fn client(settings: &RedisSettings) -> std::result::Result<redis::Client, ConnectError> {
    use redis::IntoConnectionInfo;
    let mut info = settings
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| ConnectError::Url(e.to_string()))?;
    let mut redis_info = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    if let Some(user) = &settings.username {
        redis_info = redis_info.set_username(user);
    }
    if let Some(password) = &settings.password {
        redis_info = redis_info.set_password(password);
    }
    info = info.set_redis_settings(redis_info);
    let client = redis::Client::open(info).map_err(|e| ConnectError::Url(e.to_string()))?;
    Ok(client)
}

/// A client whose connection is made on first use and re-made in the background
/// after a drop (redis-rs `ConnectionManager`); commands are never re-sent, so a
/// write that failed is reported, not silently applied twice.
///
/// # Errors
/// [`ConnectError::Url`] for an address redis-rs does not accept.
pub fn connection(
    settings: &RedisSettings,
) -> std::result::Result<ConnectionManager, ConnectError> {
    let client = client(settings)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.command_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| ConnectError::Url(e.to_string()))
}

/// Key names under one prefix.
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
                set: Script::new(include_str!("lua/set.lua")),
                delete: Script::new(include_str!("lua/delete.lua")),
                list: Script::new(include_str!("lua/list.lua")),
                atomic: Script::new(include_str!("lua/atomic.lua")),
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

/// The KV operations, untimed; the trait impl counts each in `REDIS_LATENCY`.
impl RedisKv {
    async fn op_get(&self, key: &str) -> Result<Option<KvItem>> {
        validate_key(key, &self.limits)?;
        let mut conn = self.conn().await?;
        let fields: Fields = redis::cmd("HMGET")
            .arg(self.names.item(&stored_key(key)))
            .arg("v")
            .arg("ver")
            .arg("exp")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        item_from_fields(key, fields)
    }

    async fn op_set(
        &self,
        key: &str,
        value: JsonText,
        ttl: Option<Duration>,
        condition: SetCondition,
    ) -> Result<KvItem> {
        validate_key(key, &self.limits)?;
        validate_ttl(ttl, &self.limits)?;
        check_value(&value, &self.limits)?;
        let member = stored_key(key);
        let (mode, expected) = match &condition {
            SetCondition::Always => ("any", String::new()),
            SetCondition::IfAbsent => ("absent", String::new()),
            SetCondition::IfVersion(v) => ("ver", v.as_u64().to_string()),
        };
        let mut conn = self.conn().await?;
        let reply: Vec<u64> = self
            .scripts
            .set
            .key(self.names.item(&member))
            .key(&self.names.idx)
            .key(&self.names.exp)
            .key(&self.names.seq)
            .arg(&member)
            .arg(value.as_str())
            .arg(ttl.map_or(0, ttl_ms).to_string())
            .arg(mode)
            .arg(expected)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match reply.as_slice() {
            [1, version, at] => Ok(KvItem {
                key: key.to_owned(),
                value,
                version: Version::from_u64(*version),
                expires_at: expiry(*at),
            }),
            [0] => Err(Error::PreconditionFailed {
                key: key.to_owned(),
            }),
            other => Err(corrupt(format!("set script answered {other:?}"))),
        }
    }

    async fn op_delete(&self, key: &str) -> Result<bool> {
        validate_key(key, &self.limits)?;
        let member = stored_key(key);
        let mut conn = self.conn().await?;
        let n: u64 = self
            .scripts
            .delete
            .key(self.names.item(&member))
            .key(&self.names.idx)
            .key(&self.names.exp)
            .arg(&member)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn op_list(&self, query: ListQuery) -> Result<ListPage> {
        let limit = match query.limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n.min(MAX_LIST_LIMIT),
        };
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        // The window [lo, hi) and the page inside it: the same bounds as the
        // embedded store's listing, in ZRANGE BYLEX notation.
        let prefix = normalize_prefix(query.prefix.as_deref()).map(|p| stored_key(&p));
        let mut lo = prefix.clone();
        let mut hi = prefix.as_deref().map(stored_prefix_end);
        if let Some(s) = query.start.as_deref().map(stored_key) {
            if lo.as_ref().is_none_or(|l| &s > l) {
                lo = Some(s);
            }
        }
        if let Some(e) = query.end.as_deref().map(stored_key) {
            if hi.as_ref().is_none_or(|h| &e < h) {
                hi = Some(e);
            }
        }
        let empty = ListPage {
            items: Vec::new(),
            total: 0,
            cursor: None,
        };
        if let (Some(l), Some(h)) = (&lo, &hi) {
            if l >= h {
                return Ok(empty);
            }
        }
        let win_lo = lo.as_deref().map_or(b"-".to_vec(), |l| bound(b'[', l));
        let win_hi = hi.as_deref().map_or(b"+".to_vec(), |h| bound(b'(', h));
        let (mut page_lo, mut page_hi) = (win_lo.clone(), win_hi.clone());
        let after = after.as_deref().map(stored_key);
        if let Some(after) = after.as_deref() {
            if query.reverse {
                if hi.as_deref().is_none_or(|h| after < h) {
                    page_hi = bound(b'(', after);
                }
            } else if lo.as_deref().is_none_or(|l| after >= l) {
                page_lo = bound(b'(', after);
            }
        }
        type Row = (Vec<u8>, Vec<u8>, String, String);
        let mut conn = self.conn().await?;
        let (rows, more, total): (Vec<Row>, u64, u64) = self
            .scripts
            .list
            .key(&self.names.idx)
            .key(&self.names.exp)
            .arg(&self.names.item)
            .arg(win_lo)
            .arg(win_hi)
            .arg(page_lo)
            .arg(page_hi)
            .arg(limit)
            .arg(if query.reverse { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut items = Vec::with_capacity(rows.len());
        for (member, value, version, exp) in rows {
            let key =
                key_from_stored(&member).ok_or_else(|| corrupt("kv key in Redis (not UTF-8)"))?;
            items.push(item(key, &value, &version, &exp)?);
        }
        let cursor = (more == 1)
            .then(|| items.last().map(|i| encode_cursor(&i.key)))
            .flatten();
        Ok(ListPage {
            items,
            total,
            cursor,
        })
    }

    async fn op_get_many(&self, keys: &[String]) -> Result<Vec<Option<KvItem>>> {
        for k in keys {
            validate_key(k, &self.limits)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
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
        let rows: Vec<Fields> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        keys.iter()
            .zip(rows)
            .map(|(k, f)| item_from_fields(k, f))
            .collect()
    }

    async fn op_atomic(
        &self,
        checks: Vec<Check>,
        mutations: Vec<Mutation>,
    ) -> Result<AtomicResult> {
        let limits = &self.limits;
        let count = checks.len() + mutations.len();
        if count > MAX_ATOMIC_OPS {
            return Err(Error::TooManyOperations {
                count,
                max: MAX_ATOMIC_OPS,
            });
        }
        for c in &checks {
            validate_key(&c.key, limits)?;
        }
        for m in &mutations {
            match m {
                Mutation::Set { key, value, ttl } => {
                    validate_key(key, limits)?;
                    validate_ttl(*ttl, limits)?;
                    check_value(value, limits)?;
                }
                Mutation::Delete { key } => validate_key(key, limits)?,
                Mutation::Increment { key, delta, ttl } => {
                    validate_key(key, limits)?;
                    validate_ttl(*ttl, limits)?;
                    if !delta.is_number() {
                        return Err(Error::NotANumber { key: key.clone() });
                    }
                }
            }
        }
        // Contenders back off for a random, growing while (capped at 32 ms),
        // so that one of them wins each round instead of all retrying in step.
        let deadline = std::time::Instant::now() + ATOMIC_RETRY_BUDGET;
        let mut attempt: u32 = 0;
        loop {
            if let Some(result) = self.try_atomic(&checks, &mutations).await? {
                return Ok(result);
            }
            attempt += 1;
            if std::time::Instant::now() >= deadline {
                return Err(Error::Unavailable {
                    reason: format!(
                        "the keys of this atomic call kept changing during {attempt} attempts; retry"
                    ),
                });
            }
            let cap_ms = 1u64 << attempt.min(5);
            let pause = rand::random_range(0..=cap_ms * 1000);
            tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
        }
    }
}

/// What a snapshot read of one key found.
#[derive(Clone)]
struct Seen {
    version: Option<String>,
    value: Option<JsonText>,
    exp: u64,
}

impl RedisKv {
    /// Reads what the call depends on (checked keys, incremented keys) in one
    /// MULTI/EXEC, decides on that snapshot (a failed check or a bad increment is
    /// answered from it, a consistent state), then lets the script write if the
    /// snapshot still holds. `Ok(None)`: a concurrent write moved a key; try again.
    async fn try_atomic(
        &self,
        checks: &[Check],
        mutations: &[Mutation],
    ) -> Result<Option<AtomicResult>> {
        let mut read: Vec<&str> = checks.iter().map(|c| c.key.as_str()).collect();
        for m in mutations {
            if let Mutation::Increment { key, .. } = m {
                read.push(key);
            }
        }
        read.sort_unstable();
        read.dedup();
        let mut seen: HashMap<&str, Seen> = HashMap::with_capacity(read.len());
        if !read.is_empty() {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for k in &read {
                pipe.cmd("HMGET")
                    .arg(self.names.item(&stored_key(k)))
                    .arg("v")
                    .arg("ver")
                    .arg("exp");
            }
            let mut conn = self.conn().await?;
            let rows: Vec<Fields> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
            for (k, (v, ver, exp)) in read.iter().zip(rows) {
                let s = match (v, ver) {
                    (Some(v), Some(ver)) => Seen {
                        value: Some(
                            JsonText::from_stored(&v)
                                .map_err(|e| corrupt(format!("kv value of {k:?} in Redis: {e}")))?,
                        ),
                        version: Some(ver),
                        exp: parse_u64(exp.as_deref().unwrap_or("0"), "expiry")?,
                    },
                    _ => Seen {
                        version: None,
                        value: None,
                        exp: 0,
                    },
                };
                seen.insert(k, s);
            }
        }
        // 1. The user's checks, on the snapshot.
        for c in checks {
            let actual = seen
                .get(c.key.as_str())
                .and_then(|s| s.version.as_deref())
                .map(|v| parse_u64(v, "version").map(Version::from_u64))
                .transpose()?;
            if actual != c.version {
                return Err(Error::CheckFailed {
                    key: c.key.clone(),
                    expected: c.version,
                    actual,
                });
            }
        }
        // 2. Plan: later mutations see earlier ones (as in the embedded store).
        #[derive(Clone)]
        enum Over {
            Value(JsonText, Expiry),
            Gone,
        }
        let mut overlay: HashMap<&str, Over> = HashMap::new();
        let mut implied: Vec<(&str, String)> = Vec::new();
        let mut plan = Vec::with_capacity(mutations.len());
        for m in mutations {
            match m {
                Mutation::Set { key, value, ttl } => {
                    let expiry = ttl.map_or(Expiry::None, |t| Expiry::Relative(ttl_ms(t)));
                    overlay.insert(key, Over::Value(value.clone(), expiry));
                    plan.push(Planned::Set {
                        key: key.clone(),
                        value: value.clone(),
                        expiry,
                    });
                }
                Mutation::Delete { key } => {
                    overlay.insert(key, Over::Gone);
                    plan.push(Planned::Delete { key: key.clone() });
                }
                Mutation::Increment { key, delta, ttl } => {
                    let (current, current_expiry) = match overlay.get(key.as_str()) {
                        Some(Over::Value(v, e)) => (Some(v.clone()), *e),
                        Some(Over::Gone) => (None, Expiry::None),
                        None => {
                            let s = seen.get(key.as_str()).cloned().unwrap_or(Seen {
                                version: None,
                                value: None,
                                exp: 0,
                            });
                            if !implied.iter().any(|(k, _)| *k == key.as_str()) {
                                implied.push((key, s.version.clone().unwrap_or_default()));
                            }
                            let e = if s.exp == 0 {
                                Expiry::None
                            } else {
                                Expiry::Absolute(s.exp)
                            };
                            (s.value, e)
                        }
                    };
                    let value = increment(current.as_ref(), delta, key)?;
                    if value.len() > self.limits.max_value_bytes {
                        return Err(Error::ValueTooLarge {
                            size: value.len(),
                            max: self.limits.max_value_bytes,
                        });
                    }
                    let expiry = ttl.map_or(current_expiry, |t| Expiry::Relative(ttl_ms(t)));
                    overlay.insert(key, Over::Value(value.clone(), expiry));
                    plan.push(Planned::Set {
                        key: key.clone(),
                        value,
                        expiry,
                    });
                }
            }
        }
        // 3. The script: the user's checks again, the implied ones, then the writes.
        let mut key_pos: HashMap<String, usize> = HashMap::new();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut pos = |k: &str| -> usize {
            *key_pos.entry(k.to_owned()).or_insert_with(|| {
                keys.push(self.names.item(&stored_key(k)));
                keys.len() + 3
            })
        };
        let mut args: Vec<Vec<u8>> = Vec::new();
        args.push((checks.len() + implied.len()).to_string().into_bytes());
        for c in checks {
            args.push(pos(&c.key).to_string().into_bytes());
            args.push(
                c.version
                    .map(|v| v.as_u64().to_string())
                    .unwrap_or_default()
                    .into_bytes(),
            );
            args.push(b"u".to_vec());
        }
        for (k, ver) in &implied {
            args.push(pos(k).to_string().into_bytes());
            args.push(ver.clone().into_bytes());
            args.push(b"i".to_vec());
        }
        args.push(plan.len().to_string().into_bytes());
        for p in &plan {
            match p {
                Planned::Set { key, value, expiry } => {
                    let (mode, num) = expiry.args();
                    args.push(b"set".to_vec());
                    args.push(pos(key).to_string().into_bytes());
                    args.push(stored_key(key));
                    args.push(value.as_str().as_bytes().to_vec());
                    args.push(mode.as_bytes().to_vec());
                    args.push(num.into_bytes());
                }
                Planned::Delete { key } => {
                    args.push(b"del".to_vec());
                    args.push(pos(key).to_string().into_bytes());
                    args.push(stored_key(key));
                    args.push(Vec::new());
                    args.push(b"n".to_vec());
                    args.push(b"0".to_vec());
                }
            }
        }
        let mut invocation = self.scripts.atomic.prepare_invoke();
        invocation
            .key(&self.names.idx)
            .key(&self.names.exp)
            .key(&self.names.seq);
        for k in &keys {
            invocation.key(k.as_slice());
        }
        for a in &args {
            invocation.arg(a.as_slice());
        }
        let mut conn = self.conn().await?;
        let reply: Vec<Value> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let status: i64 = reply
            .first()
            .map(redis::from_redis_value_ref)
            .transpose()
            .map_err(|e| corrupt(format!("atomic script answer: {e}")))?
            .unwrap_or(-1);
        match status {
            1 => {
                let versions: Vec<String> = reply
                    .get(1)
                    .map(redis::from_redis_value_ref)
                    .transpose()
                    .map_err(|e| corrupt(format!("atomic script answer: {e}")))?
                    .unwrap_or_default();
                let mut out = Vec::with_capacity(plan.len());
                for (p, v) in plan.iter().zip(versions) {
                    let key = match p {
                        Planned::Set { key, .. } | Planned::Delete { key } => key.clone(),
                    };
                    let version = if v.is_empty() {
                        None
                    } else {
                        Some(Version::from_u64(parse_u64(&v, "version")?))
                    };
                    out.push((key, version));
                }
                Ok(Some(AtomicResult { versions: out }))
            }
            0 => {
                // A user check held on the snapshot and failed in the script: a write
                // came in between. Answer with what the script saw.
                let i: usize = reply
                    .get(1)
                    .map(redis::from_redis_value_ref)
                    .transpose()
                    .map_err(|e| corrupt(format!("atomic script answer: {e}")))?
                    .unwrap_or(1);
                let actual: String = reply
                    .get(2)
                    .map(redis::from_redis_value_ref)
                    .transpose()
                    .map_err(|e| corrupt(format!("atomic script answer: {e}")))?
                    .unwrap_or_default();
                let c = checks
                    .get(i.saturating_sub(1))
                    .ok_or_else(|| corrupt("atomic script named no check"))?;
                let actual = if actual.is_empty() {
                    None
                } else {
                    Some(Version::from_u64(parse_u64(&actual, "version")?))
                };
                Err(Error::CheckFailed {
                    key: c.key.clone(),
                    expected: c.version,
                    actual,
                })
            }
            2 => Ok(None),
            other => Err(corrupt(format!("atomic script answered status {other}"))),
        }
    }
}
