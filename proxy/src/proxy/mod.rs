//! The pingora `ProxyHttp` implementation: route, key, decide, forward.
//!
//! pingora's cache machinery does the HTTP caching (lock, revalidation, SWR,
//! SIE, Vary, Range, HEAD, Age, client 304s); this module only answers its
//! questions with the operator's policies. The hooks live here; the
//! per-request state is in `ctx`, `PURGE` and unsafe-method invalidation in
//! `purge`, the response side in `response`, failures in `failure` and
//! `error_page`, the access log in `access_log`. The main hooks:
//! - `request_filter` picks the route (and answers `PURGE`);
//! - `request_cache_filter` turns caching on for GET/HEAD on caching routes;
//! - `cache_key_callback` builds the key from the route's key rules;
//! - `response_cache_filter` turns the origin's headers plus the route policy
//!   into a `CacheMeta` (or refuses to store, with a reason);
//! - `response_filter` adds `Cache-Status` / `X-Cache` and invalidates after
//!   unsafe methods (RFC 9111 §4.4).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method};
use pingora_cache::key::{CacheKey, HashBinary};
use pingora_cache::lock::CacheKeyLockImpl;
use pingora_cache::{
    CacheMeta, CacheOptionOverrides, ForcedFreshness, HitHandler, NoCacheReason, RespCacheable,
    VarianceBuilder,
};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use aside_policies::{Config, Route};
use aside_store::CacheSelector;

use crate::cache_status::{CacheStatus, CACHE_STATUS, X_CACHE};
use crate::cache_storage::{AsideStorage, KeyInfo};
use crate::decision::{
    decide, explicit_stale_if_error, fresh_verdict, must_revalidate, FreshVerdict,
    RequestDirectives, Stored,
};
use crate::fields::{
    merge_not_modified, not_modified_by_date, origin_age, strip_connection_fields,
};
use crate::protect::{Blocked, Outcome};
use crate::upstream::UpstreamRuntime;

/// How long a request waits on another request's fill of the same key before
/// going to the origin itself. Finite, so a stuck fill cannot hang clients.
const LOCK_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

mod access_log;
mod ctx;
mod error_page;
mod failure;
mod fast_hit;
mod purge;
mod response;

pub use ctx::{Ctx, Live, Shared};
use error_page::{error_status, respond_json, write_error};

/// The proxy service.
pub struct AsideProxy {
    /// Shared with the admin API and the reloader.
    pub shared: Arc<Shared>,
}

