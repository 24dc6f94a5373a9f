//! The cold tier's on-disk layout: redb tables, the record codec, and the read
//! queries shared by readers (the reader pool) and the writer thread.
//!
//! Tables (all in one redb file):
//! - `kv_parts`  stored key -> [version u64][expires_at nanos u64, 0 = never][JSON];
//!   the stored key is the key with `/` as 0x00 (`key::stored_key`), so that the
//!   table's byte order is the part-by-part order listings promise
//! - `cache`     hash -> cache record (see [`encode_cache`])
//! - `cache_url` (url, hash) -> access stamp  ordered listing / purge by url or
//!   url prefix; the stamp locates the entry's `lru` row (no separate table, so a
//!   fill writes one B-tree fewer)
//! - `cache_host`(host, url, hash) -> () listing / purge by host, ordered by url
//! - `cache_tag` (tag, url, hash) -> ()  listing / purge by tag, ordered by url
//! - `expiry`    (deadline secs rounded up, kind, stored key or hash) -> ()  GC
//!   without full scans
//! - `lru`       (access stamp, hash) -> ()  cold budget eviction order
//! - `meta`      name -> u64             version counter and byte/entry counters,
//!   so that opening never scans the file.
//! - `segments`  segment id -> live bytes  the body segment files records use
//!   (see `bodies`), updated with the records.

use std::ops::Bound;
use std::time::SystemTime;

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition};

use crate::bodies::BodyLoc;
use crate::clock::{from_nanos, to_nanos};
use crate::key::{key_from_stored, stored_key, stored_matches_prefix, stored_prefix_end};
use crate::{CacheEntry, Error, JsonText, KvItem, Result, Version};

pub(crate) use crate::types::Hash;

pub(crate) const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv_parts");
pub(crate) const CACHE: TableDefinition<&Hash, &[u8]> = TableDefinition::new("cache");
pub(crate) const CACHE_URL: TableDefinition<(&str, &Hash), u64> = TableDefinition::new("cache_url");
pub(crate) const CACHE_HOST: TableDefinition<(&str, &str, &Hash), ()> =
    TableDefinition::new("cache_host");
pub(crate) const CACHE_TAG: TableDefinition<(&str, &str, &Hash), ()> =
    TableDefinition::new("cache_tag");
pub(crate) const EXPIRY: TableDefinition<(u64, u8, &[u8]), ()> = TableDefinition::new("expiry");
pub(crate) const LRU: TableDefinition<(u64, &Hash), ()> = TableDefinition::new("lru");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const SEGMENTS: TableDefinition<u32, u64> = TableDefinition::new("segments");

/// `kind` column of the expiry index.
pub(crate) const KIND_KV: u8 = 0;
pub(crate) const KIND_CACHE: u8 = 1;

/// Version of the file layout, kept in the meta table (`META_FORMAT`). Bumped on
/// every incompatible change; a file with another version is refused at open.
/// 2: `cache_url` rows carry the LRU stamp (no `access` table).
/// 3: KV keys stored with `/` as 0x00 in `kv_parts` (part-by-part order).
/// 4: bodies over `bodies::INLINE_MAX` in segment files (a record may hold a
///    body location instead of the body) and the `segments` table. A version 3
///    file is upgraded at open: its records are valid version 4 records.
pub(crate) const FORMAT_VERSION: u64 = 4;

/// The oldest layout this build opens (and upgrades).
pub(crate) const FORMAT_UPGRADABLE_FROM: u64 = 3;

/// Meta table keys.
pub(crate) const META_FORMAT: &str = "format_version";
pub(crate) const META_NEXT_VERSION: &str = "next_version";
pub(crate) const META_LRU_CLOCK: &str = "lru_clock";
pub(crate) const META_KV_ENTRIES: &str = "kv_entries";
pub(crate) const META_KV_BYTES: &str = "kv_bytes";
pub(crate) const META_CACHE_ENTRIES: &str = "cache_entries";
pub(crate) const META_CACHE_BYTES: &str = "cache_bytes";

/// Adds context to redb errors.
pub(crate) trait Ctx<T> {
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Ctx<T> for std::result::Result<T, E> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|e| Error::io(context, e))
    }
}

/// A KV record as stored (JSON still serialized).
#[derive(Clone, Debug)]
pub(crate) struct KvRaw {
    pub(crate) version: u64,
    /// Nanoseconds since the epoch; 0 = never expires.
    pub(crate) expires_at: u64,
    pub(crate) json: Vec<u8>,
}

impl KvRaw {
    pub(crate) fn is_live(&self, now_nanos: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now_nanos
    }

