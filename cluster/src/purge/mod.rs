//! Purge fan-out through a Redis Stream.
//!
//! # Architecture
//!
//! Every purge a node takes is applied to its own store by the caller, then handed
//! to [`Purges::publish`]: one publisher task appends it to the capped stream
//! `P{purge}:log` (one Lua script: `INCR P{purge}:seq` + `XADD MAXLEN ~`, so every
//! entry carries a gapless sequence number). While Redis is unreachable events go to
//! a bounded queue on disk ([`queue`]) and leave, in order, once Redis answers again.
//!
//! A reader task per node ([`reader`]), on a connection of its own (a blocked
//! `XREAD` holds its connection), reads the stream from the last entry it applied,
//! applies other nodes' events to the store in order (purges are idempotent, so a
//! replay after a crash is harmless), skips its own, persists its cursor in the data
//! directory, and records its last applied entry and a heartbeat in the hash
//! `P{purge}:nodes` ([`nodes`] reads it back for `GET /cluster` and `wait`). A jump
//! in the sequence numbers means entries were trimmed before this node read them:
//! it then soft-purges everything it holds rather than keep what a purge removed.

mod event;
mod nodes;
mod queue;
mod reader;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aside_store::{CacheSelector, PurgeMode, Store};
use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::{mpsc, oneshot};

pub use event::{Cursor, Published, PurgeEvent, StreamId};
pub use nodes::{ClusterView, NodeView, WaitOutcome};

use crate::connect::{connection, RedisSettings};

/// Events waiting for the publisher task; callers wait for room, not for Redis.
const CHANNEL: usize = 1024;

/// Everything a node's fan-out needs, built by the binary from `[cluster]`.
#[derive(Clone, Debug)]
pub struct PurgeSettings {
    pub redis: RedisSettings,
    /// This node's id (heartbeats, the origin of its events).
    pub node_id: String,
    /// Shown in `GET /cluster` (the proxy listener).
    pub address: String,
    /// Where the cursor file and the queue live.
    pub data_dir: PathBuf,
    /// `XADD MAXLEN ~` of the stream.
    pub stream_length: u64,
    /// How often the heartbeat is written; 3 missed ones make a node "gone".
    pub heartbeat_interval: Duration,
    /// The shared cache tier, when on: every purge reaches it before the
    /// event is appended, so no node copies back an entry a purge removed.
    pub shared: Option<crate::SharedCache>,
}

/// Counters read by `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub struct PurgeStats {
    /// Events appended to the stream.
    pub published: AtomicU64,
    /// Other nodes' events applied here.
    pub applied: AtomicU64,
    /// Failed Redis calls of the fan-out.
    pub redis_errors: AtomicU64,
    /// Age (ms) of the last applied event when it was applied: the propagation delay.
    pub lag_ms: AtomicU64,
    /// Events in the on-disk queue.
    pub queued: AtomicU64,
    /// Full soft purges after a gap in the stream.
    pub gaps: AtomicU64,
    /// The last Redis call of the fan-out failed.
    redis_down: AtomicBool,
    /// Nodes whose heartbeat was live at this node's last heartbeat (0: not yet known).
    pub live_nodes: std::sync::Arc<AtomicU64>,
}

impl PurgeStats {
    /// Whether Redis was unreachable at the last call.
    pub fn redis_down(&self) -> bool {
        self.redis_down.load(Ordering::Relaxed)
    }

    fn up(&self) {
        self.redis_down.store(false, Ordering::Relaxed);
    }

    fn down(&self) {
        self.redis_errors.fetch_add(1, Ordering::Relaxed);
        self.redis_down.store(true, Ordering::Relaxed);
    }
}

/// Key names under one prefix (`{purge}` tag: the script's two keys share a slot).
#[derive(Debug)]
struct Names {
    log: String,
    seq: String,
    nodes: String,
}

struct Job {
    event: PurgeEvent,
    reply: Option<oneshot::Sender<Published>>,
}

struct Inner {
    settings: PurgeSettings,
    names: Names,
    store: Store,
    stats: PurgeStats,
    tx: mpsc::Sender<Job>,
    /// Taken by [`Purges::run`].
    rx: parking_lot::Mutex<Option<mpsc::Receiver<Job>>>,
    /// For `GET /cluster` and `wait`; made on first use (on the caller's runtime).
    query: tokio::sync::OnceCell<ConnectionManager>,
    publish_script: Script,
}

