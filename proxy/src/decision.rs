//! What to store: the origin response plus the route policy become a
//! `CacheMeta` (or a reason not to store), and the request's own
//! `Cache-Control` directives (RFC 9111 §5.2.1) that the proxy hooks apply.
//! Interpreting Cache-Control is pingora-cache's; this file only feeds its
//! findings to the policy and pingora.

use std::time::{Duration, SystemTime};

use http::header;
use pingora_cache::cache_control::{CacheControl, InterpretCacheControl};
use pingora_cache::CacheMeta;
use pingora_http::{RequestHeader, ResponseHeader};

use aside_policies::{Freshness, OriginFreshness, Route};

use crate::fields::{
    date, expires_time, governing_cache_control, origin_age, parse_http_date, strip_unstorable,
};

/// Freshness lifetime from `Expires` relative to `Date` (RFC 9111 §4.2.1);
/// an invalid `Expires` is already expired (RFC 9111 §5.3).
fn expires_lifetime(resp: &ResponseHeader, now: SystemTime) -> Option<Duration> {
    let expires = expires_time(resp)?;
    let date = date(resp).unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// Time between `Last-Modified` and `Date` (or `now`), the base of heuristic
/// freshness (RFC 9111 §4.2.2); `None` without a valid `Last-Modified`.
fn since_last_modified(resp: &ResponseHeader, now: SystemTime) -> Option<Duration> {
    let modified = resp
        .headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)?;
    let date = date(resp).unwrap_or(now);
    Some(date.duration_since(modified).unwrap_or(Duration::ZERO))
}

/// Status codes whose caching semantics Aside implements, for
/// `must-understand` (RFC 9111 §5.2.2.3): the final statuses RFC 9110 defines
/// as cacheable by default or with explicit freshness, minus 206 (a partial
/// response is never stored).
const UNDERSTOOD_STATUSES: [u16; 15] = [
    200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 451, 501,
];

/// Whether `no-store` applies: `must-understand` with a status Aside
/// understands overrides it (RFC 9111 §5.2.2.3).
fn no_store(cc: &CacheControl, status: u16) -> bool {
    cc.no_store() && !(cc.has_key("must-understand") && UNDERSTOOD_STATUSES.contains(&status))
}

/// The request's own `Cache-Control` (and `Pragma`) directives (RFC 9111 §5.2.1).
#[derive(Debug, Default)]
pub(crate) struct RequestDirectives {
    pub(crate) no_cache: bool,
    pub(crate) no_store: bool,
    pub(crate) only_if_cached: bool,
    pub(crate) max_age: Option<Duration>,
    pub(crate) min_fresh: Option<Duration>,
    /// `Some(None)`: any staleness; `Some(Some(d))`: at most `d`.
    pub(crate) max_stale: Option<Option<Duration>>,
}

impl RequestDirectives {
    pub(crate) fn parse(req: &RequestHeader) -> RequestDirectives {
        let pragma_no_cache = req
            .headers
            .get_all(header::PRAGMA)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("no-cache"));
        let Some(cc) = CacheControl::from_req_headers(req) else {
            return RequestDirectives {
                no_cache: pragma_no_cache,
                ..RequestDirectives::default()
            };
        };
        let secs =
            |name: &str| -> Option<Option<Duration>> {
                let value = cc.directives.get(
                    &pingora_cache::cache_control::DirectiveKey::from_lowercase(name),
                )?;
                Some(
                    value
                        .as_ref()
                        .and_then(|v| v.parse_as_delta_seconds().ok())
                        .map(|s| Duration::from_secs(u64::from(s))),
                )
            };
        RequestDirectives {
            no_cache: cc.no_cache() || pragma_no_cache,
            no_store: cc.no_store(),
            only_if_cached: cc.only_if_cached(),
            max_age: secs("max-age").flatten(),
            min_fresh: secs("min-fresh").flatten(),
            max_stale: secs("max-stale"),
        }
    }
}

/// What freshness decisions need of a stored response: its times and status,
/// without its header block (a fresh hit reads them from the decoded-meta
/// cache without building a `CacheMeta`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    /// When the origin answered (pingora's `created`).
    pub(crate) created: SystemTime,
    /// When it was last stored or revalidated (pingora's `updated`).
    pub(crate) updated: SystemTime,
    /// End of freshness, soft purges applied.
    pub(crate) fresh_until: SystemTime,
    /// The stale-while-revalidate window after `fresh_until`.
    pub(crate) swr: Duration,
    /// The stored response's status.
    pub(crate) status: u16,
}

