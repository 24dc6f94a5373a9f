//! The cache namespace: HTTP responses keyed by pingora's 16-byte hash, with the
//! readable url, host and tags indexed for listing and purging. Here are the
//! `Store` methods; the value types are in `types`, what a write does to the
//! tables in `apply_cache`.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::bodies::{Bodies, BodyLoc};
use crate::catalog::CacheTables;
use crate::clock::to_nanos;
use crate::cold::{self, decode_cache, Ctx, Hash};
use crate::hot::{HotKey, HotValue};
use crate::op::Op;
use crate::pending::{ColdFound, Inflight};
use crate::stream::{ColdBody, STREAM_MIN};
use crate::{
    CacheEntry, CacheFilter, CacheHit, CachePage, CacheSelector, CacheSummary, Error, PurgeMode,
    Result, Store, Tier, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
};

fn encode_cursor(url: &str, hash: &Hash) -> String {
    let mut b = Vec::with_capacity(17 + url.len());
    b.push(b'c');
    b.extend_from_slice(hash);
    b.extend_from_slice(url.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn decode_cursor(cursor: &str) -> Result<(String, Hash)> {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| Error::InvalidCursor)?;
    if b.len() < 17 || b[0] != b'c' {
        return Err(Error::InvalidCursor);
    }
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&b[1..17]);
    let url = String::from_utf8(b[17..].to_vec()).map_err(|_| Error::InvalidCursor)?;
    Ok((url, hash))
}

/// Budget units (bytes) a queued fill holds; capped so that one entry larger
/// than the whole budget still gets through (alone).
fn fill_weight(e: &CacheEntry) -> u32 {
    let bytes = e.body.len()
        + e.meta_internal.len()
        + e.meta_header.len()
        + e.url.len()
        + e.host.len()
        + e.tags.iter().map(String::len).sum::<usize>()
        + 128;
    u32::try_from(bytes.min(crate::store::MAX_QUEUED_FILL_BYTES)).unwrap_or(u32::MAX)
}

impl Store {
    /// The entry under `hash` until its `stale_until` (pingora decides fresh vs
    /// stale), from the hot tier or else the cold tier (then promoted), with its
    /// whole body.
    ///
    /// # Errors
    /// `Io` when the file cannot be read.
    pub async fn cache_lookup(&self, hash: &[u8; 16]) -> Result<Option<(Arc<CacheEntry>, Tier)>> {
        let found = self.lookup(hash, false).await?;
        Ok(found.map(|hit| (hit.entry, hit.tier)))
    }

    /// Like [`Store::cache_lookup`], to serve the entry: a disk-tier body longer
    /// than [`STREAM_MIN`](crate::STREAM_MIN) comes as a [`ColdBody`] to read in
    /// chunks (`entry.body` is then empty) and the entry is not promoted (see
    /// `stream`).
    ///
    /// # Errors
    /// `Io` when the file cannot be read.
    pub async fn cache_hit(&self, hash: &[u8; 16]) -> Result<Option<CacheHit>> {
        self.lookup(hash, true).await
    }

