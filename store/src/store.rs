//! The `Store` handle: opening the file, the shared state, stats and shutdown.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::bodies::Bodies;
use crate::cold::{self, Ctx, Hash};
use crate::counters::Counters;
use crate::hot::HotTier;
use crate::nowait::{self, Inline, InlineGate, ProbeBackend};
use crate::op::Op;
use crate::pending::{Inflight, PendingFills, Touches};
use crate::presence::ColdPresence;
use crate::reader::ReaderPool;
use crate::writer::Writer;
use crate::{Clock, Error, Limits, Result, StoreConfig, SystemClock};

/// Capacity of the writer thread's request queue; callers wait (asynchronously)
/// when it is full, so a burst of writes cannot grow memory without limit.
const WRITER_QUEUE: usize = 4096;

/// Bytes of cache fills that may wait in the queue (answered, not yet committed).
/// Fills return once queued, so without this bound a burst of large bodies could
/// pile up `WRITER_QUEUE` of them in memory; a fill waits for budget instead.
pub(crate) const MAX_QUEUED_FILL_BYTES: usize = 64 * 1024 * 1024;

/// A handle to the engine. Cheap to clone: every clone shares one [`Shared`].
/// When the last clone drops, the writer thread commits what is pending durably,
/// closes the file and exits.
#[derive(Clone)]
pub struct Store {
    pub(crate) shared: Arc<Shared>,
}

/// State shared by all handles.
pub(crate) struct Shared {
    /// The fixed threads that run cold-tier reads (see `reader`), so that a burst
    /// of cold lookups queues instead of growing tokio's blocking pool. They hold
    /// the database (the cold tier) for reads; all writes go through the writer
    /// thread, which holds its own `Arc`.
    readers: ReaderPool,
    /// The database, for the cold reads made on the caller's thread when the
    /// page cache holds their bytes (see `nowait`), and the gate that sends them
    /// back to the pool for a while after one had to wait for the disk.
    pub(crate) db: Arc<Database>,
    pub(crate) inline: InlineGate,
    /// Streamed bodies whose checksum was verified (see `stream`).
    pub(crate) verified: crate::stream::Verified,
    /// The hot tier, shared with the writer thread (which inserts committed values).
    pub(crate) hot: HotTier,
    /// Queue to the writer thread. Bounded, so a burst of writes waits (without
    /// blocking a tokio worker) instead of growing memory without limit.
    pub(crate) tx: mpsc::Sender<Op>,
    /// Joined on drop so that the file is closed (and its lock released) when the
    /// last handle goes away; a reopen right after then succeeds.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The writer thread, woken when a request that someone waits for joins
    /// a batch of fills lingering for more (see `writer::FILL_LINGER`).
    writer_thread: std::thread::Thread,
    /// Every expiry decision asks this clock.
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Limits,
    /// Counters the writer publishes after each commit; `stats()` reads them
    /// without touching the file.
    pub(crate) counters: Arc<Counters>,
    /// Cache fills queued for the writer and not yet committed, so that a lookup
    /// sees a fill as soon as `cache_fill` returns. Updated together with the
    /// queue (under this lock) so it agrees with the queue order; the writer
    /// removes an entry once its fill is committed and in the hot tier (or failed).
    pub(crate) pending: Arc<Mutex<PendingFills>>,
    /// Byte budget of queued fills (`MAX_QUEUED_FILL_BYTES`): the backpressure that
    /// bounds memory when fills come faster than the writer commits them.
    pub(crate) fill_budget: Arc<Semaphore>,
    /// Cold hits waiting for the writer to record them in the LRU index. A cold
    /// read must not write, so it leaves a note here; the writer drains it lazily.
    pub(crate) touches: Arc<Mutex<Touches>>,
    /// The segment files of bodies too large to sit in their redb record.
    pub(crate) bodies: Arc<Bodies>,
    /// Which hashes the cold tier holds, so a plain miss skips redb.
    pub(crate) presence: Arc<ColdPresence>,
    /// The thread loading `presence` from the file after open; joined on drop
    /// (it holds the database).
    presence_loader: Mutex<Option<JoinHandle<()>>>,
    /// Cold reads in flight by hash, so that concurrent lookups of one hash (a
    /// storm) share one redb read. See `cache_lookup`.
    pub(crate) inflight: Mutex<HashMap<Hash, Inflight, foldhash::fast::RandomState>>,
    /// For error messages.
    pub(crate) path: PathBuf,
}