impl Stored {
    pub(crate) fn of(meta: &CacheMeta) -> Stored {
        Stored {
            created: meta.created(),
            updated: meta.updated(),
            fresh_until: meta.fresh_until(),
            swr: Duration::from_secs(u64::from(meta.stale_while_revalidate_sec())),
            status: meta.response_header().status.as_u16(),
        }
    }

    /// pingora's `CacheMeta::serve_stale_while_revalidate`.
    fn in_swr_window(&self, now: SystemTime) -> bool {
        !self.swr.is_zero()
            && self
                .fresh_until
                .checked_add(self.swr)
                .is_none_or(|t| t >= now)
    }
}

/// How a fresh stored response may answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FreshVerdict {
    /// As it is: a fresh hit.
    Serve,
    /// Only after revalidation: the client asks for it (no-cache, max-age,
    /// min-fresh), or a reload shortened the route's TTL to `expired_at`.
    Revalidate { expired_at: Option<SystemTime> },
    /// Served as a hit while one background request refreshes it (the
    /// route's refresh-ahead window).
    RefreshAhead,
}

/// The rules a fresh stored response passes before it answers as it is:
/// the request's directives (RFC 9111 §5.2.1), a TTL shortened by a reload,
/// and the route's refresh-ahead window (in the last n % of its freshness,
/// the entry is treated as stale-while-revalidate; it needs a SWR window,
/// which `decide` gives every entry of such a route).
pub(crate) fn fresh_verdict(
    route: &Route,
    directives: &RequestDirectives,
    stored: &Stored,
    now: SystemTime,
) -> FreshVerdict {
    let remaining = stored.fresh_until.duration_since(now).unwrap_or_default();
    let age = now.duration_since(stored.updated).unwrap_or_default();
    let too_old = directives.max_age.is_some_and(|max| age > max);
    let too_close = directives.min_fresh.is_some_and(|min| remaining < min);
    if directives.no_cache || too_old || too_close {
        return FreshVerdict::Revalidate { expired_at: None };
    }
    if let Some(limit) = route.max_fresh_until(stored.created, stored.status) {
        if limit < stored.fresh_until && limit <= now {
            return FreshVerdict::Revalidate {
                expired_at: Some(limit),
            };
        }
    }
    if let Some(percent) = route.policy.refresh_ahead {
        let lifetime = stored
            .fresh_until
            .duration_since(stored.updated)
            .unwrap_or_default();
        if remaining * 100 < lifetime * u32::from(percent) && stored.in_swr_window(now) {
            return FreshVerdict::RefreshAhead;
        }
    }
    FreshVerdict::Serve
}

/// Whether the stored response forbids serving it stale (must-revalidate,
/// proxy-revalidate, s-maxage; RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10).
pub(crate) fn must_revalidate(meta: &CacheMeta) -> bool {
    governing_cache_control(meta.response_header())
        .is_some_and(|cc| cc.must_revalidate() || cc.proxy_revalidate() || cc.has_key("s-maxage"))
}

