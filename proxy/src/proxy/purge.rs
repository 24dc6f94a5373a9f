//! `PURGE <url>` on the proxy listener and the invalidation after a
//! successful unsafe method (RFC 9111 §4.4).

use super::*;

/// The `Cache-Status` of every answer to `PURGE`.
const PURGE_CACHE_STATUS: &str = "Aside; fwd=bypass; detail=purge";

impl AsideProxy {
    /// Answer `PURGE <url>`: allowed peers only; removes every Vary variant.
    pub(super) async fn handle_purge(&self, session: &mut Session, ctx: &Ctx) -> Result<()> {
        let live = ctx.live()?;
        let allowed = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .is_some_and(|a| {
                live.config
                    .admin
                    .purge_allow
                    .iter()
                    .any(|n| n.contains(a.ip()))
            });
        if !allowed {
            return respond_json(
                session,
                403,
                PURGE_CACHE_STATUS,
                serde_json::json!({"error": {"code": "forbidden", "message": "PURGE is not allowed from this address"}}),
            )
            .await;
        }
        let req = session.req_header();
        let route = ctx.route()?;
        let url = route.normalized_url(ctx.scheme, &ctx.host, req.uri.path(), req.uri.query());
        let selector = CacheSelector {
            urls: vec![url.clone()],
            ..CacheSelector::default()
        };
        let store = self.shared.storage.store();
        match store
            .cache_purge(&selector, aside_store::PurgeMode::Hard, false)
            .await
        {
            Ok(n) => {
                crate::metrics::record_purge(n);
                self.shared
                    .purges
                    .publish(&selector, aside_store::PurgeMode::Hard)
                    .await;
                let status = if n > 0 { 200 } else { 404 };
                respond_json(
                    session,
                    status,
                    PURGE_CACHE_STATUS,
                    serde_json::json!({"data": {"url": url, "purged": n}}),
                )
                .await
            }
            Err(e) => {
                tracing::error!(error = %e, "PURGE failed");
                respond_json(
                    session,
                    500,
                    PURGE_CACHE_STATUS,
                    serde_json::json!({"error": {"code": "internal", "message": "purge failed"}}),
                )
                .await
            }
        }
    }

    /// RFC 9111 §4.4: a successful unsafe request invalidates the target URI and
    /// the `Location` / `Content-Location` URIs on the same host.
    pub(super) async fn invalidate_after_unsafe(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &Ctx,
    ) {
        let Ok(route) = ctx.route() else { return };
        let req = session.req_header();
        let mut urls =
            vec![route.normalized_url(ctx.scheme, &ctx.host, req.uri.path(), req.uri.query())];
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(value) = resp.headers.get(&name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            let Ok(uri) = value.parse::<http::Uri>() else {
                continue;
            };
            let same_host = uri
                .authority()
                .is_none_or(|a| a.as_str().eq_ignore_ascii_case(&ctx.host));
            if same_host && uri.path().starts_with('/') {
                urls.push(route.normalized_url(ctx.scheme, &ctx.host, uri.path(), uri.query()));
            }
        }
        let selector = CacheSelector {
            urls,
            ..CacheSelector::default()
        };
        if let Err(e) = self
            .shared
            .storage
            .store()
            .cache_purge(&selector, aside_store::PurgeMode::Hard, false)
            .await
        {
            tracing::warn!(error = %e, "invalidation after unsafe method failed");
        }
        self.shared
            .purges
            .publish(&selector, aside_store::PurgeMode::Hard)
            .await;
    }
}
