//! The writer thread: the only place that writes to the redb file.
//!
//! Requests arrive on a bounded channel. The thread takes every request already
//! queued (up to `MAX_BATCH`), applies them all in ONE write transaction and
//! commits once (group commit): with fsync when the batch holds a KV write or a
//! purge, without when it holds only cache fills. Non-durable commits are made
//! durable by an empty fsynced commit within `cache_flush_interval` (redb makes
//! every earlier non-durable commit durable with the next durable one). Fills are
//! not answered at all: `cache_fill` returned when it queued them, leaving the
//! entry in `pending` for lookups; the writer takes it out once it is committed
//! and in the hot tier. Batches therefore grow to `MAX_BATCH` under load. Only a
//! crash can lose the last interval of fills, and redb's commit protocol
//! guarantees they are never torn.
//!
//! Each request's checks are made before it changes anything, so a failed
//! condition affects only that request. A storage error aborts the whole
//! transaction and every request of the batch gets the error; the engine keeps
//! serving reads.
//!
//! After the commit, a second thread (the settler) applies the batch's hot-tier
//! updates in commit order, then answers the callers (so a write is visible in
//! both tiers when it returns), while this thread builds the next transaction.
//! GC runs here too, between batches: it needs the write transaction anyway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use redb::{Database, Durability, ReadableDatabase};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use crate::clock::{from_nanos, to_nanos};
use crate::cold::{self, Ctx, Hash};
use crate::hot::{HotKey, HotTier, HotValue, KvRecord};
use crate::kv::{increment, AtomicResult, Check, KvItem, SetCondition};
use crate::presence::ColdPresence;
use crate::store::{PendingFills, Touches};
use crate::tables::{deadline, Meta, WriteTables};
use crate::{
    gc, CacheEntry, CacheSelector, Clock, Error, JsonText, PurgeMode, Result, StoreConfig, Version,
};

const MAX_BATCH: usize = 1024;

/// Committed batches waiting for the settler thread; the writer waits when it
/// is this far ahead, so that unanswered work stays bounded.
const SETTLE_QUEUE: usize = 2;

pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// A KV mutation already validated and serialized by the caller.
#[derive(Debug)]
pub(crate) enum Prepared {
    Set {
        key: String,
        value: JsonText,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
    },
    Increment {
        key: String,
        delta: JsonText,
        ttl: Option<Duration>,
    },
}

/// One request to the writer, with the channel its answer goes back on.
pub(crate) enum Op {
    Set {
        key: String,
        value: JsonText,
        ttl: Option<Duration>,
        condition: SetCondition,
        reply: Reply<KvItem>,
    },
    Delete {
        key: String,
        reply: Reply<bool>,
    },
    Atomic {
        checks: Vec<Check>,
        mutations: Vec<Prepared>,
        reply: Reply<AtomicResult>,
    },
    /// Not answered: the caller returned once this was queued (see `pending`).
    CacheFill {
        entry: Arc<CacheEntry>,
        /// The entry's share of the queued-fill byte budget, released once the
        /// fill is committed (or failed) and out of `pending`.
        budget: Option<OwnedSemaphorePermit>,
    },
    CacheUpdateMeta {
        hash: Hash,
        meta_internal: Bytes,
        meta_header: Bytes,
        fresh_until: SystemTime,
        stale_until: SystemTime,
        reply: Reply<bool>,
    },
    CacheDelete {
        hash: Hash,
        reply: Reply<bool>,
    },
    CacheExpire {
        hash: Hash,
        reply: Reply<bool>,
    },
    CachePurge {
        selector: CacheSelector,
        mode: PurgeMode,
        reply: Reply<u64>,
    },
    Flush {
        reply: Reply<()>,
    },
    /// Answered once every earlier request is committed (non-durably): lets a cold
    /// read see the fills queued before it.
    Barrier {
        reply: Reply<()>,
    },
    Gc {
        reply: Reply<u64>,
    },
}

impl Op {
    /// Whether the caller expects the change to survive a crash once answered.
    fn durable(&self) -> bool {
        !matches!(
            self,
            Op::CacheFill { .. } | Op::CacheUpdateMeta { .. } | Op::Gc { .. } | Op::Barrier { .. }
        )
    }