fn header_str<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The host a request is for: the `Host` header, or the URI authority (HTTP/2, absolute-form).
fn request_host(req: &RequestHeader) -> Option<String> {
    let raw = header_str(req, "host")
        .map(str::to_owned)
        .or_else(|| req.uri.authority().map(|a| a.as_str().to_owned()))?;
    let host = raw.trim().to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn is_cacheable_method(m: &Method) -> bool {
    *m == Method::GET || *m == Method::HEAD
}

fn is_unsafe_method(m: &Method) -> bool {
    !matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

#[async_trait]
impl ProxyHttp for AsideProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            live: None,
            route: 0,
            scheme: "http",
            host: String::new(),
            started: Instant::now(),
            lease: None,
            fill: None,
            upstream_started: None,
            upstream_time: None,
            upstream_status: None,
            bypass: None,
            stored: false,
            not_stored: None,
            permit: None,
            aborted: false,
            blocked: None,
            retried: false,
            refresh_ahead: false,
            stale_reason: None,
            not_modified: None,
            fast_hit: false,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let live = self.shared.live.load_full();
        // pingora keeps an HTTP/1.1 connection open forever between requests
        // (`Some(0)`): bound it. `None` (Connection: close, HTTP/1.0) stays.
        let idle = live.config.server.keepalive_timeout.as_secs().max(1);
        if session.get_keepalive().is_some_and(|t| t == 0 || t > idle) {
            session.set_keepalive(Some(idle));
        }
        // A stalled request body: pingora's per-read timeout (default 60 s).
        // A trickled one is bounded as a whole in `request_body_filter`.
        session.set_read_timeout(Some(live.config.server.body_read_timeout));
        ctx.scheme = if session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .is_some()
        {
            "https"
        } else {
            "http"
        };
        let req = session.req_header();
        let Some(host) = request_host(req) else {
            respond_json(
                session,
                400,
                "Aside; detail=missing-host",
                serde_json::json!({"error": {"code": "bad_request", "message": "missing Host header"}}),
            )
            .await?;
            return Ok(true);
        };
        // Route matching ignores the port (HostMatch compares the bare host).
        let found = live
            .config
            .route_index_for(&host, req.uri.path(), req.method.as_str());
        let is_purge = req.method.as_str() == "PURGE";
        let Some(index) = found else {
            let message = format!("no route for {host}{}", req.uri.path());
            ctx.live = Some(live);
            respond_json(
                session,
                404,
                "Aside; detail=no-route",
                serde_json::json!({"error": {"code": "no_route", "message": message}}),
            )
            .await?;
            return Ok(true);
        };
        ctx.route = index;
        ctx.host = host;
        ctx.live = Some(live);
        if is_purge {
            self.handle_purge(session, ctx).await?;
            return Ok(true);
        }
        fast_hit::serve(self, session, ctx).await
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // The whole body must arrive within `body-read-timeout` of the header
        // (ctx.started): a client sending a byte now and then gets 408.
        if !end_of_stream {
            if let Some(live) = &ctx.live {
                if ctx.started.elapsed() > live.config.server.body_read_timeout {
                    let mut e = Error::explain(
                        ErrorType::ReadTimedout,
                        "request body not received within server.body-read-timeout",
                    );
                    e.as_down();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let req = session.req_header();
        if !is_cacheable_method(&req.method) {
            ctx.bypass = Some("method".into());
            return Ok(());
        }
        let route = ctx.route()?;
        let lookup = |name: &str| header_str(req, name).map(str::to_owned);
        if let Some(reason) = route.bypass(&lookup) {
            ctx.bypass = Some(reason);
            return Ok(());
        }
        let max_size = usize::try_from(route.policy.max_object_size).unwrap_or(usize::MAX);
        session.cache.enable(
            self.shared.storage,
            None,
            None,
            Some(self.shared.lock),
            Some({
                let mut o = CacheOptionOverrides::default();
                o.wait_timeout = Some(LOCK_WAIT_TIMEOUT);
                o.max_lock_retries = Some(3);
                o
            }),
        );
        session.cache.set_max_file_size_bytes(max_size);
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        let req = session.req_header();
        let route = ctx.route()?;
        let (path, query) = (req.uri.path(), req.uri.query());
        let lookup = |name: &str| header_str(req, name).map(str::to_owned);
        let url = route.normalized_url(ctx.scheme, &ctx.host, path, query);
        let primary = route.key_from_url(url.clone(), &lookup);
        let route_tags = ctx.live()?.route_tags[ctx.route].clone();
        let mut key = CacheKey::new(primary, "");
        let lease = self.shared.storage.is_shared().then(|| {
            Arc::new(crate::cache_storage::LeaseSlot {
                may_fill: req.method == http::Method::GET,
                ..Default::default()
            })
        });
        ctx.lease = lease.clone();
        let fill = Arc::new(crate::cache_storage::FillSlot::default());
        ctx.fill = Some(fill.clone());
        key.extensions.insert(KeyInfo {
            url,
            route_tags,
            lease,
            fill: Some(fill),
        });
        Ok(key)
    }

    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        meta: &CacheMeta,
        _hit_handler: &mut HitHandler,
        is_fresh: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<ForcedFreshness>> {
        let now = SystemTime::now();
        let req = session.req_header();
        let directives = RequestDirectives::parse(req);
        if !is_fresh {
            // max-stale (RFC 9111 §5.2.1.2): the client accepts this much staleness,
            // unless the origin said must-revalidate.
            let stale_for = now.duration_since(meta.fresh_until()).unwrap_or_default();
            let allowed = directives
                .max_stale
                .is_some_and(|limit| limit.is_none_or(|l| stale_for <= l));
            if allowed && !must_revalidate(meta) {
                return Ok(Some(ForcedFreshness::ForceFresh));
            }
            return Ok(None);
        }
        let route = ctx.route()?;
        match fresh_verdict(route, &directives, &Stored::of(meta), now) {
            FreshVerdict::Serve => Ok(None),
            FreshVerdict::Revalidate { expired_at } => {
                Ok(Some(ForcedFreshness::ForceExpiredServeStale { expired_at }))
            }
            FreshVerdict::RefreshAhead => {
                // pingora serves it and refreshes it in one background
                // subrequest (the cache lock coalesces; the subrequest goes
                // through the budget like any origin request).
                ctx.refresh_ahead = true;
                Ok(Some(ForcedFreshness::ForceExpiredServeStale {
                    expired_at: None,
                }))
            }
        }
    }

    async fn proxy_upstream_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<bool> {
        // only-if-cached (RFC 9111 §5.2.1.7): nothing usable is stored, so 504.
        if RequestDirectives::parse(session.req_header()).only_if_cached {
            respond_json(
                session,
                504,
                "Aside; detail=only-if-cached",
                serde_json::json!({"error": {"code": "not_cached", "message": "only-if-cached: no stored response"}}),
            )
            .await?;
            return Ok(false);
        }
        Ok(true)
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<RespCacheable> {
        let req = session.req_header();
        // A revalidation answered 304: `resp` is pingora's partial merge; decide
        // on the stored header updated with every field of the 304 instead.
        let merged = match (ctx.not_modified.take(), session.cache.maybe_cache_meta()) {
            (Some(not_modified), Some(stored))
                if session.cache.phase() == pingora_cache::CachePhase::Stale =>
            {
                Some(merge_not_modified(stored.response_header(), &not_modified))
            }
            _ => None,
        };
        let resp = merged.as_ref().unwrap_or(resp);
        let decision = if RequestDirectives::parse(req).no_store {
            Err("request no-store")
        } else {
            decide(req, resp, ctx.route()?, SystemTime::now())
        };
        match decision {
            Ok(meta) => {
                ctx.stored = true;
                Ok(RespCacheable::Cacheable(meta))
            }
            Err(reason) => {
                ctx.not_stored = Some(reason);
                // Nothing will be filled: requests waiting on the fast path go.
                if let Some(slot) = &ctx.fill {
                    self.shared.storage.release_fill(slot);
                }
                Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(reason)))
            }
        }
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Ctx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        let names: Vec<String> = meta
            .headers()
            .get_all(header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() {
            return None;
        }
        let mut builder = VarianceBuilder::new();
        for name in &names {
            // Requests that mean the same select the same variant (RFC 9111 §4.1).
            let lines = req.headers.get_all(name.as_str()).iter();
            let value = crate::vary::normalized(name, lines.map(http::HeaderValue::as_bytes));
            builder.add_owned_value(name, value);
        }
        builder.finalize()
    }

    fn cache_not_modified_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut Ctx,
    ) -> Result<bool> {
        // Without Last-Modified, If-Modified-Since compares with the stored
        // Date (RFC 9110 §13.1.3, RFC 9111 §4.3.2); pingora's filter does not.
        let req = session.req_header();
        let stored_at = session.cache.maybe_cache_meta().map(CacheMeta::created);
        Ok(
            not_modified_by_date(req, resp, stored_at).unwrap_or_else(|| {
                pingora_core::protocols::http::conditional_filter::not_modified_filter(req, resp)
            }),
        )
    }

    fn should_serve_stale(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        error: Option<&Error>,
    ) -> bool {
        // None = stale-while-revalidate (allowed by the meta's SWR window, which
        // pingora checks); Some = stale-if-error for origin failures and 5xx.
        match error {
            None => true,
            Some(e) => {
                let serve = if matches!(e.etype(), ErrorType::HTTPStatus(code) if *code >= 500) {
                    // A 5xx answer is not an unreachable origin: stale only when
                    // a stale-if-error window was asked for, not by the route's
                    // stale-if-unreachable default.
                    ctx.route()
                        .ok()
                        .zip(session.cache.maybe_cache_meta())
                        .is_some_and(|(route, meta)| {
                            explicit_stale_if_error(route, meta.response_header())
                        })
                } else {
                    e.esource() == &ErrorSource::Upstream
                };
                if serve {
                    ctx.stale_reason = Some(ctx.blocked.map_or("origin-down", Blocked::detail));
                }
                serve
            }
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let live = ctx.live()?.clone();
        let route = ctx.route()?;
        let upstream = live.upstreams.get(route.upstream).ok_or_else(|| {
            Error::explain(ErrorType::InternalError, "upstream index out of range")
        })?;
        // Origin protection: within budget, not paused, breaker closed. A
        // request kept back fails as an upstream error, so a stale copy that
        // the stored response allows answers it (stale-if-error).
        // A background refresh (refresh-ahead, stale-while-revalidate) answers
        // no client: it waits for the budget like a miss instead of giving up.
        let stale_available =
            session.subrequest_ctx.is_none() && session.cache.can_serve_stale_error();
        match upstream.guard.admit(stale_available).await {
            Ok(admission) => {
                if admission.waited {
                    crate::metrics::record_protection(&upstream.config.name, "budget_wait");
                }
            }
            Err(blocked) => {
                ctx.blocked = Some(blocked);
                crate::metrics::record_protection(&upstream.config.name, blocked.code());
                let mut e =
                    Error::explain(ErrorType::Custom("origin protection"), blocked.message());
                e.as_up();
                return Err(e);
            }
        }
        if let Some(limit) = &upstream.limit {
            let permit = limit.clone().acquire_owned().await.map_err(|e| {
                Error::because(ErrorType::InternalError, "upstream limiter closed", e)
            })?;
            ctx.permit = Some(permit);
        }
        upstream.peer().await
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let live = ctx.live()?.clone();
        let route = ctx.route()?;
        let upstream = live.config.upstream(route);
        upstream_request.insert_header(header::HOST, upstream.host_header.as_str())?;
        for (name, value) in &upstream.headers {
            upstream_request.insert_header(name.clone(), value.as_str())?;
        }
        if !upstream.base_path.is_empty() {
            let pq = upstream_request
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned();
            let uri: http::Uri = format!("{}{}", upstream.base_path, pq)
                .parse()
                .map_err(|e| {
                    Error::because(ErrorType::InvalidHTTPHeader, "bad upstream path", e)
                })?;
            upstream_request.set_uri(uri);
        }
        ctx.upstream_started = Some(Instant::now());
        if ctx.refresh_ahead && session.subrequest_ctx.is_some() {
            crate::metrics::record_protection(&upstream.name, "refresh_ahead");
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response::upstream_response_filter(session, upstream_response, ctx).await
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response::response_filter(self, session, resp, ctx).await
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let upstream = ctx
            .live
            .as_ref()
            .zip(ctx.route().ok())
            .and_then(|(live, route)| live.upstreams.get(route.upstream));
        if let Some(upstream) = upstream {
            upstream.guard.record(Outcome::Failure);
            // Nothing reached the origin: an idempotent request may go once more,
            // on a fresh connection (and through the budget again).
            let again = upstream.config.protection.retry
                && !ctx.retried
                && session.req_header().method.is_idempotent();
            e.set_retry(again);
            if again {
                ctx.retried = true;
                crate::metrics::record_protection(&upstream.config.name, "retry");
            }
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        // A timeout or a broken connection on the origin's side counts towards
        // the circuit breaker (a throttling or 5xx answer is counted where it is read).
        if e.esource() == &ErrorSource::Upstream && ctx.upstream_status.is_none() {
            let upstream = ctx
                .live
                .as_ref()
                .zip(ctx.route().ok())
                .and_then(|(live, route)| live.upstreams.get(route.upstream));
            if let Some(upstream) = upstream {
                upstream.guard.record(Outcome::Failure);
            }
        }
        // pingora's rule: idempotent requests may be retried on a reused
        // connection that the origin had closed; never once the body was cut.
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy
    where
        Ctx: Send + Sync,
    {
        failure::fail_to_proxy(session, e, ctx).await
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, e: &Error) -> bool {
        // A client that goes away during a fast hit (a large body most of all)
        // is not an error of Aside's; the access log shows `aborted=true`.
        ctx.fast_hit && e.esource() == &ErrorSource::Downstream
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if let Some(slot) = &ctx.lease {
            self.shared.storage.end_of_request(slot);
        }
        if let Some(slot) = &ctx.fill {
            self.shared.storage.release_fill(slot);
        }
        access_log::write(session, e, ctx, &self.shared);
    }
}
