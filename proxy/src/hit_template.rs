//! The template of a fresh hit (issue 17): a stored response's header with
//! the fields every hit adds, and its HTTP/1 serialization. Built once per
//! decoded entry and kept with it by `cache_storage`; used by the fast path
//! in `proxy/fast_hit.rs`.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use http::header;
use pingora_error::Result;
use pingora_http::ResponseHeader;

use crate::cache_status::{CacheStatus, CACHE_STATUS, X_CACHE};
use crate::fields::strip_connection_fields;

/// What every fresh hit of one stored response starts from, built once per
/// decoded entry.
pub(crate) struct HitTemplate {
    /// pingora's `cache_hit_header` of the stored header (`Age`, HTTP/1.1,
    /// chunked without a length) and its `range_header_filter` for a request
    /// without `Range` (`Accept-Ranges`), then what `response_filter` adds to a hit,
    /// with placeholder values for the two fields that change per request
    /// (`Age`, `Cache-Status`).
    pub(crate) header: ResponseHeader,
    /// The HTTP/1 status line and every field of `header` but those two,
    /// serialized as pingora's writer would; each hit appends `Age` and
    /// `Cache-Status` (field order carries no meaning between different
    /// names, RFC 9110 §5.3). `None` without a stored `Date`: pingora's writer
    /// adds a current one then. Serialized at the template's second use, so
    /// that an entry hit once (a cold-tier hit whose decoded meta is soon
    /// evicted) does not pay for it.
    head: OnceLock<Option<Bytes>>,
    /// Hits answered from this template so far (saturating at 2).
    uses: AtomicU8,
    /// Status and framing fields of `header`: what the session keeps of the
    /// response it wrote.
    pub(crate) framing: ResponseHeader,
}

impl HitTemplate {
    pub(crate) fn new(stored: &ResponseHeader) -> Result<HitTemplate> {
        let mut header = stored.clone();
        header.insert_header(header::AGE, http::HeaderValue::from_static("0"))?;
        header.set_version(http::Version::HTTP_11);
        let status = header.status;
        if !matches!(status.as_u16(), 204 | 304)
            && !status.is_informational()
            && !header.headers.contains_key(header::CONTENT_LENGTH)
        {
            header.insert_header(header::TRANSFER_ENCODING, "chunked")?;
        }
        // pingora's `range_header_filter` for a request without `Range`: a
        // 200 with a valid length says it could be asked for ranges.
        if status == http::StatusCode::OK && crate::fields::content_length(&header).is_some() {
            header.insert_header(header::ACCEPT_RANGES, "bytes")?;
        }
        strip_connection_fields(&mut header);
        header.insert_header(CACHE_STATUS, http::HeaderValue::from_static("Aside; hit"))?;
        header.insert_header(
            X_CACHE,
            http::HeaderValue::from_static(CacheStatus::Hit.x_cache()),
        )?;

        let mut framing = ResponseHeader::build(status, Some(2))?;
        framing.set_version(http::Version::HTTP_11);
        for name in [header::CONTENT_LENGTH, header::TRANSFER_ENCODING] {
            for value in header.headers.get_all(&name) {
                framing.append_header(name.clone(), value.clone())?;
            }
        }

        Ok(HitTemplate {
            header,
            head: OnceLock::new(),
            uses: AtomicU8::new(0),
            framing,
        })
    }

