//! The pingora `ProxyHttp` implementation: route, key, decide, forward.
//!
//! pingora's cache machinery does the HTTP caching (lock, revalidation, SWR,
//! SIE, Vary, Range, HEAD, Age, client 304s); this file only answers its
//! questions with the operator's policies:
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

use crate::cache_status::CacheStatus;
use crate::decision::{decide, explicit_stale_if_error, must_revalidate, RequestDirectives};
use crate::fields::{
    merge_not_modified, not_modified_by_date, origin_age, strip_connection_fields,
};
use crate::protect::{Blocked, Outcome};
use crate::storage::{AsideStorage, KeyInfo};
use crate::upstream::UpstreamRuntime;

/// `Cache-Status` (RFC 9211).
const CACHE_STATUS: http::HeaderName = http::HeaderName::from_static("cache-status");
/// `X-Cache`, for people who grep for it.
const X_CACHE: http::HeaderName = http::HeaderName::from_static("x-cache");

/// How long a request waits on another request's fill of the same key before
/// going to the origin itself. Finite, so a stuck fill cannot hang clients.
const LOCK_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The configuration in force, with everything derived from it that requests need.
pub struct Live {
    /// The validated config.
    pub config: Arc<Config>,
    /// One runtime per `config.upstreams`, same order.
    pub upstreams: Vec<UpstreamRuntime>,
    /// Each route's tags, shared so that a request's cache key info need not copy them.
    pub route_tags: Vec<Arc<[String]>>,
    /// Request budgets shared through Redis (cluster mode), kept across reloads.
    pub budget: Option<aside_cluster::SharedBudget>,
}

impl Live {
    /// Build the live state for a config (reads CA files).
    ///
    /// `previous` is the config in force before a reload: each upstream keeps
    /// its protection state (budget, pause, breaker) when its settings did not change.
    ///
    /// # Errors
    /// An upstream's CA file is unreadable or invalid.
    pub fn new(
        config: Arc<Config>,
        previous: Option<&Live>,
        budget: Option<aside_cluster::SharedBudget>,
    ) -> anyhow::Result<Live> {
        let upstreams = config
            .upstreams
            .iter()
            .cloned()
            .map(|u| {
                let old =
                    previous.and_then(|p| p.upstreams.iter().find(|o| o.config.name == u.name));
                UpstreamRuntime::new(u, old, budget.as_ref())
            })
            .collect::<anyhow::Result<_>>()?;
        let route_tags = config
            .routes
            .iter()
            .map(|r| Arc::from(r.policy.tags.as_slice()))
            .collect();
        Ok(Live {
            config,
            upstreams,
            route_tags,
            budget,
        })
    }
}

/// State shared by every request of the proxy service.
pub struct Shared {
    /// Swapped as a whole on reload; each request takes one snapshot.
    pub live: ArcSwap<Live>,
    /// The same config as `live`, in the shape the admin API reads.
    pub config: Arc<ArcSwap<Config>>,
    /// The pingora storage over the store (leaked: pingora needs `'static`).
    pub storage: &'static AsideStorage,
    /// One fill per key at a time (leaked for the same reason).
    pub lock: &'static CacheKeyLockImpl,
    /// Hands every purge taken here to the other nodes (no-op when standalone).
    pub purges: aside_cluster::Purges,
}

/// The proxy service.
pub struct AsideProxy {
    /// Shared with the admin API and the reloader.
    pub shared: Arc<Shared>,
}