/// The fan-out handle, cheap to clone. `Purges::default()` is a standalone node's:
/// publishing does nothing.
#[derive(Clone, Default)]
pub struct Purges {
    inner: Option<Arc<Inner>>,
}

/// What [`Purges::publish`] gives back: await it for the stream ID (only `wait`
/// and the `purgeId` answer need it).
pub struct Receipt(Option<oneshot::Receiver<Published>>);

impl Receipt {
    /// The outcome, or `Queued` when the publisher did not answer within `timeout`
    /// (the event is still published, later).
    pub async fn outcome(self, timeout: Duration) -> Published {
        let Some(rx) = self.0 else {
            return Published::Standalone;
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(p)) => p,
            _ => Published::Queued,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Purges {
    /// A cluster node's fan-out; nothing runs until [`Purges::run`].
    pub fn new(settings: PurgeSettings, store: Store) -> Purges {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let p = &settings.redis.key_prefix;
        let names = Names {
            log: format!("{p}{{purge}}:log"),
            seq: format!("{p}{{purge}}:seq"),
            nodes: format!("{p}{{purge}}:nodes"),
        };
        Purges {
            inner: Some(Arc::new(Inner {
                settings,
                names,
                store,
                stats: PurgeStats::default(),
                tx,
                rx: parking_lot::Mutex::new(Some(rx)),
                query: tokio::sync::OnceCell::new(),
                publish_script: Script::new(include_str!("../lua/purge_publish.lua")),
            })),
        }
    }

    /// Whether this node is part of a cluster.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// This node's id (`None` when standalone).
    pub fn node_id(&self) -> Option<&str> {
        self.inner.as_ref().map(|i| i.settings.node_id.as_str())
    }

    /// The shared cache tier, when `shared-cache` is on.
    pub fn shared(&self) -> Option<&crate::SharedCache> {
        self.inner.as_ref().and_then(|i| i.settings.shared.as_ref())
    }

    /// The fan-out's counters (`None` when standalone).
    pub fn stats(&self) -> Option<&PurgeStats> {
        self.inner.as_ref().map(|i| &i.stats)
    }

    /// Hands a purge already applied here to the other nodes. Waits only for room
    /// in the publisher's queue, never for Redis.
    pub async fn publish(&self, selector: &CacheSelector, mode: PurgeMode) -> Receipt {
        let Some(inner) = &self.inner else {
            return Receipt(None);
        };
        let (reply, rx) = oneshot::channel();
        let job = Job {
            event: PurgeEvent::new(&inner.settings.node_id, selector, mode),
            reply: Some(reply),
        };
        if inner.tx.send(job).await.is_err() {
            tracing::warn!(target: "aside::cluster", "purge publisher stopped; purge not fanned out");
        }
        Receipt(Some(rx))
    }

    /// Runs the publisher and the reader until `shutdown` resolves.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        let Some(inner) = &self.inner else { return };
        let Some(rx) = inner.rx.lock().take() else {
            return;
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let publisher = publisher(inner.clone(), rx, stop_rx);
        tokio::pin!(publisher);
        tokio::select! {
            () = &mut publisher => return,
            () = reader::run(inner.clone()) => {}
            () = shutdown => {}
        }
        // Purges taken but not yet published are not dropped with the process:
        // the publisher moves them to the disk queue, sent at the next start.
        let _ = stop_tx.send(true);
        if tokio::time::timeout(STOP_GRACE, publisher).await.is_err() {
            tracing::warn!(target: "aside::cluster", "purge publisher did not stop in time; unpublished purges may be lost");
        }
    }

    async fn query_conn(&self) -> Option<(ConnectionManager, &Inner)> {
        let inner = self.inner.as_deref()?;
        let conn = inner
            .query
            .get_or_try_init(|| async { connection(&inner.settings.redis) })
            .await
            .ok()?
            .clone();
        Some((conn, inner))
    }
}

/// Appends one event; returns its ID.
async fn xadd(
    inner: &Inner,
    conn: &mut ConnectionManager,
    event: &PurgeEvent,
) -> redis::RedisResult<StreamId> {
    if let Some(shared) = &inner.settings.shared {
        // Before the event: a node that reads the stream then finds no copy to
        // bring back. A failure keeps the event queued; both steps are idempotent.
        let (selector, mode) = event.selector();
        shared.purge(&selector, mode).await?;
    }
    let ev = serde_json::to_string(event).unwrap_or_default();
    let mut invocation = inner.publish_script.prepare_invoke();
    invocation
        .key(&inner.names.log)
        .key(&inner.names.seq)
        .arg(inner.settings.stream_length)
        .arg(&event.origin)
        .arg(ev);
    let (id, _seq): (String, u64) = crate::latency::timed(invocation.invoke_async(conn)).await?;
    inner.stats.published.fetch_add(1, Ordering::Relaxed);
    StreamId::parse(&id).ok_or_else(|| {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "XADD returned no stream ID",
        ))
    })
}

