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
}
