//! Origin protection, per upstream: the request budget, pauses ordered by the
//! origin (`429`/`503` with `Retry-After`) and the circuit breaker.
//!
//! Every request that would go to the origin asks [`OriginGuard::admit`]
//! first (from `upstream_peer`, so a retry asks again). A request that may not
//! go gets a [`Blocked`] reason: the proxy then serves the stale copy when the
//! stored response allows it, or answers `503` with `Retry-After`. Outcomes
//! come back through [`OriginGuard::record`]: a success closes the breaker, a
//! connect error, timeout or 5xx counts towards opening it, and a throttling
//! answer pauses the upstream.
//!
//! The budget is a GCRA limiter (`governor`): `burst` requests may go at once,
//! then one per `rate.interval()`. A request that finds the budget spent
//! waits for its turn up to `queue-timeout`, unless a stale copy can answer
//! at once. The state lives for the life of the process and survives reloads
//! that keep the upstream's protection settings.

use std::num::NonZeroU32;
use std::time::{Duration, Instant, SystemTime};

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;

use aside_policies::Protection;

/// Why a request may not go to the origin now, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// The request budget is spent for this long.
    Budget(Duration),
    /// The origin asked for a pause (`Retry-After`) that lasts this long.
    Paused(Duration),
    /// The circuit breaker is open for this long.
    BreakerOpen(Duration),
}

impl Blocked {
    /// Seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(self) -> u64 {
        let d = match self {
            Blocked::Budget(d) | Blocked::Paused(d) | Blocked::BreakerOpen(d) => d,
        };
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// Error code (JSON body), `Cache-Status` detail and metrics label.
    pub fn code(self) -> &'static str {
        match self {
            Blocked::Budget(_) => "origin_rate_limited",
            Blocked::Paused(_) => "origin_paused",
            Blocked::BreakerOpen(_) => "origin_circuit_open",
        }
    }

    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Blocked::Budget(_) => {
                "the request budget of this origin is spent; retry after the time given"
            }
            Blocked::Paused(_) => "the origin asked for a pause (Retry-After); retry after it",
            Blocked::BreakerOpen(_) => {
                "the origin is failing; requests resume after a cool-down (circuit breaker open)"
            }
        }
    }
}

/// What came of one origin request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer that is not a failure.
    Success,
    /// A connect error, a timeout or a 5xx.
    Failure,
    /// A `429`/`503` with `Retry-After`: pause for this long (already capped).
    Throttled(Duration),
}

/// The circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaker {
    /// Requests go; `failures` consecutive failures since `since`.
    Closed { failures: u32, since: Instant },
    /// No request goes until `until`.
    Open { until: Instant },
    /// One probe went at `since`; the others wait for its outcome.
    HalfOpen { since: Instant },
}

/// An admitted request; `probe` when it is the half-open breaker's probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// This request decides whether the breaker closes again.
    pub probe: bool,
    /// It waited for the budget (for metrics).
    pub waited: bool,
}

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

/// The protection state of one upstream.
pub struct OriginGuard {
    /// The settings it enforces (to reuse the guard across reloads).
    pub settings: Protection,
    limiter: Option<Limiter>,
    /// A pause ordered by the origin, until this instant.
    paused_until: Mutex<Option<Instant>>,
    breaker: Mutex<Breaker>,
}

