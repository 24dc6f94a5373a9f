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
//!
//! A request that finds no entry while this node fills it (a miss storm)
//! waits for the fill (`cache_storage::fills`) and looks again, so the storm's
//! followers are answered here too rather than one by one through pingora's
//! cache lock and hit path.

use std::fmt::Write as _;

use bytes::BytesMut;

use super::*;
use crate::cache_storage::Plain;
use crate::hit_template::{HitTemplate, HIT_FIELDS_ROOM};

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
        // One pass over the request's few fields, comparing names (standard
        // names compare as enum tags): eleven `contains_key` lookups hashed
        // each name, ~1,400 instructions a hit.
        || req
            .headers
            .keys()
            .any(|name| REGULAR_PATH_FIELDS.contains(name))
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
    let storage = proxy.shared.storage;
    let mut waited = false;
    // The light read writes a serialized HTTP/1 head.
    let light = matches!(req.version, http::Version::HTTP_10 | http::Version::HTTP_11);
    let found = match storage.plain_entry(&hash, light).await {
        Some(found) => Some(found),
        // A miss storm: wait for this node's fill in progress, then look again,
        // instead of queueing at pingora's cache lock and each going through
        // its hit path (see `cache_storage::fills`).
        None => match storage.fill_watch(&hash) {
            Some(mut filled) => {
                let _ = tokio::time::timeout(LOCK_WAIT_TIMEOUT, filled.changed()).await;
                waited = true;
                storage.plain_entry(&hash, light).await
            }
            None => None,
        },
    };
    let Some((hit, plain)) = found else {
        return Ok(false);
    };
    let entry = hit.entry;
    let (stored, origin_age) = match &plain {
        Plain::Decoded(d) => {
            if d.response().headers.contains_key(header::VARY) {
                return Ok(false);
            }
            (d.stored(&entry), origin_age(d.response()))
        }
        // `WireHit::parse` took no entry with `Vary`.
        Plain::Light(l) => (l.stored(&entry), l.wire.origin_age),
    };
    let now = SystemTime::now();
    // pingora's `CacheMeta::is_fresh`: fresh through `fresh_until` itself.
    if stored.fresh_until < now
        || fresh_verdict(route, &RequestDirectives::default(), &stored, now) != FreshVerdict::Serve
    {
        return Ok(false);
    }
    let head = req.method == Method::HEAD;
    crate::stats::HITTERS.record(ctx.scheme, &ctx.host, path_and_query, true);

    let age = now.duration_since(stored.updated).unwrap_or_default() + origin_age;
    let cache_status =
        CacheStatus::Hit.header_value(Some(stored.fresh_until), now, None, false, None);
    crate::metrics::record_request(CacheStatus::Hit.as_str());
    if waited {
        crate::metrics::record_coalesced_wait();
    }
    ctx.fast_hit = true;

    // The serialized head and what the session keeps of it; the decoded
    // meta whose template pingora's writer takes otherwise.
    let mut template_of = None;
    let serialized = match plain {
        Plain::Light(light) => {
            let crate::hit_template::WireHit { head, framing, .. } = light.wire;
            Some((head, Box::new(framing)))
        }
        Plain::Decoded(decoded) => {
            let template = decoded.hit_template(HitTemplate::new)?;
            let serialized = template.head().map(|head| {
                let mut wire = BytesMut::with_capacity(head.len() + HIT_FIELDS_ROOM);
                wire.extend_from_slice(head);
                (wire, Box::new(template.framing.clone()))
            });
            template_of = Some(decoded);
            serialized
        }
    };
    let written = match serialized {
        Some((mut wire, framing)) => {
            // `write!` into a `BytesMut` cannot fail (it grows).
            let _ = write!(
                wire,
                "Age: {}\r\ncache-status: {cache_status}\r\n",
                age.as_secs()
            );
            // A body in memory whose length is the stored `Content-Length`
            // leaves with the head in one write (vendored pingora-core's
            // `write_response_serialized`: no copy of a large body into the
            // connection's write buffer).
            let whole = (!head
                && hit.stream.is_none()
                && crate::fields::content_length(&framing) == Some(entry.body.len() as u64))
            .then_some(&entry.body);
            if let Some(body) = whole {
                if session
                    .as_mut()
                    .write_response_serialized(framing, wire, body)
                    .await
                    .map_err(|e| e.into_down())?
                {
                    return Ok(true);
                }
                // Not HTTP/1: nothing was written.
                false
            } else {
                session
                    .as_mut()
                    .write_response_head_serialized(framing, wire)
                    .await
                    .map_err(|e| e.into_down())?
            }
        }
        None => false,
    };
    if !written {
        // HTTP/2, or a stored response without `Date`: through pingora's
        // writer. A light read is made only for HTTP/1 (`plain_entry`).
        let Some(decoded) = template_of else {
            return Error::e_explain(
                ErrorType::InternalError,
                "a light hit reached pingora's writer",
            );
        };
        let template = decoded.hit_template(HitTemplate::new)?;
        let mut header = Box::new(template.header.clone());
        // Both fields are in the template: these replace values in place.
        header.insert_header(header::AGE, http::HeaderValue::from(age.as_secs()))?;
        header.insert_header(CACHE_STATUS, cache_status)?;
        session
            .write_response_header(header, head)
            .await
            .map_err(|e| e.into_down())?;
    }
    if head {
        return Ok(true);
    }
    let Some(mut stream) = hit.stream else {
        session
            .write_response_body(Some(entry.body.clone()), true)
            .await
            .map_err(|e| e.into_down())?;
        return Ok(true);
    };
    // A large disk-tier body, chunk by chunk, each read into the buffer of the
    // one before. A read error (a body that fails its checksum) after the
    // header went out cuts the response short: the client sees it from the
    // framing, and the connection is not reused.
    while let Some(chunk) = stream
        .next_chunk()
        .await
        .map_err(|e| crate::cache_storage::store_err("cache body read", e))?
    {
        let last = stream.remaining() == 0;
        session
            .write_response_body(Some(chunk.clone()), last)
            .await
            .map_err(|e| e.into_down())?;
        stream.recycle(chunk);
    }
    Ok(true)
}