    /// The serialized head, from the second use on.
    pub(crate) fn head(&self) -> Option<&Bytes> {
        let first = self
            .uses
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < 2).then_some(n + 1)
            })
            .is_ok_and(|n| n == 0);
        if first && self.head.get().is_none() {
            return None;
        }
        self.head.get_or_init(|| self.serialize()).as_ref()
    }

    fn serialize(&self) -> Option<Bytes> {
        let header = &self.header;
        if !header.headers.contains_key(header::DATE) {
            return None;
        }
        let mut fields = header.clone();
        fields.remove_header(&header::AGE);
        fields.remove_header(&CACHE_STATUS);
        let mut wire = BytesMut::with_capacity(512);
        wire.extend_from_slice(b"HTTP/1.1 ");
        wire.extend_from_slice(header.status.as_str().as_bytes());
        wire.extend_from_slice(b" ");
        if let Some(reason) = header.get_reason_phrase() {
            wire.extend_from_slice(reason.as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        fields.header_to_h1_wire(&mut wire);
        Some(wire.freeze())
    }
}

/// A fresh hit's head built straight from a stored response's HTTP/1 header
/// block, for a disk-tier hit whose decoded meta is not cached: the same
/// status line and fields [`HitTemplate`] would serialize (less `Age` and
/// `Cache-Status`, which each hit appends), without building pingora's
/// `ResponseHeader` twice and cloning it (~20,000 instructions of a cold
/// 16 KiB hit). Only the common shape is taken: a final status other than
/// 204 and 304, one valid `Content-Length`, a `Date`, no `Vary`, no
/// `Connection` and no `Transfer-Encoding`; anything else answers `None` and
/// goes through the template, which stays the reference.
pub(crate) struct WireHit {
    pub(crate) status: http::StatusCode,
    /// Status line and fields, with spare room for the two a hit appends.
    pub(crate) head: BytesMut,
    /// Status and `Content-Length`: what the session keeps of the response.
    pub(crate) framing: ResponseHeader,
    /// The stored response's own `Age` (`fields::origin_age`).
    pub(crate) origin_age: std::time::Duration,
}

/// Stored fields a hit replaces or drops (`HitTemplate::new`): its own `Age`,
/// `Cache-Status` and `X-Cache`, and the hop-by-hop `Keep-Alive` and
/// `Proxy-Connection` (`strip_connection_fields`).
const REPLACED: [&str; 5] = [
    "age",
    "cache-status",
    "x-cache",
    "keep-alive",
    "proxy-connection",
];

/// Fields whose presence sends the hit through the template.
const NOT_WIRE: [&str; 3] = ["vary", "connection", "transfer-encoding"];

/// Room left in a head for `Age` and `Cache-Status`.
pub(crate) const HIT_FIELDS_ROOM: usize = 96;

impl WireHit {
    /// `block`: the status line, fields and final empty line as stored.
    pub(crate) fn parse(block: &[u8]) -> Option<WireHit> {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut fields);
        if !matches!(parsed.parse(block), Ok(httparse::Status::Complete(_))) {
            return None;
        }
        let status = http::StatusCode::from_u16(parsed.code?).ok()?;
        if status.is_informational() || matches!(status.as_u16(), 204 | 304) {
            return None;
        }
        let ok = status == http::StatusCode::OK;
        let mut head = BytesMut::with_capacity(block.len() + 64 + HIT_FIELDS_ROOM);
        head.extend_from_slice(b"HTTP/1.1 ");
        head.extend_from_slice(status.as_str().as_bytes());
        head.extend_from_slice(b" ");
        if let Some(reason) = status.canonical_reason() {
            head.extend_from_slice(reason.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let (mut length, mut date, mut age) = (None, false, None);
        for field in parsed.headers.iter() {
            let name = field.name;
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if NOT_WIRE.iter().any(|n| is(n)) {
                return None;
            }
            if is("content-length") {
                if length.is_some() {
                    return None;
                }
                let _: u64 = std::str::from_utf8(field.value).ok()?.parse().ok()?;
                length = Some(field.value);
            }
            date |= is("date");
            if is("age") && age.is_none() {
                age = Some(field.value);
            }
            if REPLACED.iter().any(|n| is(n)) || (ok && is("accept-ranges")) {
                continue;
            }
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(field.value);
            head.extend_from_slice(b"\r\n");
        }
        let (Some(length), true) = (length, date) else {
            return None;
        };
        // pingora's `range_header_filter` for a request without `Range`.
        if ok {
            head.extend_from_slice(b"accept-ranges: bytes\r\n");
        }
        head.extend_from_slice(b"x-cache: ");
        head.extend_from_slice(CacheStatus::Hit.x_cache().as_bytes());
        head.extend_from_slice(b"\r\n");

        let mut framing = ResponseHeader::build(status, Some(1)).ok()?;
        framing.set_version(http::Version::HTTP_11);
        framing
            .append_header(
                header::CONTENT_LENGTH,
                http::HeaderValue::from_bytes(length).ok()?,
            )
            .ok()?;
        Some(WireHit {
            status,
            head,
            framing,
            origin_age: crate::fields::age_value(age),
        })
    }
}