impl OriginGuard {
    /// A fresh guard for these settings.
    pub fn new(settings: Protection) -> Self {
        let limiter = settings.rate_limit.map(|rate| {
            let burst = NonZeroU32::new(settings.burst.max(1)).unwrap_or(NonZeroU32::MIN);
            // `interval()` is more than 0: the rate's period is, and requests >= 1
            // is checked at load (a zero interval would give no quota).
            let quota = Quota::with_period(rate.interval().max(Duration::from_nanos(1)))
                .map(|q| q.allow_burst(burst));
            RateLimiter::direct(quota.unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)))
        });
        OriginGuard {
            settings,
            limiter,
            paused_until: Mutex::new(None),
            breaker: Mutex::new(Breaker::Closed {
                failures: 0,
                since: Instant::now(),
            }),
        }
    }

    /// Whether a request may go to the origin now; waits for the budget up
    /// to `queue-timeout` unless `stale_available` (then a stale copy answers
    /// at once instead).
    ///
    /// # Errors
    /// The reason the request may not go, with how long it lasts.
    pub async fn admit(&self, stale_available: bool) -> Result<Admission, Blocked> {
        let now = Instant::now();
        if let Some(until) = *self.paused_until.lock() {
            if now < until {
                return Err(Blocked::Paused(until - now));
            }
        }
        let probe = self.breaker_admit(now)?;
        let mut waited = false;
        if let Some(limiter) = &self.limiter {
            let deadline = now + self.settings.queue_timeout;
            loop {
                match limiter.check() {
                    Ok(()) => break,
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(DefaultClock::default().now());
                        let now = Instant::now();
                        if stale_available || now + wait > deadline {
                            if probe {
                                // The probe did not go: let the next request probe.
                                self.reopen_probe(now);
                            }
                            return Err(Blocked::Budget(wait));
                        }
                        waited = true;
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Ok(Admission { probe, waited })
    }

    /// The breaker's part of admission: `Ok(true)` when this request is the probe.
    fn breaker_admit(&self, now: Instant) -> Result<bool, Blocked> {
        let Some(settings) = self.settings.breaker else {
            return Ok(false);
        };
        let mut state = self.breaker.lock();
        match *state {
            Breaker::Closed { .. } => Ok(false),
            Breaker::Open { until } if now < until => Err(Blocked::BreakerOpen(until - now)),
            Breaker::Open { .. } => {
                *state = Breaker::HalfOpen { since: now };
                Ok(true)
            }
            // A probe that never reported (its client went away) frees the
            // slot after one cool-down.
            Breaker::HalfOpen { since } if now.duration_since(since) >= settings.cooldown => {
                *state = Breaker::HalfOpen { since: now };
                Ok(true)
            }
            Breaker::HalfOpen { since } => Err(Blocked::BreakerOpen(
                settings.cooldown.saturating_sub(now.duration_since(since)),
            )),
        }
    }

    fn reopen_probe(&self, now: Instant) {
        let mut state = self.breaker.lock();
        if matches!(*state, Breaker::HalfOpen { .. }) {
            *state = Breaker::Open { until: now };
        }
    }

    /// Account for one origin request's outcome.
    pub fn record(&self, outcome: Outcome) {
        let now = Instant::now();
        if let Outcome::Throttled(pause) = outcome {
            let pause = pause.min(self.settings.max_retry_after);
            let mut until = self.paused_until.lock();
            let new = now + pause;
            if until.is_none_or(|u| u < new) {
                *until = Some(new);
            }
        }
        let Some(settings) = self.settings.breaker else {
            return;
        };
        let mut state = self.breaker.lock();
        let failed = !matches!(outcome, Outcome::Success);
        *state = match (*state, failed) {
            (_, false) => Breaker::Closed {
                failures: 0,
                since: now,
            },
            (Breaker::HalfOpen { .. }, true) => Breaker::Open {
                until: now + settings.cooldown,
            },
            (Breaker::Open { until }, true) => Breaker::Open { until },
            (Breaker::Closed { failures, since }, true) => {
                let (failures, since) =
                    if failures == 0 || now.duration_since(since) > settings.window {
                        (1, now)
                    } else {
                        (failures + 1, since)
                    };
                if failures >= settings.failures {
                    tracing::warn!(failures, "origin failing: circuit breaker open");
                    Breaker::Open {
                        until: now + settings.cooldown,
                    }
                } else {
                    Breaker::Closed { failures, since }
                }
            }
        };
    }

    /// `closed`, `open` or `half-open`, for metrics.
    pub fn breaker_state(&self) -> &'static str {
        match *self.breaker.lock() {
            Breaker::Closed { .. } => "closed",
            Breaker::Open { until } if Instant::now() >= until => "half-open",
            Breaker::Open { .. } => "open",
            Breaker::HalfOpen { .. } => "half-open",
        }
    }
}

/// The pause a throttling answer asks for: `429` or `503` with `Retry-After`
/// in seconds or as an HTTP date (RFC 9110 §10.2.3). `None` for any other answer.
pub fn retry_after(status: u16, value: Option<&str>, now: SystemTime) -> Option<Duration> {
    if status != 429 && status != 503 {
        return None;
    }
    let value = value?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aside_policies::{Breaker as BreakerSettings, Rate};

    fn settings() -> Protection {
        Protection {
            breaker: Some(BreakerSettings {
                failures: 3,
                window: Duration::from_secs(60),
                cooldown: Duration::from_millis(200),
            }),
            ..Protection::default()
        }
    }

    #[tokio::test]
    async fn breaker_opens_after_consecutive_failures_then_probes_once() {
        let g = OriginGuard::new(settings());
        for _ in 0..2 {
            g.record(Outcome::Failure);
            assert!(g.admit(false).await.is_ok());
        }
        g.record(Outcome::Failure);
        assert!(matches!(g.admit(false).await, Err(Blocked::BreakerOpen(_))));
        assert_eq!(g.breaker_state(), "open");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let probe = g.admit(false).await.unwrap();
        assert!(probe.probe);
        // Only one probe at a time.
        assert!(matches!(g.admit(false).await, Err(Blocked::BreakerOpen(_))));
        g.record(Outcome::Failure);
        assert!(matches!(g.admit(false).await, Err(Blocked::BreakerOpen(_))));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(g.admit(false).await.unwrap().probe);
        g.record(Outcome::Success);
        assert_eq!(g.breaker_state(), "closed");
        assert!(!g.admit(false).await.unwrap().probe);
    }

    #[tokio::test]
    async fn a_success_resets_the_failure_count() {
        let g = OriginGuard::new(settings());
        for _ in 0..10 {
            g.record(Outcome::Failure);
            g.record(Outcome::Failure);
            g.record(Outcome::Success);
        }
        assert!(g.admit(false).await.is_ok());
    }

    #[tokio::test]
    async fn throttling_pauses_and_is_capped() {
        let g = OriginGuard::new(Protection {
            max_retry_after: Duration::from_secs(5),
            ..settings()
        });
        g.record(Outcome::Throttled(Duration::from_secs(3600)));
        match g.admit(false).await {
            Err(Blocked::Paused(d)) => assert!(d <= Duration::from_secs(5), "{d:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn budget_waits_within_the_queue_timeout_and_refuses_beyond() {
        let g = OriginGuard::new(Protection {
            rate_limit: Some(Rate::parse("10/s").unwrap()),
            burst: 1,
            queue_timeout: Duration::from_millis(250),
            ..settings()
        });
        let start = Instant::now();
        assert!(!g.admit(false).await.unwrap().waited);
        assert!(g.admit(false).await.unwrap().waited);
        assert!(g.admit(false).await.unwrap().waited);
        assert!(start.elapsed() >= Duration::from_millis(190));
        // With a stale copy at hand, no wait: answered at once.
        assert!(matches!(g.admit(true).await, Err(Blocked::Budget(_))));
        // Three more at once: the queue holds 250 ms, so the last is refused.
        let (a, b, c) = tokio::join!(g.admit(false), g.admit(false), g.admit(false));
        let refused = [a, b, c].iter().filter(|r| r.is_err()).count();
        assert!(refused >= 1, "the queue timeout was not enforced");
    }

    #[test]
    fn retry_after_values() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            retry_after(429, Some("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after(503, Some(" 0 "), now), Some(Duration::ZERO));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            retry_after(429, Some(&date), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after(200, Some("7"), now), None);
        assert_eq!(retry_after(429, None, now), None);
        assert_eq!(retry_after(429, Some("soon"), now), None);
    }
}
