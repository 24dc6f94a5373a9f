//! The shared cache tier (`[cluster] shared-cache = true`): cached responses
//! copied to Redis after a fill, so that another node serves them without the
//! origin, and a fresh node starts warm.
//!
//! Lookup order on a node: hot tier, disk tier, then here, then the origin. A
//! copy read here is promoted into the node's tiers with its absolute times,
//! and its pingora meta blobs are kept as they are, so `Age` still counts from
//! the origin's answer, not from the copy.
//!
//! Every call on the request path is bounded by `timeout` (a few ms): a slow or
//! unreachable Redis is a miss, never a failed request, and after a failure
//! the tier is left alone for [`DOWN_PAUSE`].
//!
//! Layout, every key under the one hash tag `{c}` (so each script's keys share
//! a slot): `P{c}:e:<hex>` a HASH per entry (fields `u` url, `o` host, `t` tags,
//! `s` status, `m`/`h` the meta blobs, `b` body, `c`/`f`/`x` stored, fresh and
//! stale-until in Unix ms, `p` soft-purged), expiring at its stale-until;
//! `P{c}:u` a ZSET of `<url>\n<hex>` (URL and prefix purges by lex range);
//! `P{c}:x` the same members scored by stale-until (index rows of expired
//! entries are swept by fills); `P{c}:o:<host>` and `P{c}:t:<tag>` SETs of hex.

mod lease;
mod purge;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aside_store::CacheEntry;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::Script;

use crate::connect::{connection, ConnectError, RedisSettings};

/// After a failed or timed-out call, how long lookups skip the shared tier.
pub const DOWN_PAUSE: Duration = Duration::from_secs(1);

/// The least a `GET`'s lookup after a local miss (the call that finds the
/// shared copy or takes the cluster's lease) may wait for Redis, whatever
/// `timeout` says. It stands in front of an origin request, which is slower
/// than this; giving up sooner under load (a node busy with a storm of
/// clients polls Redis's answer late) would send the node to the origin and
/// break "one origin request per key". Hits never wait for it.
pub const MISS_LOOKUP_TIMEOUT: Duration = Duration::from_millis(50);

/// Entries handled per purge script call (bounds the time Redis is busy).
const PURGE_BATCH: usize = 500;

/// Settings of the shared tier.
#[derive(Debug, Clone)]
pub struct SharedSettings {
    /// The Redis it lives in (the cluster's).
    pub redis: RedisSettings,
    /// Larger entries (body + meta) are not shared.
    pub max_object_size: usize,
    /// Longest wait for a lookup on the request path.
    pub timeout: Duration,
    /// How long a node that misses waits for another node's fill of the same
    /// key (the lease holder's) before it fetches the key itself.
    pub lease_wait: Duration,
}

/// How long a lease lives unless renewed; the holder renews it every third of it.
pub const LEASE_TTL: Duration = Duration::from_secs(5);

/// The longest a node keeps renewing one lease (a fill that takes longer lets
/// other nodes fetch too).
const LEASE_MAX_HOLD: Duration = Duration::from_secs(300);

/// What a node that missed locally should do.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The shared copy (promote it and serve it).
    Hit(Arc<CacheEntry>),
    /// This node holds the lease: fetch from the origin and fill.
    Fill,
    /// Fetch from the origin without a lease (the tier is down, the wait ran
    /// out, or another local request leads the fill).
    Miss,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SharedStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Lookups that failed or ran out of time (served as misses).
    pub errors: AtomicU64,
    pub writes: AtomicU64,
    pub write_errors: AtomicU64,
    /// Fills not shared because they were over `max_object_size`.
    pub too_large: AtomicU64,
    pub purged: AtomicU64,
    /// Leases this node took (it fetched for the whole cluster).
    pub leases: AtomicU64,
    /// Lookups that waited for another node's fill.
    pub lease_waits: AtomicU64,
    /// Waits that ran out (`lease-wait`): the node fetched itself.
    pub lease_timeouts: AtomicU64,
    /// Waits that ended with the other node's copy: origin requests avoided.
    pub origin_avoided: AtomicU64,
}

struct Names {
    entry: String,
    urls: String,
    expiry: String,
    host: String,
    tag: String,
    lease: String,
    /// Pub/sub channel: the hex of every entry written (waiting nodes wake up).
    filled: String,
}

struct Scripts {
    fill: Script,
    purge_range: Script,
    purge_entries: Script,
    acquire: Script,
    lease: Script,
    refresh: Script,
}

/// Lookups in progress on this node, so that its concurrent misses of one key
/// make one Redis conversation.
type Waits = parking_lot::Mutex<
    std::collections::HashMap<[u8; 16], tokio::sync::watch::Receiver<Option<Lookup>>>,
>;

