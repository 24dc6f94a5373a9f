//! pingora-cache `Storage` on top of `aside-store`'s cache namespace.
//!
//! pingora owns the HTTP caching rules (freshness, revalidation, Vary, Range,
//! the cache lock); this adapter only moves bytes between pingora's handlers and
//! the store. Three rules shape it:
//! - a store fault never fails a request: lookups that error are misses (pingora
//!   treats `Err` from `lookup` as a miss too, but we log and count it once here);
//! - the readable URL, host and tags of an entry travel in the `CacheKey`'s
//!   extensions ([`KeyInfo`]), set by the proxy's `cache_key_callback`, because
//!   pingora only hands hashes to the storage;
//! - a soft purge lowers the store's `fresh_until` without touching the meta
//!   blobs: `lookup` applies it to the decoded meta, so hot and cold tiers agree.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora_cache::key::{CacheHashKey, CacheKey};
use pingora_cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType, Storage,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::CacheMeta;
use pingora_error::{Error, ErrorType, OkOrErr, Result};
use pingora_http::ResponseHeader;

use aside_store::{CacheEntry, Store};

/// What the proxy knows about a request's cache entry beyond its hash.
///
/// Stored in `CacheKey::extensions` so that `get_miss_handler` can record the
/// readable URL (for prefix listing and URL purges), the host and the route's
/// tags. Built on every request, so it holds nothing that costs more than the
/// URL itself.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// Normalized URL (`http://host/path?query`), shared by all Vary variants.
    pub url: String,
    /// Tags configured on the route (shared); the origin's `Cache-Tag` /
    /// `Surrogate-Key` are added on fill.
    pub route_tags: Arc<[String]>,
    /// With the shared cache tier: whether this request may fetch the entry
    /// for the cluster (a `GET`), and where the lookup records the hash of a
    /// lease it took, so that the request gives it up at its end if it did not
    /// fill (`None` without a shared tier: nothing is allocated).
    pub lease: Option<Arc<LeaseSlot>>,
}

/// See [`KeyInfo::lease`].
#[derive(Debug, Default)]
pub struct LeaseSlot {
    /// The request may fill (a `GET`).
    pub may_fill: bool,
    /// The hash this request's lookup took the cluster's lease for.
    pub taken: parking_lot::Mutex<Option<[u8; 16]>>,
}

