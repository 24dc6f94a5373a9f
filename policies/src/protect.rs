//! Origin protection settings of an upstream: a request budget, how long a
//! throttling origin may pause us, the circuit breaker and the retry rule.
//!
//! Pure data and its validation; the proxy's `protect` module enforces it.

use std::time::Duration;

/// A request rate: `requests` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed in each period (at least 1).
    pub requests: u32,
    /// The period (more than 0).
    pub per: Duration,
}

impl Rate {
    /// Parse `"10/s"`, `"600/min"`, `"5/10s"`, `"1000/h"`.
    ///
    /// # Errors
    /// The text is not `N/period` with `N >= 1` and a period of more than 0.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let bad = || format!("{text:?} is not a rate, e.g. \"10/s\", \"600/min\" or \"5/10s\"");
        let (n, period) = text.trim().split_once('/').ok_or_else(bad)?;
        let requests: u32 = n.trim().parse().map_err(|_| bad())?;
        if requests == 0 {
            return Err(format!(
                "{text:?}: the number of requests must be at least 1"
            ));
        }
        let per = match period.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => humantime::parse_duration(other).map_err(|_| bad())?,
        };
        if per.is_zero() {
            return Err(bad());
        }
        Ok(Rate { requests, per })
    }

    /// The time one request's share of the budget takes to come back.
    pub fn interval(&self) -> Duration {
        self.per / self.requests
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.per.as_secs() {
            1 if self.per.subsec_nanos() == 0 => write!(f, "{}/s", self.requests),
            60 if self.per.subsec_nanos() == 0 => write!(f, "{}/min", self.requests),
            3600 if self.per.subsec_nanos() == 0 => write!(f, "{}/h", self.requests),
            _ => write!(
                f,
                "{}/{}",
                self.requests,
                humantime::format_duration(self.per)
            ),
        }
    }
}

/// The circuit breaker of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    /// Consecutive failures (connect errors, timeouts, 5xx) that open it.
    pub failures: u32,
    /// The failures must fall within this window (counted from the first).
    pub window: Duration,
    /// How long it stays open before one probe request is let through.
    pub cooldown: Duration,
}

/// How Aside protects one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    /// `rate-limit`: the request budget. Default: none.
    pub rate_limit: Option<Rate>,
    /// `burst`: requests that may go at once when the budget is unused.
    /// Default: 1 (requests are spaced evenly, so the origin never sees more
    /// than its rate in any window).
    pub burst: u32,
    /// `queue-timeout`: how long a request may wait for the budget before it
    /// is answered 503 with `Retry-After`. Default: 2s.
    pub queue_timeout: Duration,
    /// `max-retry-after`: the longest pause a 429/503 `Retry-After` may impose.
    /// Default: 10m.
    pub max_retry_after: Duration,
    /// `breaker-*`: the circuit breaker; `breaker-failures = 0` turns it off.
    /// Default: 5 failures within 10s open it for 5s.
    pub breaker: Option<Breaker>,
    /// `retry`: an idempotent request whose connection to the origin fails
    /// before any response byte is retried once. Default: true.
    pub retry: bool,
}

impl Default for Protection {
    fn default() -> Self {
        Protection {
            rate_limit: None,
            burst: 1,
            queue_timeout: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(600),
            breaker: Some(Breaker {
                failures: 5,
                window: Duration::from_secs(10),
                cooldown: Duration::from_secs(5),
            }),
            retry: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        for (text, requests, per) in [
            ("10/s", 10, 1),
            ("600/min", 600, 60),
            ("5/10s", 5, 10),
            (" 1000 / h ", 1000, 3600),
        ] {
            let r = Rate::parse(text).unwrap();
            assert_eq!(
                (r.requests, r.per),
                (requests, Duration::from_secs(per)),
                "{text}"
            );
        }
        assert_eq!(
            Rate::parse("10/s").unwrap().interval(),
            Duration::from_millis(100)
        );
        assert_eq!(Rate::parse("600/min").unwrap().to_string(), "600/min");
        assert_eq!(Rate::parse("5/10s").unwrap().to_string(), "5/10s");
        for bad in ["", "10", "0/s", "x/s", "10/0s", "10/fortnight", "-1/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }
}
