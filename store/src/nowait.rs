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
//!   has then stalled its thread once; [`InlineGate`] stops inline reads for a while
//!   so that a working set larger than the page cache goes back to the pool.
//!
//! Where `RWF_NOWAIT` is not supported (old kernels, some file systems) no read is
//! ever made inline.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Pauses inline reads for [`INLINE_PAUSE`] after one had to wait for the disk.
/// Also counts where cold lookups were read, for `StoreStats`.
pub(crate) struct InlineGate {
    base: Instant,
    /// Milliseconds since `base` before which no read is made inline.
    paused_until: AtomicU64,
    pub(crate) inline: AtomicU64,
    pub(crate) pooled: AtomicU64,
    pub(crate) pauses: AtomicU64,
}

impl Default for InlineGate {
    fn default() -> InlineGate {
        InlineGate {
            base: Instant::now(),
            paused_until: AtomicU64::new(0),
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

    /// A read had to wait: send reads to the pool for a while.
    pub(crate) fn pause(&self) {
        let until = self.now_ms() + INLINE_PAUSE.as_millis() as u64;
        self.paused_until.fetch_max(until, Ordering::Relaxed);
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