    async fn lookup(&self, hash: &[u8; 16], stream: bool) -> Result<Option<CacheHit>> {
        let now = self.shared.clock.now();
        let hot = |entry: Arc<CacheEntry>| {
            entry.is_live(now).then_some(CacheHit {
                entry,
                tier: Tier::Hot,
                stream: None,
            })
        };
        // A queued fill is newer than anything in either tier. The writer removes
        // it from `pending` only after putting it in the hot tier, so there is no
        // moment when a returned fill is in neither place.
        let queued = self.shared.pending.lock().get(hash).cloned();
        if let Some(e) = queued {
            return Ok(hot(e));
        }
        let hkey = HotKey::Cache(*hash);
        if let Some(HotValue::Cache(e)) = self.shared.hot.get(&hkey).await {
            return Ok(hot(e));
        }
        // Most misses end here: the cold tier does not hold the hash.
        if !self.shared.presence.may_contain(hash) {
            return Ok(None);
        }
        let epoch = self.shared.hot.epoch(&hkey);
        // Concurrent lookups of one hash share one read (a storm sends hundreds):
        // join a read in flight if no write to this key's shard committed since
        // it was queued, else lead a new one.
        enum Role {
            Lead,
            Join(oneshot::Receiver<Option<ColdFound>>),
            Alone,
        }
        let role = {
            let mut inflight = self.shared.inflight.lock();
            match inflight.get_mut(hash) {
                Some(f) if f.epoch == epoch => {
                    let (tx, rx) = oneshot::channel();
                    f.waiters.push(tx);
                    Role::Join(rx)
                }
                // A newer write: read alone, without registering.
                Some(_) => Role::Alone,
                None => {
                    let waiters = Vec::new();
                    inflight.insert(*hash, Inflight { epoch, waiters });
                    Role::Lead
                }
            }
        };
        let joined = match role {
            Role::Lead => return self.lead_cold_read(hash, hkey, epoch, now, stream).await,
            Role::Join(rx) => Some(rx),
            Role::Alone => None,
        };
        if let Some(rx) = joined {
            // An error: the leader failed or went away; read alone. A streamed
            // body when this lookup wants it whole: read alone too.
            if let Ok(found) = rx.await {
                if stream || found.as_ref().is_none_or(|f| f.external.is_none()) {
                    return Ok(self.cold_hit(found, now));
                }
            }
        }
        let found = self.read_cold(hash, stream).await?;
        Ok(self.cold_hit(found, now))
    }

    /// What a cold read found, as a hit when it is live.
    fn cold_hit(&self, found: Option<ColdFound>, now: SystemTime) -> Option<CacheHit> {
        let found = found.filter(|f| f.entry.is_live(now))?;
        let stream = found
            .external
            .map(|(file, loc)| ColdBody::new(self.clone(), found.entry.hash, file, loc));
        Some(CacheHit {
            entry: found.entry,
            tier: Tier::Cold,
            stream,
        })
    }

