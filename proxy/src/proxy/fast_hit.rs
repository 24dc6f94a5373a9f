//! Fresh hits answered before pingora's cache state machine (issue 17).
//!
//! Most hits are a plain `GET` or `HEAD` of a fresh entry: no validator or
//! `Range` from the client, no request directives, no `Vary`. For those,
//! `request_filter` looks the entry up itself and writes the stored response
//! with `Age`, `Cache-Status` and `X-Cache`, as pingora's hit path followed by
//! `response_filter` would (the same fields and values), skipping the cache
//! key object, the hit handler, the meta rebuild and, on HTTP/1, the header's
//! serialization: each stored response keeps its serialized header block
//! ([`HitTemplate`]) and a hit only appends `Age` and `Cache-Status`
//! (vendored pingora-core's `write_response_head_serialized`). The downstream
//! modules pingora would run are skipped: the only one is response
//! compression, which Aside leaves disabled. Everything else (misses, stale
//! or revalidated entries, `Vary`, conditionals, ranges, refresh-ahead,
//! background refreshes) goes the regular way, which stays the reference.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use bytes::BytesMut;

use super::*;

/// Request fields that can change how a stored response answers (RFC 9110
/// §13, §14; RFC 9111 §5.2.1, §5.4), a request body and an upgrade: any of
/// them sends the request the regular way.
const REGULAR_PATH_FIELDS: [http::HeaderName; 11] = [
    header::RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::CACHE_CONTROL,
    header::PRAGMA,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Answers the request from a fresh stored entry when it is that simple
/// case. `Ok(true)`: the response is written.
pub(super) async fn serve(
    proxy: &AsideProxy,
    session: &mut Session,
    ctx: &mut Ctx,
) -> Result<bool> {
    let req = session.req_header();
    if !is_cacheable_method(&req.method)
        || session.subrequest_ctx.is_some()
        || REGULAR_PATH_FIELDS
            .iter()
            .any(|f| req.headers.contains_key(f))
    {
        return Ok(false);
    }
    let route = ctx.route()?;
    let lookup = |name: &str| header_str(req, name).map(str::to_owned);
    if route.bypass(&lookup).is_some() {
        return Ok(false);
    }
    let (path, query) = (req.uri.path(), req.uri.query());
    let derive = || {
        let primary = route.cache_key(ctx.scheme, &ctx.host, path, query, &lookup);
        pingora_cache::key::hash_key(primary)
    };
    let path_and_query = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let hash = if route.policy.key.headers.is_empty() {
        let memo = &ctx.live()?.key_memo;
        memo.hash(ctx.route, ctx.scheme, &ctx.host, path_and_query, derive)
    } else {
        derive()
    };
    let Some((entry, decoded)) = proxy.shared.storage.plain_entry(&hash).await else {
        return Ok(false);
    };
    let stored = decoded.stored(&entry);
    let response = decoded.response();
    let now = SystemTime::now();
    // pingora's `CacheMeta::is_fresh`: fresh through `fresh_until` itself.
    if stored.fresh_until < now
        || response.headers.contains_key(header::VARY)
        || fresh_verdict(route, &RequestDirectives::default(), &stored, now) != FreshVerdict::Serve
    {
        return Ok(false);
    }
    let head = req.method == Method::HEAD;
    crate::stats::HITTERS.record(ctx.scheme, &ctx.host, path_and_query, true);

    let template = decoded.hit_template(HitTemplate::new)?;
    let age = now.duration_since(stored.updated).unwrap_or_default() + origin_age(response);
    let cache_status =
        CacheStatus::Hit.header_value(Some(stored.fresh_until), now, None, false, None);
    crate::metrics::record_request(CacheStatus::Hit.as_str());
    ctx.fast_hit = true;

    let written = match template.head() {
        Some(head) => {
            let mut wire = BytesMut::with_capacity(head.len() + 96);
            wire.extend_from_slice(head);
            // `write!` into a `BytesMut` cannot fail (it grows).
            let _ = write!(
                wire,
                "Age: {}\r\ncache-status: {cache_status}\r\n",
                age.as_secs()
            );
            session
                .as_mut()
                .write_response_head_serialized(Box::new(template.framing.clone()), wire)
                .await
                .map_err(|e| e.into_down())?
        }
        None => false,
    };
    if !written {
        // HTTP/2, or a stored response without `Date`: through pingora's writer.
        let mut header = Box::new(template.header.clone());
        // Both fields are in the template: these replace values in place.
        header.insert_header(header::AGE, http::HeaderValue::from(age.as_secs()))?;
        header.insert_header(CACHE_STATUS, cache_status)?;
        session
            .write_response_header(header, head)
            .await
            .map_err(|e| e.into_down())?;
    }
    if !head {
        session
            .write_response_body(Some(entry.body.clone()), true)
            .await
            .map_err(|e| e.into_down())?;
    }
    Ok(true)
}

/// What every fresh hit of one stored response starts from, built once per
/// decoded entry.
pub(crate) struct HitTemplate {
    /// pingora's `cache_hit_header` of the stored header (`Age`, HTTP/1.1,
    /// chunked without a length) and its `range_header_filter` for a request
    /// without `Range` (`Accept-Ranges`), then what `response_filter` adds to a hit,
    /// with placeholder values for the two fields that change per request
    /// (`Age`, `Cache-Status`).
    header: ResponseHeader,
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
    framing: ResponseHeader,
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
        let length = header
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|v| v.parse::<usize>().ok());
        if status == http::StatusCode::OK && length.is_some() {
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
    fn head(&self) -> Option<&Bytes> {
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