/// A meta's two blobs as stored. pingora keeps the response header as a zstd
/// frame, and decoding it (building Huffman tables for a few hundred bytes)
/// cost a cold hit about 11,000 instructions. Aside stores the same HTTP/1
/// header bytes as a zstd frame of raw (uncompressed) blocks: still what
/// `CacheMeta::deserialize` reads, decoded by a copy. Entries stored the
/// other way still read as before.
pub(crate) fn serialize_meta(meta: &CacheMeta) -> Result<(Vec<u8>, Vec<u8>)> {
    let (internal, _compressed) = meta.serialize()?;
    let resp = meta.response_header();
    let mut h1 = Vec::with_capacity(512);
    // As pingora-header-serde writes it: HTTP/1.0 stays, anything else is 1.1.
    h1.extend_from_slice(if resp.version == http::Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    h1.extend_from_slice(resp.status.as_str().as_bytes());
    h1.push(b' ');
    if let Some(reason) = resp.status.canonical_reason() {
        h1.extend_from_slice(reason.as_bytes());
    }
    h1.extend_from_slice(b"\r\n");
    resp.header_to_h1_wire(&mut h1);
    h1.extend_from_slice(b"\r\n");
    Ok((internal, raw_zstd_frame(&h1)))
}

/// `data` as a zstd frame (RFC 8878 §3.1.1) of raw blocks: single segment, the
/// content size in the header, no checksum.
fn raw_zstd_frame(data: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 128 * 1024;
    let n = data.len();
    let mut out = Vec::with_capacity(n + 16);
    out.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    // Frame header descriptor: Single_Segment_flag (bit 5) and the size of the
    // Frame_Content_Size field (bits 7-6: 1, 2 (minus 256) or 4 bytes).
    if let Ok(small) = u8::try_from(n) {
        out.extend_from_slice(&[0x20, small]);
    } else if let Ok(mid) = u16::try_from(n - 256) {
        out.push(0x60);
        out.extend_from_slice(&mid.to_le_bytes());
    } else {
        out.push(0xA0);
        out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }
    let mut blocks = data.chunks(MAX_BLOCK).peekable();
    if n == 0 {
        out.extend_from_slice(&[1, 0, 0]);
    }
    while let Some(block) = blocks.next() {
        // Block header, 3 bytes little-endian: Last_Block, Block_Type 0 (raw), size.
        let header = (block.len() as u32) << 3 | u32::from(blocks.peek().is_none());
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(block);
    }
    out
}

/// The `host[:port]` of a normalized URL (`scheme://host/...`).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// The pingora storage backend. One per process, leaked to get the `'static`
/// lifetime pingora requires.
pub struct AsideStorage {
    store: Store,
    /// The cluster's shared cache tier, read after both local tiers miss and
    /// written after each fill (`[cluster] shared-cache`).
    shared: Option<aside_cluster::SharedCache>,
    /// Decoded metas of recently hit entries. pingora's `CacheMeta::deserialize`
    /// zstd-decompresses and re-parses the response header on every call, the
    /// largest cost of a hit; entries that need no more than `CacheMeta::new`
    /// to rebuild are decoded once and rebuilt from here.
    decoded: moka::sync::Cache<[u8; 16], Arc<Decoded>, foldhash::fast::RandomState>,
}

/// What `CacheMeta::new` needs to rebuild a meta without decoding its blobs.
pub(crate) struct Decoded {
    /// The blobs it came from: used only while the entry still holds these
    /// (an update or refill changes them).
    internal: Bytes,
    header: Bytes,
    fresh_until: SystemTime,
    created: SystemTime,
    swr: u32,
    sie: u32,
    response: ResponseHeader,
    /// What a fresh hit answers with, built once by the proxy's fast path.
    hit_template: std::sync::OnceLock<crate::proxy::HitTemplate>,
}

/// The part of `hot-capacity` given to the decoded-meta cache (the rest goes to
/// the store's hot tier): 1/16, at most 16 MiB. Both live in memory, so one
/// budget bounds them.
pub fn decoded_share(hot_capacity: u64) -> u64 {
    (hot_capacity / 16).min(16 << 20)
}

impl Decoded {
    /// `Some` when `CacheMeta::new` rebuilds `meta` exactly: never revalidated
    /// (updated == provenance == created), no Vary variance, no epoch override.
    fn of(meta: &CacheMeta, internal: &Bytes, header: &Bytes) -> Option<Decoded> {
        let created = meta.created();
        let plain = meta.updated() == created
            && meta.provenance() == created
            && meta.variance().is_none()
            && meta.epoch_override().is_none();
        plain.then(|| Decoded {
            internal: internal.clone(),
            header: header.clone(),
            fresh_until: meta.fresh_until(),
            created,
            swr: meta.stale_while_revalidate_sec(),
            sie: meta.stale_if_error_sec(),
            response: meta.response_header_copy(),
            hit_template: std::sync::OnceLock::new(),
        })
    }

    /// The stored response's times and status, with `fresh_until` as the
    /// store has it (a soft purge lowers it).
    pub(crate) fn stored(&self, entry: &CacheEntry) -> crate::decision::Stored {
        crate::decision::Stored {
            created: self.created,
            updated: self.created,
            fresh_until: self.fresh_until.min(entry.fresh_until),
            swr: Duration::from_secs(u64::from(self.swr)),
            status: self.response.status.as_u16(),
        }
    }

    /// The stored response header.
    pub(crate) fn response(&self) -> &ResponseHeader {
        &self.response
    }

    /// The fresh-hit header template, built by `build` from the stored
    /// header the first time it is asked for.
    pub(crate) fn hit_template(
        &self,
        build: impl FnOnce(&ResponseHeader) -> Result<crate::proxy::HitTemplate>,
    ) -> Result<&crate::proxy::HitTemplate> {
        if let Some(t) = self.hit_template.get() {
            return Ok(t);
        }
        let built = build(&self.response)?;
        Ok(self.hit_template.get_or_init(|| built))
    }

    fn weight(&self) -> u32 {
        // The decoded header and the hit template (a header and its wire
        // form), a few times the encoded size each.
        u32::try_from(self.header.len() * 12 + 768).unwrap_or(u32::MAX)
    }

    fn rebuild(&self) -> CacheMeta {
        CacheMeta::new(
            self.fresh_until,
            self.created,
            self.swr,
            self.sie,
            self.response.clone(),
        )
    }
}

impl AsideStorage {
    /// Leak a storage over `store`, caching decoded metas in up to
    /// `decoded_capacity` bytes; pingora needs `&'static`.
    pub fn leak(
        store: Store,
        decoded_capacity: u64,
        shared: Option<aside_cluster::SharedCache>,
    ) -> &'static AsideStorage {
        let decoded = moka::sync::Cache::builder()
            .max_capacity(decoded_capacity)
            .weigher(|_: &[u8; 16], d: &Arc<Decoded>| d.weight())
            .build_with_hasher(foldhash::fast::RandomState::default());
        Box::leak(Box::new(AsideStorage {
            store,
            shared,
            decoded,
        }))
    }

    /// The entry's decoded meta, when the decoded cache holds it for these blobs.
    fn cached_decoded(&self, entry: &CacheEntry) -> Option<Arc<Decoded>> {
        self.decoded
            .get(&entry.hash)
            .filter(|d| d.internal == entry.meta_internal && d.header == entry.meta_header)
    }

    /// The entry's meta, from the decoded cache when it still matches the blobs.
    fn meta_of(&self, entry: &CacheEntry) -> Result<CacheMeta> {
        if let Some(d) = self.cached_decoded(entry) {
            return Ok(d.rebuild());
        }
        let meta = CacheMeta::deserialize(&entry.meta_internal, &entry.meta_header)?;
        if let Some(d) = Decoded::of(&meta, &entry.meta_internal, &entry.meta_header) {
            self.decoded.insert(entry.hash, Arc::new(d));
        }
        Ok(meta)
    }

    /// A stored entry with a meta that needs nothing but its times to use
    /// (never revalidated, no Vary variance): the fresh-hit fast path's
    /// lookup. `None` for anything else, including store faults, which the
    /// regular lookup then meets and reports.
    pub(crate) async fn plain_entry(
        &self,
        hash: &[u8; 16],
    ) -> Option<(Arc<CacheEntry>, Arc<Decoded>)> {
        let (entry, _tier) = self.store.cache_lookup(hash).await.ok()??;
        if let Some(d) = self.cached_decoded(&entry) {
            return Some((entry, d));
        }
        self.meta_of(&entry).ok()?;
        let d = self.cached_decoded(&entry)?;
        Some((entry, d))
    }

    /// The store behind this storage.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// After both local tiers missed: the shared tier's copy, promoted into the
    /// local tiers with its own times and blobs (so `Age` counts from the
    /// origin's answer). A slow or failing shared tier is a miss.
    ///
    /// A `GET` that misses there too takes the cluster's lease on the key, or
    /// waits (up to `lease-wait`) for the node that holds it to fill.
    async fn shared_lookup(&self, key: &CacheKey, hash: &[u8; 16]) -> Option<Arc<CacheEntry>> {
        let shared = self.shared.as_ref()?;
        let slot = key
            .extensions
            .get::<KeyInfo>()
            .and_then(|i| i.lease.clone())
            .filter(|s| s.may_fill);
        let (entry, promote) = match slot {
            None => (Arc::new(shared.get(hash).await?), true),
            Some(slot) => match shared.lookup(hash).await {
                (aside_cluster::Lookup::Hit(entry), leader) => (entry, leader),
                (aside_cluster::Lookup::Fill, _) => {
                    *slot.taken.lock() = Some(*hash);
                    return None;
                }
                (aside_cluster::Lookup::Miss, _) => return None,
            },
        };
        if promote {
            if let Err(e) = self.store.cache_fill(CacheEntry::clone(&entry)).await {
                tracing::warn!(error = %e, url = %entry.url, "cannot keep the shared copy locally");
            }
        }
        Some(entry)
    }

    /// Gives up the cluster's lease a request took for `hash` when it ends
    /// without having filled the entry (called at every request's end).
    pub fn end_of_request(&self, slot: &LeaseSlot) {
        if let (Some(shared), Some(hash)) = (&self.shared, slot.taken.lock().take()) {
            shared.abandon(&hash);
        }
    }

    /// Whether the cluster's shared tier is on (requests then carry a [`LeaseSlot`]).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }
}