/// The operator's storage decision for one origin response: a `CacheMeta` to
/// store, or the reason not to.
pub fn decide(
    req: &RequestHeader,
    resp: &ResponseHeader,
    route: &Route,
    now: SystemTime,
) -> std::result::Result<CacheMeta, &'static str> {
    // Vary: * can never be matched by a later request.
    let vary_star = resp
        .headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == "*"));
    if vary_star {
        return Err("vary-star");
    }
    // RFC 9213: a valid CDN-Cache-Control replaces Cache-Control for us.
    let cc = governing_cache_control(resp);
    let age = origin_age(resp);
    let ttl = cc
        .as_ref()
        .and_then(|cc| cc.fresh_duration())
        .or_else(|| expires_lifetime(resp, now))
        .map(|lifetime| lifetime.saturating_sub(age));
    // RFC 9111 §4.2.4: never stale for these (no-cache: every reuse needs a
    // successful validation, §5.2.2.4).
    let forbids_stale = cc.as_ref().is_some_and(|cc| {
        cc.must_revalidate()
            || cc.proxy_revalidate()
            || cc.has_key("s-maxage")
            || (cc.no_cache() && cc.no_cache_field_names().is_none())
    });
    let secs = |d: Option<u32>| d.map(|s| Duration::from_secs(u64::from(s)));
    let origin = OriginFreshness {
        status: resp.status.as_u16(),
        ttl,
        stale_while_revalidate: cc
            .as_ref()
            .and_then(|cc| secs(cc.stale_while_revalidate().ok().flatten())),
        stale_if_error: cc
            .as_ref()
            .and_then(|cc| secs(cc.stale_if_error().ok().flatten())),
        no_store: cc
            .as_ref()
            .is_some_and(|cc| no_store(cc, resp.status.as_u16())),
        private: cc
            .as_ref()
            .is_some_and(|cc| cc.private() && cc.private_field_names().is_none()),
        no_cache: cc
            .as_ref()
            .is_some_and(|cc| cc.no_cache() && cc.no_cache_field_names().is_none()),
        authorized_request: req.headers.contains_key(header::AUTHORIZATION),
        set_cookie: resp.headers.contains_key(header::SET_COOKIE),
        public: cc.as_ref().is_some_and(CacheControl::public),
        since_last_modified: since_last_modified(resp, now),
        public_or_s_maxage: cc
            .as_ref()
            .is_some_and(|cc| cc.allow_caching_authorized_req()),
        size: crate::fields::content_length(resp),
    };
    match route.freshness(&origin, now) {
        Freshness::DoNotStore { reason } => Err(reason),
        Freshness::Store {
            fresh_until,
            stale_while_revalidate,
            stale_if_error,
            strip_set_cookie,
        } => {
            let mut stored = resp.clone();
            if strip_set_cookie {
                stored.remove_header(&header::SET_COOKIE);
            }
            if let Some(cc) = &cc {
                cc.strip_private_headers(&mut stored);
            }
            // Hop-by-hop and per-connection headers never belong in the store.
            strip_unstorable(&mut stored);
            // RFC 9110 §6.6.1: a response received without `Date` is given the
            // time it was received, which every hit of it then carries.
            if !stored.headers.contains_key(header::DATE) {
                let date = http::HeaderValue::from_str(&httpdate::fmt_http_date(now));
                if let Ok(date) = date {
                    stored
                        .insert_header(header::DATE, date)
                        .map_err(|_| "cannot add Date")?;
                }
            }
            // Without a stale-if-error window from the route or the origin, the
            // route's stale-if-unreachable applies (for an unreachable origin
            // only: `should_serve_stale` refuses it for 5xx answers).
            // `explicit_stale_if_error(route, &stored)`, without parsing the
            // Cache-Control again (about 7,000 instructions a miss) when the
            // stripping above left both governing fields as they were.
            let cdn = crate::fields::CDN_CACHE_CONTROL;
            let cc_kept = stored.headers.get_all(header::CACHE_CONTROL)
                == resp.headers.get_all(header::CACHE_CONTROL)
                && stored.headers.get_all(cdn) == resp.headers.get_all(cdn);
            let explicit_sie = if cc_kept {
                route.policy.stale_if_error.is_some() || origin.stale_if_error.is_some()
            } else {
                explicit_stale_if_error(route, &stored)
            };
            let sie = if stale_if_error.is_zero() && !explicit_sie {
                route.policy.stale_if_unreachable
            } else {
                stale_if_error
            };
            // Refresh-ahead serves the entry while one request refreshes it,
            // which pingora does through stale-while-revalidate: give it a window.
            let swr = if route.policy.refresh_ahead.is_some() {
                stale_while_revalidate.max(Duration::from_secs(1))
            } else {
                stale_while_revalidate
            };
            let (swr, sie) = if forbids_stale {
                (0, 0)
            } else {
                (clamp_secs(swr), clamp_secs(sie))
            };
            Ok(CacheMeta::new(fresh_until, now, swr, sie, stored))
        }
    }
}

fn clamp_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// Whether a stored response's stale-if-error window was asked for, by the
/// route (`stale-if-error`) or the origin (`Cache-Control: stale-if-error`),
/// rather than being the route's `stale-if-unreachable` default.
pub fn explicit_stale_if_error(route: &Route, stored: &ResponseHeader) -> bool {
    route.policy.stale_if_error.is_some()
        || governing_cache_control(stored)
            .is_some_and(|cc| cc.stale_if_error().ok().flatten().is_some())
}