/// How long the publisher gets at shutdown to finish its call and move the
/// events still in its channel to the disk queue.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Publishes events in order; keeps them on disk while Redis is unreachable,
/// and moves the unpublished ones there when `stop` turns true.
async fn publisher(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Job>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut queue =
        queue::DiskQueue::open(inner.settings.data_dir.join("cluster-purge-queue.jsonl"));
    inner
        .stats
        .queued
        .store(queue.len() as u64, Ordering::Relaxed);
    let mut conn = match connection(&inner.settings.redis) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "aside::cluster", error = %e, "purge publisher cannot start");
            return;
        }
    };
    let retry = Duration::from_millis(250);
    loop {
        let job = if queue.is_empty() {
            tokio::select! {
                job = rx.recv() => job,
                _ = stop.changed() => None,
            }
        } else {
            tokio::select! {
                job = rx.recv() => job,
                _ = stop.changed() => None,
                () = tokio::time::sleep(retry) => {
                    drain(&inner, &mut conn, &mut queue).await;
                    continue;
                }
            }
        };
        let Some(job) = job else {
            rx.close();
            let mut kept = 0;
            while let Ok(job) = rx.try_recv() {
                queue.push(job.event);
                kept += 1;
                if let Some(reply) = job.reply {
                    let _ = reply.send(Published::Queued);
                }
            }
            if kept > 0 {
                tracing::info!(target: "aside::cluster", kept, "unpublished purges kept on disk for the next start");
            }
            return;
        };
        let outcome = if queue.is_empty() && !inner.stats.redis_down() {
            match xadd(&inner, &mut conn, &job.event).await {
                Ok(id) => {
                    inner.stats.up();
                    Published::Sent(id)
                }
                Err(e) => {
                    tracing::warn!(target: "aside::cluster", error = %e, "purge not published; queued until Redis answers");
                    inner.stats.down();
                    queue.push(job.event);
                    Published::Queued
                }
            }
        } else {
            queue.push(job.event);
            // While Redis is down, the retry timer drains: a call here would hold
            // every later purge for a connect timeout.
            let sent = if inner.stats.redis_down() {
                None
            } else {
                drain(&inner, &mut conn, &mut queue).await
            };
            match sent {
                Some(id) if queue.is_empty() => Published::Sent(id),
                _ => Published::Queued,
            }
        };
        inner
            .stats
            .queued
            .store(queue.len() as u64, Ordering::Relaxed);
        if let Some(reply) = job.reply {
            let _ = reply.send(outcome);
        }
    }
}

/// Sends queued events in order until one fails; the ID of the last one sent.
async fn drain(
    inner: &Inner,
    conn: &mut ConnectionManager,
    queue: &mut queue::DiskQueue,
) -> Option<StreamId> {
    let mut last = None;
    let mut sent = 0usize;
    while let Some(event) = queue.get(sent) {
        match xadd(inner, conn, event).await {
            Ok(id) => {
                last = Some(id);
                sent += 1;
            }
            Err(e) => {
                inner.stats.down();
                tracing::debug!(target: "aside::cluster", error = %e, "Redis still unreachable; purges stay queued");
                break;
            }
        }
    }
    if sent > 0 {
        inner.stats.up();
        queue.remove_front(sent);
        tracing::info!(target: "aside::cluster", sent, left = queue.len(), "queued purges published");
    }
    inner
        .stats
        .queued
        .store(queue.len() as u64, Ordering::Relaxed);
    last
}
