//! What happened to a request in the cache, as one enum used for the
//! `Cache-Status` (RFC 9211) and `X-Cache` headers, the access log and metrics.

use std::time::{Duration, SystemTime};

use pingora_cache::CachePhase;

/// `Cache-Status` (RFC 9211).
pub(crate) const CACHE_STATUS: http::HeaderName = http::HeaderName::from_static("cache-status");
/// `X-Cache`, for people who grep for it.
pub(crate) const X_CACHE: http::HeaderName = http::HeaderName::from_static("x-cache");

/// The cache outcome of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the store, fresh.
    Hit,
    /// Fetched from the origin (nothing usable stored).
    Miss,
    /// A stale copy existed; the origin sent a full new response.
    Expired,
    /// Served a stale copy (stale-while-revalidate or stale-if-error).
    Stale,
    /// A stale copy was revalidated with the origin (304) and served.
    Revalidated,
    /// Caching was not used for this request (method, route, policy).
    Bypass,
}

impl CacheStatus {
    /// Lowercase name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Expired => "expired",
            CacheStatus::Stale => "stale",
            CacheStatus::Revalidated => "revalidated",
            CacheStatus::Bypass => "bypass",
        }
    }

    /// Value of the `X-Cache` header.
    pub fn x_cache(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss | CacheStatus::Expired => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Revalidated => "REVALIDATED",
            CacheStatus::Bypass => "BYPASS",
        }
    }

    /// Map pingora's cache phase at response time.
    pub fn from_phase(phase: CachePhase) -> CacheStatus {
        match phase {
            CachePhase::Hit => CacheStatus::Hit,
            CachePhase::Miss => CacheStatus::Miss,
            CachePhase::Expired => CacheStatus::Expired,
            CachePhase::Stale | CachePhase::StaleUpdating => CacheStatus::Stale,
            CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => CacheStatus::Revalidated,
            CachePhase::Disabled(_)
            | CachePhase::Bypass
            | CachePhase::Uninit
            | CachePhase::CacheKey => CacheStatus::Bypass,
        }
    }

    /// The RFC 9211 `Cache-Status` value.
    ///
    /// `stored` says whether the stored response was written when this header
    /// leaves: true only for a revalidation (the 304's headers are merged into
    /// the entry before the answer goes out). A miss streams its body to the
    /// client while it is written to the store, so whether it ends up stored
    /// is not known yet (the body may still fail, or outgrow
    /// `max-object-size`): a miss never says `stored`.
    /// `fresh_until` is the stored response's on hits, for the remaining `ttl`.
    pub fn header_value(
        self,
        fresh_until: Option<SystemTime>,
        now: SystemTime,
        upstream_status: Option<u16>,
        stored: bool,
        detail: Option<&str>,
    ) -> String {
        let mut v = String::from("Aside");
        match self {
            CacheStatus::Hit | CacheStatus::Stale => {
                v.push_str("; hit");
                if let Some(fresh_until) = fresh_until {
                    v.push_str("; ttl=");
                    v.push_str(&ttl_seconds(fresh_until, now).to_string());
                }
                if self == CacheStatus::Stale {
                    // Why stale: `origin-down`, `origin-paused`, ... or plain `stale`
                    // (stale-while-revalidate, client max-stale).
                    v.push_str("; detail=");
                    v.push_str(detail.unwrap_or("stale"));
                }
            }
            CacheStatus::Miss => v.push_str("; fwd=miss"),
            CacheStatus::Expired | CacheStatus::Revalidated => v.push_str("; fwd=stale"),
            CacheStatus::Bypass => v.push_str("; fwd=bypass"),
        }
        if let Some(status) = upstream_status {
            if !matches!(self, CacheStatus::Hit | CacheStatus::Stale) {
                v.push_str("; fwd-status=");
                v.push_str(&status.to_string());
            }
        }
        if stored && self == CacheStatus::Revalidated {
            v.push_str("; stored");
        }
        if let Some(detail) = detail {
            if self != CacheStatus::Stale {
                v.push_str("; detail=");
                v.push_str(detail);
            }
        }
        v
    }
}

/// Remaining freshness in whole seconds; negative once stale (RFC 9211 §2.4).
fn ttl_seconds(fresh_until: SystemTime, now: SystemTime) -> i64 {
    match fresh_until.duration_since(now) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(round_up(e.duration())).unwrap_or(i64::MAX),
    }
}

fn round_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            CacheStatus::Miss.header_value(None, now, Some(200), true, None),
            "Aside; fwd=miss; fwd-status=200"
        );
        assert_eq!(
            CacheStatus::Bypass.header_value(None, now, Some(200), false, Some("method")),
            "Aside; fwd=bypass; fwd-status=200; detail=method"
        );
        assert_eq!(
            CacheStatus::Revalidated.header_value(None, now, Some(304), true, None),
            "Aside; fwd=stale; fwd-status=304; stored"
        );
        assert_eq!(ttl_seconds(now + Duration::from_secs(42), now), 42);
        assert_eq!(ttl_seconds(now - Duration::from_millis(1500), now), -2);
    }

    #[test]
    fn phases_map_to_x_cache() {
        assert_eq!(CacheStatus::from_phase(CachePhase::Hit).x_cache(), "HIT");
        assert_eq!(
            CacheStatus::from_phase(CachePhase::StaleUpdating).x_cache(),
            "STALE"
        );
        assert_eq!(
            CacheStatus::from_phase(CachePhase::Revalidated).x_cache(),
            "REVALIDATED"
        );
        assert_eq!(
            CacheStatus::from_phase(CachePhase::Bypass).x_cache(),
            "BYPASS"
        );
        assert_eq!(
            CacheStatus::from_phase(CachePhase::Expired).x_cache(),
            "MISS"
        );
    }
}