    fn fail(self, msg: &str) {
        let e = || commit_error(msg);
        match self {
            Op::Set { reply, .. } => drop(reply.send(Err(e()))),
            Op::Delete { reply, .. }
            | Op::CacheUpdateMeta { reply, .. }
            | Op::CacheDelete { reply, .. }
            | Op::CacheExpire { reply, .. } => drop(reply.send(Err(e()))),
            Op::Atomic { reply, .. } => drop(reply.send(Err(e()))),
            Op::Flush { reply } | Op::Barrier { reply } => drop(reply.send(Err(e()))),
            // Already answered; the caller sees a miss on its next lookup.
            Op::CacheFill { .. } => {}
            Op::CachePurge { reply, .. } | Op::Gc { reply } => drop(reply.send(Err(e()))),
        }
    }
}

fn commit_error(msg: &str) -> Error {
    Error::Io {
        context: "committing a write batch".into(),
        source: msg.to_string().into(),
    }
}

/// An answer held back until the commit succeeds (or fails).
type Done = Box<dyn FnOnce(Option<&str>) + Send>;

fn done<T: Send + 'static>(reply: Reply<T>, result: Result<T>) -> Done {
    Box::new(move |failed| {
        let r = match failed {
            Some(msg) => Err(commit_error(msg)),
            None => result,
        };
        // The caller may have gone away (cancelled future): nothing to do.
        let _ = reply.send(r);
    })
}

/// What is left of a batch after its commit: hot-tier changes, answers and the
/// fills to take out of `pending`. Settled strictly in commit order (one FIFO
/// consumer), so the hot tier never goes back in time, and each caller is
/// answered only once its write is in both tiers.
struct Settle {
    hot: Vec<HotUpdate>,
    answers: Vec<Done>,
    /// The commit failed with this message: answer errors, change nothing.
    failed: Option<String>,
    filled: Vec<Arc<CacheEntry>>,
    /// Released once the fills are out of `pending`.
    budget: Vec<OwnedSemaphorePermit>,
}

impl Settle {
    fn run(self, tier: &HotTier, pending: &Mutex<PendingFills>, rt: &tokio::runtime::Runtime) {
        let Settle {
            hot,
            answers,
            failed,
            filled,
            budget,
        } = self;
        if !hot.is_empty() {
            rt.block_on(async {
                for u in hot {
                    match u {
                        HotUpdate::Put(k, v) => tier.put(k, v).await,
                        HotUpdate::Remove(k) => tier.remove(&k).await,
                    }
                }
            });
        }
        // After the hot tier has them: a lookup finds a fill in `pending` or in
        // the hot tier (or, if moka refused it, in the committed cold tier).
        if !filled.is_empty() {
            let mut pending = pending.lock();
            for e in &filled {
                // Unless a newer fill of the same hash (still queued) replaced it.
                if pending.get(&e.hash).is_some_and(|p| Arc::ptr_eq(p, e)) {
                    pending.remove(&e.hash);
                }
            }
        }
        drop(budget);
        for a in answers {
            a(failed.as_deref());
        }
    }
}

/// A hot-tier change, applied after the commit.
enum HotUpdate {
    Put(HotKey, HotValue),
    Remove(HotKey),
}

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

    fn publish(&self, m: &Meta) {
        self.kv_entries.store(m.kv_entries, Ordering::Relaxed);
        self.kv_bytes.store(m.kv_bytes, Ordering::Relaxed);
        self.cache_entries.store(m.cache_entries, Ordering::Relaxed);
        self.cache_bytes.store(m.cache_bytes, Ordering::Relaxed);
    }
}

/// State owned by the writer thread.
pub(crate) struct Writer {
    db: Arc<Database>,
    hot: HotTier,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    touches: Arc<Mutex<Touches>>,
    /// The in-memory set of hashes in the cold tier: inserted before the commit
    /// that adds a hash, pruned after the one that deletes it (see `presence`).
    presence: Arc<ColdPresence>,
    /// Fills answered but not yet committed; the writer removes each one after its
    /// commit (and hot-tier insert) or failure.
    pending: Arc<Mutex<PendingFills>>,
    /// The committed meta counters; a batch works on a copy and keeps it only
    /// when its commit succeeds.
    meta: Meta,
    cold_capacity: u64,
    gc_interval: Duration,
    flush_interval: Duration,
    max_value_bytes: usize,
    /// To the settler thread, which applies committed batches to the hot tier and
    /// answers their callers, in commit order, while this thread starts the next
    /// transaction (the hot-tier inserts were ~20% of the writer's time).
    settler: Option<std::sync::mpsc::SyncSender<Settle>>,
    /// When the oldest non-durable commit happened (None: everything is durable).
    dirty_since: Option<Instant>,
    next_gc: Instant,
    /// A tiny runtime to drive moka's async API (inserts) and the channel's timed
    /// receive from this plain thread; it never runs caller tasks.
    rt: tokio::runtime::Runtime,
}

