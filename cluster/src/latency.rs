//! How long Redis takes: one process-wide histogram of the round trips this
//! crate makes for the KV API and for publishing purges (the blocking stream
//! read is left out: its time is mostly waiting by design). The proxy renders
//! it on `/metrics` as `aside_cluster_redis_latency_seconds`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Upper bounds of the buckets, in seconds (a loopback round trip is well
/// under a millisecond; a slow or remote Redis shows in the upper ones).
pub const BUCKETS_SECONDS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A fixed-bucket latency histogram, lock-free.
pub struct Histogram {
    /// Per bucket (not cumulative); the last one counts what exceeds every bound.
    counts: [AtomicU64; BUCKETS_SECONDS.len() + 1],
    sum_micros: AtomicU64,
}

/// A point-in-time copy, in Prometheus' terms.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(le, cumulative count)` for each bound.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (`le="+Inf"`).
    pub count: u64,
    /// Sum of the observations, seconds.
    pub sum_seconds: f64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            counts: [const { AtomicU64::new(0) }; BUCKETS_SECONDS.len() + 1],
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Count one round trip.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = BUCKETS_SECONDS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(BUCKETS_SECONDS.len());
        self.counts[i].fetch_add(1, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    /// The cumulative form.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let buckets = BUCKETS_SECONDS
            .iter()
            .zip(&self.counts)
            .map(|(le, c)| {
                running += c.load(Relaxed);
                (*le, running)
            })
            .collect();
        let count = running + self.counts[BUCKETS_SECONDS.len()].load(Relaxed);
        HistogramSnapshot {
            buckets,
            count,
            sum_seconds: self.sum_micros.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// Round trips to Redis (KV operations and purge publishing).
pub static REDIS_LATENCY: Histogram = Histogram::new();

/// Run `call` and count how long it took, whatever its outcome.
pub async fn timed<T>(call: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = call.await;
    REDIS_LATENCY.observe(start.elapsed());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_tail_counts() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(5));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.000_25, 1));
        assert_eq!(s.buckets.last(), Some(&(1.0, 2)));
        assert!((s.sum_seconds - 5.0031).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
