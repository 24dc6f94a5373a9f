//! The writer's view of one write transaction: every table open, and the
//! index-maintaining primitives (put / delete keep the url, host, tag, expiry and
//! LRU indexes and the byte counters in step with the records).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use redb::{ReadableTable, Table, WriteTransaction};

use crate::bodies::{Bodies, BodyLoc, INLINE_MAX};
use crate::catalog::CacheTables;
use crate::clock::{secs_ceil, to_nanos};
use crate::cold::{self, decode_cache, encode_cache, encode_kv, Ctx, Hash, KvRaw};
use crate::key::stored_key;
use crate::CacheEntry;
use crate::Result;

/// The persisted counters, loaded once at open and carried by the writer.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Meta {
    pub(crate) next_version: u64,
    pub(crate) lru_clock: u64,
    pub(crate) kv_entries: u64,
    pub(crate) kv_bytes: u64,
    pub(crate) cache_entries: u64,
    pub(crate) cache_bytes: u64,
}

impl Meta {
    /// A KV record of `bytes` (key and record) left the table.
    fn kv_gone(&mut self, bytes: usize) {
        self.kv_entries = self.kv_entries.saturating_sub(1);
        self.kv_bytes = self.kv_bytes.saturating_sub(bytes as u64);
    }

    pub(crate) fn load(table: &impl ReadableTable<&'static str, u64>) -> Result<Meta> {
        let get = |k: &str| -> Result<u64> {
            Ok(table
                .get(k)
                .ctx("reading meta")?
                .map(|g| g.value())
                .unwrap_or(0))
        };
        Ok(Meta {
            next_version: get(cold::META_NEXT_VERSION)?.max(1),
            lru_clock: get(cold::META_LRU_CLOCK)?,
            kv_entries: get(cold::META_KV_ENTRIES)?,
            kv_bytes: get(cold::META_KV_BYTES)?,
            cache_entries: get(cold::META_CACHE_ENTRIES)?,
            cache_bytes: get(cold::META_CACHE_BYTES)?,
        })
    }

    pub(crate) fn cold_bytes(&self) -> u64 {
        self.kv_bytes + self.cache_bytes
    }

    pub(crate) fn take_version(&mut self) -> u64 {
        let v = self.next_version;
        self.next_version += 1;
        v
    }
}

type NameIndex<'t> = Table<'t, (&'static str, &'static str, &'static Hash), ()>;

/// The catalog over the writer's tables.
pub(crate) type WriteCatalog<'a, 't> = CacheTables<
    'a,
    Table<'t, &'static Hash, &'static [u8]>,
    Table<'t, (&'static str, &'static Hash), u64>,
    NameIndex<'t>,
    NameIndex<'t>,
>;

pub(crate) struct WriteTables<'t> {
    pub(crate) kv: Table<'t, &'static [u8], &'static [u8]>,
    pub(crate) cache: Table<'t, &'static Hash, &'static [u8]>,
    pub(crate) url: Table<'t, (&'static str, &'static Hash), u64>,
    pub(crate) host: Table<'t, (&'static str, &'static str, &'static Hash), ()>,
    pub(crate) tag: Table<'t, (&'static str, &'static str, &'static Hash), ()>,
    pub(crate) expiry: Table<'t, (u64, u8, &'static [u8]), ()>,
    pub(crate) lru: Table<'t, (u64, &'static Hash), ()>,
    pub(crate) meta: Table<'t, &'static str, u64>,
    segments: Table<'t, u32, u64>,
    /// The body segment files (see `bodies`).
    pub(crate) bodies: Arc<Bodies>,
    /// Live bytes (headers included) per segment as of this transaction: a copy
    /// of the writer's, which keeps it only when the commit succeeds.
    pub(crate) seg_live: BTreeMap<u32, u64>,
    /// Segments whose live bytes changed, for `write_meta`.
    seg_touched: BTreeSet<u32>,
    /// Body bytes (headers included) freed in segments since the last
    /// [`WriteTables::take_freed`]: the dead space compaction has to catch up with.
    freed: u64,
    /// Hashes written in this transaction: the writer adds them to the in-memory
    /// presence set before the commit (see `presence`).
    pub(crate) added: Vec<Hash>,
    /// Hashes deleted in this transaction: candidates for removal from the
    /// presence set after the commit.
    pub(crate) removed: Vec<Hash>,
}