    pub(crate) fn expires_at(&self) -> Option<SystemTime> {
        (self.expires_at != 0).then(|| from_nanos(self.expires_at))
    }

    pub(crate) fn version(&self) -> Version {
        Version::from_u64(self.version)
    }
}

pub(crate) fn item_from_raw(key: String, raw: KvRaw) -> Result<KvItem> {
    let value = JsonText::from_stored(&raw.json).map_err(|e| Error::Corrupt {
        what: format!("kv value of {key:?}: {e}"),
    })?;
    Ok(KvItem {
        key,
        value,
        version: raw.version(),
        expires_at: raw.expires_at(),
    })
}

pub(crate) fn encode_kv(version: u64, expires_at: u64, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + json.len());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&expires_at.to_le_bytes());
    out.extend_from_slice(json);
    out
}

/// Only the header: enough to decide liveness without copying the value.
pub(crate) fn kv_header(bytes: &[u8]) -> Result<(u64, u64)> {
    let mut r = Reader::new(bytes, "kv");
    Ok((r.u64()?, r.u64()?))
}

pub(crate) fn decode_kv(bytes: &[u8]) -> Result<KvRaw> {
    let (version, expires_at) = kv_header(bytes)?;
    Ok(KvRaw {
        version,
        expires_at,
        json: bytes[16..].to_vec(),
    })
}

/// Cache record layout: stored_at, fresh_until, stale_until (u64 nanos), status u16,
/// soft_purged u8, then length-prefixed url, host, tags, meta_internal, meta_header,
/// then the body: length-prefixed inline, or [`EXTERNAL`] followed by its
/// location (segment u32, offset u64, length u64, CRC-32 u32) when `loc` is given.
pub(crate) fn encode_cache(e: &CacheEntry, loc: Option<&BodyLoc>) -> Vec<u8> {
    // An external body: the marker and the location (8 + 4 + 8 + 8 + 4 bytes).
    let body_len = if loc.is_some() { 32 } else { e.body.len() };
    let len = 64
        + e.url.len()
        + e.host.len()
        + e.tags.iter().map(|t| t.len() + 4).sum::<usize>()
        + e.meta_internal.len()
        + e.meta_header.len()
        + body_len;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&to_nanos(e.stored_at).to_le_bytes());
    out.extend_from_slice(&to_nanos(e.fresh_until).to_le_bytes());
    out.extend_from_slice(&to_nanos(e.stale_until).to_le_bytes());
    out.extend_from_slice(&e.status.to_le_bytes());
    out.push(u8::from(e.soft_purged));
    put_bytes(&mut out, e.url.as_bytes());
    put_bytes(&mut out, e.host.as_bytes());
    out.extend_from_slice(&(e.tags.len() as u64).to_le_bytes());
    for t in &e.tags {
        put_bytes(&mut out, t.as_bytes());
    }
    put_bytes(&mut out, &e.meta_internal);
    put_bytes(&mut out, &e.meta_header);
    match loc {
        None => put_bytes(&mut out, &e.body),
        Some(l) => {
            out.extend_from_slice(&EXTERNAL.to_le_bytes());
            out.extend_from_slice(&l.seg.to_le_bytes());
            out.extend_from_slice(&l.off.to_le_bytes());
            out.extend_from_slice(&l.len.to_le_bytes());
            out.extend_from_slice(&l.crc.to_le_bytes());
        }
    }
    out
}

/// In a record's body-length field: the body is in a segment file.
const EXTERNAL: u64 = u64::MAX;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

/// A decoded cache record.
pub(crate) struct Record {
    /// With its body when the body is inline and was asked for; empty otherwise.
    pub(crate) entry: CacheEntry,
    /// The body's length, wherever it is.
    pub(crate) body_len: u64,
    /// Where the body is when it is not inline.
    pub(crate) loc: Option<BodyLoc>,
}

impl Record {
    /// Bytes the entry counts against the cold budget: hash, record and body
    /// (an external body is outside the record).
    pub(crate) fn stored_bytes(&self, record_len: usize) -> u64 {
        16 + record_len as u64 + self.loc.map_or(0, |l| l.len)
    }
}

