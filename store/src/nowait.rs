//! Cold reads on the caller's thread when the OS page cache holds the bytes.
//!
//! A cold hit used to go through the reader pool (`reader`): two thread hand-offs
//! per hit. When the proxy's threads share a CPU, as in the benchmark where every
//! server is pinned to one core, those hand-offs cost more than the read itself
//! (a cold 1 KiB lookup took ~24 µs through the pool on a 2-vCPU Xeon, most of it
//! scheduling). nginx reads its cache files on the worker thread; so can we, as
//! long as a read never waits for the disk on an event-loop thread.
//!
//! Linux's `preadv2(RWF_NOWAIT)` reads only from the page cache and fails with
//! `EAGAIN` instead of waiting for the device. Two uses:
//! - segment bodies are read with it directly ([`read_nowait`]); a body that is not
//!   cached sends the lookup back to the pool;
//! - redb reads its pages through [`ProbeBackend`]. redb treats any backend error
//!   as fatal for the database (`PreviousIo` from then on), so the backend cannot
//!   refuse a read: on a probing thread it tries `RWF_NOWAIT` first and, when that
//!   would wait, notes it ([`waited`]) and reads normally. The one read that waited
//!   has then stalled its thread once; when that happens to more than a few reads
//!   in a row, [`InlineGate`] stops inline reads for a while so that a working set
//!   larger than the page cache goes back to the pool.
//!
//! Where `RWF_NOWAIT` is not supported (old kernels, some file systems) no read is
//! ever made inline.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};
use rustix::io::{Errno, ReadWriteFlags};

/// How long inline reads stay off after one had to wait for the disk.
pub(crate) const INLINE_PAUSE: Duration = Duration::from_secs(1);

thread_local! {
    /// Set while this thread makes an inline read: redb's page reads then probe.
    static PROBING: Cell<bool> = const { Cell::new(false) };
    /// Set when a probing read found bytes outside the page cache.
    static WAITED: Cell<bool> = const { Cell::new(false) };
}

/// Cleared the first time the kernel or file system refuses `RWF_NOWAIT`.
static SUPPORTED: AtomicBool = AtomicBool::new(true);

/// Whether `RWF_NOWAIT` reads are possible here (false once the kernel refused one).
pub(crate) fn supported() -> bool {
    SUPPORTED.load(Ordering::Relaxed)
}

/// Runs `f` with redb's page reads probing the page cache; returns its result and
/// whether any read had to wait for the disk.
pub(crate) fn probing<T>(f: impl FnOnce() -> T) -> (T, bool) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PROBING.set(false);
        }
    }
    PROBING.set(true);
    WAITED.set(false);
    let reset = Reset;
    let out = f();
    drop(reset);
    (out, WAITED.replace(false))
}

/// Notes, on a probing thread, that a read had to wait (the caller of
/// [`probing`] then pauses inline reads).
fn note_waited() {
    WAITED.set(true);
}