impl<'t> WriteTables<'t> {
    pub(crate) fn open(
        txn: &'t WriteTransaction,
        bodies: Arc<Bodies>,
        seg_live: BTreeMap<u32, u64>,
    ) -> Result<WriteTables<'t>> {
        Ok(WriteTables {
            kv: txn.open_table(cold::KV).ctx("opening table kv_parts")?,
            cache: txn.open_table(cold::CACHE).ctx("opening table cache")?,
            url: txn
                .open_table(cold::CACHE_URL)
                .ctx("opening table cache_url")?,
            host: txn
                .open_table(cold::CACHE_HOST)
                .ctx("opening table cache_host")?,
            tag: txn
                .open_table(cold::CACHE_TAG)
                .ctx("opening table cache_tag")?,
            expiry: txn.open_table(cold::EXPIRY).ctx("opening table expiry")?,
            lru: txn.open_table(cold::LRU).ctx("opening table lru")?,
            meta: txn.open_table(cold::META).ctx("opening table meta")?,
            segments: txn
                .open_table(cold::SEGMENTS)
                .ctx("opening table segments")?,
            bodies,
            seg_live,
            seg_touched: BTreeSet::new(),
            freed: 0,
            added: Vec::new(),
            removed: Vec::new(),
        })
    }

    pub(crate) fn catalog(&self) -> WriteCatalog<'_, 't> {
        CacheTables {
            cache: &self.cache,
            url: &self.url,
            host: &self.host,
            tag: &self.tag,
        }
    }

    pub(crate) fn write_meta(&mut self, m: &Meta) -> Result<()> {
        let rows = [
            (cold::META_NEXT_VERSION, m.next_version),
            (cold::META_LRU_CLOCK, m.lru_clock),
            (cold::META_KV_ENTRIES, m.kv_entries),
            (cold::META_KV_BYTES, m.kv_bytes),
            (cold::META_CACHE_ENTRIES, m.cache_entries),
            (cold::META_CACHE_BYTES, m.cache_bytes),
        ];
        for (k, v) in rows {
            self.meta.insert(k, v).ctx("writing meta")?;
        }
        for id in std::mem::take(&mut self.seg_touched) {
            match self.seg_live.get(&id) {
                Some(live) => self.segments.insert(id, *live),
                None => self.segments.remove(id),
            }
            .ctx("writing the segments table")?;
        }
        Ok(())
    }

    fn seg_add(&mut self, loc: &BodyLoc) {
        *self.seg_live.entry(loc.seg).or_insert(0) += loc.span();
        self.seg_touched.insert(loc.seg);
    }

    /// The body bytes freed since the last call (see `freed`).
    pub(crate) fn take_freed(&mut self) -> u64 {
        std::mem::take(&mut self.freed)
    }

    fn seg_sub(&mut self, loc: &BodyLoc) {
        self.freed += loc.span();
        if let Some(live) = self.seg_live.get_mut(&loc.seg) {
            *live = live.saturating_sub(loc.span());
            if *live == 0 {
                self.seg_live.remove(&loc.seg);
            }
        }
        self.seg_touched.insert(loc.seg);
    }

    // ------------------------------------------------------------------ KV

    pub(crate) fn kv_get(&self, key: &str) -> Result<Option<KvRaw>> {
        cold::kv_get(&self.kv, key)
    }

    pub(crate) fn kv_put(
        &mut self,
        key: &str,
        version: u64,
        expires_at: u64,
        json: &[u8],
        m: &mut Meta,
    ) -> Result<()> {
        let rec = encode_kv(version, expires_at, json);
        let stored = stored_key(key);
        // One write to the item's B-tree: the insert hands back the record it
        // replaces (a remove before it was a second leaf rewrite per set).
        let old = match self
            .kv
            .insert(stored.as_slice(), rec.as_slice())
            .ctx("writing a kv item")?
        {
            Some(g) => {
                let bytes = g.value();
                Some((cold::decode_kv(bytes)?.expires_at, bytes.len()))
            }
            None => None,
        };
        let second = |at: u64| (at != 0).then(|| at.div_ceil(1_000_000_000));
        let (was, will) = (old.and_then(|(at, _)| second(at)), second(expires_at));
        // An expiry row in the same second stays as it is.
        if was != will {
            if let Some(secs) = was {
                self.expiry
                    .remove((secs, cold::KIND_KV, stored.as_slice()))
                    .ctx("writing the expiry index")?;
            }
            if let Some(secs) = will {
                self.expiry
                    .insert((secs, cold::KIND_KV, stored.as_slice()), ())
                    .ctx("writing the expiry index")?;
            }
        }
        if let Some((_, len)) = old {
            m.kv_gone(key.len() + len);
        }
        m.kv_entries += 1;
        m.kv_bytes += (key.len() + rec.len()) as u64;
        Ok(())
    }

    /// Removes the record and its index rows; returns the old record.
    pub(crate) fn kv_delete(&mut self, key: &str, m: &mut Meta) -> Result<Option<KvRaw>> {
        let stored = stored_key(key);
        let old = match self
            .kv
            .remove(stored.as_slice())
            .ctx("deleting a kv item")?
        {
            Some(g) => {
                let bytes = g.value();
                let len = bytes.len();
                Some((cold::decode_kv(bytes)?, len))
            }
            None => None,
        };
        let Some((old, len)) = old else {
            return Ok(None);
        };
        if old.expires_at != 0 {
            let secs = old.expires_at.div_ceil(1_000_000_000);
            self.expiry
                .remove((secs, cold::KIND_KV, stored.as_slice()))
                .ctx("writing the expiry index")?;
        }
        m.kv_gone(key.len() + len);
        Ok(Some(old))
    }

    // --------------------------------------------------------------- cache

    /// The entry with its inline body, or without its body and with the body's
    /// location when the body is in a segment.
    pub(crate) fn cache_get(&self, hash: &Hash) -> Result<Option<(CacheEntry, Option<BodyLoc>)>> {
        match self.cache.get(hash).ctx("reading a cache entry")? {
            Some(g) => {
                let rec = decode_cache(*hash, g.value(), true)?;
                Ok(Some((rec.entry, rec.loc)))
            }
            None => Ok(None),
        }
    }

    /// Inserts or replaces an entry with all its index rows, and marks it used
    /// (most recently used end of the LRU index). A body over `INLINE_MAX` goes
    /// to a segment file, unless `stored` says where it already is (a
    /// revalidation or soft purge keeps the body it has).
    ///
    /// One lookup: the record insert returns the old record, whose index rows are
    /// then replaced (`put_index_rows`). A fill of a new hash writes 5 rows
    /// (record, url + stamp, host, expiry, lru) plus one per tag; a refill of the
    /// same URL writes the record, the url row, the lru rows and, when its
    /// deadline moved to another second, the expiry rows.
    pub(crate) fn cache_put(
        &mut self,
        e: &CacheEntry,
        stored: Option<BodyLoc>,
        m: &mut Meta,
    ) -> Result<()> {
        let loc = match stored {
            Some(l) => Some(l),
            None if e.body.len() > INLINE_MAX => Some(
                self.bodies
                    .append(&e.hash, &e.body)
                    .ctx("writing a cache body")?,
            ),
            None => None,
        };
        let rec = encode_cache(e, loc.as_ref());
        let h = &e.hash;
        let old = match self
            .cache
            .insert(h, rec.as_slice())
            .ctx("writing a cache entry")?
        {
            Some(g) => {
                let bytes = g.value();
                let old = decode_cache(*h, bytes, false)?;
                let size = old.stored_bytes(bytes.len());
                Some((old, size))
            }
            None => None,
        };
        let old_entry = match old {
            Some((old, size)) => {
                if let Some(l) = &old.loc {
                    self.seg_sub(l);
                }
                m.cache_entries = m.cache_entries.saturating_sub(1);
                m.cache_bytes = m.cache_bytes.saturating_sub(size);
                Some(old.entry)
            }
            None => None,
        };
        if let Some(l) = &loc {
            self.seg_add(l);
        }
        self.put_index_rows(old_entry.as_ref(), e, m)?;
        m.cache_entries += 1;
        m.cache_bytes += 16 + rec.len() as u64 + loc.map_or(0, |l| l.len);
        self.added.push(*h);
        Ok(())
    }

    /// Writes the index rows of `e` (a new LRU stamp included), replacing those
    /// of `old`, the record `e` replaced. Only rows that differ are written: a
    /// refill or revalidation of the same URL keeps its host and tag rows, and
    /// its expiry row when the deadline's second is the same; its url row gets
    /// the new stamp in place.
    fn put_index_rows(
        &mut self,
        old: Option<&CacheEntry>,
        e: &CacheEntry,
        m: &mut Meta,
    ) -> Result<()> {
        let h = &e.hash;
        let same_url = old.is_some_and(|o| o.url == e.url);
        let mut old_stamp = None;
        if let Some(o) = old.filter(|_| !same_url) {
            old_stamp = self
                .url
                .remove((o.url.as_str(), h))
                .ctx("writing the url index")?
                .map(|g| g.value());
        }
        m.lru_clock += 1;
        let replaced = self
            .url
            .insert((e.url.as_str(), h), m.lru_clock)
            .ctx("writing the url index")?
            .map(|g| g.value());
        if same_url {
            old_stamp = replaced;
        }
        if let Some(stamp) = old_stamp {
            self.lru.remove((stamp, h)).ctx("writing the lru index")?;
        }
        self.lru
            .insert((m.lru_clock, h), ())
            .ctx("writing the lru index")?;
        let same_host = same_url && old.is_some_and(|o| o.host == e.host);
        if !same_host {
            if let Some(o) = old {
                self.host
                    .remove((o.host.as_str(), o.url.as_str(), h))
                    .ctx("writing the host index")?;
            }
            self.host
                .insert((e.host.as_str(), e.url.as_str(), h), ())
                .ctx("writing the host index")?;
        }
        // Tag rows are keyed by (tag, url): with the url unchanged, only the
        // tags that came or went change rows.
        let kept = |tags: &[String], t: &String| same_url && tags.contains(t);
        if let Some(o) = old {
            for t in o.tags.iter().filter(|t| !kept(e.tags.as_slice(), t)) {
                self.tag
                    .remove((t.as_str(), o.url.as_str(), h))
                    .ctx("writing the tag index")?;
            }
        }
        let old_tags = old.map_or(&[][..], |o| o.tags.as_slice());
        for t in e.tags.iter().filter(|t| !kept(old_tags, t)) {
            self.tag
                .insert((t.as_str(), e.url.as_str(), h), ())
                .ctx("writing the tag index")?;
        }
        let expiry = secs_ceil(e.stale_until);
        let old_expiry = old.map(|o| secs_ceil(o.stale_until));
        if old_expiry != Some(expiry) {
            if let Some(secs) = old_expiry {
                self.expiry
                    .remove((secs, cold::KIND_CACHE, &h[..]))
                    .ctx("writing the expiry index")?;
            }
            self.expiry
                .insert((expiry, cold::KIND_CACHE, &h[..]), ())
                .ctx("writing the expiry index")?;
        }
        Ok(())
    }

    /// Compaction: moves the body of `hash` out of `from` to the active segment
    /// when the record still points there. Indexes, LRU stamp and counters stay
    /// as they are. `false` when the record is gone, points elsewhere, or its
    /// body does not read back whole (the entry is then left alone).
    pub(crate) fn cache_relocate(&mut self, hash: &Hash, from: &BodyLoc) -> Result<bool> {
        let rec = match self.cache.get(hash).ctx("reading a cache entry")? {
            Some(g) => decode_cache(*hash, g.value(), false)?,
            None => return Ok(false),
        };
        if rec.loc.as_ref() != Some(from) {
            return Ok(false);
        }
        let Some(body) = self.bodies.read(from).ctx("reading a cache body")? else {
            return Ok(false);
        };
        let to = self
            .bodies
            .append(hash, &body)
            .ctx("writing a cache body")?;
        let bytes = encode_cache(&rec.entry, Some(&to));
        self.cache
            .insert(hash, bytes.as_slice())
            .ctx("writing a cache entry")?;
        self.seg_sub(from);
        // A move frees nothing new for compaction to catch up with.
        self.freed -= from.span();
        self.seg_add(&to);
        Ok(true)
    }

    /// Removes an entry and all its index rows. `true` when it existed.
    pub(crate) fn cache_delete(&mut self, hash: &Hash, m: &mut Meta) -> Result<bool> {
        let old = match self.cache.remove(hash).ctx("deleting a cache entry")? {
            Some(g) => {
                let bytes = g.value();
                let old = decode_cache(*hash, bytes, false)?;
                let size = old.stored_bytes(bytes.len());
                Some((old, size))
            }
            None => None,
        };
        let Some((old, size)) = old else {
            return Ok(false);
        };
        self.drop_index_rows(&old.entry)?;
        if let Some(l) = &old.loc {
            self.seg_sub(l);
        }
        m.cache_entries = m.cache_entries.saturating_sub(1);
        m.cache_bytes = m.cache_bytes.saturating_sub(size);
        self.removed.push(*hash);
        Ok(true)
    }

    /// Of the hashes deleted in this transaction, those whose prefix no hash
    /// holds any more (as of now, after every write of the batch): the presence
    /// set may drop them once the transaction is committed.
    pub(crate) fn prefixes_gone(&mut self) -> Result<Vec<Hash>> {
        let mut gone = Vec::new();
        for h in std::mem::take(&mut self.removed) {
            let (lo, hi) = crate::presence::prefix_range(&h);
            let left = self
                .cache
                .range::<&Hash>(&lo..=&hi)
                .ctx("reading the cache table")?
                .next()
                .is_some();
            if !left {
                gone.push(h);
            }
        }
        Ok(gone)
    }

    /// Removes the index rows of a record already taken out of `cache`.
    fn drop_index_rows(&mut self, e: &CacheEntry) -> Result<()> {
        let hash = &e.hash;
        let stamp = self
            .url
            .remove((e.url.as_str(), hash))
            .ctx("writing the url index")?
            .map(|g| g.value());
        if let Some(stamp) = stamp {
            self.lru
                .remove((stamp, hash))
                .ctx("writing the lru index")?;
        }
        self.host
            .remove((e.host.as_str(), e.url.as_str(), hash))
            .ctx("writing the host index")?;
        for t in &e.tags {
            self.tag
                .remove((t.as_str(), e.url.as_str(), hash))
                .ctx("writing the tag index")?;
        }
        self.expiry
            .remove((secs_ceil(e.stale_until), cold::KIND_CACHE, &hash[..]))
            .ctx("writing the expiry index")?;
        Ok(())
    }

    /// Moves an existing entry to the most recently used end of the LRU index
    /// (a cold hit); nothing when the entry is gone.
    pub(crate) fn touch(&mut self, hash: &Hash, m: &mut Meta) -> Result<()> {
        let url = match self.cache.get(hash).ctx("reading a cache entry")? {
            Some(g) => cold::cache_url(g.value())?,
            None => return Ok(()),
        };
        let stamp = self
            .url
            .get((url.as_str(), hash))
            .ctx("reading the lru index")?
            .map(|g| g.value());
        if stamp.is_some_and(|s| !near_eviction(m.lru_clock, s, m.cache_entries)) {
            return Ok(());
        }
        m.lru_clock += 1;
        let old = self
            .url
            .insert((url.as_str(), hash), m.lru_clock)
            .ctx("writing the lru index")?
            .map(|g| g.value());
        if let Some(old) = old {
            self.lru.remove((old, hash)).ctx("writing the lru index")?;
        }
        self.lru
            .insert((m.lru_clock, hash), ())
            .ctx("writing the lru index")?;
        Ok(())
    }
}

/// Whether an entry last stamped `stamp` may be in the oldest quarter of the
/// LRU order, the part eviction takes from first. Only those are moved to
/// the front by a hit (as memcached's segmented LRU and Linux's inactive list
/// do): moving a recently stamped entry changes nothing eviction would see,
/// and each move rewrites three rows on random pages of three trees, about
/// as much writer work as the cold hit itself (`bench/PROFILE.md`). Fewer
/// than `entries * 3 / 4` stamps issued since means that fewer entries are
/// newer (every live entry holds one stamp; stamps of removed entries only
/// make the distance larger), so the entry is in the newest three quarters.
pub(crate) fn near_eviction(clock: u64, stamp: u64, entries: u64) -> bool {
    clock.saturating_sub(stamp) >= entries - entries / 4
}

/// Deadline in nanoseconds from a TTL.
pub(crate) fn deadline(now: std::time::SystemTime, ttl: std::time::Duration) -> u64 {
    to_nanos(now + ttl)
}