/// `with_body = false` skips copying an inline body (listing). An external
/// body is never read here (see `bodies`).
pub(crate) fn decode_cache(hash: Hash, bytes: &[u8], with_body: bool) -> Result<Record> {
    let mut r = Reader::new(bytes, "cache");
    let stored_at = from_nanos(r.u64()?);
    let fresh_until = from_nanos(r.u64()?);
    let stale_until = from_nanos(r.u64()?);
    let status = r.u16()?;
    let soft_purged = r.u8()? != 0;
    let url = r.string()?;
    let host = r.string()?;
    let ntags = r.u64()?;
    let mut tags = Vec::new();
    for _ in 0..ntags {
        tags.push(r.string()?);
    }
    let meta_internal = Bytes::copy_from_slice(r.bytes()?);
    let meta_header = Bytes::copy_from_slice(r.bytes()?);
    let (body, body_len, loc) = if r.peek_u64()? == EXTERNAL {
        r.u64()?;
        let seg = r.u32()?;
        let off = r.u64()?;
        let len = r.u64()?;
        let crc = r.u32()?;
        let loc = BodyLoc { seg, off, len, crc };
        (Bytes::new(), len, Some(loc))
    } else {
        let raw = r.bytes()?;
        let body = if with_body {
            Bytes::copy_from_slice(raw)
        } else {
            Bytes::new()
        };
        (body, raw.len() as u64, None)
    };
    let entry = CacheEntry {
        hash,
        url,
        host,
        tags,
        status,
        meta_internal,
        meta_header,
        body,
        stored_at,
        fresh_until,
        stale_until,
        soft_purged,
    };
    Ok(Record {
        entry,
        body_len,
        loc,
    })
}

/// Only the url of a cache record (to find its index rows).
pub(crate) fn cache_url(bytes: &[u8]) -> Result<String> {
    let mut r = Reader::new(bytes, "cache");
    r.take(8 * 3 + 2 + 1)?;
    r.string()
}

/// Only the deadline that decides liveness of a cache record.
pub(crate) fn cache_stale_until(bytes: &[u8]) -> Result<u64> {
    let mut r = Reader::new(bytes, "cache");
    r.u64()?;
    r.u64()?;
    r.u64()
}

/// A bounds-checked cursor over a record: a corrupt record is an error, never a panic.
#[derive(Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Error::Corrupt {
                what: format!("{} record truncated", self.what),
            });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn peek_u64(&self) -> Result<u64> {
        let mut ahead = *self;
        ahead.u64()
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.u64()?).map_err(|_| Error::Corrupt {
            what: format!("{} record length", self.what),
        })?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String> {
        let what = self.what;
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::Corrupt {
            what: format!("{what} record text"),
        })
    }
}

// ---------------------------------------------------------------- KV queries

pub(crate) fn kv_get(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &str,
) -> Result<Option<KvRaw>> {
    match table
        .get(stored_key(key).as_slice())
        .ctx("reading a kv item")?
    {
        Some(g) => Ok(Some(decode_kv(g.value())?)),
        None => Ok(None),
    }
}

/// A resolved listing request (see [`crate::ListQuery`]).
pub(crate) struct KvListPlan {
    pub(crate) prefix: Option<String>,
    pub(crate) start: Option<String>,
    pub(crate) end: Option<String>,
    pub(crate) after: Option<String>,
    pub(crate) limit: usize,
    pub(crate) reverse: bool,
}

pub(crate) struct KvListed {
    pub(crate) items: Vec<(String, KvRaw)>,
    pub(crate) total: u64,
    pub(crate) more: bool,
}

/// One row of a `kv_parts` range.
type KvRow<'a> = std::result::Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