/// The shared tier. Cheap to clone.
#[derive(Clone)]
pub struct SharedCache {
    conn: Arc<tokio::sync::OnceCell<ConnectionManager>>,
    settings: Arc<SharedSettings>,
    names: Arc<Names>,
    scripts: Arc<Scripts>,
    down_until: Arc<parking_lot::Mutex<Option<Instant>>>,
    stats: Arc<SharedStats>,
    /// Leases this node holds: hash -> token.
    leases: Arc<parking_lot::Mutex<std::collections::HashMap<[u8; 16], String>>>,
    waits: Arc<Waits>,
    /// Keys this node waits for, woken by the `filled` channel.
    wakers: Arc<parking_lot::Mutex<std::collections::HashMap<[u8; 16], Arc<tokio::sync::Notify>>>>,
    /// The subscriber to the `filled` channel, started on the first wait.
    listener: Arc<tokio::sync::OnceCell<()>>,
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn hex(hash: &[u8; 16]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn now_ms() -> u64 {
    ms(SystemTime::now())
}

impl SharedCache {
    /// The shared tier in `settings.redis`; connects on first use.
    ///
    /// # Errors
    /// [`ConnectError::Url`] for an address redis-rs does not accept.
    pub fn new(settings: SharedSettings) -> Result<SharedCache, ConnectError> {
        use redis::IntoConnectionInfo;
        settings
            .redis
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| ConnectError::Url(e.to_string()))?;
        let p = &settings.redis.key_prefix;
        Ok(SharedCache {
            conn: Arc::new(tokio::sync::OnceCell::new()),
            names: Arc::new(Names {
                entry: format!("{p}{{c}}:e:"),
                urls: format!("{p}{{c}}:u"),
                expiry: format!("{p}{{c}}:x"),
                host: format!("{p}{{c}}:o:"),
                tag: format!("{p}{{c}}:t:"),
                lease: format!("{p}{{c}}:l:"),
                filled: format!("{p}{{c}}:filled"),
            }),
            scripts: Arc::new(Scripts {
                fill: Script::new(include_str!("../lua/shared_fill.lua")),
                purge_range: Script::new(include_str!("../lua/shared_purge_range.lua")),
                purge_entries: Script::new(include_str!("../lua/shared_purge_entries.lua")),
                acquire: Script::new(include_str!("../lua/shared_acquire.lua")),
                lease: Script::new(include_str!("../lua/shared_lease.lua")),
                refresh: Script::new(include_str!("../lua/shared_refresh.lua")),
            }),
            settings: Arc::new(settings),
            down_until: Arc::new(parking_lot::Mutex::new(None)),
            stats: Arc::new(SharedStats::default()),
            leases: Arc::default(),
            waits: Arc::default(),
            wakers: Arc::default(),
            listener: Arc::default(),
        })
    }

    /// The tier's counters.
    pub fn stats(&self) -> &SharedStats {
        &self.stats
    }

    async fn conn(&self) -> redis::RedisResult<ConnectionManager> {
        self.conn
            .get_or_try_init(|| async { connection(&self.settings.redis) })
            .await
            .cloned()
            .map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "bad Redis URL",
                    e.to_string(),
                ))
            })
    }

    fn is_down(&self) -> bool {
        let mut down = self.down_until.lock();
        match *down {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *down = None;
                false
            }
            None => false,
        }
    }

    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        let mut down = self.down_until.lock();
        if down.is_none() {
            tracing::warn!(target: "aside::cluster", %error, "shared cache tier: {what} failed; skipping it for {DOWN_PAUSE:?}");
        }
        *down = Some(Instant::now() + DOWN_PAUSE);
    }

    /// Opens the connection now (a `PING`), so that the first lookup does not
    /// pay for the connect inside its small timeout.
    pub async fn warm(&self) {
        let ping = async {
            let mut conn = self.conn().await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await
        };
        if let Err(e) = ping.await {
            tracing::warn!(target: "aside::cluster", error = %e, "shared cache tier: Redis not reachable yet");
        }
    }

    /// The shared copy of the entry `hash`, if there is a live one. A Redis
    /// error or a lookup slower than the timeout is a miss (counted).
    pub async fn get(&self, hash: &[u8; 16]) -> Option<CacheEntry> {
        if self.is_down() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let key = format!("{}{}", self.names.entry, hex(hash));
        let call = async {
            let mut conn = self.conn().await?;
            crate::latency::timed(
                redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async::<std::collections::HashMap<String, Vec<u8>>>(&mut conn),
            )
            .await
        };
        let fields = match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(Ok(fields)) => fields,
            Ok(Err(e)) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.failed("lookup", &e);
                return None;
            }
            Err(_) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.failed("lookup", &"timed out");
                return None;
            }
        };
        match decode(*hash, fields) {
            Some(entry) if ms(entry.stale_until) > now_ms() => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                Some(entry)
            }
            _ => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// [`SharedCache::put`] on a task of its own, waited for up to `timeout`.
    /// A fill calls it before pingora lets the node's own waiting requests
    /// go: answering them keeps the node busy for a while, and a write that
    /// waits behind them (Redis's answer read late) wakes the other nodes'
    /// waiters late. A slower write finishes in the background.
    pub async fn put_soon(&self, entry: CacheEntry, lease: Option<String>) {
        let this = self.clone();
        let task = tokio::spawn(async move { this.put(&entry, lease).await });
        let _ = tokio::time::timeout(self.settings.timeout, task).await;
    }

    /// Copies a filled entry to the shared tier (entries over the size limit
    /// are skipped). Errors are logged and counted; callers do not wait for it.
    ///
    /// `lease` is the token [`SharedCache::take_lease`] gave for this fill: the
    /// lease is released with the write (or at once when nothing is written).
    pub async fn put(&self, entry: &CacheEntry, lease: Option<String>) {
        let size = entry.body.len() + entry.meta_internal.len() + entry.meta_header.len();
        if size > self.settings.max_object_size {
            self.stats.too_large.fetch_add(1, Ordering::Relaxed);
            if let Some(token) = lease {
                self.release(entry.hash, token).await;
            }
            return;
        }
        let h = hex(&entry.hash);
        let mut invocation = self.scripts.fill.prepare_invoke();
        invocation
            .key(format!("{}{h}", self.names.entry))
            .key(&self.names.urls)
            .key(&self.names.expiry)
            .key(format!("{}{h}", self.names.lease))
            .key(format!("{}{}", self.names.host, entry.host));
        for tag in &entry.tags {
            invocation.key(format!("{}{tag}", self.names.tag));
        }
        invocation
            .arg(&h)
            .arg(&entry.url)
            .arg(&entry.host)
            .arg(entry.tags.join("\n"))
            .arg(entry.status)
            .arg(entry.meta_internal.as_ref())
            .arg(entry.meta_header.as_ref())
            .arg(entry.body.as_ref())
            .arg(ms(entry.stored_at))
            .arg(ms(entry.fresh_until))
            .arg(ms(entry.stale_until))
            .arg(u8::from(entry.soft_purged))
            .arg(&self.names.entry)
            .arg(lease.as_deref().unwrap_or(""))
            .arg(&self.names.filled);
        let result: redis::RedisResult<u8> = async {
            let mut conn = self.conn().await?;
            crate::latency::timed(invocation.invoke_async(&mut conn)).await
        }
        .await;
        match result {
            Ok(1) => {
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "aside::cluster", error = %e, url = %entry.url, "shared cache tier: write failed");
            }
        }
    }

    /// After a local miss: the shared copy, or the lease to fetch the key for
    /// the whole cluster, or (while another node holds the lease) a wait for
    /// that node's copy, bounded by `lease-wait`. Concurrent misses of one key
    /// on this node share one lookup; only the first of them gets
    /// [`Lookup::Fill`], the others [`Lookup::Miss`] (pingora's local lock then
    /// makes them wait for its fill). Redis errors and timeouts are misses.
    /// The flag is true for the first of the concurrent lookups (the one that
    /// should keep a hit in the node's tiers).
    pub async fn lookup(&self, hash: &[u8; 16]) -> (Lookup, bool) {
        if self.is_down() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            return (Lookup::Miss, false);
        }
        if self.leases.lock().contains_key(hash) {
            // This node is already fetching it.
            return (Lookup::Miss, false);
        }
        let (mut rx, leader) = {
            let mut waits = self.waits.lock();
            match waits.get(hash) {
                Some(rx) => (rx.clone(), false),
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    waits.insert(*hash, rx.clone());
                    let this = self.clone();
                    let hash = *hash;
                    // Spawned: a client that goes away cancels nothing.
                    tokio::spawn(async move {
                        let outcome = this.resolve(hash).await;
                        this.waits.lock().remove(&hash);
                        let _ = tx.send(Some(outcome));
                    });
                    (rx, true)
                }
            }
        };
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or(Lookup::Miss),
            Err(_) => Lookup::Miss,
        };
        match outcome {
            Lookup::Fill if !leader => (Lookup::Miss, false),
            other => (other, leader),
        }
    }

    /// One node-level lookup: read, take the lease, or wait for the holder.
    async fn resolve(&self, hash: [u8; 16]) -> Lookup {
        let h = hex(&hash);
        let entry_key = format!("{}{h}", self.names.entry);
        let lease_key = format!("{}{h}", self.names.lease);
        let token = format!("{:032x}", rand::random::<u128>());
        let deadline = Instant::now() + self.settings.lease_wait;
        let mut waited = false;
        let mut pause = Duration::from_millis(5);
        let waker = self.waker(hash);
        let outcome = loop {
            // Listening before asking, so that a copy written in between wakes us.
            let woken = waker.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let call = async {
                let mut conn = self.conn().await?;
                crate::latency::timed(
                    self.scripts
                        .acquire
                        .key(&entry_key)
                        .key(&lease_key)
                        .arg(&token)
                        .arg(LEASE_TTL.as_millis() as u64)
                        .invoke_async::<Vec<redis::Value>>(&mut conn),
                )
                .await
            };
            let bound = self.settings.timeout.max(MISS_LOOKUP_TIMEOUT);
            let reply = match tokio::time::timeout(bound, call).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    self.failed("lookup", &e);
                    break Lookup::Miss;
                }
                Err(_) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    self.failed("lookup", &"timed out");
                    // A lease taken by the call that timed out would hold
                    // the others back: give it up (only if it is ours).
                    let this = self.clone();
                    let token = token.clone();
                    tokio::spawn(async move { this.release(hash, token).await });
                    break Lookup::Miss;
                }
            };
            let mut items = reply.into_iter();
            let tag = items
                .next()
                .and_then(|v| redis::from_redis_value::<String>(v).ok())
                .unwrap_or_default();
            match tag.as_str() {
                "hit" => {
                    let mut fields = std::collections::HashMap::new();
                    while let (Some(k), Some(v)) = (items.next(), items.next()) {
                        if let (Ok(k), Ok(v)) = (
                            redis::from_redis_value::<String>(k),
                            redis::from_redis_value::<Vec<u8>>(v),
                        ) {
                            fields.insert(k, v);
                        }
                    }
                    break match decode(hash, fields) {
                        Some(entry) if ms(entry.stale_until) > now_ms() => {
                            self.stats.hits.fetch_add(1, Ordering::Relaxed);
                            if waited {
                                self.stats.origin_avoided.fetch_add(1, Ordering::Relaxed);
                            }
                            Lookup::Hit(Arc::new(entry))
                        }
                        _ => {
                            self.stats.misses.fetch_add(1, Ordering::Relaxed);
                            Lookup::Miss
                        }
                    };
                }
                "acquired" => {
                    self.stats.misses.fetch_add(1, Ordering::Relaxed);
                    self.stats.leases.fetch_add(1, Ordering::Relaxed);
                    self.leases.lock().insert(hash, token.clone());
                    let this = self.clone();
                    tokio::spawn(async move { this.renew(hash, token).await });
                    break Lookup::Fill;
                }
                _ => {
                    // Held by another node: wait for its copy (polling, with
                    // a growing pause), then take over if the lease is gone.
                    if !waited {
                        waited = true;
                        self.stats.lease_waits.fetch_add(1, Ordering::Relaxed);
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        self.stats.misses.fetch_add(1, Ordering::Relaxed);
                        self.stats.lease_timeouts.fetch_add(1, Ordering::Relaxed);
                        break Lookup::Miss;
                    }
                    self.listen();
                    // Woken by the holder's write, or a poll in case a
                    // notification was lost (pub/sub delivers at most once).
                    tokio::select! {
                        () = &mut woken => {}
                        () = tokio::time::sleep(pause.min(deadline - now)) => {}
                    }
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
            }
        };
        self.wakers.lock().remove(&hash);
        outcome
    }
}