    /// Reads `hash` for every lookup waiting on it (registered in `inflight`),
    /// promotes and notes the LRU touch once for all.
    async fn lead_cold_read(
        &self,
        hash: &Hash,
        hkey: HotKey,
        epoch: u64,
        now: SystemTime,
        stream: bool,
    ) -> Result<Option<CacheHit>> {
        // Takes the entry out even if this future is dropped mid-read: the
        // waiters then see their channel close and read alone.
        struct Leader<'a> {
            store: &'a Store,
            hash: Hash,
            armed: bool,
        }
        impl Leader<'_> {
            fn take_waiters(&mut self) -> Vec<oneshot::Sender<Option<ColdFound>>> {
                self.armed = false;
                let mut inflight = self.store.shared.inflight.lock();
                inflight
                    .remove(&self.hash)
                    .map(|f| f.waiters)
                    .unwrap_or_default()
            }
        }
        impl Drop for Leader<'_> {
            fn drop(&mut self) {
                if self.armed {
                    self.take_waiters();
                }
            }
        }
        let mut leader = Leader {
            store: self,
            hash: *hash,
            armed: true,
        };
        let found = self.read_cold(hash, stream).await?;
        let waiters = leader.take_waiters();
        for w in waiters {
            let _ = w.send(found.clone());
        }
        let Some(hit) = self.cold_hit(found, now) else {
            return Ok(None);
        };
        if hit.stream.is_none() {
            self.shared
                .hot
                .promote(hkey, HotValue::Cache(hit.entry.clone()), epoch)
                .await;
        }
        self.shared.touches.lock().note(hash, now);
        Ok(Some(hit))
    }

    /// The cold tier's record of `hash`, expired or not, with its body (or,
    /// with `stream`, where a body longer than `STREAM_MIN` is). Read on this
    /// thread when the page cache holds the record and its body (see
    /// `nowait`), else on the reader pool.
    async fn read_cold(&self, hash: &Hash, stream: bool) -> Result<Option<ColdFound>> {
        let h = *hash;
        let bodies = self.shared.bodies.clone();
        let mut body_on_disk = false;
        let inline = self.read_inline(|txn| {
            let found = cold_record(txn, h, stream, &bodies, |loc| {
                match bodies.read_cached(loc) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        body_on_disk = true;
                        Ok(None)
                    }
                    read => read,
                }
            })?;
            // Not cached: the pool reads it (and the gate counts a miss).
            Ok((!body_on_disk).then_some(found))
        });
        if let Some(found) = inline {
            return found;
        }
        self.read(move |txn| cold_record(txn, h, stream, &bodies, |loc| bodies.read(loc)))
            .await
    }

    /// Stores a response in both tiers. Returns once the entry is queued for the
    /// writer thread (which commits it with the next batch, without fsync): from
    /// then on `cache_lookup` returns it, and listings and purges see it (they
    /// are ordered after it). Made durable within `cache_flush_interval` or by
    /// [`Store::flush`]; a crash may lose the last fills but never tears one.
    ///
    /// Backpressure: waits (asynchronously) while the writer's queue is full or
    /// while `MAX_QUEUED_FILL_BYTES` of fills are queued; never drops a fill.
    /// A fill whose batch later fails to commit (disk full, I/O error) is lost:
    /// it is logged, counted in `StoreStats::write_errors`, and the next lookup
    /// is a miss.
    ///
    /// # Errors
    /// `Closed` when the store is shutting down.
    pub async fn cache_fill(&self, entry: CacheEntry) -> Result<()> {
        let entry = Arc::new(entry);
        let weight = fill_weight(&entry);
        let budget = self.shared.fill_budget.clone();
        let permit = budget
            .acquire_many_owned(weight)
            .await
            .map_err(|_| Error::Closed)?;
        let slot = self.shared.tx.reserve().await.map_err(|_| Error::Closed)?;
        // Under the lock, so that `pending` and the queue agree on the order of
        // two fills of one hash.
        let mut pending = self.shared.pending.lock();
        pending.insert(entry.hash, entry.clone());
        slot.send(Op::CacheFill {
            entry,
            budget: Some(permit),
        });
        Ok(())
    }

    /// After a 304 revalidation: replaces the meta blobs and deadlines, keeps the
    /// body, clears `soft_purged`. `false` when the entry is gone.
    ///
    /// # Errors
    /// `Io` when the commit fails.
    pub async fn cache_update_meta(
        &self,
        hash: &[u8; 16],
        meta_internal: Bytes,
        meta_header: Bytes,
        fresh_until: SystemTime,
        stale_until: SystemTime,
    ) -> Result<bool> {
        self.request(|reply| Op::CacheUpdateMeta {
            hash: *hash,
            meta_internal,
            meta_header,
            fresh_until,
            stale_until,
            reply,
        })
        .await
    }

    /// Deletes one entry (durably). `true` when it existed.
    ///
    /// # Errors
    /// `Io` when the commit fails.
    pub async fn cache_delete(&self, hash: &[u8; 16]) -> Result<bool> {
        self.request(|reply| Op::CacheDelete {
            hash: *hash,
            only_at: None,
            reply,
        })
        .await
    }

    /// Deletes an entry whose body at `loc` was found damaged, unless the
    /// entry has been refilled (its body is elsewhere) since. `true` when
    /// deleted.
    pub(crate) async fn cache_delete_damaged(
        &self,
        hash: &[u8; 16],
        loc: crate::bodies::BodyLoc,
    ) -> Result<bool> {
        self.request(|reply| Op::CacheDelete {
            hash: *hash,
            only_at: Some(loc),
            reply,
        })
        .await
    }

    /// Soft purge of one entry: `fresh_until = min(fresh_until, now)`,
    /// `soft_purged = true`; still returned until `stale_until`.
    ///
    /// # Errors
    /// `Io` when the commit fails.
    pub async fn cache_expire(&self, hash: &[u8; 16]) -> Result<bool> {
        self.request(|reply| Op::CacheExpire { hash: *hash, reply })
            .await
    }

    /// Live entries matching the filter, ordered by url then hash.
    ///
    /// # Errors
    /// `InvalidCursor`, `Io`.
    pub async fn cache_list(
        &self,
        filter: &CacheFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<CachePage> {
        let limit = match limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n.min(MAX_LIST_LIMIT),
        };
        let after = cursor.map(decode_cursor).transpose()?;
        // Listing reads the cold tier: let the fills already answered reach it.
        self.settle_fills().await?;
        let filter = filter.clone();
        let now = to_nanos(self.shared.clock.now());
        let (listed, more) = self
            .read(move |txn| with_read_tables(txn, |t| t.list(&filter, limit, after, now)))
            .await?;
        let cursor = if more {
            listed
                .last()
                .map(|l| encode_cursor(&l.entry.url, &l.entry.hash))
        } else {
            None
        };
        let entries = listed
            .into_iter()
            .map(|l| {
                let e = l.entry;
                let tier = if self.shared.hot.contains(&HotKey::Cache(e.hash)) {
                    Tier::Hot
                } else {
                    Tier::Cold
                };
                CacheSummary {
                    hash: e.hash,
                    url: e.url,
                    host: e.host,
                    tags: e.tags,
                    status: e.status,
                    size: l.size,
                    tier,
                    stored_at: e.stored_at,
                    fresh_until: e.fresh_until,
                    stale_until: e.stale_until,
                    soft_purged: e.soft_purged,
                }
            })
            .collect();
        Ok(CachePage { entries, cursor })
    }

    /// Purges the union of the selector's lists; returns how many live entries
    /// matched (and were purged unless `dry_run`). Hard and soft purges are
    /// durable when this returns.
    ///
    /// # Errors
    /// `Io`.
    pub async fn cache_purge(
        &self,
        selector: &CacheSelector,
        mode: PurgeMode,
        dry_run: bool,
    ) -> Result<u64> {
        if dry_run {
            self.settle_fills().await?;
            let selector = selector.clone();
            let now = to_nanos(self.shared.clock.now());
            return self
                .read(move |txn| {
                    with_read_tables(txn, |t| {
                        let mut n = 0;
                        for h in t.select(&selector)? {
                            if t.is_live(&h, now)? {
                                n += 1;
                            }
                        }
                        Ok(n)
                    })
                })
                .await;
        }
        self.request(|reply| Op::CachePurge {
            selector: selector.clone(),
            mode,
            reply,
        })
        .await
    }
}