/// A snapshot of the engine's counters.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    pub hot_entries: u64,
    pub hot_bytes: u64,
    pub cold_entries: u64,
    pub cold_bytes: u64,
    /// Cold-tier entries evicted to stay within `cold-capacity`.
    pub evictions: u64,
    /// Hot-tier entries evicted to stay within `hot-capacity` (still on disk).
    pub hot_evictions: u64,
    pub expired_collected: u64,
    pub write_errors: u64,
    /// Body segment files (bodies over 2 KiB) and their total length: with
    /// `cold_bytes`, how much of the disk the cold tier takes beyond what it holds.
    pub body_segments: u64,
    pub body_file_bytes: u64,
    /// Cold lookups read on the caller's thread (their bytes were in the page
    /// cache) and through the reader pool, and how often inline reads were
    /// paused because too many recent ones found their bytes outside the page cache.
    pub cold_reads_inline: u64,
    pub cold_reads_pooled: u64,
    pub inline_read_pauses: u64,
}

impl Store {
    /// Opens (or creates) the store at `config.path` with the system clock.
    ///
    /// Works when called from any tokio runtime, several at once: background work
    /// (the writer, GC and flushes) runs on a thread the store owns.
    ///
    /// # Errors
    /// `Error::Open` naming the path when the file is corrupt, not a redb file,
    /// locked by another process or another open `Store`, or cannot be created.
    pub async fn open(config: StoreConfig) -> Result<Store> {
        Store::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Like [`Store::open`] with an injected clock.
    ///
    /// # Errors
    /// See [`Store::open`].
    pub async fn open_with_clock(config: StoreConfig, clock: Arc<dyn Clock>) -> Result<Store> {
        let config = config.validate()?;
        let path = config.path.clone();
        let cfg = config.clone();
        let (db, counters, seg_live, bodies) = tokio::task::spawn_blocking(move || open_db(&cfg))
            .await
            .map_err(|e| Error::Open {
                path: path.clone(),
                reason: format!("open task failed: {e}"),
            })??;
        let db = Arc::new(db);
        let bodies = Arc::new(bodies);
        let readers = ReaderPool::start(&db).map_err(|reason| Error::Open {
            path: path.clone(),
            reason,
        })?;
        let hot = HotTier::new(config.hot_capacity, clock.clone());
        let counters = Arc::new(counters);
        let touches = Arc::new(Mutex::new(Touches::default()));
        let presence = Arc::new(ColdPresence::new());
        let pending = Arc::new(Mutex::new(PendingFills::default()));
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let writer = Writer::new(
            (db.clone(), bodies.clone(), seg_live),
            hot.clone(),
            clock.clone(),
            counters.clone(),
            (touches.clone(), presence.clone()),
            pending.clone(),
            &config,
        )?;
        let handle = std::thread::Builder::new()
            .name("aside-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Open {
                path: path.clone(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        // Without the loader the set stays incomplete: lookups go to redb.
        let presence_loader = crate::presence::start_load(presence.clone(), db.clone())
            .map_err(|e| tracing::warn!(error = %e, "no cold-tier hash set loader"))
            .ok();
        Ok(Store {
            shared: Arc::new(Shared {
                readers,
                db,
                inline: InlineGate::default(),
                verified: crate::stream::Verified::default(),
                hot,
                tx,
                writer_thread: handle.thread().clone(),
                writer: Mutex::new(Some(handle)),
                clock,
                limits: config.limits.clone(),
                counters,
                pending,
                fill_budget: Arc::new(Semaphore::new(MAX_QUEUED_FILL_BYTES)),
                touches,
                bodies,
                presence,
                presence_loader: Mutex::new(presence_loader),
                inflight: Mutex::new(HashMap::default()),
                path,
            }),
        })
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The directory of body segment files beside the data file.
    pub fn bodies_dir(&self) -> &Path {
        self.shared.bodies.dir()
    }

    /// Commits pending cache fills durably (KV writes already are).
    ///
    /// # Errors
    /// `Error::Io` when the commit fails, `Error::Closed` after shutdown.
    pub async fn flush(&self) -> Result<()> {
        self.request(|reply| Op::Flush { reply }).await
    }

    /// Runs one garbage collection pass now (the writer also runs one every
    /// `gc_interval`): removes expired items and entries past their stale window,
    /// then enforces the cold budget. Returns how many entries were removed.
    ///
    /// # Errors
    /// `Error::Io` when the commit fails.
    pub async fn collect_garbage(&self) -> Result<u64> {
        self.request(|reply| Op::Gc { reply }).await
    }

    pub fn stats(&self) -> StoreStats {
        let c = &self.shared.counters;
        StoreStats {
            hot_entries: self.shared.hot.entry_count(),
            hot_bytes: self.shared.hot.weighted_size(),
            cold_entries: c.kv_entries.load(Ordering::Relaxed)
                + c.cache_entries.load(Ordering::Relaxed),
            cold_bytes: c.kv_bytes.load(Ordering::Relaxed) + c.cache_bytes.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            hot_evictions: self.shared.hot.evictions(),
            expired_collected: c.expired_collected.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            body_segments: self.shared.bodies.file_count() as u64,
            body_file_bytes: self.shared.bodies.file_bytes(),
            cold_reads_inline: self.shared.inline.inline.load(Ordering::Relaxed),
            cold_reads_pooled: self.shared.inline.pooled.load(Ordering::Relaxed),
            inline_read_pauses: self.shared.inline.pauses.load(Ordering::Relaxed),
        }
    }

    /// Lets moka apply pending evictions now, so `stats().hot_bytes` is exact
    /// (tests and benches; moka otherwise does this housekeeping lazily).
    pub async fn sync_hot_tier(&self) {
        self.shared.hot.run_pending_tasks().await;
    }

    /// Sends one request to the writer thread and waits for its answer.
    pub(crate) async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .tx
            .send(make(reply))
            .await
            .map_err(|_| Error::Closed)?;
        self.shared.writer_thread.unpark();
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Waits until every cache fill queued so far is committed (non-durably), so
    /// that a cold read (listing, dry-run purge) sees it. Free when none is queued.
    pub(crate) async fn settle_fills(&self) -> Result<()> {
        if self.shared.pending.lock().is_empty() {
            return Ok(());
        }
        self.request(|reply| Op::Barrier { reply }).await
    }

    /// Runs a cold-tier read on this thread, for when the page cache holds what it
    /// reads (see `nowait`). `None` when inline reads are paused or unsupported,
    /// or when `f` answers `Ok(None)`: what it needs is not cached, the caller
    /// goes to the pool. What was not in the page cache (a redb page, read
    /// anyway, here; or a body `f` left for the pool) counts against inline
    /// reads: when it happens too often the working set is larger than memory,
    /// and inline reads pause for a while (`nowait::InlineGate`).
    pub(crate) fn read_inline<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<Option<T>>,
    ) -> Option<Result<T>> {
        let gate = &self.shared.inline;
        if !gate.open() {
            gate.pooled.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let run = std::panic::AssertUnwindSafe(|| {
            nowait::probing(|| {
                self.shared
                    .db
                    .begin_read()
                    .ctx("starting a read transaction")
                    .and_then(|txn| f(&txn))
            })
        });
        // As on a reader thread: a panic inside redb (corrupt file) is an error
        // for this read, not for the caller's thread.
        let Ok((r, waited)) = std::panic::catch_unwind(run) else {
            tracing::error!("a cold-tier read panicked");
            let e = std::io::Error::other("the read panicked");
            return Some(Err(Error::io("running a cold-tier read", e)));
        };
        let r = r.transpose();
        gate.note(if waited {
            Inline::Waited
        } else if r.is_none() {
            Inline::Missed
        } else {
            Inline::Cached
        });
        let path = if r.is_some() {
            &gate.inline
        } else {
            &gate.pooled
        };
        path.fetch_add(1, Ordering::Relaxed);
        r
    }

    /// Runs a blocking read of the cold tier on the reader pool, off the tokio
    /// workers. Waits (asynchronously) for queue space when the pool is busy.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.on_pool(move |db: &Database| {
            db.begin_read()
                .ctx("starting a read transaction")
                .and_then(|txn| f(&txn))
        })
        .await
    }

    /// Runs blocking work on the reader pool (a cold read that needs the disk).
    pub(crate) async fn on_pool<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .readers
            .submit(Box::new(move |db: &Database| {
                // The caller may have gone away (cancelled lookup): nothing to do.
                let _ = reply.send(f(db));
            }))
            .await?;
        answer
            .await
            .map_err(|e| Error::io("running a cold-tier read (the read panicked)", e))?
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the queue tells the writer to commit what is pending and exit.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, closed));
        self.readers.shutdown();
        self.presence.cancel();
        if let Some(handle) = self.presence_loader.lock().take() {
            if handle.join().is_err() {
                tracing::error!("store presence loader thread panicked");
            }
        }
        if let Some(handle) = self.writer.lock().take() {
            if handle.join().is_err() {
                tracing::error!(path = %self.path.display(), "store writer thread panicked");
            }
        }
    }
}

