//! The per-request state (`Ctx`) and what every request shares: the live
//! configuration (`Live`, swapped as a whole on reload) and `Shared`.

use super::*;

/// The configuration in force, with everything derived from it that requests need.
pub struct Live {
    /// The validated config.
    pub config: Arc<Config>,
    /// One runtime per `config.upstreams`, same order.
    pub upstreams: Vec<UpstreamRuntime>,
    /// Each route's tags, shared so that a request's cache key info need not copy them.
    pub route_tags: Vec<Arc<[String]>>,
    /// Cache-key hashes of recent request targets under this config (the
    /// fresh-hit fast path's; a reload starts an empty one).
    pub key_memo: crate::key_memo::KeyMemo,
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
            key_memo: crate::key_memo::KeyMemo::default(),
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

/// Per-request state.
pub struct Ctx {
    /// Config snapshot taken when the request arrived: one request sees one config.
    pub(super) live: Option<Arc<Live>>,
    /// Index of the matched route in `live.config.routes`.
    pub(super) route: usize,
    /// `http` or `https`, the scheme the client used (part of the cache key).
    pub(super) scheme: &'static str,
    /// Lowercase host (with port when the client sent one).
    pub(super) host: String,
    /// When the request arrived, for the access log.
    pub(super) started: Instant,
    /// The cluster lease slot of this request's cache key (shared tier only).
    pub(super) lease: Option<Arc<crate::cache_storage::LeaseSlot>>,
    /// The fill-in-progress slot of this request's cache key (see
    /// `cache_storage::fills`): released at the request's end.
    pub(super) fill: Option<Arc<crate::cache_storage::FillSlot>>,
    /// When the upstream request was sent, to time the origin.
    pub(super) upstream_started: Option<Instant>,
    /// How long the origin took to answer headers.
    pub(super) upstream_time: Option<Duration>,
    /// Status the origin answered, for `Cache-Status: fwd-status`.
    pub(super) upstream_status: Option<u16>,
    /// Why caching was skipped, for `Cache-Status: detail` and logs.
    pub(super) bypass: Option<String>,
    /// Whether `response_cache_filter` admitted the response to the store.
    pub(super) stored: bool,
    /// Why it did not, when it did not.
    pub(super) not_stored: Option<&'static str>,
    /// Holds a slot of the upstream's `max-concurrent` limit while forwarding.
    pub(super) permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The origin failed after the response headers had left: the response was
    /// ended incomplete (for the access log).
    pub(super) aborted: bool,
    /// Origin protection kept this request from the origin, and why.
    pub(super) blocked: Option<Blocked>,
    /// The request was retried once after a failed connect.
    pub(super) retried: bool,
    /// The hit was in its route's refresh-ahead window: served as a hit while
    /// one background request refreshes the entry.
    pub(super) refresh_ahead: bool,
    /// Why a stale copy was served instead of the origin's answer
    /// (`Cache-Status` detail): `origin-down`, or a protection code.
    pub(super) stale_reason: Option<&'static str>,
    /// The origin's 304 to a revalidation: pingora merges only a few of its
    /// fields into the stored header, `response_cache_filter` merges them all
    /// (RFC 9111 §3.2).
    pub(super) not_modified: Option<Box<ResponseHeader>>,
    /// Answered by the fresh-hit fast path (`fast_hit`), before pingora's
    /// cache machinery: `session.cache` says nothing about it.
    pub(super) fast_hit: bool,
}

impl Ctx {
    pub(super) fn live(&self) -> Result<&Arc<Live>> {
        self.live
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no config snapshot"))
    }

    pub(super) fn route(&self) -> Result<&Route> {
        self.live()?
            .config
            .routes
            .get(self.route)
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "route index out of range"))
    }
}