/// Open the four cache tables of a read transaction and run `f` over them.
fn with_read_tables<R>(
    txn: &redb::ReadTransaction,
    f: impl FnOnce(
        &CacheTables<
            '_,
            redb::ReadOnlyTable<&'static Hash, &'static [u8]>,
            redb::ReadOnlyTable<(&'static str, &'static Hash), u64>,
            redb::ReadOnlyTable<(&'static str, &'static str, &'static Hash), ()>,
            redb::ReadOnlyTable<(&'static str, &'static str, &'static Hash), ()>,
        >,
    ) -> Result<R>,
) -> Result<R> {
    let cache = txn.open_table(cold::CACHE).ctx("opening table cache")?;
    let url = txn
        .open_table(cold::CACHE_URL)
        .ctx("opening table cache_url")?;
    let host = txn
        .open_table(cold::CACHE_HOST)
        .ctx("opening table cache_host")?;
    let tag = txn
        .open_table(cold::CACHE_TAG)
        .ctx("opening table cache_tag")?;
    f(&CacheTables {
        cache: &cache,
        url: &url,
        host: &host,
        tag: &tag,
    })
}

/// The record of `h` in the cold tier, with its body (if kept in a segment) read
/// by `body`. `None` when there is no record, or when its body is gone or does not
/// match its checksum (a miss).
fn cold_record(
    txn: &redb::ReadTransaction,
    h: Hash,
    stream: bool,
    bodies: &Bodies,
    body: impl FnOnce(&BodyLoc) -> std::io::Result<Option<Bytes>>,
) -> Result<Option<ColdFound>> {
    let rec = {
        let table = txn.open_table(cold::CACHE).ctx("opening table cache")?;
        let Some(g) = table.get(&h).ctx("reading a cache entry")? else {
            return Ok(None);
        };
        decode_cache(h, g.value(), true)?
    };
    let mut entry = rec.entry;
    let mut external = None;
    if let Some(loc) = rec.loc {
        if stream && loc.len > STREAM_MIN {
            // Read later, in chunks, through this handle (see `stream`).
            let Some(file) = bodies.file(loc.seg) else {
                return Ok(None);
            };
            external = Some((file, loc));
        } else {
            match body(&loc).ctx("reading a cache body")? {
                Some(b) => entry.body = b,
                None => return Ok(None),
            }
        }
    }
    Ok(Some(ColdFound {
        entry: Arc::new(entry),
        external,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn cursor_round_trip() {
        let c = encode_cursor("http://a/b", &[3; 16]);
        assert_eq!(
            decode_cursor(&c).unwrap(),
            ("http://a/b".to_string(), [3; 16])
        );
        assert!(decode_cursor("AAAA").is_err());
        assert!(decode_cursor("%%").is_err());
    }

    fn entry(i: u8) -> CacheEntry {
        let now = SystemTime::now();
        CacheEntry {
            hash: [i; 16],
            url: format!("http://p.local/{i}"),
            host: "p.local".into(),
            tags: vec!["t".into()],
            status: 200,
            meta_internal: Bytes::new(),
            meta_header: Bytes::new(),
            body: Bytes::from_static(b"b"),
            stored_at: now,
            fresh_until: now + std::time::Duration::from_secs(60),
            stale_until: now + std::time::Duration::from_secs(120),
            soft_purged: false,
        }
    }

    async fn wait_loaded(store: &Store) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !store.shared.presence.is_complete() {
            assert!(
                std::time::Instant::now() < deadline,
                "presence set never loaded"
            );
            tokio::task::yield_now().await;
        }
    }

    /// The presence set follows fills, deletes and purges, and is rebuilt from
    /// the file on reopen; a miss then never reaches redb.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn presence_set_tracks_the_cold_tier() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::StoreConfig::new(dir.path().join("p.redb"));
        let store = Store::open(cfg.clone()).await.unwrap();
        wait_loaded(&store).await;
        let p = &store.shared.presence;
        assert!(!p.may_contain(&[1; 16]));
        for i in 1..=3 {
            store.cache_fill(entry(i)).await.unwrap();
        }
        store.flush().await.unwrap();
        assert!(p.may_contain(&[1; 16]) && p.may_contain(&[2; 16]));
        assert!(store.cache_delete(&[1; 16]).await.unwrap());
        assert!(!p.may_contain(&[1; 16]));
        let sel = CacheSelector {
            tags: vec!["t".into()],
            ..Default::default()
        };
        assert_eq!(
            store
                .cache_purge(&sel, PurgeMode::Hard, false)
                .await
                .unwrap(),
            2
        );
        assert!(!p.may_contain(&[2; 16]) && !p.may_contain(&[3; 16]));
        store.cache_fill(entry(4)).await.unwrap();
        store.flush().await.unwrap();
        drop(store);

        let store = Store::open(cfg).await.unwrap();
        wait_loaded(&store).await;
        assert!(store.shared.presence.may_contain(&[4; 16]));
        assert!(!store.shared.presence.may_contain(&[2; 16]));
        assert!(store.cache_lookup(&[4; 16]).await.unwrap().is_some());
        assert!(store.cache_lookup(&[2; 16]).await.unwrap().is_none());
    }

    /// A cold lookup whose record and body are in the page cache is read on the
    /// caller's thread; while inline reads are paused it goes through the pool,
    /// with the same answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn cold_reads_go_inline_when_cached_and_to_the_pool_when_paused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::StoreConfig::new(dir.path().join("p.redb"));
        let store = Store::open(cfg.clone()).await.unwrap();
        let mut big = entry(1);
        big.body = Bytes::from(vec![9u8; 20_000]);
        store.cache_fill(big).await.unwrap();
        store.cache_fill(entry(2)).await.unwrap();
        store.flush().await.unwrap();
        drop(store);
        let store = Store::open(cfg).await.unwrap();
        let body = |found: Option<(Arc<CacheEntry>, Tier)>| {
            let (e, tier) = found.unwrap();
            assert_eq!(tier, Tier::Cold);
            e.body.clone()
        };
        let b = body(store.cache_lookup(&[1; 16]).await.unwrap());
        assert_eq!(b, Bytes::from(vec![9u8; 20_000]));
        let gate = &store.shared.inline;
        let supported = crate::nowait::supported();
        assert_eq!(gate.inline.load(Ordering::Relaxed), u64::from(supported));
        assert_eq!(gate.pooled.load(Ordering::Relaxed), u64::from(!supported));
        gate.pause();
        assert_eq!(
            body(store.cache_lookup(&[2; 16]).await.unwrap()),
            Bytes::from_static(b"b")
        );
        assert_eq!(
            gate.pooled.load(Ordering::Relaxed),
            1 + u64::from(!supported)
        );
    }
}
