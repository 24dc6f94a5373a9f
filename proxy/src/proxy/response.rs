//! The response side of a request: the origin's response checked and
//! normalized (`upstream_response_filter`), then `Cache-Status`, `X-Cache`,
//! `Age` and the invalidation after unsafe methods (`response_filter`).

use super::*;

pub(super) async fn upstream_response_filter(
    session: &mut Session,
    upstream_response: &mut ResponseHeader,
    ctx: &mut Ctx,
) -> Result<()> {
    let status = upstream_response.status.as_u16();
    // RFC 9110 §15: status codes are 100..=599; anything else is not a
    // response a client can act on (the http crate accepts up to 999).
    if !(100..=599).contains(&status) {
        let mut e = Error::explain(
            ErrorType::InvalidHTTPHeader,
            format!("origin answered status {status}, outside 100..=599"),
        );
        e.as_up();
        return Err(e);
    }
    dedupe_content_length(upstream_response)?;
    if status == 304 {
        // For `response_cache_filter`'s full merge of a revalidation.
        ctx.not_modified = Some(Box::new(upstream_response.clone()));
    }
    ctx.upstream_status = Some(status);
    if let Ok(route) = ctx.route() {
        if let Some(upstream) = ctx.live()?.upstreams.get(route.upstream) {
            let retry_after = upstream_response
                .headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok());
            let outcome = match crate::protect::retry_after(status, retry_after, SystemTime::now())
            {
                Some(pause) => {
                    crate::metrics::record_protection(&upstream.config.name, "origin_throttled");
                    // A stale copy answers instead of the throttling answer,
                    // where the stored response allows it.
                    if session.cache.can_serve_stale_error() {
                        upstream.guard.record(Outcome::Throttled(pause));
                        ctx.blocked = Some(Blocked::Paused(pause));
                        let mut e = Error::explain(
                            ErrorType::Custom("origin protection"),
                            "the origin asked for a pause (Retry-After)",
                        );
                        e.as_up();
                        return Err(e);
                    }
                    Outcome::Throttled(pause)
                }
                None if status >= 500 => Outcome::Failure,
                None => Outcome::Success,
            };
            upstream.guard.record(outcome);
        }
    }
    if let Some(start) = ctx.upstream_started {
        let elapsed = start.elapsed();
        ctx.upstream_time = Some(elapsed);
        if let Ok(route) = ctx.route() {
            let name = &ctx.live()?.config.upstream(route).name;
            crate::metrics::record_upstream(
                name,
                elapsed.as_secs_f64(),
                upstream_response.status.as_u16() < 500,
            );
        }
    }
    Ok(())
}

pub(super) async fn response_filter(
    proxy: &AsideProxy,
    session: &mut Session,
    resp: &mut ResponseHeader,
    ctx: &mut Ctx,
) -> Result<()> {
    let status = match session.cache.phase() {
        // Went to the origin as a miss, but the answer was not storable.
        pingora_cache::CachePhase::Disabled(_) if ctx.not_stored.is_some() => CacheStatus::Miss,
        // Still fresh: refreshed ahead in the background, not stale.
        pingora_cache::CachePhase::Stale | pingora_cache::CachePhase::StaleUpdating
            if ctx.refresh_ahead =>
        {
            CacheStatus::Hit
        }
        phase => CacheStatus::from_phase(phase),
    };
    // Hop-by-hop (RFC 9110 §7.6.1): the fields the origin's `Connection`
    // names and its idle hint are about its connection to us, not ours to
    // the client (pingora forwards them).
    strip_connection_fields(resp);
    let now = SystemTime::now();
    let meta =
        matches!(status, CacheStatus::Hit | CacheStatus::Stale).then(|| session.cache.cache_meta());
    let detail = if status == CacheStatus::Stale {
        ctx.stale_reason
    } else if ctx.refresh_ahead {
        Some("refresh-ahead")
    } else {
        ctx.bypass.as_deref().or(ctx.not_stored)
    };
    if let (Some(reason), Some(route)) = (ctx.stale_reason, ctx.route().ok()) {
        // Clients served stale; a background refresh serves nobody.
        if status == CacheStatus::Stale && session.subrequest_ctx.is_none() {
            let name = &ctx.live()?.config.upstream(route).name;
            crate::metrics::record_protection(name, &format!("stale_served_{reason}"));
        }
    }
    let value = status.header_value(
        meta.map(CacheMeta::fresh_until),
        now,
        ctx.upstream_status,
        ctx.stored,
        detail,
    );
    if let Some(meta) = meta {
        // RFC 9111 §4.2.3: Age includes the age the origin reported when we stored it.
        let age = meta.age() + origin_age(meta.response_header());
        resp.insert_header(header::AGE, http::HeaderValue::from(age.as_secs()))?;
    }
    // Date (RFC 9110 §6.6.1) is set on every response by pingora's HTTP server.
    resp.insert_header(CACHE_STATUS, value)?;
    resp.insert_header(X_CACHE, http::HeaderValue::from_static(status.x_cache()))?;
    if session.cache.phase() == pingora_cache::CachePhase::Stale {
        // Stale served because the origin failed: pingora will not reuse this
        // connection, so say `Connection: close` instead of resetting the
        // client's next request on it (a header set here would be rewritten).
        session.set_keepalive(None);
    }
    crate::metrics::record_request(status.as_str());
    let path = session
        .req_header()
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str());
    crate::stats::HITTERS.record(
        ctx.scheme,
        &ctx.host,
        path,
        matches!(status, CacheStatus::Hit | CacheStatus::Stale),
    );
    if session.cache.lock_duration().is_some() {
        crate::metrics::record_coalesced_wait();
    }
    let req_method = session.req_header().method.clone();
    if is_unsafe_method(&req_method) && (200..400).contains(&resp.status.as_u16()) {
        proxy.invalidate_after_unsafe(session, resp, ctx).await;
    }
    Ok(())
}

/// RFC 9112 §6.3: a `Content-Length` repeated with one value is that value,
/// sent once; differing values make the response invalid (502).
fn dedupe_content_length(resp: &mut ResponseHeader) -> Result<()> {
    let mut values = resp.headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = values.next().cloned() else {
        return Ok(());
    };
    let mut repeated = false;
    for v in values {
        repeated = true;
        if v != first {
            let mut e = Error::explain(
                ErrorType::InvalidHTTPHeader,
                "origin sent differing Content-Length values",
            );
            e.as_up();
            return Err(e);
        }
    }
    if repeated {
        resp.insert_header(header::CONTENT_LENGTH, first)?;
    }
    Ok(())
}