/// What `open_db` hands to the store: the database, its counters, the live
/// bytes per body segment and the segment files.
type Opened = (Database, Counters, BTreeMap<u32, u64>, Bodies);

/// Opens the file, creates missing tables, loads the counters from the meta
/// table (no scan) and opens the body segments. Never panics on a bad file: redb
/// errors, and in the worst case a panic inside redb, become `Error::Open`
/// naming the path.
fn open_db(config: &StoreConfig) -> Result<Opened> {
    let path = config.path.clone();
    let open_err = |reason: String| Error::Open {
        path: path.clone(),
        reason,
    };
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .map_err(|e| open_err(format!("cannot create directory: {e}")))?;
        }
    }
    let cache_bytes = config.redb_cache_bytes;
    let p = path.clone();
    let opened = std::panic::catch_unwind(move || {
        // As `Builder::create` opens it, behind redb's own file backend with
        // page-cache probing for inline reads (see `nowait`).
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)?;
        redb::Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(ProbeBackend::new(file)?)
    });
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => return Err(open_err(e.to_string())),
        Err(_) => return Err(open_err("the file is corrupt (redb panicked)".into())),
    };
    let init = || -> Result<(Counters, BTreeMap<u32, u64>)> {
        let txn = db.begin_write().ctx("initializing tables")?;
        let counters;
        let mut seg_live = BTreeMap::new();
        {
            // Before any other table: an old layout would fail there with a less
            // helpful type-mismatch error.
            let mut meta = txn.open_table(cold::META).ctx("creating table meta")?;
            check_format(&mut meta, &path)?;
            drop(meta);
            txn.open_table(cold::KV).ctx("creating table kv_parts")?;
            txn.open_table(cold::CACHE).ctx("creating table cache")?;
            txn.open_table(cold::CACHE_URL)
                .ctx("creating table cache_url")?;
            txn.open_table(cold::CACHE_HOST)
                .ctx("creating table cache_host")?;
            txn.open_table(cold::CACHE_TAG)
                .ctx("creating table cache_tag")?;
            txn.open_table(cold::EXPIRY).ctx("creating table expiry")?;
            txn.open_table(cold::LRU).ctx("creating table lru")?;
            let segments = txn
                .open_table(cold::SEGMENTS)
                .ctx("creating table segments")?;
            for row in segments.iter().ctx("reading table segments")? {
                let (id, live) = row.ctx("reading table segments")?;
                seg_live.insert(id.value(), live.value());
            }
            let meta = txn.open_table(cold::META).ctx("creating table meta")?;
            counters = Counters::load(&meta)?;
        }
        txn.commit().ctx("initializing tables")?;
        Ok((counters, seg_live))
    };
    let (counters, seg_live) = init().map_err(|e| match e {
        // Already names the path.
        Error::Open { .. } => e,
        e => open_err(e.to_string()),
    })?;
    let dir = crate::bodies::dir_for(&path);
    let (bodies, missing) =
        Bodies::open(dir.clone(), config.segment_bytes(), &seg_live).map_err(|e| {
            open_err(format!(
                "cannot open the body segments in {}: {e}",
                dir.display()
            ))
        })?;
    if !missing.is_empty() {
        tracing::error!(
            dir = %dir.display(),
            ?missing,
            "body segment files are missing; the cache entries stored in them are misses until they are replaced or expire"
        );
    }
    Ok((db, counters, seg_live, bodies))
}

