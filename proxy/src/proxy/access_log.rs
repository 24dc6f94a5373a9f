//! One access log line per request (`[server] access-log`), at the end of
//! its pingora `logging` hook.

use super::*;

/// Writes the request's access log line when the live config asks for it.
pub(super) fn write(session: &Session, e: Option<&Error>, ctx: &Ctx, shared: &Shared) {
    let enabled = match &ctx.live {
        Some(live) => live.config.server.access_log,
        None => shared.live.load().config.server.access_log,
    };
    if !enabled {
        return;
    }
    let req = session.req_header();
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let cache = if ctx.fast_hit {
        CacheStatus::Hit.as_str()
    } else if session.cache.enabled() {
        CacheStatus::from_phase(session.cache.phase()).as_str()
    } else {
        "bypass"
    };
    tracing::info!(
        target: "aside::access",
        method = %req.method,
        host = %ctx.host,
        path = %req.uri.path(),
        status,
        cache,
        upstream_us = ctx.upstream_time.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        total_us = u64::try_from(ctx.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        aborted = ctx.aborted,
        error = e.map(|e| e.to_string()),
    );
}
