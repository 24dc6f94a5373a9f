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