/// Tags an origin attached to a response (`Cache-Tag: a,b` / `Surrogate-Key: a b`).
pub fn origin_tags(meta: &CacheMeta) -> Vec<String> {
    let headers = meta.headers();
    let mut tags = Vec::new();
    for name in ["cache-tag", "surrogate-key"] {
        for value in headers.get_all(name) {
            if let Ok(v) = value.to_str() {
                tags.extend(
                    v.split([',', ' '])
                        .map(str::trim)
                        .filter(|t| !t.is_empty() && t.len() <= 256)
                        .map(str::to_owned),
                );
            }
        }
    }
    tags
}

/// How long an expired entry with a validator (`ETag` / `Last-Modified`) is kept
/// so that the next request can revalidate it (a 304 instead of a full body).
const REVALIDATION_KEEP: Duration = Duration::from_secs(24 * 3600);

/// How long any expired entry is kept, for clients that accept stale responses
/// (`max-stale`). pingora never serves it stale otherwise: its SWR/SIE windows
/// are in the meta.
const STALE_KEEP: Duration = Duration::from_secs(600);

/// When the store may forget an entry: past `fresh_until`, it stays usable for
/// the longer of SWR and SIE, and for revalidation when it has a validator.
fn stale_until(meta: &CacheMeta) -> SystemTime {
    let mut extra = Duration::from_secs(u64::from(
        meta.stale_while_revalidate_sec()
            .max(meta.stale_if_error_sec()),
    ))
    .max(STALE_KEEP);
    let headers = meta.headers();
    if headers.contains_key(http::header::ETAG) || headers.contains_key(http::header::LAST_MODIFIED)
    {
        extra = extra.max(REVALIDATION_KEEP);
    }
    meta.fresh_until()
        .checked_add(extra)
        .unwrap_or(meta.fresh_until())
}

