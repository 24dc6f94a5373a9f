//! Large disk-tier bodies, served in chunks straight from their segment file.
//!
//! A cold hit used to read its whole body into one buffer and promote the entry
//! into the hot tier. With 1 MiB bodies and 32 connections that is 32 MiB of
//! buffers in flight, plus a 1 MiB hot-tier insert (and an eviction) per hit:
//! the `cold-1m` scenario's peak RSS went 20-50 MiB past its budget of hot
//! capacity + 64 MiB (issue 18). Now a body longer than [`STREAM_MIN`] found in
//! the disk tier by [`Store::cache_hit`] is read [`CHUNK`] bytes at a time as
//! the response is written, and the entry is not promoted: for large bodies the
//! OS page cache is the memory tier, as it is for nginx's file cache (the hot
//! tier would save one copy per byte and cost its capacity). Fills of large
//! bodies still go into the hot tier, and small bodies are promoted as before.
//!
//! Integrity: a read of the whole body computes its CRC-32 as it goes and fails
//! the last chunk when it does not match, so the response is cut short (which
//! the client sees from its framing) rather than completed with wrong bytes; the
//! entry is then deleted. A range read checks the whole body before its first
//! chunk, unless this process has already verified that body (a bounded set of
//! verified locations: segments are append-only, so verified bytes stay
//! verified short of a disk fault after the check), so that a client reading a
//! large object range by range, or one multi-part range, does not read it
//! whole each time. The segment's file handle is held by the reader, so
//! compaction or GC deleting the segment meanwhile does not cut a response
//! short.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::bodies::{self, BodyLoc};
use crate::cold::Hash;
use crate::nowait::{self, Inline};
use crate::{Error, Result, Store};

/// Disk-tier bodies longer than this are streamed and not promoted.
pub const STREAM_MIN: u64 = 256 * 1024;

/// Bytes read per chunk of a streamed body. On the 2-vCPU Xeon, `cold-1m` (32
/// connections) ran at 1,701 / 2,179 / 2,353 / 2,299 req/s with chunks of 128
/// KiB / 256 KiB / 512 KiB / 1 MiB, peak RSS 118.5 / 119.7 / 129.9 / 160.1 MiB
/// (whole reads before: 2,058 req/s, 176.8 MiB): fewer, larger sends cost the
/// network stack less, and each connection holds one chunk.
pub const CHUNK: usize = 256 * 1024;

/// Streamed bodies whose checksum matched, by location. Bounded: emptied when
/// it reaches [`Verified::MAX`] (a body checked again costs one extra read).
#[derive(Default)]
pub(crate) struct Verified(parking_lot::Mutex<HashSet<BodyLoc>>);

impl Verified {
    const MAX: usize = 65_536;

    fn contains(&self, loc: &BodyLoc) -> bool {
        self.0.lock().contains(loc)
    }

    fn insert(&self, loc: &BodyLoc) {
        let mut set = self.0.lock();
        if set.len() >= Self::MAX {
            set.clear();
        }
        set.insert(*loc);
    }
}

/// The length of the chunk to read with `left` bytes to go.
fn chunk_len(left: u64) -> usize {
    usize::try_from(left).unwrap_or(usize::MAX).min(CHUNK)
}

/// A disk-tier body being read in chunks (see the module doc). Reads
/// `[start, end)` of the body, the whole body unless [`ColdBody::seek`] said
/// otherwise.
pub struct ColdBody {
    store: Store,
    hash: Hash,
    file: Arc<File>,
    loc: BodyLoc,
    pos: u64,
    end: u64,
    /// The CRC of the bytes read so far, while reading the whole body in order.
    crc: Option<crc32fast::Hasher>,
    /// After a seek: the whole body is checked before the first chunk (unless
    /// it was verified already).
    check_first: bool,
    /// The body failed its check: every later read fails too (a caller that
    /// dropped the failing read must not see a clean end).
    failed: bool,
    /// A chunk handed back by [`ColdBody::recycle`], read into again: its bytes
    /// are initialized already (a fresh buffer for `preadv2` is zero-filled).
    spare: Option<BytesMut>,
}

