//! A request that failed before any response header left: stale, a 503
//! from origin protection, or Aside's JSON error page (`fail_to_proxy`).

use super::*;

pub(super) async fn fail_to_proxy(session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
    if let Some(blocked) = ctx.blocked {
        // Kept from the origin by protection, and no stale copy could answer.
        session.set_keepalive(None);
        let retry_after = blocked.retry_after_secs();
        let body = serde_json::json!({"error": {
            "code": blocked.code(),
            "message": blocked.message(),
            "retryAfterSeconds": retry_after,
        }})
        .to_string();
        let detail = format!("Aside; fwd=miss; detail={}", blocked.detail());
        let retry_after = retry_after.to_string();
        write_error(session, 503, body, &detail, Some(&retry_after)).await;
        return FailToProxy {
            error_code: 503,
            can_reuse_downstream: false,
        };
    }
    // A fresh hit answered from the store (`fast_hit`) fails only once its
    // header is on its way (the client went away, or a streamed disk-tier body
    // failed its checksum, logged by the store): nothing went upstream, so no
    // origin metric, and it ends incomplete like any response below.
    let upstream_name = ctx
        .route()
        .ok()
        .filter(|_| !ctx.fast_hit)
        .zip(ctx.live.as_ref())
        .map(|(route, live)| live.config.upstream(route).name.clone());
    if let Some(name) = &upstream_name {
        let secs = ctx
            .upstream_started
            .map_or(0.0, |s| s.elapsed().as_secs_f64());
        crate::metrics::record_upstream(name, secs, false);
    }
    // The connection is not reused after a failure.
    session.set_keepalive(None);
    if ctx.fast_hit || session.response_written().is_some() {
        // Headers (and maybe part of the body) have left: the only honest end
        // is an incomplete one. Write nothing more: pingora then drops the
        // session without finishing it, so the client sees the connection
        // close short of Content-Length or without the final chunk. The
        // cache was disabled before this hook: the partial fill is discarded.
        ctx.aborted = true;
        if !ctx.fast_hit {
            crate::metrics::record_aborted_response(upstream_name.as_deref().unwrap_or(""));
        }
        return FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        };
    }
    let code = error_status(e);
    if code > 0 {
        let (kind, message) = match code {
            504 => ("upstream_timeout", "the origin did not answer in time"),
            502 => (
                "upstream_error",
                "the origin could not be reached or sent an invalid response",
            ),
            400 => ("bad_request", "the request could not be read"),
            408 => ("request_timeout", "the request was not received in time"),
            _ => ("error", "the request failed"),
        };
        let body = serde_json::json!({"error": {"code": kind, "message": message}}).to_string();
        write_error(
            session,
            code,
            body,
            "Aside; fwd=miss; detail=origin-error",
            None,
        )
        .await;
    }
    FailToProxy {
        error_code: code,
        can_reuse_downstream: false,
    }
}
