//! A meta as it is stored (headers in a zstd frame of raw blocks) and as it
//! is kept decoded in memory for hits.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pingora_cache::CacheMeta;
use pingora_error::Result;
use pingora_http::ResponseHeader;

use aside_store::CacheEntry;

/// A meta's two blobs as stored. pingora keeps the response header as a zstd
/// frame, and decoding it (building Huffman tables for a few hundred bytes)
/// cost a cold hit about 11,000 instructions. Aside stores the same HTTP/1
/// header bytes as a zstd frame of raw (uncompressed) blocks: still what
/// `CacheMeta::deserialize` reads, decoded by a copy. Entries stored the
/// other way still read as before.
pub(crate) fn serialize_meta(meta: &CacheMeta) -> Result<(Vec<u8>, Vec<u8>)> {
    let internal = serialize_internal(meta)?;
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

/// The internal blob (times, variance) as `CacheMeta::serialize` writes it.
/// pingora serializes only both blobs at once, zstd-compressing the header
/// with its dictionary (about 40,000 instructions per fill) for Aside to throw
/// away. A plain meta (the common case, [`is_plain`]) is rebuilt around an
/// empty header instead, whose compression is nearly free; the others pay
/// pingora's way.
fn serialize_internal(meta: &CacheMeta) -> Result<Vec<u8>> {
    if !is_plain(meta) {
        return Ok(meta.serialize()?.0);
    }
    let empty = ResponseHeader::build(200, Some(0))?;
    let lean = CacheMeta::new(
        meta.fresh_until(),
        meta.created(),
        meta.stale_while_revalidate_sec(),
        meta.stale_if_error_sec(),
        empty,
    );
    Ok(lean.serialize()?.0)
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

/// The HTTP/1 bytes of a header blob written by [`serialize_meta`] (one raw
/// block), as a slice of it; `None` for any other frame (pingora's own
/// compressed ones, a header over one block).
fn raw_frame_content(frame: &[u8]) -> Option<&[u8]> {
    let rest = frame.strip_prefix(&0xFD2F_B528u32.to_le_bytes())?;
    let (&descriptor, rest) = rest.split_first()?;
    let (size, rest) = match descriptor {
        0x20 => (usize::from(*rest.first()?), rest.get(1..)?),
        0x60 => {
            let mid = u16::from_le_bytes([*rest.first()?, *rest.get(1)?]);
            (usize::from(mid) + 256, rest.get(2..)?)
        }
        0xA0 => {
            let n = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
            (usize::try_from(n).ok()?, rest.get(4..)?)
        }
        _ => return None,
    };
    let block = rest.get(..3)?;
    let header = u32::from_le_bytes([block[0], block[1], block[2], 0]);
    // Last_Block set, Block_Type 0 (raw), the whole content in this block.
    let content = rest.get(3..)?;
    (header & 0b111 == 1 && (header >> 3) as usize == size && content.len() == size)
        .then_some(content)
}

/// A header blob pingora decodes at the least cost, for the tests to read an
/// internal blob back through `CacheMeta::deserialize`.
#[cfg(test)]
fn minimal_header() -> &'static [u8] {
    static MINIMAL: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    MINIMAL.get_or_init(|| raw_zstd_frame(b"HTTP/1.1 200 OK\r\n\r\n"))
}

/// Whether `CacheMeta::new` rebuilds `meta` exactly: never revalidated
/// (updated == provenance == created), no Vary variance, no epoch override.
fn is_plain(meta: &CacheMeta) -> bool {
    let created = meta.created();
    meta.updated() == created
        && meta.provenance() == created
        && meta.variance().is_none()
        && meta.epoch_override().is_none()
}

/// The internal blob of pingora-cache's `InternalMetaV2` as `rmp_serde`
/// writes it (a struct as an array, `SystemTime` as `[secs, nanos]`), read
/// without building a `CacheMeta`: `CacheMeta::deserialize` also needs a
/// header blob, which it decompresses and parses into a `ResponseHeader`
/// (about 3,700 instructions a light hit, for times only). The test
/// `plain_times_read_as_pingora_reads_them` holds this mirror to pingora's.
#[derive(serde::Deserialize)]
struct PlainTimes {
    version: u8,
    fresh_until: SystemTime,
    created: SystemTime,
    updated: SystemTime,
    stale_while_revalidate_sec: u32,
    #[serde(rename = "stale_if_error_sec")]
    _stale_if_error_sec: u32,
    #[serde(default)]
    variance: Option<[u8; 16]>,
    #[serde(default)]
    epoch_override: Option<SystemTime>,
    #[serde(default)]
    provenance: Option<SystemTime>,
}

impl PlainTimes {
    /// The times of a version 2 blob of a plain meta ([`is_plain`]); `None`
    /// for any other version or shape, or a blob that does not decode.
    fn read(internal: &[u8]) -> Option<PlainTimes> {
        // A fixarray header, then the version as a positive fixint.
        if internal.len() < 2 || internal[0] & 0xf0 != 0x90 || internal[1] != 2 {
            return None;
        }
        let t: PlainTimes = rmp_serde::from_slice(internal).ok()?;
        let plain = t.version == 2
            && t.updated == t.created
            && t.provenance.is_none_or(|p| p == t.created)
            && t.variance.is_none()
            && t.epoch_override.is_none();
        plain.then_some(t)
    }
}

/// An entry read for one fresh hit without decoding its header into pingora's
/// types: the internal blob's times ([`PlainTimes`]) and the head straight
/// from the stored bytes ([`WireHit`](crate::hit_template::WireHit)). Used
/// for disk-tier hits and for hot-tier hits once the decoded cache is full
/// (`AsideStorage::decode_now`). Not cached: such a decoded meta would mostly
/// be evicted unused; an entry hit often is decoded and cached the regular way.
pub(crate) struct Light {
    created: SystemTime,
    fresh_until: SystemTime,
    swr: u32,
    pub(crate) wire: crate::hit_template::WireHit,
}

impl Light {
    /// `None` when the entry is not that simple shape (see `WireHit::parse`,
    /// [`is_plain`]) or its blobs are not in Aside's own form.
    pub(super) fn of(entry: &CacheEntry) -> Option<Light> {
        let wire = crate::hit_template::WireHit::parse(raw_frame_content(&entry.meta_header)?)?;
        let times = PlainTimes::read(&entry.meta_internal)?;
        Some(Light {
            created: times.created,
            fresh_until: times.fresh_until,
            swr: times.stale_while_revalidate_sec,
            wire,
        })
    }

    /// As [`Decoded::stored`].
    pub(crate) fn stored(&self, entry: &CacheEntry) -> crate::decision::Stored {
        stored(
            self.created,
            self.fresh_until,
            self.swr,
            self.wire.status,
            entry,
        )
    }
}

/// The stored response's times and status, with `fresh_until` as the store
/// has it (a soft purge lowers it).
fn stored(
    created: SystemTime,
    fresh_until: SystemTime,
    swr: u32,
    status: http::StatusCode,
    entry: &CacheEntry,
) -> crate::decision::Stored {
    crate::decision::Stored {
        created,
        updated: created,
        fresh_until: fresh_until.min(entry.fresh_until),
        swr: Duration::from_secs(u64::from(swr)),
        status: status.as_u16(),
    }
}

/// What `CacheMeta::new` needs to rebuild a meta without decoding its blobs.
pub(crate) struct Decoded {
    /// The blobs it came from: used only while the entry still holds these
    /// (an update or refill changes them).
    pub(super) internal: Bytes,
    pub(super) header: Bytes,
    fresh_until: SystemTime,
    created: SystemTime,
    swr: u32,
    sie: u32,
    response: ResponseHeader,
    /// What a fresh hit answers with, built once by the proxy's fast path.
    hit_template: std::sync::OnceLock<crate::hit_template::HitTemplate>,
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
    pub(super) fn of(meta: &CacheMeta, internal: &Bytes, header: &Bytes) -> Option<Decoded> {
        is_plain(meta).then(|| Decoded {
            internal: internal.clone(),
            header: header.clone(),
            fresh_until: meta.fresh_until(),
            created: meta.created(),
            swr: meta.stale_while_revalidate_sec(),
            sie: meta.stale_if_error_sec(),
            response: meta.response_header_copy(),
            hit_template: std::sync::OnceLock::new(),
        })
    }

    /// The stored response's times and status, with `fresh_until` as the
    /// store has it (a soft purge lowers it).
    pub(crate) fn stored(&self, entry: &CacheEntry) -> crate::decision::Stored {
        stored(
            self.created,
            self.fresh_until,
            self.swr,
            self.response.status,
            entry,
        )
    }

    /// The stored response header.
    pub(crate) fn response(&self) -> &ResponseHeader {
        &self.response
    }

    /// The fresh-hit header template, built by `build` from the stored
    /// header the first time it is asked for.
    pub(crate) fn hit_template(
        &self,
        build: impl FnOnce(&ResponseHeader) -> Result<crate::hit_template::HitTemplate>,
    ) -> Result<&crate::hit_template::HitTemplate> {
        if let Some(t) = self.hit_template.get() {
            return Ok(t);
        }
        let built = build(&self.response)?;
        Ok(self.hit_template.get_or_init(|| built))
    }

    pub(super) fn weight(&self) -> u32 {
        // The decoded header and the hit template (a header and its wire
        // form), a few times the encoded size each.
        u32::try_from(self.header.len() * 12 + 768).unwrap_or(u32::MAX)
    }

    pub(super) fn rebuild(&self) -> CacheMeta {
        CacheMeta::new(
            self.fresh_until,
            self.created,
            self.swr,
            self.sie,
            self.response.clone(),
        )
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
    fn the_internal_blob_is_pingoras_without_compressing_the_header() {
        let plain = meta();
        let mut revalidated = meta();
        revalidated.update_freshness(SystemTime::now() + Duration::from_secs(90), 3, 4);
        let mut varied = meta();
        varied.set_variance([7; 16]);
        for (name, m) in [
            ("plain", plain),
            ("revalidated", revalidated),
            ("varied", varied),
        ] {
            let ours = serialize_internal(&m).unwrap();
            assert_eq!(ours, m.serialize().unwrap().0, "{name}");
            let back = CacheMeta::deserialize(&ours, minimal_header()).unwrap();
            assert_eq!(back.fresh_until(), m.fresh_until(), "{name}");
            assert_eq!(back.updated(), m.updated(), "{name}");
            assert_eq!(back.variance(), m.variance(), "{name}");
            assert_eq!(back.stale_if_error_sec(), m.stale_if_error_sec(), "{name}");
        }
    }

    #[test]
    fn plain_times_read_as_pingora_reads_them() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        for (ttl, swr, sie) in [(0u64, 0u32, 0u32), (60, 5, 7), (86_400 * 400, u32::MAX, 1)] {
            let mut resp = ResponseHeader::build(200, None).unwrap();
            resp.append_header("Date", "Tue, 14 Nov 2023 22:13:20 GMT")
                .unwrap();
            let m = CacheMeta::new(base + Duration::from_secs(ttl), base, swr, sie, resp);
            let internal = m.serialize().unwrap().0;
            let t = PlainTimes::read(&internal).expect("a plain meta reads");
            assert_eq!(t.created, m.created());
            assert_eq!(t.fresh_until, m.fresh_until());
            assert_eq!(t.stale_while_revalidate_sec, m.stale_while_revalidate_sec());
            let back = CacheMeta::deserialize(&internal, minimal_header()).unwrap();
            assert!(is_plain(&back));
        }
        // Revalidated, varied, epoch-overridden: not plain, as `is_plain` says.
        let mut revalidated = meta();
        revalidated.update_freshness(SystemTime::now() + Duration::from_secs(60), 0, 0);
        let mut varied = meta();
        varied.set_variance([7; 16]);
        let mut epoch = meta();
        epoch.set_epoch_override(SystemTime::now());
        for (name, m) in [
            ("revalidated", revalidated),
            ("varied", varied),
            ("epoch", epoch),
        ] {
            assert!(!is_plain(&m), "{name}");
            let internal = m.serialize().unwrap().0;
            assert!(PlainTimes::read(&internal).is_none(), "{name}");
        }
        // Garbage and other versions are not read.
        assert!(PlainTimes::read(b"").is_none());
        assert!(PlainTimes::read(&[0x94, 1, 2, 3, 4]).is_none());
        assert!(PlainTimes::read(&[0x99, 2, 0xc1]).is_none());
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

    /// `(status line, sorted lowercase fields)` of a serialized head.
    fn head_parts(head: &[u8]) -> (String, Vec<(String, String)>) {
        let text = std::str::from_utf8(head).unwrap();
        let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
        let status = lines.next().unwrap().to_owned();
        let mut fields: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_ascii_lowercase(), v.to_owned())
            })
            .collect();
        fields.sort();
        (status, fields)
    }

    fn entry_of(meta: &CacheMeta) -> CacheEntry {
        let (internal, header) = serialize_meta(meta).unwrap();
        CacheEntry {
            hash: [3; 16],
            url: "http://l.local/".into(),
            host: "l.local".into(),
            tags: Vec::new(),
            status: meta.response_header().status.as_u16(),
            meta_internal: Bytes::from(internal),
            meta_header: Bytes::from(header),
            body: Bytes::new(),
            stored_at: meta.created(),
            fresh_until: meta.fresh_until(),
            stale_until: meta.fresh_until(),
            soft_purged: false,
        }
    }

    /// Reads `entry` both ways: the light read and the template of the
    /// decoded meta (its serialized head, from the second use).
    fn both_ways(
        entry: &CacheEntry,
    ) -> (
        Option<Light>,
        Option<(crate::decision::Stored, Bytes, ResponseHeader)>,
    ) {
        let light = Light::of(entry);
        let meta = CacheMeta::deserialize(&entry.meta_internal, &entry.meta_header).unwrap();
        let decoded = Decoded::of(&meta, &entry.meta_internal, &entry.meta_header);
        let regular = decoded.and_then(|d| {
            let t = d
                .hit_template(crate::hit_template::HitTemplate::new)
                .unwrap();
            let _ = t.head();
            let head = t.head()?.clone();
            Some((d.stored(entry), head, t.framing.clone()))
        });
        (light, regular)
    }

    #[test]
    fn a_light_read_answers_as_the_hit_template() {
        let shapes: Vec<(u16, Vec<(&str, String)>)> = vec![
            (200, vec![]),
            (
                200,
                vec![("Age", "17, 3".into()), ("Accept-Ranges", "none".into())],
            ),
            (
                200,
                vec![
                    ("X-Cache", "MISS".into()),
                    ("cache-status", "up; hit".into()),
                ],
            ),
            (
                200,
                vec![
                    ("Keep-Alive", "timeout=5".into()),
                    ("Proxy-Connection", "x".into()),
                ],
            ),
            (
                200,
                vec![
                    ("Set-Cookie", "a=1".into()),
                    ("X-Custom", "v".into()),
                    ("set-cookie", "b=2".into()),
                ],
            ),
            (203, vec![("Accept-Ranges", "none".into())]),
            (404, vec![("Content-Type", "text/html".into())]),
            (599, vec![]),
            (200, vec![("X-Pad", "p".repeat(70_000))]),
        ];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for (status, extra) in shapes {
            let mut resp = ResponseHeader::build(status, None).unwrap();
            resp.append_header("Date", "Tue, 14 Nov 2023 22:13:20 GMT")
                .unwrap();
            resp.append_header("Content-Length", "16").unwrap();
            resp.append_header("Cache-Control", "max-age=60").unwrap();
            for (n, v) in &extra {
                resp.append_header(n.to_string(), v.as_str()).unwrap();
            }
            let meta = CacheMeta::new(now + Duration::from_secs(60), now, 5, 7, resp.clone());
            let entry = entry_of(&meta);
            let (light, regular) = both_ways(&entry);
            let light = light.unwrap_or_else(|| panic!("{status} {extra:?} read light"));
            let (stored, head, framing) = regular.unwrap();
            assert_eq!(
                head_parts(&light.wire.head),
                head_parts(&head),
                "{status} {extra:?}"
            );
            let s = light.stored(&entry);
            assert_eq!(
                (s.created, s.updated, s.fresh_until, s.swr, s.status),
                (
                    stored.created,
                    stored.updated,
                    stored.fresh_until,
                    stored.swr,
                    stored.status
                )
            );
            assert_eq!(light.wire.origin_age, crate::fields::origin_age(&resp));
            assert_eq!(light.wire.framing.status, framing.status);
            assert_eq!(
                light.wire.framing.headers.get(http::header::CONTENT_LENGTH),
                framing.headers.get(http::header::CONTENT_LENGTH)
            );
        }
    }

    #[test]
    fn uncommon_shapes_are_not_read_light() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let build = |status: u16, fields: &[(&str, &str)]| {
            let mut resp = ResponseHeader::build(status, None).unwrap();
            for (n, v) in fields {
                resp.append_header(n.to_string(), *v).unwrap();
            }
            CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, resp)
        };
        let date = ("Date", "Tue, 14 Nov 2023 22:13:20 GMT");
        let len = ("Content-Length", "16");
        for (status, fields) in [
            (200, vec![len]),                                 // no Date
            (200, vec![date]),                                // no length
            (200, vec![date, len, ("Content-Length", "16")]), // two lengths
            (200, vec![date, ("Content-Length", "x")]),       // bad length
            (200, vec![date, len, ("Vary", "accept")]),
            (200, vec![date, len, ("Connection", "x-hop")]),
            (200, vec![date, ("Transfer-Encoding", "chunked")]),
            (204, vec![date, len]),
            (304, vec![date, len]),
        ] {
            let entry = entry_of(&build(status, &fields));
            assert!(Light::of(&entry).is_none(), "{status} {fields:?}");
        }
        // A revalidated or varied meta, and pingora's own compressed blob.
        let mut revalidated = build(200, &[date, len]);
        revalidated.update_freshness(now + Duration::from_secs(90), 0, 0);
        assert!(Light::of(&entry_of(&revalidated)).is_none());
        let mut varied = build(200, &[date, len]);
        varied.set_variance([7; 16]);
        assert!(Light::of(&entry_of(&varied)).is_none());
        // (A compressible header: for a short one zstd may emit a raw block,
        // which reads light and rightly so.)
        let pad = "a".repeat(500);
        let plain = build(200, &[date, len, ("X-Pad", pad.as_str())]);
        let mut compressed = entry_of(&plain);
        compressed.meta_header = Bytes::from(plain.serialize().unwrap().1);
        assert!(Light::of(&compressed).is_none());
        assert!(Light::of(&entry_of(&plain)).is_some());
    }
}