impl Writer {
    pub(crate) fn new(
        db: Arc<Database>,
        hot: HotTier,
        clock: Arc<dyn Clock>,
        counters: Arc<Counters>,
        (touches, presence): (Arc<Mutex<Touches>>, Arc<ColdPresence>),
        pending: Arc<Mutex<PendingFills>>,
        config: &StoreConfig,
    ) -> Result<Writer> {
        let open_err = |reason: String| Error::Open {
            path: config.path.clone(),
            reason,
        };
        let meta = {
            let txn = db.begin_read().map_err(|e| open_err(e.to_string()))?;
            let table = txn
                .open_table(cold::META)
                .map_err(|e| open_err(e.to_string()))?;
            Meta::load(&table).map_err(|e| open_err(e.to_string()))?
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| open_err(format!("cannot build the writer runtime: {e}")))?;
        Ok(Writer {
            db,
            hot,
            clock,
            counters,
            touches,
            presence,
            pending,
            meta,
            cold_capacity: config.cold_capacity,
            gc_interval: config.gc_interval,
            flush_interval: config.cache_flush_interval,
            max_value_bytes: config.limits.max_value_bytes,
            settler: None,
            dirty_since: None,
            next_gc: Instant::now() + config.gc_interval,
            rt,
        })
    }

    /// The thread's main loop; returns when every `Store` handle is gone.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let settler = self.start_settler();
        loop {
            let now = Instant::now();
            let mut wake = self.next_gc;
            if let Some(d) = self.dirty_since {
                wake = wake.min(d + self.flush_interval);
            }
            let wait = wake.saturating_duration_since(now);
            let first = self
                .rt
                .block_on(async { tokio::time::timeout(wait, rx.recv()).await });
            match first {
                Ok(Some(op)) => {
                    let mut batch = vec![op];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    self.commit(batch, false);
                }
                Ok(None) => break,
                Err(_) => {}
            }
            if self
                .dirty_since
                .is_some_and(|d| d.elapsed() >= self.flush_interval)
            {
                self.commit(Vec::new(), true);
            }
            if Instant::now() >= self.next_gc {
                let (reply, _) = oneshot::channel();
                let more = self.commit(vec![Op::Gc { reply }], false);
                self.next_gc = if more {
                    Instant::now() + Duration::from_millis(10)
                } else {
                    Instant::now() + self.gc_interval
                };
            }
        }
        // Shutdown: make everything durable.
        if self.dirty_since.is_some() {
            self.commit(Vec::new(), true);
        }
        // Let the settler finish the last batches (answers, hot tier) and exit.
        self.settler = None;
        if let Some(handle) = settler {
            if handle.join().is_err() {
                tracing::error!("store settler thread panicked");
            }
        }
    }

    /// Starts the thread that settles committed batches; without it (spawn
    /// failed) the writer settles them itself.
    fn start_settler(&mut self) -> Option<std::thread::JoinHandle<()>> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Settle>(SETTLE_QUEUE);
        let hot = self.hot.clone();
        let pending = self.pending.clone();
        let rt = tokio::runtime::Builder::new_current_thread().build().ok()?;
        let spawned = std::thread::Builder::new()
            .name("aside-store-settle".into())
            .spawn(move || {
                for batch in rx {
                    batch.run(&hot, &pending, &rt);
                }
            });
        match spawned {
            Ok(handle) => {
                self.settler = Some(tx);
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no settler thread; the writer settles batches");
                None
            }
        }
    }

    /// Applies a batch in one transaction and answers every request.
    /// Returns whether a GC pass in the batch left work for later.
    fn commit(&mut self, mut ops: Vec<Op>, force_durable: bool) -> bool {
        let durable = force_durable || ops.iter().any(Op::durable);
        // The batch's fills, to take out of `pending` once they are settled, and
        // their budget, released only then.
        let mut filled: Vec<Arc<CacheEntry>> = Vec::new();
        let mut budget: Vec<OwnedSemaphorePermit> = Vec::new();
        for op in &mut ops {
            if let Op::CacheFill { entry, budget: b } = op {
                filled.push(entry.clone());
                budget.extend(b.take());
            }
        }
        let mut ops = ops.into_iter();
        let mut meta = self.meta;
        let mut answers: Vec<Done> = Vec::new();
        let mut hot: Vec<HotUpdate> = Vec::new();
        let mut gc_more = false;
        let mut gc_counts = (0u64, 0u64);
        let mut gone: Vec<Hash> = Vec::new();
        let result = (|| -> Result<()> {
            let mut txn = self.db.begin_write().ctx("starting a write transaction")?;
            {
                let mut t = WriteTables::open(&txn)?;
                let now = self.clock.now();
                self.apply_touches(&mut t, &mut meta)?;
                for op in ops.by_ref() {
                    if let Op::Gc { reply } = op {
                        let r = gc::collect(&mut t, &mut meta, now, self.cold_capacity)?;
                        gc_more |= r.more;
                        gc_counts.0 += r.expired;
                        gc_counts.1 += r.evicted;
                        hot.extend(r.removed.into_iter().map(HotUpdate::Remove));
                        answers.push(done(reply, Ok(r.expired + r.evicted)));
                        continue;
                    }
                    self.apply(op, &mut t, &mut meta, now, &mut answers, &mut hot)?;
                }
                t.write_meta(&meta)?;
                // Before the commit: a reader must never see a committed hash
                // the set does not know.
                for h in t.added.drain(..) {
                    self.presence.insert(&h);
                }
                gone = t.prefixes_gone()?;
            }
            txn.set_durability(if durable {
                Durability::Immediate
            } else {
                Durability::None
            })
            .ctx("setting durability")?;
            txn.commit().ctx("committing")?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                // After the commit, on this thread: the next batch's inserts
                // come after these removals.
                for h in &gone {
                    self.presence.remove_prefix_of(h);
                }
                self.meta = meta;
                self.counters.publish(&meta);
                self.counters
                    .expired_collected
                    .fetch_add(gc_counts.0, Ordering::Relaxed);
                self.counters
                    .evictions
                    .fetch_add(gc_counts.1, Ordering::Relaxed);
                if durable {
                    self.dirty_since = None;
                } else if self.dirty_since.is_none() {
                    self.dirty_since = Some(Instant::now());
                }
                self.settle(Settle {
                    hot,
                    answers,
                    failed: None,
                    filled,
                    budget,
                });
            }
            Err(e) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "store write batch failed");
                let msg = e.to_string();
                for op in ops {
                    op.fail(&msg);
                }
                if !filled.is_empty() {
                    tracing::warn!(
                        lost = filled.len(),
                        "cache fills lost with the failed batch"
                    );
                }
                self.settle(Settle {
                    hot: Vec::new(),
                    answers,
                    failed: Some(msg),
                    filled,
                    budget,
                });
            }
        }
        gc_more
    }

    /// Hands a committed (or failed) batch to the settler thread, or settles it
    /// here when there is none.
    fn settle(&self, batch: Settle) {
        match &self.settler {
            Some(tx) => {
                if let Err(std::sync::mpsc::SendError(batch)) = tx.send(batch) {
                    batch.run(&self.hot, &self.pending, &self.rt);
                }
            }
            None => batch.run(&self.hot, &self.pending, &self.rt),
        }
    }

    /// Records cold hits in the LRU index (left there by readers).
    fn apply_touches(&mut self, t: &mut WriteTables<'_>, m: &mut Meta) -> Result<()> {
        let touched = self.touches.lock().take(self.clock.now());
        for h in touched {
            t.touch(&h, m)?;
        }
        Ok(())
    }

    /// Applies one request. `Err` only for storage errors (which abort the batch);
    /// a failed condition is an answer, recorded in `answers`.
    fn apply(
        &self,
        op: Op,
        t: &mut WriteTables<'_>,
        m: &mut Meta,
        now: SystemTime,
        answers: &mut Vec<Done>,
        hot: &mut Vec<HotUpdate>,
    ) -> Result<()> {
        let now_n = to_nanos(now);
        match op {
            Op::Set {
                key,
                value,
                ttl,
                condition,
                reply,
            } => {
                let current = t
                    .kv_get(&key)?
                    .filter(|r| r.is_live(now_n))
                    .map(|r| r.version());
                let ok = match &condition {
                    SetCondition::Always => true,
                    SetCondition::IfVersion(v) => current.as_ref() == Some(v),
                    SetCondition::IfAbsent => current.is_none(),
                };
                if !ok {
                    answers.push(done(reply, Err(Error::PreconditionFailed { key })));
                    return Ok(());
                }
                let version = m.take_version();
                let expires = ttl.map(|d| deadline(now, d)).unwrap_or(0);
                t.kv_put(&key, version, expires, value.as_str().as_bytes(), m)?;
                let item = KvItem {
                    key: key.clone(),
                    value: value.clone(),
                    version: Version::from_u64(version),
                    expires_at: (expires != 0).then(|| from_nanos(expires)),
                };
                hot.push(kv_hot(key, value, version, expires));
                answers.push(done(reply, Ok(item)));
            }
            Op::Delete { key, reply } => {
                let old = t.kv_delete(&key, m)?;
                let existed = old.is_some_and(|r| r.is_live(now_n));
                hot.push(HotUpdate::Remove(HotKey::Kv(key.into())));
                answers.push(done(reply, Ok(existed)));
            }
            Op::Atomic {
                checks,
                mutations,
                reply,
            } => {
                let r = self.atomic(t, m, now, checks, mutations, hot)?;
                answers.push(done(reply, r));
            }
            Op::CacheFill { entry, .. } => {
                t.cache_put(&entry, m)?;
                hot.push(HotUpdate::Put(
                    HotKey::Cache(entry.hash),
                    HotValue::Cache(entry),
                ));
            }
            Op::CacheUpdateMeta {
                hash,
                meta_internal,
                meta_header,
                fresh_until,
                stale_until,
                reply,
            } => {
                let found = t.cache_get(&hash)?.filter(|e| e.stale_until > now);
                let Some(mut e) = found else {
                    answers.push(done(reply, Ok(false)));
                    return Ok(());
                };
                e.meta_internal = meta_internal;
                e.meta_header = meta_header;
                e.fresh_until = fresh_until;
                e.stale_until = stale_until.max(fresh_until);
                e.soft_purged = false;
                t.cache_put(&e, m)?;
                hot.push(HotUpdate::Put(
                    HotKey::Cache(hash),
                    HotValue::Cache(Arc::new(e)),
                ));
                answers.push(done(reply, Ok(true)));
            }
            Op::CacheDelete { hash, reply } => {
                let live = t.catalog().is_live(&hash, now_n)?;
                t.cache_delete(&hash, m)?;
                hot.push(HotUpdate::Remove(HotKey::Cache(hash)));
                answers.push(done(reply, Ok(live)));
            }
            Op::CacheExpire { hash, reply } => {
                let r = soft_expire(t, m, &hash, now, hot)?;
                answers.push(done(reply, Ok(r)));
            }
            Op::CachePurge {
                selector,
                mode,
                reply,
            } => {
                let selected = t.catalog().select(&selector)?;
                let mut n = 0u64;
                for h in selected {
                    let live = t.catalog().is_live(&h, now_n)?;
                    match mode {
                        PurgeMode::Hard => {
                            t.cache_delete(&h, m)?;
                            hot.push(HotUpdate::Remove(HotKey::Cache(h)));
                        }
                        PurgeMode::Soft => {
                            soft_expire(t, m, &h, now, hot)?;
                        }
                    }
                    n += u64::from(live);
                }
                answers.push(done(reply, Ok(n)));
            }
            Op::Flush { reply } | Op::Barrier { reply } => answers.push(done(reply, Ok(()))),
            Op::Gc { reply } => answers.push(done(reply, Ok(0))),
        }
        Ok(())
    }

    /// Checks, then plans every mutation against the current state (reads only),
    /// then writes: a failed check or increment leaves nothing written.
    fn atomic(
        &self,
        t: &mut WriteTables<'_>,
        m: &mut Meta,
        now: SystemTime,
        checks: Vec<Check>,
        mutations: Vec<Prepared>,
        hot: &mut Vec<HotUpdate>,
    ) -> Result<Result<AtomicResult>> {
        let now_n = to_nanos(now);
        for c in checks {
            let actual = t
                .kv_get(&c.key)?
                .filter(|r| r.is_live(now_n))
                .map(|r| r.version());
            if actual != c.version {
                return Ok(Err(Error::CheckFailed {
                    key: c.key,
                    expected: c.version,
                    actual,
                }));
            }
        }
        // key -> planned state (None = deleted): later mutations see earlier ones.
        struct Planned {
            value: JsonText,
            expires: u64,
        }
        let mut overlay: HashMap<String, Option<Arc<Planned>>> = HashMap::new();
        let mut plan: Vec<(String, Option<Arc<Planned>>)> = Vec::with_capacity(mutations.len());
        for mutation in mutations {
            let (key, state) = match mutation {
                Prepared::Set { key, value, ttl } => {
                    let expires = ttl.map(|d| deadline(now, d)).unwrap_or(0);
                    (key, Some(Arc::new(Planned { value, expires })))
                }
                Prepared::Delete { key } => (key, None),
                Prepared::Increment { key, delta, ttl } => {
                    let current: Option<(JsonText, u64)> = match overlay.get(&key) {
                        Some(Some(p)) => Some((p.value.clone(), p.expires)),
                        Some(None) => None,
                        None => match t.kv_get(&key)?.filter(|r| r.is_live(now_n)) {
                            Some(raw) => {
                                let exp = raw.expires_at;
                                let item = crate::kv::item_from_raw(key.clone(), raw)?;
                                Some((item.value, exp))
                            }
                            None => None,
                        },
                    };
                    let cur_exp = current.as_ref().map_or(0, |c| c.1);
                    let value = match increment(current.as_ref().map(|c| &c.0), &delta, &key) {
                        Ok(v) => v,
                        Err(e) => return Ok(Err(e)),
                    };
                    if value.len() > self.max_value_bytes {
                        return Ok(Err(Error::ValueTooLarge {
                            size: value.len(),
                            max: self.max_value_bytes,
                        }));
                    }
                    let expires = ttl.map(|d| deadline(now, d)).unwrap_or(cur_exp);
                    (key, Some(Arc::new(Planned { value, expires })))
                }
            };
            overlay.insert(key.clone(), state.clone());
            plan.push((key, state));
        }
        let mut versions = Vec::with_capacity(plan.len());
        for (key, state) in plan {
            match state {
                Some(p) => {
                    let version = m.take_version();
                    t.kv_put(&key, version, p.expires, p.value.as_str().as_bytes(), m)?;
                    hot.push(kv_hot(key.clone(), p.value.clone(), version, p.expires));
                    versions.push((key, Some(Version::from_u64(version))));
                }
                None => {
                    t.kv_delete(&key, m)?;
                    hot.push(HotUpdate::Remove(HotKey::Kv(key.as_str().into())));
                    versions.push((key, None));
                }
            }
        }
        Ok(Ok(AtomicResult { versions }))
    }
}

fn kv_hot(key: String, value: JsonText, version: u64, expires: u64) -> HotUpdate {
    HotUpdate::Put(
        HotKey::Kv(key.into()),
        HotValue::Kv(Arc::new(KvRecord {
            version: Version::from_u64(version),
            expires_at: (expires != 0).then(|| from_nanos(expires)),
            value,
        })),
    )
}

fn soft_expire(
    t: &mut WriteTables<'_>,
    m: &mut Meta,
    hash: &Hash,
    now: SystemTime,
    hot: &mut Vec<HotUpdate>,
) -> Result<bool> {
    let Some(mut e) = t.cache_get(hash)?.filter(|e| e.stale_until > now) else {
        return Ok(false);
    };
    e.fresh_until = e.fresh_until.min(now);
    e.soft_purged = true;
    t.cache_put(&e, m)?;
    hot.push(HotUpdate::Put(
        HotKey::Cache(*hash),
        HotValue::Cache(Arc::new(e)),
    ));
    Ok(true)
}