fn store_err(context: &'static str, e: aside_store::Error) -> Box<Error> {
    crate::metrics::record_store_error();
    Error::because(ErrorType::InternalError, context, e)
}

#[async_trait]
impl Storage for AsideStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let hash = key.combined_bin();
        let found = match self.store.cache_lookup(&hash).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cache lookup failed; treating as a miss");
                return Err(store_err("cache lookup", e));
            }
        };
        let entry = match found {
            Some((entry, _tier)) => entry,
            None => match self.shared_lookup(key, &hash).await {
                Some(entry) => entry,
                None => return Ok(None),
            },
        };
        let mut meta = match self.meta_of(&entry) {
            Ok(meta) => meta,
            Err(e) => {
                // An undecodable entry is useless: drop it so the next request refills it.
                tracing::warn!(error = %e, url = %entry.url, "undecodable cache meta; purging entry");
                let _ = self.store.cache_delete(&hash).await;
                return Ok(None);
            }
        };
        if entry.fresh_until < meta.fresh_until() {
            // Soft purge (or a shortened TTL) recorded by the store.
            meta.expire_at(entry.fresh_until);
        }
        let len = entry.body.len();
        Ok(Some((
            meta,
            Box::new(AsideHit {
                entry,
                start: 0,
                end: len,
                done: false,
            }),
        )))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let info = key.extensions.get::<KeyInfo>().cloned().or_err(
            ErrorType::InternalError,
            "cache key without KeyInfo (cache_key_callback must set it)",
        )?;
        let (meta_internal, meta_header) = serialize_meta(meta)?;
        let mut tags: Vec<String> = info.route_tags.to_vec();
        for t in origin_tags(meta) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        Ok(Box::new(AsideMiss {
            store: self.store.clone(),
            shared: self.shared.clone(),
            entry: Some(CacheEntry {
                hash: key.combined_bin(),
                host: url_host(&info.url).to_owned(),
                url: info.url,
                tags,
                status: meta.response_header().status.as_u16(),
                meta_internal: Bytes::from(meta_internal),
                meta_header: Bytes::from(meta_header),
                body: Bytes::new(),
                stored_at: meta.created(),
                fresh_until: meta.fresh_until(),
                stale_until: stale_until(meta),
                soft_purged: false,
            }),
            body: BytesMut::new(),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let hash = target.key().combined_bin();
        match self.store.cache_delete(&hash).await {
            Ok(true) => Ok(PurgeOutcome::Purged(None)),
            Ok(false) => Ok(PurgeOutcome::NotFound),
            Err(e) => Err(store_err("cache purge", e)),
        }
    }

    async fn expire(
        &'static self,
        target: PurgeTarget<'_>,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let hash = target.key().combined_bin();
        match self.store.cache_expire(&hash).await {
            Ok(true) => Ok(PurgeOutcome::Expired),
            Ok(false) => Ok(PurgeOutcome::NotFound),
            Err(e) => Err(store_err("cache expire", e)),
        }
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let (internal, header) = serialize_meta(meta)?;
        let (internal, header) = (Bytes::from(internal), Bytes::from(header));
        let hash = key.combined_bin();
        if let Some(shared) = self.shared.clone() {
            // The other nodes get the revalidated copy too (off the response's path).
            let (internal, header) = (internal.clone(), header.clone());
            let (fresh, stale) = (meta.fresh_until(), stale_until(meta));
            tokio::spawn(async move {
                shared.refresh(hash, &internal, &header, fresh, stale).await;
            });
        }
        self.store
            .cache_update_meta(
                &hash,
                internal,
                header,
                meta.fresh_until(),
                stale_until(meta),
            )
            .await
            .map_err(|e| store_err("cache update_meta", e))
    }

    fn support_streaming_partial_write(&self) -> bool {
        // Upstream truncation bug #932: keep whole-object writes.
        false
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// A hit: the whole body is already in memory (`Bytes`, cheap to slice), so
/// seeking for Range requests is just moving two indexes.
struct AsideHit {
    entry: Arc<CacheEntry>,
    start: usize,
    end: usize,
    done: bool,
}

#[async_trait]
impl HandleHit for AsideHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
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
struct AsideMiss {
    store: Store,
    shared: Option<aside_cluster::SharedCache>,
    entry: Option<CacheEntry>,
    body: BytesMut,
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
        entry.body = std::mem::take(&mut self.body).freeze();
        if let Some(shared) = &self.shared {
            // Before this node's waiting requests are let go (pingora does it
            // when this returns), bounded by the shared tier's timeout: the
            // other nodes' waiters wake on this write (and the lease, if this
            // node fetched under one, goes with it).
            let lease = shared.take_lease(&entry.hash);
            shared.put_soon(entry.clone(), lease).await;
        }
        self.store
            .cache_fill(entry)
            .await
            .map_err(|e| store_err("cache fill", e))?;
        Ok(MissFinishType::Created(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_metas_take_a_sixteenth_of_the_hot_budget_at_most_16_mib() {
        assert_eq!(decoded_share(8 << 20), 512 << 10);
        assert_eq!(decoded_share(64 << 20), 4 << 20);
        assert_eq!(decoded_share(256 << 20), 16 << 20);
        assert_eq!(decoded_share(4 << 30), 16 << 20);
        assert_eq!(decoded_share(1), 0);
    }

    fn meta() -> CacheMeta {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header.insert_header("cache-control", "max-age=60").unwrap();
        header.insert_header("etag", "\"x\"").unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        CacheMeta::new(now + Duration::from_secs(60), now, 5, 7, header)
    }

    #[test]
    fn raw_frame_headers_read_back_as_pingora_serialized_them() {
        for extra in [0usize, 300, 70_000, 200_000] {
            let mut resp = ResponseHeader::build(203, None).unwrap();
            resp.append_header("Content-Type", "text/plain").unwrap();
            resp.append_header("X-Pad", "p".repeat(extra)).unwrap();
            resp.append_header("x-lower", "Mixed Case").unwrap();
            let now = SystemTime::now();
            let meta = CacheMeta::new(now + Duration::from_secs(60), now, 5, 7, resp);
            let (internal, header) = serialize_meta(&meta).unwrap();
            let (_, compressed) = meta.serialize().unwrap();
            let ours = CacheMeta::deserialize(&internal, &header).unwrap();
            let theirs = CacheMeta::deserialize(&internal, &compressed).unwrap();
            let wire = |m: &CacheMeta| {
                let mut b = Vec::new();
                m.response_header().header_to_h1_wire(&mut b);
                (m.response_header().status, b)
            };
            assert_eq!(
                wire(&ours),
                wire(&theirs),
                "header with {extra} bytes of padding"
            );
            assert_eq!(ours.fresh_until(), theirs.fresh_until());
        }
    }

    #[test]
    fn rebuilt_meta_serializes_exactly_like_the_original() {
        let m = meta();
        let (internal, header) = m.serialize().unwrap();
        let (internal, header) = (Bytes::from(internal), Bytes::from(header));
        let d = Decoded::of(&m, &internal, &header).expect("plain meta is eligible");
        let (i2, h2) = d.rebuild().serialize().unwrap();
        assert_eq!(Bytes::from(i2), internal);
        assert_eq!(Bytes::from(h2), header);
    }

    #[test]
    fn revalidated_or_varied_metas_are_decoded_every_time() {
        let mut revalidated = meta();
        revalidated.update_freshness(SystemTime::now() + Duration::from_secs(60), 0, 0);
        let (i, h) = revalidated.serialize().unwrap();
        assert!(Decoded::of(&revalidated, &Bytes::from(i), &Bytes::from(h)).is_none());

        let mut varied = meta();
        varied.set_variance([7; 16]);
        let (i, h) = varied.serialize().unwrap();
        assert!(Decoded::of(&varied, &Bytes::from(i), &Bytes::from(h)).is_none());
    }

    #[test]
    fn host_of_normalized_urls() {
        assert_eq!(url_host("http://a.example:8080/x?y"), "a.example:8080");
        assert_eq!(url_host("https://b.example?q"), "b.example");
        assert_eq!(url_host("http://c.example"), "c.example");
    }
}
