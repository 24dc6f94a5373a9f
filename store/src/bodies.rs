//! Cache bodies larger than [`INLINE_MAX`] live outside redb's B-tree, in
//! append-only segment files in `<store file>.bodies/`; the cache record keeps
//! where (segment, offset, length) and a CRC-32 of the body.
//!
//! Why: redb stores a large value in a run of pages rounded up to a power of two
//! and reads it into a fresh zero-filled buffer through its page cache, so a
//! 16 KiB body cost a 32 KiB read plus two copies, and a 1 MiB body a 2 MiB
//! buffer. Here a cold hit is one `pread` of exactly the body into the buffer
//! that is returned, from the OS page cache, with no lock shared with other
//! readers (nginx's file cache does the same with `open` + `sendfile`).
//!
//! Layout: `{id:08x}.seg` files of about `segment_bytes` each. Every body is
//! preceded by a 32-byte header (magic, CRC-32, length, hash) so that a segment
//! can be walked without the index (compaction). Only the writer thread appends,
//! always to the newest ("active") segment; a segment is never appended to after
//! the process that created it stops.
//!
//! Crash rules (a fill may be lost, never torn):
//! - bodies are written before the redb commit that references them, and every
//!   segment written since the last durable commit is `fdatasync`ed before the
//!   next durable commit ([`Bodies::sync`]); redb's non-durable commits become
//!   durable only with a durable one, so a durable record never points at bytes
//!   that are not on disk;
//! - the redb `segments` table holds the live bytes of every segment that a
//!   record references, updated in the same transaction as the records. A file
//!   without a row at open was written after the last durable commit (its
//!   records were lost with it) and is deleted;
//! - a segment whose live bytes reach zero is deleted only after the next
//!   durable commit, so a crash that rolls the records back finds it intact;
//! - a read checks the length and the CRC: a body that does not match (a bug,
//!   a disk fault) is a miss, never a wrong answer.
//!
//! Space: GC deletes expired entries, which empties whole segments; segments
//! that stay mostly dead (long-lived entries among expired ones) are compacted
//! by the writer, a bounded slice per GC pass (see `gc`).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::nowait;
use crate::types::Hash;

/// Bodies up to this size stay inside the redb record: a small body shares a
/// page with its record, and a separate read would cost more than it saves.
pub(crate) const INLINE_MAX: usize = 2048;

/// Size of a segment's per-body header: magic, CRC-32, length, hash.
pub(crate) const HEADER: u64 = 32;

const MAGIC: [u8; 4] = *b"ASB1";

/// Where a body is: `off` is the first byte of the body (after its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BodyLoc {
    pub(crate) seg: u32,
    pub(crate) off: u64,
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

impl BodyLoc {
    /// Bytes the body takes in its segment, header included.
    pub(crate) fn span(&self) -> u64 {
        HEADER + self.len
    }
}

/// Bodies found by [`Bodies::walk`] and where to continue (`None`: the end).
pub(crate) type Walked = (Vec<(Hash, BodyLoc)>, Option<u64>);

/// The segment files of one store.
pub(crate) struct Bodies {
    dir: PathBuf,
    segment_bytes: u64,
    /// Open segments; a reader clones the `Arc` and reads without the lock, so a
    /// segment deleted meanwhile is still readable through its open handle.
    files: RwLock<HashMap<u32, Arc<File>>>,
    /// The writer thread's state (a lock only so that `Bodies` is `Sync`).
    appender: Mutex<Appender>,
    /// Sum of the segment files' lengths.
    file_bytes: AtomicU64,
}

struct Appender {
    /// (id, file, length) of the segment being appended to.
    active: Option<(u32, Arc<File>, u64)>,
    next_id: u32,
    /// Lengths of every segment file, for space accounting.
    lens: HashMap<u32, u64>,
    /// Segments written since the last `sync`.
    dirty: Vec<(u32, Arc<File>)>,
}

/// The directory of a store's segments: beside the redb file, named after it.
pub(crate) fn dir_for(store_file: &Path) -> PathBuf {
    let mut name = store_file.as_os_str().to_owned();
    name.push(".bodies");
    PathBuf::from(name)
}

fn seg_name(id: u32) -> String {
    format!("{id:08x}.seg")
}

fn parse_seg_name(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(".seg")?;
    (hex.len() == 8)
        .then(|| u32::from_str_radix(hex, 16).ok())
        .flatten()
}

fn corrupt_header() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "bad segment entry header")
}