impl fmt::Debug for ColdBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColdBody")
            .field("segment", &self.loc.seg)
            .field("len", &self.loc.len)
            .field("pos", &self.pos)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl ColdBody {
    pub(crate) fn new(store: Store, hash: Hash, file: Arc<File>, loc: BodyLoc) -> ColdBody {
        ColdBody {
            store,
            hash,
            file,
            loc,
            pos: 0,
            end: loc.len,
            crc: Some(crc32fast::Hasher::new()),
            check_first: false,
            failed: false,
            spare: None,
        }
    }

    /// The whole body's length.
    pub fn len(&self) -> u64 {
        self.loc.len
    }

    /// Bytes left to read (in the range, after a seek).
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// Whether the body is empty (never, for a streamed body).
    pub fn is_empty(&self) -> bool {
        self.loc.len == 0
    }

    /// Reads `[start, end)` from now on (`end` is capped at the length).
    ///
    /// # Errors
    /// `InvalidInput` when `start` is not before the end.
    pub fn seek(&mut self, start: u64, end: Option<u64>) -> io::Result<()> {
        let end = end.map_or(self.loc.len, |e| e.min(self.loc.len));
        if start >= end {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("range {start}..{end} of a {}-byte body", self.loc.len),
            ));
        }
        self.pos = start;
        self.end = end;
        self.crc = None;
        self.check_first = !self.store.shared.verified.contains(&self.loc);
        Ok(())
    }

    /// The next chunk, `None` at the end.
    ///
    /// # Errors
    /// `Io` when the segment cannot be read, `Corrupt` when the body does not
    /// match its checksum or is shorter than its record says (the entry is
    /// deleted): the response must then be cut short.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.failed {
            return Err(failed());
        }
        if self.pos >= self.end {
            return Ok(None);
        }
        if self.check_first {
            self.check_whole().await?;
            self.check_first = false;
        }
        let len = chunk_len(self.end - self.pos);
        let buf = self.read_at(self.pos, len).await?;
        self.pos += len as u64;
        if let Some(crc) = &mut self.crc {
            crc.update(&buf);
            if self.pos == self.end {
                let crc = self.crc.take().map(crc32fast::Hasher::finalize);
                if crc != Some(self.loc.crc) {
                    return Err(self.corrupt("fails its checksum").await);
                }
                self.store.shared.verified.insert(&self.loc);
            }
        }
        Ok(Some(buf))
    }

    /// Gives back a chunk once it is written, to read the next one into (kept
    /// only if nothing else holds it).
    pub fn recycle(&mut self, chunk: Bytes) {
        if let Ok(buf) = chunk.try_into_mut() {
            self.spare = Some(buf);
        }
    }

    /// Reads the whole body, chunk by chunk, and checks its CRC.
    async fn check_whole(&mut self) -> Result<()> {
        let mut crc = crc32fast::Hasher::new();
        let mut at = 0;
        while at < self.loc.len {
            let len = chunk_len(self.loc.len - at);
            let chunk = self.read_at(at, len).await?;
            crc.update(&chunk);
            self.recycle(chunk);
            at += len as u64;
        }
        if crc.finalize() != self.loc.crc {
            return Err(self.corrupt("fails its checksum").await);
        }
        self.store.shared.verified.insert(&self.loc);
        Ok(())
    }

    /// `len` bytes at `at` in the body: on this thread from the page cache when
    /// inline reads are on (see `nowait`), into the spare buffer if there is
    /// one; else on the reader pool.
    async fn read_at(&mut self, at: u64, len: usize) -> Result<Bytes> {
        let off = self.loc.off + at;
        let gate = &self.store.shared.inline;
        if gate.open() {
            let mut buf = match self.spare.take() {
                Some(mut spare) if spare.len() >= len => {
                    spare.truncate(len);
                    spare
                }
                _ => BytesMut::zeroed(len),
            };
            // Not counted in `StoreStats::cold_reads_*`: those count lookups.
            match nowait::read_nowait(&self.file, off, &mut buf) {
                Ok(true) => {
                    gate.note(Inline::Cached);
                    return Ok(buf.freeze());
                }
                // Not cached: the pool reads it.
                Ok(false) => gate.note(Inline::Missed),
                Err(e) => return Err(Error::io("reading a cache body", e)),
            }
        }
        let file = self.file.clone();
        let read = self
            .store
            .on_pool(move |_| {
                bodies::pread_exact(&file, off, len)
                    .map_err(|e| Error::io("reading a cache body", e))
            })
            .await?;
        match read {
            Some(buf) => Ok(Bytes::from(buf)),
            None => Err(self.corrupt("is shorter than its record").await),
        }
    }

    /// The body is not what its record says: logs, deletes the entry (the next
    /// request refills it) and returns the error to fail the response with.
    async fn corrupt(&mut self, what: &str) -> Error {
        // Before any await: if this read is dropped, later ones still fail.
        self.failed = true;
        tracing::warn!(
            segment = self.loc.seg,
            offset = self.loc.off,
            "cache body {what}; the response is cut short and the entry deleted"
        );
        if let Err(e) = self.store.cache_delete_damaged(&self.hash, self.loc).await {
            tracing::warn!(error = %e, "cannot delete a corrupt cache entry");
        }
        Error::Corrupt {
            what: format!("cache body ({what})"),
        }
    }
}

