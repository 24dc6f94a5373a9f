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
//!
//! In cluster mode the budget is one token bucket in Redis shared by every
//! node ([`aside_cluster::SharedBudget`]). While Redis cannot be reached, each
//! node falls back to its share: the rate divided by the live nodes it last
//! saw, and leaves Redis alone for [`REDIS_RETRY`] before trying it again.

use std::num::NonZeroU32;
use std::sync::Arc;
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

    /// The `Cache-Status` detail (RFC 9211 tokens use `-`).
    pub fn detail(self) -> &'static str {
        match self {
            Blocked::Budget(_) => "origin-rate-limited",
            Blocked::Paused(_) => "origin-paused",
            Blocked::BreakerOpen(_) => "origin-circuit-open",
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

/// After a failed call to the shared budget, how long the node's own share
/// decides before Redis is asked again (so an outage costs one timeout, not one per request).
pub const REDIS_RETRY: Duration = Duration::from_secs(5);

/// An upstream's budget shared through Redis.
pub struct SharedBudget {
    /// The Redis side.
    pub budget: aside_cluster::SharedBudget,
    /// The upstream's name: the bucket's name, and the metrics label.
    pub upstream: String,
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
    /// The cluster's budget, when there is a cluster.
    shared: Option<SharedBudget>,
    /// While Redis is unreachable: the share of `live nodes` it was built for, and
    /// until when Redis is left alone.
    fallback: Mutex<Option<Fallback>>,
    /// Requests waiting for the budget, first come first served (tokio's
    /// mutex is fair): only the head of the queue polls the limiter.
    queue: tokio::sync::Mutex<()>,
    /// A pause ordered by the origin, until this instant.
    paused_until: Mutex<Option<Instant>>,
    breaker: Mutex<Breaker>,
}

/// The node's own share of a shared budget, while Redis is unreachable.
struct Fallback {
    nodes: u64,
    limiter: Arc<Limiter>,
    redis_after: Instant,
}

/// A limiter of `burst` at once, then one per `interval`.
fn new_limiter(interval: Duration, burst: u32) -> Limiter {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    // `interval()` is more than 0: the rate's period is, and requests >= 1
    // is checked at load (a zero interval would give no quota).
    let quota =
        Quota::with_period(interval.max(Duration::from_nanos(1))).map(|q| q.allow_burst(burst));
    RateLimiter::direct(quota.unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)))
}