/// Reads `out.len()` bytes at `offset` from the page cache only. `Ok(false)` when
/// some of them are not cached (or the file is shorter, or `RWF_NOWAIT` is not
/// supported): the caller then reads the normal way.
pub(crate) fn read_nowait(file: &File, mut offset: u64, mut out: &mut [u8]) -> io::Result<bool> {
    if !supported() {
        return Ok(false);
    }
    while !out.is_empty() {
        let mut iov = [io::IoSliceMut::new(out)];
        match rustix::io::preadv2(file, &mut iov, offset, ReadWriteFlags::NOWAIT) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                offset += n as u64;
                out = &mut out[n..];
            }
            Err(Errno::AGAIN) => return Ok(false),
            Err(Errno::INTR) => {}
            Err(Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS) => {
                if SUPPORTED.swap(false, Ordering::Relaxed) {
                    tracing::info!("RWF_NOWAIT reads are not supported here: cold reads all go through the reader pool");
                }
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// How an inline read went, for [`InlineGate::note`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inline {
    /// Everything it read was in the page cache.
    Cached,
    /// A body was not cached and was left for the pool: this thread did not wait.
    Missed,
    /// A redb page was not cached and was read anyway: this thread waited.
    Waited,
}

/// Credits the gate holds at most: the recent past it remembers, in reads.
const CREDIT_CAP: i64 = 256;
/// What a read that made this thread wait costs: inline reads stay on while
/// fewer than one in `WAIT_COST` waits.
const WAIT_COST: i64 = 32;
/// What a body left for the pool costs (no wait, only a wasted attempt).
const MISS_COST: i64 = 4;
/// Credits after a pause: two more waits pause again.
const CREDIT_AFTER_PAUSE: i64 = 2 * WAIT_COST;

/// Decides whether cold reads are tried inline, from how the recent ones went:
/// each read that found everything cached earns a credit, each one that did not
/// costs several, and running out pauses inline reads for [`INLINE_PAUSE`] (a
/// working set larger than memory). One miss alone does not: in a working set
/// the page cache holds, a few pages are still found missing now and then (on
/// a 2-vCPU VM, about one lookup in 170 over a 600 MiB redb file that the page
/// cache held whole but for ~3,000 pages), and pausing for each sent 98 % of
/// the cold reads of `cold-1k` through the pool.
/// Also counts where cold lookups were read, for `StoreStats`.
pub(crate) struct InlineGate {
    base: Instant,
    /// Milliseconds since `base` before which no read is made inline.
    paused_until: AtomicU64,
    credits: AtomicI64,
    pub(crate) inline: AtomicU64,
    pub(crate) pooled: AtomicU64,
    pub(crate) pauses: AtomicU64,
}

impl Default for InlineGate {
    fn default() -> InlineGate {
        InlineGate {
            base: Instant::now(),
            paused_until: AtomicU64::new(0),
            credits: AtomicI64::new(CREDIT_AFTER_PAUSE),
            inline: AtomicU64::new(0),
            pooled: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
        }
    }
}

impl InlineGate {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a read may be tried inline now.
    pub(crate) fn open(&self) -> bool {
        supported() && self.now_ms() >= self.paused_until.load(Ordering::Relaxed)
    }

    /// Counts how an inline read went; pauses inline reads when too many of the
    /// recent ones did not find their bytes cached.
    pub(crate) fn note(&self, read: Inline) {
        let cost = match read {
            Inline::Cached => {
                // Racy cap: two threads may both add past it by one. Harmless.
                if self.credits.load(Ordering::Relaxed) < CREDIT_CAP {
                    self.credits.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Inline::Missed => MISS_COST,
            Inline::Waited => WAIT_COST,
        };
        if self.credits.fetch_sub(cost, Ordering::Relaxed) - cost <= 0 {
            self.pause();
        }
    }

    /// Sends reads to the pool for [`INLINE_PAUSE`].
    pub(crate) fn pause(&self) {
        let until = self.now_ms() + INLINE_PAUSE.as_millis() as u64;
        self.paused_until.fetch_max(until, Ordering::Relaxed);
        self.credits.store(CREDIT_AFTER_PAUSE, Ordering::Relaxed);
        self.pauses.fetch_add(1, Ordering::Relaxed);
    }
}

/// redb's file backend, with page reads that probe the page cache first on a
/// thread inside [`probing`]. Everything else (locks, writes, syncs) is redb's own
/// `FileBackend`.
#[derive(Debug)]
pub(crate) struct ProbeBackend {
    inner: FileBackend,
    /// A second descriptor of the same file, for `preadv2` (redb's backend keeps
    /// its own private).
    file: File,
}

impl ProbeBackend {
    pub(crate) fn new(file: File) -> io::Result<ProbeBackend> {
        let probe = file.try_clone()?;
        let inner = FileBackend::new(file).map_err(io::Error::other)?;
        Ok(ProbeBackend { inner, file: probe })
    }
}

impl StorageBackend for ProbeBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        if PROBING.get() {
            match read_nowait(&self.file, offset, out) {
                Ok(true) => return Ok(()),
                // Not cached, or an error the normal read will report itself.
                Ok(false) | Err(_) => note_waited(),
            }
        }
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_cached_bytes_and_refuses_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = File::create(&path).unwrap();
        f.write_all(&[7u8; 10_000]).unwrap();
        drop(f);
        let f = File::open(&path).unwrap();
        let mut buf = vec![0u8; 4096];
        // Just written: in the page cache (unless this file system refuses the flag).
        let ok = read_nowait(&f, 100, &mut buf).unwrap();
        if supported() {
            assert!(ok);
            assert!(buf.iter().all(|&b| b == 7));
        } else {
            assert!(!ok);
        }
        // Past the end: never a partial success.
        assert!(!read_nowait(&f, 9_000, &mut buf).unwrap());
    }

    #[test]
    fn probing_reports_a_wait_only_inside_and_resets() {
        let ((), waited) = probing(note_waited);
        assert!(waited);
        let ((), waited) = probing(|| ());
        assert!(!waited);
        assert!(!PROBING.get());
    }

    #[test]
    fn the_gate_pauses_only_when_misses_are_frequent() {
        let gate = InlineGate::default();
        // A wait now and then among cached reads: inline reads stay on.
        for _ in 0..20 {
            for _ in 0..WAIT_COST {
                gate.note(Inline::Cached);
            }
            gate.note(Inline::Waited);
        }
        assert_eq!(gate.pauses.load(Ordering::Relaxed), 0);
        // Credits are capped: a long cached past does not hide a burst of waits.
        for _ in 0..10 * CREDIT_CAP {
            gate.note(Inline::Cached);
        }
        let waits_to_pause = (0..)
            .take_while(|_| {
                gate.note(Inline::Waited);
                gate.pauses.load(Ordering::Relaxed) == 0
            })
            .count()
            + 1;
        assert!(
            waits_to_pause <= (CREDIT_CAP / WAIT_COST + 2) as usize,
            "{waits_to_pause}"
        );
        assert!(!gate.open());
        // After a pause, two more waits pause again; bodies left for the pool
        // cost less than waits.
        gate.paused_until.store(0, Ordering::Relaxed);
        gate.note(Inline::Waited);
        assert_eq!(gate.pauses.load(Ordering::Relaxed), 1);
        gate.note(Inline::Waited);
        assert_eq!(gate.pauses.load(Ordering::Relaxed), 2);
        gate.paused_until.store(0, Ordering::Relaxed);
        for _ in 0..(CREDIT_AFTER_PAUSE / MISS_COST - 1) {
            gate.note(Inline::Missed);
        }
        assert_eq!(gate.pauses.load(Ordering::Relaxed), 2);
        gate.note(Inline::Missed);
        assert_eq!(gate.pauses.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn the_gate_pauses_and_reopens() {
        let gate = InlineGate::default();
        let open = gate.open();
        assert_eq!(open, supported());
        gate.pause();
        assert!(!gate.open());
        gate.paused_until.store(0, Ordering::Relaxed);
        assert_eq!(gate.open(), supported());
    }
}
