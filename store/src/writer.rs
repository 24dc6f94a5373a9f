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
//!
//! Around this loop: the requests and their answers are in `op`, what each
//! request does to the tables in `apply_kv` and `apply_cache`, the settler in
//! `settle`, the published counters in `counters`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use redb::{Database, Durability, ReadableDatabase};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use crate::bodies::Bodies;
use crate::cold::{self, Ctx, Hash};
use crate::compact::{self, Compactor};
use crate::counters::Counters;
use crate::hot::HotTier;
use crate::op::{done, Done, Op};
use crate::pending::{PendingFills, Touches};
use crate::presence::ColdPresence;
use crate::settle::{HotUpdate, Settle, SETTLE_QUEUE};
use crate::tables::{Meta, WriteTables};
use crate::{apply_cache, apply_kv, gc, CacheEntry, Clock, Error, Result, StoreConfig};

const MAX_BATCH: usize = 1024;

/// How long a short batch of nothing but cache fills waits for more before it
/// commits. A commit costs the same dozen-odd pages whether it holds one fill
/// or fifty, and a fill's caller does not wait for it (lookups find the entry
/// in `pending`), so at a few thousand misses a second, one commit per fill
/// was most of a miss's cost. The writer sleeps (`park_timeout`) rather than
/// watching the queue, so the fills that arrive meanwhile wake nobody; a
/// request someone waits for (a KV write, a purge, a barrier) unparks it at
/// once (`Store::request`).
const FILL_LINGER: Duration = Duration::from_millis(2);
/// A batch of at least this many fills commits without lingering.
const LINGER_BELOW: usize = 64;

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
    /// Body segment files, and the committed live bytes of each (like `meta`).
    bodies: Arc<Bodies>,
    seg_live: BTreeMap<u32, u64>,
    compactor: Compactor,
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
        (db, bodies, seg_live): (Arc<Database>, Arc<Bodies>, BTreeMap<u32, u64>),
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
            bodies,
            seg_live,
            compactor: Compactor::default(),
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
                    drain(&mut rx, &mut batch);
                    if batch.len() < LINGER_BELOW && batch.iter().all(Op::lingers) {
                        std::thread::park_timeout(FILL_LINGER);
                        drain(&mut rx, &mut batch);
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
        let mut seg_live = BTreeMap::new();
        let result = (|| -> Result<()> {
            let mut txn = self.db.begin_write().ctx("starting a write transaction")?;
            {
                let mut t = WriteTables::open(&txn, self.bodies.clone(), self.seg_live.clone())?;
                let now = self.clock.now();
                self.apply_touches(&mut t, &mut meta)?;
                for op in ops.by_ref() {
                    if let Op::Gc { reply } = op {
                        let r = gc::collect(&mut t, &mut meta, now, self.cold_capacity)?;
                        gc_more |= r.more;
                        gc_more |= self.compactor.step(&mut t, compact::SLICE_BYTES)?;
                        gc_counts.0 += r.expired;
                        gc_counts.1 += r.evicted;
                        hot.extend(r.removed.into_iter().map(HotUpdate::Remove));
                        answers.push(done(reply, Ok(r.expired + r.evicted)));
                        continue;
                    }
                    self.apply(op, &mut t, &mut meta, now, &mut answers, &mut hot)?;
                }
                // Fills past the byte budget evict in this transaction, not at the
                // next GC pass: at a few thousand fills a second, `gc_interval` of
                // fills is far more than the slack an operator allows.
                if meta.cold_bytes() > self.cold_capacity {
                    let mut r = gc::GcReport::default();
                    gc::evict(&mut t, &mut meta, self.cold_capacity, &mut r)?;
                    gc_counts.1 += r.evicted;
                    gc_more |= r.more;
                    hot.extend(r.removed.into_iter().map(HotUpdate::Remove));
                }
                // Compaction in step with what this batch freed (see `compact`).
                let freed = t.take_freed();
                if freed > 0 {
                    let budget = (freed * compact::WALK_PER_FREED).min(compact::BATCH_MAX_BYTES);
                    gc_more |= self.compactor.step(&mut t, budget)?;
                }
                t.write_meta(&meta)?;
                seg_live = std::mem::take(&mut t.seg_live);
                // Before the commit: a reader must never see a committed hash
                // the set does not know.
                for h in t.added.drain(..) {
                    self.presence.insert(&h);
                }
                gone = t.prefixes_gone()?;
            }
            if durable {
                // Every body the committed records reference is on disk before
                // they become durable (see `bodies`).
                self.bodies.sync().ctx("syncing body segments")?;
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
                self.seg_live = seg_live;
                if durable {
                    self.reclaim_segments();
                }
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

    /// After a durable commit: deletes every segment file that no committed
    /// record uses (emptied by GC, purges, replacements or compaction, or left
    /// by a failed batch).
    fn reclaim_segments(&self) {
        for (id, _) in self.bodies.segments() {
            if !self.seg_live.contains_key(&id) {
                self.bodies.remove(id);
            }
        }
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
        match op {
            Op::Set { .. } | Op::Delete { .. } | Op::Atomic { .. } => {
                apply_kv::apply(op, t, m, now, answers, hot, self.max_value_bytes)
            }
            Op::CacheFill { .. }
            | Op::CacheUpdateMeta { .. }
            | Op::CacheDelete { .. }
            | Op::CacheExpire { .. }
            | Op::CachePurge { .. } => apply_cache::apply(op, t, m, now, answers, hot),
            Op::Flush { reply } | Op::Barrier { reply } => {
                answers.push(done(reply, Ok(())));
                Ok(())
            }
            Op::Gc { reply } => {
                answers.push(done(reply, Ok(0)));
                Ok(())
            }
        }
    }
}

/// Moves what is queued into `batch`, up to `MAX_BATCH`.
fn drain(rx: &mut mpsc::Receiver<Op>, batch: &mut Vec<Op>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
}