/// Per-request state.
pub struct Ctx {
    /// Config snapshot taken when the request arrived: one request sees one config.
    live: Option<Arc<Live>>,
    /// Index of the matched route in `live.config.routes`.
    route: usize,
    /// `http` or `https`, the scheme the client used (part of the cache key).
    scheme: &'static str,
    /// Lowercase host (with port when the client sent one).
    host: String,
    /// When the request arrived, for the access log.
    started: Instant,
    /// The cluster lease slot of this request's cache key (shared tier only).
    lease: Option<Arc<crate::storage::LeaseSlot>>,
    /// When the upstream request was sent, to time the origin.
    upstream_started: Option<Instant>,
    /// How long the origin took to answer headers.
    upstream_time: Option<Duration>,
    /// Status the origin answered, for `Cache-Status: fwd-status`.
    upstream_status: Option<u16>,
    /// Why caching was skipped, for `Cache-Status: detail` and logs.
    bypass: Option<String>,
    /// Whether `response_cache_filter` admitted the response to the store.
    stored: bool,
    /// Why it did not, when it did not.
    not_stored: Option<&'static str>,
    /// Holds a slot of the upstream's `max-concurrent` limit while forwarding.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The origin failed after the response headers had left: the response was
    /// ended incomplete (for the access log).
    aborted: bool,
    /// Origin protection kept this request from the origin, and why.
    blocked: Option<Blocked>,
    /// The request was retried once after a failed connect.
    retried: bool,
    /// The hit was in its route's refresh-ahead window: served as a hit while
    /// one background request refreshes the entry.
    refresh_ahead: bool,
    /// Why a stale copy was served instead of the origin's answer
    /// (`Cache-Status` detail): `origin-down`, or a protection code.
    stale_reason: Option<&'static str>,
    /// The origin's 304 to a revalidation: pingora merges only a few of its
    /// fields into the stored header, `response_cache_filter` merges them all
    /// (RFC 9111 §3.2).
    not_modified: Option<Box<ResponseHeader>>,
}

impl Ctx {
    fn live(&self) -> Result<&Arc<Live>> {
        self.live
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no config snapshot"))
    }

    fn route(&self) -> Result<&Route> {
        self.live()?
            .config
            .routes
            .get(self.route)
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "route index out of range"))
    }
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

async fn respond_json(session: &mut Session, status: u16, body: serde_json::Value) -> Result<()> {
    let body = Bytes::from(body.to_string());
    let mut resp = ResponseHeader::build(status, Some(3))?;
    resp.insert_header(header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header("cache-status", "Aside; fwd=bypass; detail=purge")?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
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

/// Answer a failed request with Aside's JSON error (no response header has
/// left yet); counted as an `error` request.
async fn write_error(
    session: &mut Session,
    status: u16,
    body: String,
    cache_status: &str,
    retry_after: Option<&str>,
) {
    if let Ok(mut resp) = ResponseHeader::build(status, Some(5)) {
        let _ = resp.insert_header(header::CONTENT_TYPE, "application/json");
        let _ = resp.insert_header(header::CONTENT_LENGTH, body.len().to_string());
        if let Some(seconds) = retry_after {
            let _ = resp.insert_header(header::RETRY_AFTER, seconds);
        }
        let _ = resp.insert_header("cache-status", cache_status);
        let _ = resp.insert_header("x-cache", "MISS");
        if session
            .write_response_header(Box::new(resp), false)
            .await
            .is_ok()
        {
            let _ = session
                .write_response_body(Some(Bytes::from(body)), true)
                .await;
        }
    }
    crate::metrics::record_request("error");
}

/// The status of the error answer for a failure before any response header
/// left; 0 when the client is gone and nothing can be written.
fn error_status(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::WriteTimedout => 504,
        // A read timeout on the client side is a slow request (408); on the
        // origin side, a slow origin (504).
        ErrorType::ReadTimedout if e.esource() == &ErrorSource::Downstream => 408,
        ErrorType::ReadTimedout => 504,
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 502,
        },
    }
}