/// Lists in stored-key order, i.e. keys compared part by part. Every bound
/// (prefix, start, end, cursor) is turned into the stored form first, so all
/// comparisons below are plain byte comparisons of stored forms.
pub(crate) fn kv_list(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    plan: &KvListPlan,
    now_nanos: u64,
) -> Result<KvListed> {
    let prefix = plan.prefix.as_deref().map(stored_key);
    // The window [lo, hi) from prefix, start and end, before the cursor.
    let mut lo: Option<Vec<u8>> = prefix.clone();
    let mut hi: Option<Vec<u8>> = prefix.as_deref().map(stored_prefix_end);
    if let Some(s) = plan.start.as_deref().map(stored_key) {
        if lo.as_ref().is_none_or(|l| &s > l) {
            lo = Some(s);
        }
    }
    if let Some(e) = plan.end.as_deref().map(stored_key) {
        if hi.as_ref().is_none_or(|h| &e < h) {
            hi = Some(e);
        }
    }
    if let (Some(l), Some(h)) = (&lo, &hi) {
        if l >= h {
            return Ok(KvListed {
                items: Vec::new(),
                total: 0,
                more: false,
            });
        }
    }
    let matches = |k: &[u8], v: &[u8]| -> Result<bool> {
        if let Some(p) = &prefix {
            if !stored_matches_prefix(k, p) {
                return Ok(false);
            }
        }
        let (_, exp) = kv_header(v)?;
        Ok(exp == 0 || exp > now_nanos)
    };
    let lo_b = match &lo {
        Some(l) => Bound::Included(l.as_slice()),
        None => Bound::Unbounded,
    };
    let hi_b = match &hi {
        Some(h) => Bound::Excluded(h.as_slice()),
        None => Bound::Unbounded,
    };
    let mut total = 0u64;
    for row in table.range::<&[u8]>((lo_b, hi_b)).ctx("listing kv items")? {
        let (k, v) = row.ctx("listing kv items")?;
        if matches(k.value(), v.value())? {
            total += 1;
        }
    }

    // The page: the window narrowed by the cursor (the last key already returned).
    let after = plan.after.as_deref().map(stored_key);
    let (mut plo, mut phi) = (lo_b, hi_b);
    if let Some(after) = after.as_deref() {
        if plan.reverse {
            if hi.as_deref().is_none_or(|h| after < h) {
                phi = Bound::Excluded(after);
            }
        } else if lo.as_deref().is_none_or(|l| after >= l) {
            plo = Bound::Excluded(after);
        }
    }
    let empty = match (plo, phi) {
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    };
    let mut items = Vec::new();
    let mut more = false;
    if !empty {
        let range = table.range::<&[u8]>((plo, phi)).ctx("listing kv items")?;
        let mut visit = |row: KvRow<'_>| -> Result<bool> {
            let (k, v) = row.ctx("listing kv items")?;
            if !matches(k.value(), v.value())? {
                return Ok(true);
            }
            if items.len() == plan.limit {
                more = true;
                return Ok(false);
            }
            let key = key_from_stored(k.value()).ok_or_else(|| Error::Corrupt {
                what: "kv key (not UTF-8)".into(),
            })?;
            items.push((key, decode_kv(v.value())?));
            Ok(true)
        };
        if plan.reverse {
            for row in range.rev() {
                if !visit(row)? {
                    break;
                }
            }
        } else {
            for row in range {
                if !visit(row)? {
                    break;
                }
            }
        }
    }
    Ok(KvListed { items, total, more })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn cache_record_round_trip() {
        let e = CacheEntry {
            hash: [7; 16],
            url: "http://a/x".into(),
            host: "a".into(),
            tags: vec!["t1".into(), "t2".into()],
            status: 200,
            meta_internal: Bytes::from_static(b"mi"),
            meta_header: Bytes::from_static(b"mh"),
            body: Bytes::from_static(b"body"),
            stored_at: UNIX_EPOCH + Duration::from_secs(10),
            fresh_until: UNIX_EPOCH + Duration::from_secs(20),
            stale_until: UNIX_EPOCH + Duration::from_secs(30),
            soft_purged: true,
        };
        let bytes = encode_cache(&e, None);
        let rec = decode_cache(e.hash, &bytes, true).unwrap();
        let (d, size) = (rec.entry, rec.body_len);
        assert_eq!(size, 4);
        assert_eq!(rec.loc, None);
        assert_eq!(d.url, e.url);
        assert_eq!(d.tags, e.tags);
        assert_eq!(d.body, e.body);
        assert_eq!(d.stale_until, e.stale_until);
        assert!(d.soft_purged);
        assert_eq!(cache_stale_until(&bytes).unwrap(), to_nanos(e.stale_until));
        // Every truncation is an error, never a panic.
        for n in 0..bytes.len() {
            assert!(decode_cache(e.hash, &bytes[..n], true).is_err());
        }
        // A body in a segment: the record holds its location instead.
        let loc = BodyLoc {
            seg: 3,
            off: 32,
            len: 70_000,
            crc: 0xdead_beef,
        };
        let bytes = encode_cache(&e, Some(&loc));
        let rec = decode_cache(e.hash, &bytes, true).unwrap();
        assert_eq!((rec.loc, rec.body_len), (Some(loc), 70_000));
        assert!(rec.entry.body.is_empty());
        assert_eq!(rec.entry.url, e.url);
        assert_eq!(
            rec.stored_bytes(bytes.len()),
            16 + bytes.len() as u64 + 70_000
        );
        for n in 0..bytes.len() {
            assert!(decode_cache(e.hash, &bytes[..n], true).is_err());
        }
    }

    #[test]
    fn kv_record_round_trip() {
        let b = encode_kv(5, 9, b"\"x\"");
        let r = decode_kv(&b).unwrap();
        assert_eq!(
            (r.version, r.expires_at, r.json.as_slice()),
            (5, 9, &b"\"x\""[..])
        );
        assert!(decode_kv(&b[..7]).is_err());
    }
}
