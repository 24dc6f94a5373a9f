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

mod fills;
mod handlers;
mod meta;

use std::any::Any;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use pingora_cache::key::{CacheHashKey, CacheKey};
use pingora_cache::storage::{
    HitHandler, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::CacheMeta;
use pingora_error::{Error, ErrorType, OkOrErr, Result};

use aside_store::{CacheEntry, CacheHit, Store, Tier};

use handlers::{AsideHit, AsideMiss};
pub use meta::decoded_share;
pub(crate) use meta::{serialize_meta, Decoded, Light};

/// How the fast path reads a plain entry's meta (see `plain_entry`).
pub(crate) enum Plain {
    /// Decoded and cached, with its hit template.
    Decoded(Arc<Decoded>),
    /// Read for this one hit from the stored bytes.
    Light(Box<Light>),
}

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
    /// Where the lookup records the hash it registered as a fill in progress
    /// (see `fills`), so that the request releases it at its end.
    pub fill: Option<Arc<FillSlot>>,
}

pub use fills::FillSlot;

/// See [`KeyInfo::lease`].
#[derive(Debug, Default)]
pub struct LeaseSlot {
    /// The request may fill (a `GET`).
    pub may_fill: bool,
    /// The hash this request's lookup took the cluster's lease for.
    pub taken: parking_lot::Mutex<Option<[u8; 16]>>,
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
    decoded_capacity: u64,
    /// Counts hot-tier hits that found no decoded meta while the decoded cache
    /// was full (see `decode_now`).
    decode_turn: AtomicU32,
    /// Fills in progress, that fast-path requests wait for.
    fills: fills::Fills,
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
            decoded_capacity,
            decode_turn: AtomicU32::new(0),
            fills: fills::Fills::default(),
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
    /// A large disk-tier body comes as a stream (`entry.body` is then empty).
    /// A disk-tier hit whose decoded meta is not cached is read light
    /// ([`Light`]) when `light` allows it and the entry has the common shape;
    /// so is a hot-tier one, unless it is its turn to be decoded (`decode_now`).
    pub(crate) async fn plain_entry(
        &self,
        hash: &[u8; 16],
        light: bool,
    ) -> Option<(CacheHit, Plain)> {
        let hit = self.store.cache_hit(hash).await.ok()??;
        if let Some(d) = self.cached_decoded(&hit.entry) {
            return Some((hit, Plain::Decoded(d)));
        }
        if light && (hit.tier == Tier::Cold || !self.decode_now()) {
            if let Some(light) = Light::of(&hit.entry) {
                return Some((hit, Plain::Light(Box::new(light))));
            }
        }
        self.meta_of(&hit.entry).ok()?;
        let d = self.cached_decoded(&hit.entry)?;
        Some((hit, Plain::Decoded(d)))
    }