impl AsideProxy {
    /// Answer `PURGE <url>`: allowed peers only; removes every Vary variant.
    async fn handle_purge(&self, session: &mut Session, ctx: &Ctx) -> Result<()> {
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
                    serde_json::json!({"data": {"url": url, "purged": n}}),
                )
                .await
            }
            Err(e) => {
                tracing::error!(error = %e, "PURGE failed");
                respond_json(
                    session,
                    500,
                    serde_json::json!({"error": {"code": "internal", "message": "purge failed"}}),
                )
                .await
            }
        }
    }

    /// RFC 9111 §4.4: a successful unsafe request invalidates the target URI and
    /// the `Location` / `Content-Location` URIs on the same host.
    async fn invalidate_after_unsafe(&self, session: &Session, resp: &ResponseHeader, ctx: &Ctx) {
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
        Ok(false)
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
            Arc::new(crate::storage::LeaseSlot {
                may_fill: req.method == http::Method::GET,
                ..Default::default()
            })
        });
        ctx.lease = lease.clone();
        key.extensions.insert(KeyInfo {
            url,
            route_tags,
            lease,
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
        // The client asks for validation (no-cache, Pragma), a younger response
        // (max-age) or one that stays fresh longer (min-fresh).
        let remaining = meta.fresh_until().duration_since(now).unwrap_or_default();
        let too_old = directives.max_age.is_some_and(|max| meta.age() > max);
        let too_close = directives.min_fresh.is_some_and(|min| remaining < min);
        if directives.no_cache || too_old || too_close {
            return Ok(Some(ForcedFreshness::ForceExpiredServeStale {
                expired_at: None,
            }));
        }
        // A reload may have shortened the route's TTL: apply it to stored entries.
        let route = ctx.route()?;
        let status = meta.response_header().status.as_u16();
        if let Some(limit) = route.max_fresh_until(meta.created(), status) {
            if limit < meta.fresh_until() && limit <= now {
                return Ok(Some(ForcedFreshness::ForceExpiredServeStale {
                    expired_at: Some(limit),
                }));
            }
        }
        // Refresh-ahead: in the last n % of its freshness, treat the entry as
        // stale-while-revalidate. pingora then serves it and refreshes it in one
        // background subrequest (the cache lock coalesces; the subrequest goes
        // through the budget like any origin request). Needs a SWR window,
        // which `decide` gives every entry of such a route.
        if let Some(percent) = route.policy.refresh_ahead {
            let lifetime = meta
                .fresh_until()
                .duration_since(meta.updated())
                .unwrap_or_default();
            if remaining * 100 < lifetime * u32::from(percent)
                && meta.serve_stale_while_revalidate(now)
            {
                ctx.refresh_ahead = true;
                return Ok(Some(ForcedFreshness::ForceExpiredServeStale {
                    expired_at: None,
                }));
            }
        }
        Ok(None)
    }

    async fn proxy_upstream_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<bool> {
        // only-if-cached (RFC 9111 §5.2.1.7): nothing usable is stored, so 504.
        if RequestDirectives::parse(session.req_header()).only_if_cached {
            respond_json(
                session,
                504,
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
        if RequestDirectives::parse(req).no_store {
            ctx.not_stored = Some("request no-store");
            return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(
                "request no-store",
            )));
        }
        let decision = decide(req, resp, ctx.route()?, SystemTime::now());
        match decision {
            Ok(meta) => {
                ctx.stored = true;
                Ok(RespCacheable::Cacheable(meta))
            }
            Err(reason) => {
                ctx.not_stored = Some(reason);
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
                let outcome =
                    match crate::protect::retry_after(status, retry_after, SystemTime::now()) {
                        Some(pause) => {
                            crate::metrics::record_protection(
                                &upstream.config.name,
                                "origin_throttled",
                            );
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

    async fn response_filter(
        &self,
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
        let meta = matches!(status, CacheStatus::Hit | CacheStatus::Stale)
            .then(|| session.cache.cache_meta());
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
        let value = status.header_value(meta, now, ctx.upstream_status, ctx.stored, detail);
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
            self.invalidate_after_unsafe(session, resp, ctx).await;
        }
        Ok(())
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
        let upstream_name = ctx
            .route()
            .ok()
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
        if session.response_written().is_some() {
            // Headers (and maybe part of the body) have left: the only honest end
            // is an incomplete one. Write nothing more: pingora then drops the
            // session without finishing it, so the client sees the connection
            // close short of Content-Length or without the final chunk. The
            // cache was disabled before this hook: the partial fill is discarded.
            ctx.aborted = true;
            crate::metrics::record_aborted_response(upstream_name.as_deref().unwrap_or(""));
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

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if let Some(slot) = &ctx.lease {
            self.shared.storage.end_of_request(slot);
        }
        let enabled = match &ctx.live {
            Some(live) => live.config.server.access_log,
            None => self.shared.live.load().config.server.access_log,
        };
        if !enabled {
            return;
        }
        let req = session.req_header();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let cache = if session.cache.enabled() {
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
}
