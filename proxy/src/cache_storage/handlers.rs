//! pingora's hit and miss handlers over a store entry.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora_cache::key::CacheKey;
use pingora_cache::storage::{HandleHit, HandleMiss, MissFinishType, Storage};
use pingora_cache::trace::SpanHandle;
use pingora_error::{Error, ErrorType, OrErr, Result};

use aside_store::{CacheEntry, ColdBody, Store};

use super::store_err;

/// A hit: the whole body is already in memory (`Bytes`, cheap to slice), so
/// seeking for Range requests is just moving two indexes; or, for a large body
/// in the disk tier, read in chunks from its segment (`stream`).
pub(super) struct AsideHit {
    pub(super) entry: Arc<CacheEntry>,
    pub(super) stream: Option<ColdBody>,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) done: bool,
}

#[async_trait]
impl HandleHit for AsideHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if let Some(stream) = &mut self.stream {
            return stream
                .next_chunk()
                .await
                .map_err(|e| store_err("cache body read", e));
        }
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(self.entry.body.slice(self.start..self.end)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        if let Some(stream) = &mut self.stream {
            return stream
                .seek(start as u64, end.map(|e| e as u64))
                .or_err(ErrorType::InternalError, "seek out of range");
        }
        let len = self.entry.body.len();
        if start >= len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek start out of range {start} >= {len}"),
            );
        }
        self.start = start;
        self.end = end.map_or(len, |e| e.min(len));
        self.done = false;
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

impl Drop for AsideMiss {
    fn drop(&mut self) {
        // Dropped without `finish`: the fill failed; let other nodes fetch.
        if let (Some(entry), Some(shared)) = (&self.entry, &self.shared) {
            shared.abandon(&entry.hash);
        }
    }
}

/// A fill in progress. Dropped without `finish` = the fill failed: nothing is written.
pub(super) struct AsideMiss {
    pub(super) fills: &'static super::fills::Fills,
    pub(super) store: Store,
    pub(super) shared: Option<aside_cluster::SharedCache>,
    pub(super) entry: Option<CacheEntry>,
    pub(super) body: BytesMut,
}

#[async_trait]
impl HandleMiss for AsideMiss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        let Some(mut entry) = self.entry.take() else {
            return Error::e_explain(ErrorType::InternalError, "miss handler finished twice");
        };
        let size = self.body.len();
        entry.body = exact_body(std::mem::take(&mut self.body));
        if let Some(shared) = &self.shared {
            // Before this node's waiting requests are let go (pingora does it
            // when this returns), bounded by the shared tier's timeout: the
            // other nodes' waiters wake on this write (and the lease, if this
            // node fetched under one, goes with it).
            let lease = shared.take_lease(&entry.hash);
            shared.put_soon(entry.clone(), lease).await;
        }
        let hash = entry.hash;
        let filled = self.store.cache_fill(entry).await;
        // In the store (or failed): this node's requests waiting for it go.
        self.fills.done(&hash);
        filled.map_err(|e| store_err("cache fill", e))?;
        Ok(MissFinishType::Created(size))
    }
}

/// The most a miss handler reserves up front from the origin's `Content-Length`
/// (a larger body grows as it arrives; a lying header costs no more than this).
pub(super) const MAX_RESERVE: usize = 8 * 1024 * 1024;

/// A body buffer for a fill, sized from the response's `Content-Length` when it
/// has one, so that the body is not reallocated as it arrives.
pub(super) fn body_buffer(content_length: Option<usize>) -> BytesMut {
    BytesMut::with_capacity(content_length.map_or(0, |n| n.min(MAX_RESERVE)))
}

/// The filled body as the tiers keep it. A buffer that grew by doubling holds up
/// to twice its length, and the hot tier's budget counts the length: a body in
/// a buffer more than 1/8 too large is copied into one of its own size.
pub(super) fn exact_body(body: BytesMut) -> Bytes {
    if body.capacity() - body.len() > body.len() / 8 + 64 {
        Bytes::copy_from_slice(&body)
    } else {
        body.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grown_buffer_is_not_kept_whole() {
        let mut grown = BytesMut::new();
        for _ in 0..49 {
            grown.extend_from_slice(&[7u8; 1000]);
        }
        assert!(grown.capacity() > 55_000, "{}", grown.capacity());
        let body = exact_body(grown);
        assert_eq!(body.len(), 49_000);
        // Copied into an allocation of its own length (`Bytes` from a `Vec`).
        assert_eq!(Vec::from(body).capacity(), 49_000);
    }

    #[test]
    fn a_buffer_sized_from_content_length_is_kept() {
        let mut b = body_buffer(Some(49_000));
        let ptr = b.as_ptr();
        for _ in 0..49 {
            b.extend_from_slice(&[7u8; 1000]);
        }
        let body = exact_body(b);
        assert_eq!(body.as_ptr(), ptr, "no copy, no reallocation");
        assert_eq!(body.len(), 49_000);
        assert_eq!(body_buffer(Some(usize::MAX)).capacity(), MAX_RESERVE);
        assert_eq!(body_buffer(None).capacity(), 0);
    }
}