/// What reads after a failed check answer.
fn failed() -> Error {
    Error::Corrupt {
        what: "cache body (failed its check)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{CacheEntry, StoreConfig, Tier};

    fn entry(i: u8, body: Vec<u8>) -> CacheEntry {
        let now = SystemTime::now();
        CacheEntry {
            hash: [i; 16],
            url: format!("http://s.local/{i}"),
            host: "s.local".into(),
            tags: Vec::new(),
            status: 200,
            meta_internal: Bytes::new(),
            meta_header: Bytes::new(),
            body: Bytes::from(body),
            stored_at: now,
            fresh_until: now + Duration::from_secs(60),
            stale_until: now + Duration::from_secs(120),
            soft_purged: false,
        }
    }

    /// 600 KiB that differ at every offset's low bytes (a misplaced chunk shows).
    fn large() -> Vec<u8> {
        (0..600 * 1024u32).map(|i| (i % 251) as u8).collect()
    }

    /// A store holding `bodies` in its disk tier only (filled, flushed, reopened).
    async fn cold_store(dir: &std::path::Path, bodies: Vec<(u8, Vec<u8>)>) -> Store {
        let cfg = StoreConfig::new(dir.join("s.redb"));
        let store = Store::open(cfg.clone()).await.unwrap();
        for (i, body) in bodies {
            store.cache_fill(entry(i, body)).await.unwrap();
        }
        store.flush().await.unwrap();
        drop(store);
        Store::open(cfg).await.unwrap()
    }

    /// The streamed body of entry `i`.
    async fn streamed(store: &Store, i: u8) -> ColdBody {
        let hit = store.cache_hit(&[i; 16]).await.unwrap().unwrap();
        hit.stream.expect("a streamed body")
    }

    async fn read_all(body: &mut ColdBody) -> Result<(Vec<u8>, usize)> {
        let (mut out, mut chunks) = (Vec::new(), 0);
        while let Some(chunk) = body.next_chunk().await? {
            assert!(chunk.len() <= CHUNK);
            out.extend_from_slice(&chunk);
            chunks += 1;
            // Read into again: a stale byte left in it would show.
            body.recycle(chunk);
        }
        Ok((out, chunks))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_large_disk_tier_body_streams_in_chunks_and_stays_out_of_the_hot_tier() {
        let dir = tempfile::tempdir().unwrap();
        let small = vec![5u8; 20_000];
        let store = cold_store(dir.path(), vec![(1, large()), (2, small.clone())]).await;

        for _ in 0..2 {
            let hit = store.cache_hit(&[1; 16]).await.unwrap().unwrap();
            // Still the disk tier the second time: not promoted.
            assert_eq!(hit.tier, Tier::Cold);
            assert!(hit.entry.body.is_empty());
            let mut body = hit.stream.unwrap();
            assert_eq!(body.len(), 600 * 1024);
            let (bytes, chunks) = read_all(&mut body).await.unwrap();
            assert_eq!(bytes, large());
            assert_eq!(chunks, (600 * 1024usize).div_ceil(CHUNK));
        }
        // A body at most STREAM_MIN long comes whole and is promoted.
        let hit = store.cache_hit(&[2; 16]).await.unwrap().unwrap();
        assert!(hit.stream.is_none() && hit.tier == Tier::Cold);
        assert_eq!(hit.entry.body, Bytes::from(small));
        // `cache_lookup` (admin, warm-up) reads a large body whole.
        let (whole, _) = store.cache_lookup(&[1; 16]).await.unwrap().unwrap();
        assert_eq!(whole.body, Bytes::from(large()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_seek_reads_its_range_after_checking_the_whole_body() {
        let dir = tempfile::tempdir().unwrap();
        let store = cold_store(dir.path(), vec![(1, large())]).await;
        let mut body = streamed(&store, 1).await;
        body.seek(1_000, Some(300_001)).unwrap();
        let (bytes, chunks) = read_all(&mut body).await.unwrap();
        assert_eq!(bytes, large()[1_000..300_001]);
        assert_eq!(chunks, 300_001usize.div_ceil(CHUNK));
        // The end is capped at the length; an empty range is refused.
        body.seek(600 * 1024 - 10, Some(u64::MAX)).unwrap();
        assert_eq!(
            read_all(&mut body).await.unwrap().0,
            large()[600 * 1024 - 10..]
        );
        assert!(body.seek(600 * 1024, None).is_err());
        assert!(body.seek(10, Some(10)).is_err());
    }

    /// A store holding `bodies` in its disk tier, one byte of its segment file
    /// flipped (see `damage_segment`).
    async fn damaged_store(dir: &std::path::Path, bodies: Vec<(u8, Vec<u8>)>) -> Store {
        drop(cold_store(dir, bodies).await);
        damage_segment(dir);
        Store::open(StoreConfig::new(dir.join("s.redb")))
            .await
            .unwrap()
    }

    /// Flips one byte a third of the way into the only segment file (inside a body).
    fn damage_segment(dir: &std::path::Path) {
        let segs = crate::bodies::dir_for(&dir.join("s.redb"));
        let seg = std::fs::read_dir(segs)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&seg).unwrap();
        let mid = bytes.len() / 3;
        bytes[mid] ^= 0xff;
        std::fs::write(&seg, bytes).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_damaged_body_fails_before_its_end_and_the_entry_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = damaged_store(dir.path(), vec![(1, large()), (2, large())]).await;
        let mut damaged = 0;
        for i in [1u8, 2] {
            let mut body = streamed(&store, i).await;
            let mut served = 0;
            let err = loop {
                match body.next_chunk().await {
                    Ok(Some(chunk)) => served += chunk.len(),
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            match err {
                // Never the whole length: the last chunk is withheld.
                Some(e) => {
                    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
                    assert!(served < 600 * 1024, "{served}");
                    assert!(store.cache_lookup(&[i; 16]).await.unwrap().is_none());
                    damaged += 1;
                }
                None => assert_eq!(served, 600 * 1024),
            }
        }
        assert_eq!(damaged, 1, "one of the two bodies holds the flipped byte");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_damaged_body_does_not_take_a_refilled_entry_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = damaged_store(dir.path(), vec![(1, large())]).await;
        let mut old = streamed(&store, 1).await;
        // Refilled while the old body is being sent.
        let fresh: Vec<u8> = large().into_iter().rev().collect();
        store.cache_fill(entry(1, fresh.clone())).await.unwrap();
        store.flush().await.unwrap();
        assert!(matches!(
            read_all(&mut old).await,
            Err(Error::Corrupt { .. })
        ));
        let (kept, _) = store.cache_lookup(&[1; 16]).await.unwrap().expect("kept");
        assert_eq!(kept.body, Bytes::from(fresh));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_range_of_a_damaged_body_fails_before_its_first_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = damaged_store(dir.path(), vec![(1, large())]).await;
        let mut body = streamed(&store, 1).await;
        // A range far from the damage is refused all the same, and so is every
        // read after it (a caller that dropped the failing read sees no end).
        body.seek(0, Some(100)).unwrap();
        assert!(matches!(
            body.next_chunk().await,
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            body.next_chunk().await,
            Err(Error::Corrupt { .. })
        ));
        assert!(store.cache_lookup(&[1; 16]).await.unwrap().is_none());
    }

    /// Once a body's checksum matched, its ranges are served without reading
    /// it whole again (shown with a byte damaged afterwards outside the range,
    /// which a whole-body check would refuse).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_verified_body_serves_ranges_without_reading_it_whole_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = cold_store(dir.path(), vec![(1, large())]).await;
        let mut body = streamed(&store, 1).await;
        assert_eq!(read_all(&mut body).await.unwrap().0, large());
        damage_segment(dir.path());
        let mut body = streamed(&store, 1).await;
        body.seek(0, Some(1_000)).unwrap();
        assert_eq!(read_all(&mut body).await.unwrap().0, large()[..1_000]);
        // An unverified body is checked whole: the same damage refuses it.
        let other = tempfile::tempdir().unwrap();
        let fresh = cold_store(other.path(), vec![(1, large())]).await;
        damage_segment(other.path());
        let mut body = streamed(&fresh, 1).await;
        body.seek(0, Some(1_000)).unwrap();
        assert!(body.next_chunk().await.is_err());
    }
}