/// Exactly `len` bytes of `file` at `at`, read into spare capacity (no
/// zero-filling of a buffer about to be overwritten: it was the largest cost of
/// a cold hit after the copy). `None` when the file is shorter.
pub(crate) fn pread_exact(file: &File, at: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let pos = at + buf.len() as u64;
        let n = rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), pos)
            .map_err(io::Error::from)?;
        if n == 0 {
            return Ok(None);
        }
    }
    // Capacity may exceed `len`, and so may the last read.
    buf.truncate(len);
    Ok(Some(buf))
}

/// Like [`pread_exact`], from the OS page cache only (see `nowait`): an error of
/// kind `WouldBlock` when some of the bytes would need the disk, when the file
/// is shorter, or when `RWF_NOWAIT` reads are not supported.
fn pread_cached(file: &File, at: u64, len: usize) -> io::Result<Vec<u8>> {
    // Zero-filled: `preadv2` takes initialized buffers (and unsafe code is
    // forbidden); a memset is far cheaper than the thread hand-off it saves.
    let mut buf = vec![0u8; len];
    if !nowait::read_nowait(file, at, &mut buf)? {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(buf)
}

impl Bodies {
    /// Opens the segment directory (created if missing). `referenced` holds the
    /// live bytes of each segment the committed records use (the `segments`
    /// table); every other
    /// segment file is left over from fills lost in a crash and is deleted.
    /// Returns the store and the referenced segments whose file is missing.
    pub(crate) fn open(
        dir: PathBuf,
        segment_bytes: u64,
        referenced: &BTreeMap<u32, u64>,
    ) -> io::Result<(Bodies, Vec<u32>)> {
        std::fs::create_dir_all(&dir)?;
        let mut files = HashMap::new();
        let mut lens = HashMap::new();
        let mut highest = referenced.keys().next_back().copied();
        for item in std::fs::read_dir(&dir)? {
            let item = item?;
            let name = item.file_name();
            let Some(id) = name.to_str().and_then(parse_seg_name) else {
                continue;
            };
            highest = highest.max(Some(id));
            if !referenced.contains_key(&id) {
                tracing::info!(segment = %name.to_string_lossy(), "removing a body segment no committed entry uses");
                std::fs::remove_file(item.path())?;
                continue;
            }
            let file = File::open(item.path())?;
            lens.insert(id, file.metadata()?.len());
            files.insert(id, Arc::new(file));
        }
        let missing: Vec<u32> = referenced
            .keys()
            .copied()
            .filter(|id| !files.contains_key(id))
            .collect();
        let total = lens.values().sum();
        let bodies = Bodies {
            dir,
            segment_bytes: segment_bytes.max(HEADER + 1),
            files: RwLock::new(files),
            appender: Mutex::new(Appender {
                active: None,
                next_id: highest.map_or(0, |h| h.wrapping_add(1)),
                lens,
                dirty: Vec::new(),
            }),
            file_bytes: AtomicU64::new(total),
        };
        Ok((bodies, missing))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writer: appends `body` to the active segment (a new one when it is full).
    pub(crate) fn append(&self, hash: &Hash, body: &[u8]) -> io::Result<BodyLoc> {
        let mut a = self.appender.lock();
        let need = HEADER + body.len() as u64;
        let full = match &a.active {
            None => true,
            Some((_, _, len)) => *len > 0 && len + need > self.segment_bytes,
        };
        if full {
            let id = a.next_id;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(self.dir.join(seg_name(id)))?;
            let file = Arc::new(file);
            a.next_id = id.wrapping_add(1);
            a.lens.insert(id, 0);
            self.files.write().insert(id, file.clone());
            a.active = Some((id, file, 0));
        }
        let Some((id, file, len)) = a.active.clone() else {
            unreachable!("an active segment was just opened");
        };
        let crc = crc32fast::hash(body);
        let mut header = [0u8; HEADER as usize];
        header[..4].copy_from_slice(&MAGIC);
        header[4..8].copy_from_slice(&crc.to_le_bytes());
        header[8..16].copy_from_slice(&(body.len() as u64).to_le_bytes());
        header[16..32].copy_from_slice(hash);
        file.write_all_at(&header, len)?;
        file.write_all_at(body, len + HEADER)?;
        let end = len + need;
        if let Some(active) = a.active.as_mut() {
            active.2 = end;
        }
        a.lens.insert(id, end);
        self.file_bytes.fetch_add(need, Ordering::Relaxed);
        if !a.dirty.iter().any(|(d, _)| *d == id) {
            a.dirty.push((id, file));
        }
        Ok(BodyLoc {
            seg: id,
            off: len + HEADER,
            len: body.len() as u64,
            crc,
        })
    }

    /// Writer, before a durable commit: makes every body appended so far durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        let dirty = std::mem::take(&mut self.appender.lock().dirty);
        for (i, (_, file)) in dirty.iter().enumerate() {
            if let Err(e) = file.sync_data() {
                // Still dirty: the next durable commit tries again.
                self.appender
                    .lock()
                    .dirty
                    .extend(dirty[i..].iter().cloned());
                return Err(e);
            }
        }
        Ok(())
    }

    /// The open file of segment `id`, if it exists. A reader that holds it can
    /// go on reading after the segment is deleted (compaction, GC).
    pub(crate) fn file(&self, id: u32) -> Option<Arc<File>> {
        self.files.read().get(&id).cloned()
    }

    /// The body at `loc`; `None` when its segment is gone or the bytes do not
    /// match the record (length or CRC): the entry is then treated as absent.
    pub(crate) fn read(&self, loc: &BodyLoc) -> io::Result<Option<Bytes>> {
        let Some(file) = self.file(loc.seg) else {
            return Ok(None);
        };
        let len = usize::try_from(loc.len).map_err(|_| corrupt_header())?;
        Ok(pread_exact(&file, loc.off, len)?.and_then(|buf| self.checked(loc, buf)))
    }

    /// Like [`Bodies::read`], from the OS page cache only (see `nowait`): an error
    /// of kind `WouldBlock` when some of the bytes would need the disk, or when
    /// `RWF_NOWAIT` reads are not supported. A missing segment is still `None`.
    pub(crate) fn read_cached(&self, loc: &BodyLoc) -> io::Result<Option<Bytes>> {
        let Some(file) = self.file(loc.seg) else {
            return Ok(None);
        };
        let len = usize::try_from(loc.len).map_err(|_| corrupt_header())?;
        Ok(self.checked(loc, pread_cached(&file, loc.off, len)?))
    }

    /// `buf` as the body at `loc` when its checksum matches.
    fn checked(&self, loc: &BodyLoc, buf: Vec<u8>) -> Option<Bytes> {
        if crc32fast::hash(&buf) != loc.crc {
            tracing::warn!(
                segment = loc.seg,
                offset = loc.off,
                "cache body fails its checksum; treated as a miss"
            );
            return None;
        }
        Some(Bytes::from(buf))
    }

    /// The segment being appended to, if any.
    pub(crate) fn active(&self) -> Option<u32> {
        self.appender.lock().active.as_ref().map(|(id, _, _)| *id)
    }

    /// Every segment file with its length.
    pub(crate) fn segments(&self) -> Vec<(u32, u64)> {
        let a = self.appender.lock();
        let mut v: Vec<(u32, u64)> = a.lens.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_unstable();
        v
    }

    pub(crate) fn file_bytes(&self) -> u64 {
        self.file_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn file_count(&self) -> usize {
        self.appender.lock().lens.len()
    }

    /// Writer, after a durable commit left segment `id` without live bodies:
    /// deletes its file (the active one too: the next body starts a new one).
    pub(crate) fn remove(&self, id: u32) {
        let mut a = self.appender.lock();
        if a.active.as_ref().is_some_and(|(act, _, _)| *act == id) {
            a.active = None;
        }
        let Some(len) = a.lens.remove(&id) else {
            return;
        };
        a.dirty.retain(|(d, _)| *d != id);
        self.files.write().remove(&id);
        self.file_bytes.fetch_sub(len, Ordering::Relaxed);
        if let Err(e) = std::fs::remove_file(self.dir.join(seg_name(id))) {
            tracing::warn!(segment = id, error = %e, "cannot delete an empty body segment");
        }
    }

    /// Compaction: the bodies stored in segment `id` from byte `from` on, up to
    /// about `max_bytes` of them, with the offset to continue from (`None` at
    /// the end). Stops at the first header that does not parse (the torn tail
    /// of an append cut by a crash).
    pub(crate) fn walk(&self, id: u32, from: u64, max_bytes: u64) -> io::Result<Walked> {
        let Some(file) = self.file(id) else {
            return Ok((Vec::new(), None));
        };
        let end = file.metadata()?.len();
        let mut pos = from;
        let mut out = Vec::new();
        let mut taken = 0u64;
        while pos + HEADER <= end {
            if taken >= max_bytes {
                return Ok((out, Some(pos)));
            }
            let mut h = [0u8; HEADER as usize];
            file.read_exact_at(&mut h, pos)?;
            if h[..4] != MAGIC {
                break;
            }
            let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            let mut l = [0u8; 8];
            l.copy_from_slice(&h[8..16]);
            let len = u64::from_le_bytes(l);
            let mut hash = [0u8; 16];
            hash.copy_from_slice(&h[16..32]);
            if pos + HEADER + len > end {
                break;
            }
            out.push((
                hash,
                BodyLoc {
                    seg: id,
                    off: pos + HEADER,
                    len,
                    crc,
                },
            ));
            taken += HEADER + len;
            pos += HEADER + len;
        }
        Ok((out, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, seg: u64, referenced: &[u32]) -> (Bodies, Vec<u32>) {
        let live = referenced.iter().map(|id| (*id, 1)).collect();
        Bodies::open(dir.to_path_buf(), seg, &live).unwrap()
    }

    #[test]
    fn append_read_walk_and_roll_over() {
        let tmp = tempfile::tempdir().unwrap();
        let (b, _) = open(tmp.path(), 100, &[]);
        let l1 = b.append(&[1; 16], &[7u8; 40]).unwrap();
        let l2 = b.append(&[2; 16], &[8u8; 40]).unwrap();
        // 72 + 72 > 100: the second body starts a new segment.
        assert_eq!((l1.seg, l1.off), (0, HEADER));
        assert_eq!((l2.seg, l2.off), (1, HEADER));
        assert_eq!(b.read(&l1).unwrap().unwrap(), vec![7u8; 40]);
        assert_eq!(b.read(&l2).unwrap().unwrap(), vec![8u8; 40]);
        let (found, next) = b.walk(0, 0, u64::MAX).unwrap();
        assert_eq!(found, vec![([1; 16], l1)]);
        assert_eq!(next, None);
        assert_eq!(b.file_bytes(), 144);
        b.sync().unwrap();
        // A wrong checksum or a short file is a miss, never wrong bytes.
        assert_eq!(
            b.read(&BodyLoc {
                crc: l1.crc ^ 1,
                ..l1
            })
            .unwrap(),
            None
        );
        assert_eq!(b.read(&BodyLoc { len: 400, ..l1 }).unwrap(), None);
        b.remove(0);
        assert_eq!(b.read(&l1).unwrap(), None);
        assert_eq!(b.segments(), vec![(1, 72)]);
        // Removing the active segment: the next body starts a new one.
        b.remove(1);
        assert_eq!(b.file_count(), 0);
        assert_eq!(b.file_bytes(), 0);
        assert_eq!(b.append(&[3; 16], b"y").unwrap().seg, 2);
    }

    #[test]
    fn open_removes_unreferenced_segments_and_reports_missing_ones() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (b, _) = open(tmp.path(), 50, &[]);
            for i in 0..3u8 {
                b.append(&[i; 16], &[i; 30]).unwrap();
            }
        }
        std::fs::remove_file(tmp.path().join(seg_name(2))).unwrap();
        let (b, missing) = open(tmp.path(), 50, &[0, 2]);
        assert_eq!(missing, vec![2]);
        // Segment 1 had no committed entry: gone; new segments never reuse an id.
        assert_eq!(b.segments(), vec![(0, 62)]);
        assert!(!tmp.path().join(seg_name(1)).exists());
        let l = b.append(&[9; 16], b"x").unwrap();
        assert_eq!(l.seg, 3);
    }

    #[test]
    fn walk_stops_at_a_torn_tail_and_resumes() {
        let tmp = tempfile::tempdir().unwrap();
        let (b, _) = open(tmp.path(), 1 << 20, &[]);
        let locs: Vec<BodyLoc> = (0..4u8)
            .map(|i| b.append(&[i; 16], &[i; 10]).unwrap())
            .collect();
        let (first, next) = b.walk(0, 0, 42).unwrap();
        assert_eq!(first.len(), 1);
        let (rest, end) = b.walk(0, next.unwrap(), u64::MAX).unwrap();
        assert_eq!(rest.iter().map(|(_, l)| *l).collect::<Vec<_>>(), locs[1..]);
        assert_eq!(end, None);
        // Half a header at the end (a crash mid-append) ends the walk.
        let f = OpenOptions::new()
            .append(true)
            .open(tmp.path().join(seg_name(0)))
            .unwrap();
        std::io::Write::write_all(&mut &f, b"ASB1zz").unwrap();
        let (all, _) = b.walk(0, 0, u64::MAX).unwrap();
        assert_eq!(all.len(), 4);
    }
}