fn parse_hex(h: &str) -> Option<[u8; 16]> {
    if h.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// An entry from its hash fields; `None` when absent or malformed.
fn decode(hash: [u8; 16], mut f: std::collections::HashMap<String, Vec<u8>>) -> Option<CacheEntry> {
    let text = |f: &mut std::collections::HashMap<String, Vec<u8>>, k: &str| {
        f.remove(k).and_then(|v| String::from_utf8(v).ok())
    };
    let number = |f: &mut std::collections::HashMap<String, Vec<u8>>, k: &str| {
        text(f, k).and_then(|v| v.parse::<u64>().ok())
    };
    let url = text(&mut f, "u")?;
    let host = text(&mut f, "o")?;
    let tags = text(&mut f, "t")?;
    let status = u16::try_from(number(&mut f, "s")?).ok()?;
    let stored_at = at(number(&mut f, "c")?);
    let fresh_until = at(number(&mut f, "f")?);
    let stale_until = at(number(&mut f, "x")?);
    let soft_purged = number(&mut f, "p")? == 1;
    Some(CacheEntry {
        hash,
        url,
        host,
        tags: tags
            .split('\n')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        status,
        meta_internal: Bytes::from(f.remove("m")?),
        meta_header: Bytes::from(f.remove("h")?),
        body: Bytes::from(f.remove("b")?),
        stored_at,
        fresh_until,
        stale_until,
        soft_purged,
    })
}