/// Stamps a new file with [`cold::FORMAT_VERSION`], upgrades a file from
/// [`cold::FORMAT_UPGRADABLE_FROM`] on, and refuses any other layout (older
/// layouts were never released; a newer one is from a newer build).
fn check_format(meta: &mut redb::Table<'_, &'static str, u64>, path: &Path) -> Result<()> {
    let found = meta
        .get(cold::META_FORMAT)
        .ctx("reading meta")?
        .map(|g| g.value());
    match found {
        Some(v) if v == cold::FORMAT_VERSION => Ok(()),
        // Version 3 records are valid version 4 records (bodies inline); only
        // the `segments` table is new, and open creates it.
        Some(v) if (cold::FORMAT_UPGRADABLE_FROM..cold::FORMAT_VERSION).contains(&v) => {
            meta.insert(cold::META_FORMAT, cold::FORMAT_VERSION)
                .ctx("writing meta")?;
            tracing::info!(
                path = %path.display(),
                from = v,
                to = cold::FORMAT_VERSION,
                "store file upgraded: existing entries keep their bodies inline, new bodies over 2 KiB go to segment files"
            );
            Ok(())
        }
        Some(v) => Err(format_error(path, v)),
        None => {
            // Every commit writes the counters, so a file without them has never
            // held data: a fresh file (or one created and left empty).
            let used = meta
                .get(cold::META_NEXT_VERSION)
                .ctx("reading meta")?
                .is_some();
            if used {
                return Err(format_error(path, 1));
            }
            meta.insert(cold::META_FORMAT, cold::FORMAT_VERSION)
                .ctx("writing meta")?;
            Ok(())
        }
    }
}

fn format_error(path: &Path, found: u64) -> Error {
    Error::Open {
        path: path.to_path_buf(),
        reason: if found > cold::FORMAT_VERSION {
            format!(
                "store file format version {found} was written by a newer Aside; this build reads \
                 versions {} to {}: run the newer build, or move the file and its .bodies directory \
                 away (they are recreated empty)",
                cold::FORMAT_UPGRADABLE_FROM,
                cold::FORMAT_VERSION
            )
        } else {
            format!(
                "store file format version {found}, this build reads versions {} to {}; \
                 move the file away or delete it (it is recreated empty)",
                cold::FORMAT_UPGRADABLE_FROM,
                cold::FORMAT_VERSION
            )
        },
    }
}
