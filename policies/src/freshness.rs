//! The operator's storage decision for one response, with `now` a parameter.
//!
//! Interpreting the origin's Cache-Control is pingora-cache's job (in the
//! proxy); it hands the result over as [`OriginFreshness`]. This module only
//! applies the route's policy to it, in this order:
//! 1. `cache = false` -> do not store;
//! 2. `no-store` / `private` from the origin -> do not store, in every mode
//!    (never share private data);
//! 3. request with `Authorization` -> do not store unless `cache-authorized`
//!    or the origin marked it shareable (`public`, `s-maxage`,
//!    `must-revalidate`: RFC 9111 3.5);
//! 4. `Set-Cookie` -> do not store, or store without it (`set-cookie = "strip"`);
//! 5. larger than `max-object-size`, or a status not cacheable -> do not store;
//! 6. the TTL by mode (see [`Route::freshness`]), with heuristic freshness
//!    (RFC 9111 §4.2.2) for responses that have only a `Last-Modified`;
//!    stale-while-revalidate and
//!    stale-if-error are the policy's when configured, else the origin's, else 0.

use std::time::{Duration, SystemTime};

use crate::route::{Mode, Route, SetCookie, DEFAULT_CACHEABLE_STATUSES};

/// What the origin said about a response, as interpreted by the proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginFreshness {
    /// Response status.
    pub status: u16,
    /// Freshness lifetime remaining (already minus `Age`); `None` when the
    /// origin gave no max-age, s-maxage or Expires.
    pub ttl: Option<Duration>,
    /// `stale-while-revalidate` from the origin's Cache-Control.
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error` from the origin's Cache-Control.
    pub stale_if_error: Option<Duration>,
    /// `Cache-Control: no-store`.
    pub no_store: bool,
    /// `Cache-Control: private`.
    pub private: bool,
    /// `Cache-Control: no-cache`: store, but revalidate every time (TTL 0 in
    /// respect-origin and clamp modes; override ignores it).
    pub no_cache: bool,
    /// The request carried `Authorization`.
    pub authorized_request: bool,
    /// The response carries `Set-Cookie`.
    pub set_cookie: bool,
    /// `Cache-Control: public`: heuristic freshness applies whatever the
    /// status (RFC 9111 §4.2.2).
    pub public: bool,
    /// Time from `Last-Modified` to `Date` (or now); `None` without a valid
    /// `Last-Modified`. The base of heuristic freshness.
    pub since_last_modified: Option<Duration>,
    /// `public`, `s-maxage` or `must-revalidate`: a response to an authorized
    /// request may be shared (RFC 9111 3.5).
    pub public_or_s_maxage: bool,
    /// `Content-Length`, when known.
    pub size: Option<u64>,
}

/// The decision for one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Store it, fresh until `fresh_until`, then usable stale for the given
    /// windows.
    Store {
        /// End of freshness (may equal `now`: stored but revalidated on every use).
        fresh_until: SystemTime,
        /// Serve stale while revalidating, after `fresh_until`.
        stale_while_revalidate: Duration,
        /// Serve stale when the origin fails, after `fresh_until`.
        stale_if_error: Duration,
        /// Remove `Set-Cookie` from the stored copy.
        strip_set_cookie: bool,
    },
    /// Do not store it.
    DoNotStore {
        /// One of `"cache disabled"`, `"no-store"`, `"private"`,
        /// `"authorization"`, `"set-cookie"`, `"too large"`,
        /// `"status not cacheable"`, `"no freshness information"`.
        reason: &'static str,
    },
}

impl Freshness {
    /// Whether the decision is to store.
    pub fn is_store(&self) -> bool {
        matches!(self, Freshness::Store { .. })
    }
}

impl Route {
    /// The operator's decision for a response, with `now` as a parameter.
    ///
    /// TTL by mode:
    /// - override: `status-ttl` for the status, else `ttl`, whatever the origin says;
    /// - respect-origin: the origin's TTL (0 for `no-cache`), else `status-ttl`
    ///   for the status, else `default-ttl`, else the heuristic TTL, else do
    ///   not store;
    /// - clamp: the origin's TTL (0 for `no-cache`) clamped to
    ///   `min-ttl ..= max-ttl`, else `status-ttl`, else `default-ttl`, else the
    ///   heuristic TTL clamped the same way, else do not store.
    ///
    /// The heuristic TTL (RFC 9111 §4.2.2) is `heuristic-freshness` of the time
    /// since `Last-Modified`, at most `heuristic-max`, for a response without
    /// explicit freshness whose status is cacheable by default or that is
    /// `public`.
    pub fn freshness(&self, origin: &OriginFreshness, now: SystemTime) -> Freshness {
        let p = &self.policy;
        let heuristic = self.heuristic_ttl(origin);
        let reason = if !p.cache {
            Some("cache disabled")
        } else if origin.no_store {
            Some("no-store")
        } else if origin.private {
            Some("private")
        } else if origin.authorized_request && !p.cache_authorized && !origin.public_or_s_maxage {
            Some("authorization")
        } else if origin.set_cookie && p.set_cookie == SetCookie::DoNotCache {
            Some("set-cookie")
        } else if origin.size.is_some_and(|s| s > p.max_object_size) {
            Some("too large")
        } else if !self.status_storable(origin, heuristic.is_some()) {
            Some("status not cacheable")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Freshness::DoNotStore { reason };
        }
        let status_ttl = p.status_ttl.get(&origin.status).copied();
        let origin_ttl = if origin.no_cache {
            Some(Duration::ZERO)
        } else {
            origin.ttl
        };
        let clamp = |t: Duration| {
            let t = t.max(p.min_ttl);
            p.max_ttl.map_or(t, |max| t.min(max))
        };
        let ttl = match p.mode {
            Mode::Override => status_ttl.or(p.ttl),
            Mode::RespectOrigin => origin_ttl.or(status_ttl).or(p.default_ttl).or(heuristic),
            Mode::Clamp => origin_ttl
                .map(clamp)
                .or(status_ttl)
                .or(p.default_ttl)
                .or(heuristic.map(clamp)),
        };
        let Some(ttl) = ttl else {
            return Freshness::DoNotStore {
                reason: "no freshness information",
            };
        };
        Freshness::Store {
            fresh_until: add(now, ttl),
            stale_while_revalidate: p
                .stale_while_revalidate
                .or(origin.stale_while_revalidate)
                .unwrap_or_default(),
            stale_if_error: p
                .stale_if_error
                .or(origin.stale_if_error)
                .unwrap_or_default(),
            strip_set_cookie: origin.set_cookie && p.set_cookie == SetCookie::Strip,
        }
    }

    /// Whether the response's status may be stored: listed in `cacheable-statuses`,
    /// or (when the operator kept the default list) any final status with
    /// explicit origin freshness (or heuristic freshness because it is
    /// `public`) outside override mode (RFC 9111 §3).
    fn status_storable(&self, origin: &OriginFreshness, heuristic: bool) -> bool {
        let p = &self.policy;
        if p.cacheable_statuses.contains(&origin.status) {
            return true;
        }
        let explicit = origin.ttl.is_some() || origin.no_cache || heuristic;
        p.any_status_with_explicit_freshness
            && explicit
            && p.mode != Mode::Override
            && (200..600).contains(&origin.status)
            && origin.status != 206
    }

    /// The heuristic freshness lifetime (RFC 9111 §4.2.2): `None` in override
    /// mode, when `heuristic-freshness` is off, when the origin gave explicit
    /// freshness, without `Last-Modified`, or for a status that is neither
    /// cacheable by default nor marked `public`.
    fn heuristic_ttl(&self, origin: &OriginFreshness) -> Option<Duration> {
        let p = &self.policy;
        let percent = p.heuristic_freshness?;
        let since = origin.since_last_modified?;
        let eligible = p.mode != Mode::Override
            && origin.ttl.is_none()
            && !origin.no_cache
            && (origin.public || DEFAULT_CACHEABLE_STATUSES.contains(&origin.status))
            && origin.status != 206;
        eligible.then(|| (since * u32::from(percent) / 100).min(p.heuristic_max))
    }

    /// Latest `fresh_until` this route allows today for an entry of `status`
    /// created at `created`: override: `created + (status-ttl or ttl)`; clamp:
    /// `created + max-ttl` (None without max-ttl); respect-origin: None; a route
    /// with `cache = false`: `created` (nothing of it is fresh). The proxy uses
    /// it to shorten stored entries after a reload.
    pub fn max_fresh_until(&self, created: SystemTime, status: u16) -> Option<SystemTime> {
        let p = &self.policy;
        if !p.cache {
            return Some(created);
        }
        match p.mode {
            Mode::Override => p
                .status_ttl
                .get(&status)
                .copied()
                .or(p.ttl)
                .map(|t| add(created, t)),
            Mode::Clamp => p.max_ttl.map(|t| add(created, t)),
            Mode::RespectOrigin => None,
        }
    }
}

/// `t + d`, saturating far in the future instead of panicking on overflow.
fn add(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(t)
}