impl OriginGuard {
    /// A fresh guard for these settings; its budget is `shared` through Redis
    /// when given (and the upstream has a `rate-limit`).
    pub fn new(settings: Protection, shared: Option<SharedBudget>) -> Self {
        let limiter = settings
            .rate_limit
            .map(|rate| new_limiter(rate.interval(), settings.burst));
        OriginGuard {
            shared: shared.filter(|_| settings.rate_limit.is_some()),
            fallback: Mutex::new(None),
            queue: tokio::sync::Mutex::new(()),
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
            let refused = |wait: Duration| {
                if probe {
                    // The probe did not go: let the next request probe.
                    self.reopen_probe(Instant::now());
                }
                Err(Blocked::Budget(wait))
            };
            // Behind earlier requests: a stale copy answers at once, otherwise
            // wait for our turn until the queue timeout.
            let turn = match self.queue.try_lock() {
                Ok(turn) => turn,
                Err(_) if stale_available => return refused(self.settings.queue_timeout),
                Err(_) => {
                    waited = true;
                    match tokio::time::timeout_at(deadline.into(), self.queue.lock()).await {
                        Ok(turn) => turn,
                        Err(_) => return refused(self.settings.queue_timeout),
                    }
                }
            };
            loop {
                match self.take(limiter).await {
                    Ok(()) => break,
                    Err(wait) => {
                        if stale_available || Instant::now() + wait > deadline {
                            return refused(wait);
                        }
                        waited = true;
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            drop(turn);
        }
        Ok(Admission { probe, waited })
    }

    /// Takes one request from the budget: the cluster's, or the node's own
    /// (`limiter`, or its share of the cluster's while Redis is unreachable).
    /// `Err` holds the wait for the next turn.
    async fn take(&self, limiter: &Limiter) -> Result<(), Duration> {
        let local = |limiter: &Limiter| {
            limiter
                .check()
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
        };
        let Some(shared) = &self.shared else {
            return local(limiter);
        };
        let now = Instant::now();
        let share = {
            let fallback = self.fallback.lock();
            match fallback.as_ref() {
                Some(f) if now < f.redis_after => Some(f.limiter.clone()),
                _ => None,
            }
        };
        if let Some(share) = share {
            return local(&share);
        }
        let (rate, burst) = match self.settings.rate_limit {
            Some(rate) => (rate, self.settings.burst),
            None => return Ok(()),
        };
        let per_second = 1.0 / rate.interval().as_secs_f64().max(1e-9);
        match shared
            .budget
            .take(&shared.upstream, burst, per_second)
            .await
        {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(wait),
            Err(e) => {
                let nodes = shared.budget.live_nodes();
                let share = {
                    let mut fallback = self.fallback.lock();
                    let keep = fallback.as_ref().filter(|f| f.nodes == nodes);
                    let limiter = match keep {
                        Some(f) => f.limiter.clone(),
                        None => {
                            tracing::warn!(
                                upstream = %shared.upstream, error = %e, nodes,
                                "shared request budget unreachable: this node keeps to its share"
                            );
                            let n = u32::try_from(nodes).unwrap_or(u32::MAX);
                            // The node's share: `1/nodes` of the rate, and of the burst.
                            Arc::new(new_limiter(rate.interval() * n, (burst / n).max(1)))
                        }
                    };
                    *fallback = Some(Fallback {
                        nodes,
                        limiter: limiter.clone(),
                        redis_after: Instant::now() + REDIS_RETRY,
                    });
                    limiter
                };
                crate::metrics::record_protection(&shared.upstream, "budget_fallback");
                local(&share)
            }
        }
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
        let g = OriginGuard::new(settings(), None);
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
        let g = OriginGuard::new(settings(), None);
        for _ in 0..10 {
            g.record(Outcome::Failure);
            g.record(Outcome::Failure);
            g.record(Outcome::Success);
        }
        assert!(g.admit(false).await.is_ok());
    }

    #[tokio::test]
    async fn throttling_pauses_and_is_capped() {
        let g = OriginGuard::new(
            Protection {
                max_retry_after: Duration::from_secs(5),
                ..settings()
            },
            None,
        );
        g.record(Outcome::Throttled(Duration::from_secs(3600)));
        match g.admit(false).await {
            Err(Blocked::Paused(d)) => assert!(d <= Duration::from_secs(5), "{d:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn budget_waits_within_the_queue_timeout_and_refuses_beyond() {
        let g = OriginGuard::new(
            Protection {
                rate_limit: Some(Rate::parse("10/s").unwrap()),
                burst: 1,
                queue_timeout: Duration::from_millis(250),
                ..settings()
            },
            None,
        );
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_budget_queue_is_first_come_first_served() {
        // 20/s, one at a time; 40 arrivals 25 ms apart: in arrival order the
        // i-th goes at i × 50 ms, having waited i × 25 ms (at most 1 s). Served
        // out of order, early arrivals wait up to 2 s and miss the 1.5 s timeout.
        let g = std::sync::Arc::new(OriginGuard::new(
            Protection {
                rate_limit: Some(Rate::parse("20/s").unwrap()),
                burst: 1,
                queue_timeout: Duration::from_millis(1500),
                ..settings()
            },
            None,
        ));
        let mut tasks = Vec::new();
        for i in 0..40u64 {
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(25 * i)).await;
                let asked = Instant::now();
                let admitted = g.admit(false).await.is_ok();
                (i, admitted, asked)
            }));
        }
        for t in tasks {
            let (i, admitted, asked) = t.await.unwrap();
            assert!(admitted, "request {i} refused after {:?}", asked.elapsed());
        }
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