    /// Whether a hot-tier hit whose meta is not in the decoded cache decodes
    /// it and offers it to the cache, or reads light. While the cache has room,
    /// always. Once it is full, one time in `DECODE_ONE_IN`: with more hot
    /// entries than decoded metas fit (10,000 1 KiB entries fill a 64 MiB hot
    /// tier's share about ten times over), most decodes were made for an entry
    /// whose meta the cache then evicted or refused unused, at about 14,000
    /// instructions a hit against a few thousand for a light read. An entry
    /// hit often still gets decoded within a few hits, and moka's admission
    /// (it counts the misses too) keeps the ones hit most.
    fn decode_now(&self) -> bool {
        const DECODE_ONE_IN: u32 = 8;
        /// Room for one more decoded meta of a typical head.
        const ROOM: u64 = 8 << 10;
        if self.decoded.weighted_size() + ROOM <= self.decoded_capacity {
            return true;
        }
        self.decode_turn
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(DECODE_ONE_IN)
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
            self.fills.done(hash);
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

    /// Releases the fill in progress `slot`'s request registered, if any (at
    /// the request's end, or when its response turns out not to fill).
    pub fn release_fill(&self, slot: &FillSlot) {
        self.fills.release(slot);
    }

    /// A receiver whose `changed()` ends when the fill in progress of `hash`
    /// on this node is done; `None` when there is none.
    pub(crate) fn fill_watch(&self, hash: &[u8; 16]) -> Option<tokio::sync::watch::Receiver<()>> {
        self.fills.watch(hash)
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

pub(crate) fn store_err(context: &'static str, e: aside_store::Error) -> Box<Error> {
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
        let found = match self.store.cache_hit(&hash).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cache lookup failed; treating as a miss");
                return Err(store_err("cache lookup", e));
            }
        };
        let (entry, stream) = match found {
            Some(hit) => (hit.entry, hit.stream),
            None => {
                let info = key.extensions.get::<KeyInfo>();
                if let Some(slot) = info.and_then(|i| i.fill.as_ref()) {
                    self.fills.start(&hash, slot);
                }
                match self.shared_lookup(key, &hash).await {
                    Some(entry) => (entry, None),
                    None => return Ok(None),
                }
            }
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
                stream,
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
            fills: &self.fills,
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
            body: handlers::body_buffer(
                crate::fields::content_length(meta.response_header())
                    .and_then(|n| usize::try_from(n).ok()),
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_http::ResponseHeader;

    /// A decoded cache of room for a few metas, 64 hot entries hit in turn:
    /// decoded while there is room, then mostly read light, one in
    /// `DECODE_ONE_IN` still decoded; an entry whose meta is cached is never
    /// read light.
    #[tokio::test]
    async fn hot_hits_read_light_once_the_decoded_cache_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(aside_store::StoreConfig::new(dir.path().join("s.redb")))
            .await
            .unwrap();
        let storage = AsideStorage::leak(store, 24 << 10, None);
        let now = SystemTime::now();
        for i in 0..64u8 {
            let mut resp = ResponseHeader::build(200, None).unwrap();
            resp.append_header("Date", httpdate::fmt_http_date(now))
                .unwrap();
            resp.append_header("Content-Length", "4").unwrap();
            resp.append_header("Cache-Control", "max-age=600").unwrap();
            resp.append_header("X-Entry", i.to_string()).unwrap();
            let meta = CacheMeta::new(now + Duration::from_secs(600), now, 0, 0, resp);
            let (internal, header) = serialize_meta(&meta).unwrap();
            storage
                .store
                .cache_fill(CacheEntry {
                    hash: [i; 16],
                    url: format!("http://l.local/{i}"),
                    host: "l.local".into(),
                    tags: Vec::new(),
                    status: 200,
                    meta_internal: Bytes::from(internal),
                    meta_header: Bytes::from(header),
                    body: Bytes::from_static(b"body"),
                    stored_at: now,
                    fresh_until: now + Duration::from_secs(600),
                    stale_until: now + Duration::from_secs(600),
                    soft_purged: false,
                })
                .await
                .unwrap();
        }
        let (mut light, mut decoded) = (0, 0);
        for round in 0..4 {
            for i in 0..64u8 {
                let (hit, plain) = storage.plain_entry(&[i; 16], true).await.unwrap();
                assert_eq!(hit.tier, Tier::Hot);
                let cached = storage.cached_decoded(&hit.entry).is_some();
                match plain {
                    Plain::Decoded(d) => {
                        decoded += 1;
                        let mut head = Vec::new();
                        d.response().header_to_h1_wire(&mut head);
                        let head = String::from_utf8_lossy(&head);
                        assert!(head.contains(&format!("X-Entry: {i}\r\n")), "{head}");
                    }
                    Plain::Light(l) => {
                        assert!(!cached, "entry {i} round {round}: cached yet read light");
                        light += 1;
                        let head = String::from_utf8_lossy(&l.wire.head);
                        assert!(head.contains(&format!("X-Entry: {i}\r\n")), "{head}");
                    }
                }
                storage.decoded.run_pending_tasks();
            }
        }
        assert!(decoded >= 8, "decoded {decoded}, light {light}");
        assert!(light > 2 * decoded, "decoded {decoded}, light {light}");
    }

    #[test]
    fn host_of_normalized_urls() {
        assert_eq!(url_host("http://a.example:8080/x?y"), "a.example:8080");
        assert_eq!(url_host("https://b.example?q"), "b.example");
        assert_eq!(url_host("http://c.example"), "c.example");
    }
}
