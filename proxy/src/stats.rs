//! The dashboard's figures without Prometheus: a ring buffer of 10-second points
//! (`GET /stats/series`) and approximate heavy hitters (`GET /stats/top`).
//!
//! The series costs nothing on the request path: a background task reads the
//! cumulative counters of [`crate::metrics`] and the store every
//! [`INTERVAL`] and keeps the differences. The heavy hitters are one
//! space-saving summary per kind (URLs, hosts), each a few hundred entries
//! behind a mutex that a request only *tries* to take: under contention the
//! request is not counted, which keeps the hit path free of waits and leaves
//! the ranking approximate, as it is anyway.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use utoipa::ToSchema;

use crate::metrics::{Totals, UpstreamTotals};

/// Width of one point of the series.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Points kept: one hour.
pub const POINTS: usize = 360;
/// URLs and hosts tracked by the heavy-hitter summaries.
const TOP_URLS: usize = 256;
const TOP_HOSTS: usize = 64;
/// Longest URL kept in the summary (longer ones are cut, marked with `…`).
const MAX_NAME: usize = 512;

/// Requests in one interval by cache status.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct RequestCounts {
    pub hit: u64,
    /// Misses, including expired entries fetched again.
    pub miss: u64,
    pub stale: u64,
    pub revalidated: u64,
    pub bypass: u64,
    /// Requests answered with an error page (origin unreachable, refused, ...).
    pub error: u64,
}

/// One upstream's figures over one interval.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamPoint {
    pub requests: u64,
    pub errors: u64,
    /// Median origin latency (ms), interpolated in the histogram's buckets; null without requests.
    pub p50_ms: Option<f64>,
    /// 99th percentile origin latency (ms); null without requests.
    pub p99_ms: Option<f64>,
}

/// A store tier at the end of an interval.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct TierPoint {
    /// Entries at the end of the interval.
    pub entries: u64,
    /// Bytes at the end of the interval.
    pub bytes: u64,
    /// Entries evicted during the interval.
    pub evictions: u64,
}

/// Both tiers.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct Tiers {
    pub hot: TierPoint,
    pub disk: TierPoint,
}

/// One 10-second point.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Point {
    /// End of the interval, Unix seconds.
    pub t: u64,
    pub requests: RequestCounts,
    /// Keyed by upstream name; upstreams without traffic in the interval are left out.
    #[schema(value_type = HashMap<String, UpstreamPoint>)]
    pub upstreams: std::collections::BTreeMap<String, UpstreamPoint>,
    pub tiers: Tiers,
}

/// `GET /stats/series` answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    /// Seconds per point (10).
    pub interval_seconds: u64,
    /// Completed intervals, oldest first, at most one hour.
    pub points: Vec<Point>,
}

/// What the previous sample read, to take differences from.
struct Previous {
    totals: Totals,
    hot_evictions: u64,
    disk_evictions: u64,
}

/// The ring buffer and the sampler's memory.
pub struct Recorder {
    points: Mutex<VecDeque<Point>>,
    previous: Mutex<Option<Previous>>,
}

/// The process-wide recorder (the counters it reads are process-wide too).
pub static RECORDER: LazyLock<Recorder> = LazyLock::new(|| Recorder {
    points: Mutex::new(VecDeque::with_capacity(POINTS)),
    previous: Mutex::new(None),
});

impl Recorder {
    /// Reads the counters now; from the second call on, appends the point for
    /// the time since the previous call.
    pub fn sample(&self, totals: Totals, store: &aside_store::StoreStats, now: SystemTime) {
        let mut previous = self.previous.lock();
        let current = Previous {
            totals,
            hot_evictions: store.hot_evictions,
            disk_evictions: store.evictions,
        };
        if let Some(before) = previous.as_ref() {
            let point = Point {
                t: now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                requests: request_counts(&before.totals, &current.totals),
                upstreams: current
                    .totals
                    .upstreams
                    .iter()
                    .filter_map(|u| {
                        let old = before.totals.upstreams.iter().find(|o| o.name == u.name);
                        upstream_point(old, u).map(|p| (u.name.clone(), p))
                    })
                    .collect(),
                tiers: Tiers {
                    hot: TierPoint {
                        entries: store.hot_entries,
                        bytes: store.hot_bytes,
                        evictions: current.hot_evictions.saturating_sub(before.hot_evictions),
                    },
                    disk: TierPoint {
                        entries: store.cold_entries,
                        bytes: store.cold_bytes,
                        evictions: current.disk_evictions.saturating_sub(before.disk_evictions),
                    },
                },
            };
            let mut points = self.points.lock();
            if points.len() == POINTS {
                points.pop_front();
            }
            points.push_back(point);
        }
        *previous = Some(current);
    }

    /// Sets the baseline the first point counts from, unless there is one: no
    /// request (the proxy's counters start at zero with the process, and the
    /// proxy may serve before this task first runs, which a baseline read from
    /// them would hide), and the store's eviction counts as they are now.
    pub fn start(&self, store: &aside_store::StoreStats) {
        self.previous.lock().get_or_insert_with(|| Previous {
            totals: Totals::default(),
            hot_evictions: store.hot_evictions,
            disk_evictions: store.evictions,
        });
    }

    /// The points recorded so far, oldest first.
    pub fn series(&self) -> Series {
        Series {
            interval_seconds: INTERVAL.as_secs(),
            points: self.points.lock().iter().cloned().collect(),
        }
    }
}

/// Samples the counters every [`INTERVAL`] until the process ends.
pub async fn run_sampler(store: aside_store::Store) {
    RECORDER.start(&store.stats());
    let first = tokio::time::Instant::now() + INTERVAL;
    let mut tick = tokio::time::interval_at(first, INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        RECORDER.sample(crate::metrics::totals(), &store.stats(), SystemTime::now());
    }
}

fn request_counts(before: &Totals, now: &Totals) -> RequestCounts {
    let mut counts = RequestCounts::default();
    for (status, total) in &now.requests {
        let old = before
            .requests
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        let n = total.saturating_sub(old);
        match status.as_str() {
            "hit" => counts.hit += n,
            "miss" | "expired" => counts.miss += n,
            "stale" => counts.stale += n,
            "revalidated" => counts.revalidated += n,
            "bypass" => counts.bypass += n,
            _ => counts.error += n,
        }
    }
    counts
}

fn upstream_point(before: Option<&UpstreamTotals>, now: &UpstreamTotals) -> Option<UpstreamPoint> {
    let requests = now
        .requests
        .saturating_sub(before.map_or(0, |b| b.requests));
    let errors = now.errors.saturating_sub(before.map_or(0, |b| b.errors));
    if requests == 0 && errors == 0 {
        return None;
    }
    let buckets: Vec<(f64, u64)> = now
        .latency_buckets
        .iter()
        .map(|&(le, count)| {
            let old = before
                .and_then(|b| b.latency_buckets.iter().find(|(l, _)| *l == le))
                .map_or(0, |(_, c)| *c);
            (le, count.saturating_sub(old))
        })
        .collect();
    Some(UpstreamPoint {
        requests,
        errors,
        p50_ms: quantile(&buckets, 0.5).map(|s| s * 1000.0),
        p99_ms: quantile(&buckets, 0.99).map(|s| s * 1000.0),
    })
}

/// Prometheus' `histogram_quantile`: linear interpolation inside the bucket that
/// holds the rank; the highest finite bound when the rank is in the +Inf bucket.
fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(le, count) in buckets {
        if count as f64 >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = (count - lower.1) as f64;
            let fraction = if in_bucket > 0.0 {
                (rank - lower.1 as f64) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * fraction);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

/// One heavy hitter.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopItem {
    /// The URL (`scheme://host/path?query`) or the host.
    pub name: String,
    /// Requests counted (may be over-estimated by up to `error`).
    pub requests: u64,
    /// Of those, answered from the cache (fresh or stale hit).
    pub hits: u64,
    /// `hits / requests counted since this item entered the summary`.
    pub hit_ratio: f64,
    /// Upper bound of the over-estimate of `requests` (space-saving algorithm).
    pub error: u64,
}

/// `GET /stats/top` answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Top {
    /// Most requested URLs, most requested first.
    pub urls: Vec<TopItem>,
    /// Most requested hosts, most requested first.
    pub hosts: Vec<TopItem>,
}

struct Counter {
    name: String,
    count: u64,
    hits: u64,
    error: u64,
}

/// A space-saving summary (Metwally et al.): at most `capacity` counters; a new
/// name takes over the smallest counter, inheriting its count as its error.
///
/// Finding the smallest counter is a scan of all of them, paid once for every
/// counter that holds the smallest count at the time (`victims`): with many
/// distinct names (a cold tier read uniformly), most counters sit at the
/// smallest count, and a scan per new name was ~5,000 instructions a request.
struct Summary {
    capacity: usize,
    by_hash: HashMap<u64, Counter>,
    /// Counters that held the smallest count at the last scan, with that count.
    /// Counts only grow and a new counter starts above the smallest, so one
    /// whose count has not moved is still a smallest counter.
    victims: Vec<(u64, u64)>,
}

impl Summary {
    fn new(capacity: usize) -> Summary {
        Summary {
            capacity,
            by_hash: HashMap::with_capacity(capacity),
            victims: Vec::new(),
        }
    }

    /// Removes a smallest counter, returning it.
    fn evict_smallest(&mut self) -> Option<Counter> {
        loop {
            if self.victims.is_empty() {
                let min = self.by_hash.values().map(|c| c.count).min()?;
                self.victims.extend(
                    self.by_hash
                        .iter()
                        .filter(|(_, c)| c.count == min)
                        .map(|(&h, _)| (h, min)),
                );
            }
            while let Some((hash, count)) = self.victims.pop() {
                if self.by_hash.get(&hash).is_some_and(|c| c.count == count) {
                    return self.by_hash.remove(&hash);
                }
            }
        }
    }

    /// Counts one request for `hash`; `name` writes the name into an empty
    /// string when the hash is new (the evicted counter's, reused).
    fn record(&mut self, hash: u64, name: impl FnOnce(&mut String), hit: bool) {
        let hit = u64::from(hit);
        if let Some(c) = self.by_hash.get_mut(&hash) {
            c.count += 1;
            c.hits += hit;
            return;
        }
        let (error, mut buf) = if self.by_hash.len() >= self.capacity {
            match self.evict_smallest() {
                Some(c) => (c.count, c.name),
                None => return,
            }
        } else {
            (0, String::new())
        };
        buf.clear();
        name(&mut buf);
        self.by_hash.insert(
            hash,
            Counter {
                name: buf,
                count: error + 1,
                hits: hit,
                error,
            },
        );
    }

    fn top(&self, limit: usize) -> Vec<TopItem> {
        let mut items: Vec<&Counter> = self.by_hash.values().collect();
        items.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        items
            .into_iter()
            .take(limit)
            .map(|c| {
                let seen = (c.count - c.error).max(1);
                TopItem {
                    name: c.name.clone(),
                    requests: c.count,
                    hits: c.hits,
                    hit_ratio: c.hits as f64 / seen as f64,
                    error: c.error,
                }
            })
            .collect()
    }
}

/// The heavy-hitter summaries for URLs and hosts.
pub struct Hitters {
    urls: Mutex<Summary>,
    hosts: Mutex<Summary>,
    /// Randomly seeded; foldhash costs a fraction of SipHash on the hit path.
    hasher: foldhash::fast::RandomState,
}

/// The process-wide summaries.
pub static HITTERS: LazyLock<Arc<Hitters>> = LazyLock::new(|| {
    Arc::new(Hitters {
        urls: Mutex::new(Summary::new(TOP_URLS)),
        hosts: Mutex::new(Summary::new(TOP_HOSTS)),
        hasher: foldhash::fast::RandomState::default(),
    })
});

impl Hitters {
    /// Counts one request; skipped when another thread holds a summary.
    pub fn record(&self, scheme: &str, host: &str, path_and_query: &str, hit: bool) {
        if let Some(mut hosts) = self.hosts.try_lock() {
            hosts.record(self.hasher.hash_one(host), |n| n.push_str(host), hit);
        }
        if let Some(mut urls) = self.urls.try_lock() {
            urls.record(
                self.hasher.hash_one((scheme, host, path_and_query)),
                |name| {
                    name.push_str(scheme);
                    name.push_str("://");
                    name.push_str(host);
                    name.push_str(path_and_query);
                    if name.len() > MAX_NAME {
                        let mut cut = MAX_NAME;
                        while !name.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        name.truncate(cut);
                        name.push('…');
                    }
                },
                hit,
            );
        }
    }

    /// The `limit` most requested URLs and hosts.
    pub fn top(&self, limit: usize) -> Top {
        Top {
            urls: self.urls.lock().top(limit),
            hosts: self.hosts.lock().top(limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_prometheus() {
        // 10 observations ≤ 0.1 s, 10 more in (0.1, 0.5].
        let buckets = [(0.1, 10), (0.5, 20), (f64::INFINITY, 20)];
        assert_eq!(quantile(&buckets, 0.5), Some(0.1));
        let p75 = quantile(&buckets, 0.75).unwrap();
        assert!((p75 - 0.3).abs() < 1e-9, "{p75}");
        assert_eq!(quantile(&[(0.1, 0), (f64::INFINITY, 0)], 0.5), None);
        // Everything above the last finite bound: that bound.
        assert_eq!(quantile(&[(0.1, 0), (f64::INFINITY, 4)], 0.99), Some(0.1));
    }

    #[test]
    fn space_saving_keeps_the_heavy_hitters() {
        let mut s = Summary::new(4);
        for round in 0..100u64 {
            // Two heavy names, then a stream of one-off names.
            s.record(1, |n| n.push_str("heavy-a"), true);
            s.record(2, |n| n.push_str("heavy-b"), round % 2 == 0);
            s.record(
                1000 + round,
                |n| n.push_str(&format!("once-{round}")),
                false,
            );
        }
        let top = s.top(2);
        assert_eq!(top[0].name, "heavy-a");
        assert_eq!(top[0].requests, 100);
        assert_eq!(top[0].hit_ratio, 1.0);
        assert_eq!(top[1].name, "heavy-b");
        assert_eq!(top[1].hit_ratio, 0.5);
        assert!(s.by_hash.len() <= 4);
    }

    /// The batched eviction always takes a counter of the smallest count, as
    /// a scan per new name would: after a skewed stream with many one-off
    /// names, the counts match the textbook summary's (which smallest counter
    /// goes does not change them), and the heavy names are held with theirs.
    #[test]
    fn batched_eviction_takes_a_smallest_counter() {
        let mut s = Summary::new(16);
        // The textbook summary: name -> (count, error), evicting any smallest.
        let mut reference: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut x = 12345u64;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // A third of the requests for 4 heavy names, the rest over 500.
            let r = x >> 33;
            let h = if r.is_multiple_of(3) {
                r % 4
            } else {
                100 + r % 500
            };
            s.record(h, |n| n.push_str(&format!("n{h}")), false);
            if let Some(c) = reference.get_mut(&h) {
                c.0 += 1;
                continue;
            }
            let mut error = 0;
            if reference.len() >= 16 {
                let min = reference.values().map(|c| c.0).min().unwrap();
                // Which smallest counter goes differs; its count does not.
                let victim = *reference.iter().find(|(_, c)| c.0 == min).unwrap().0;
                reference.remove(&victim);
                error = min;
            }
            reference.insert(h, (error + 1, error));
        }
        let mut ours: Vec<u64> = s.by_hash.values().map(|c| c.count).collect();
        let mut theirs: Vec<u64> = reference.values().map(|c| c.0).collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs, "the multiset of counts");
        for heavy in 0..4 {
            let c = &s.by_hash[&heavy];
            assert_eq!(c.name, format!("n{heavy}"));
            assert_eq!(reference[&heavy].0, c.count);
        }
        assert_eq!(s.by_hash.len(), 16);
    }

    #[test]
    fn series_takes_differences_and_keeps_one_hour() {
        let recorder = Recorder {
            points: Mutex::new(VecDeque::new()),
            previous: Mutex::new(None),
        };
        let totals = |hits: u64, misses: u64, upstream_requests: u64| Totals {
            requests: vec![("hit".into(), hits), ("expired".into(), misses)],
            upstreams: vec![UpstreamTotals {
                name: "api".into(),
                requests: upstream_requests,
                errors: 0,
                latency_buckets: vec![(0.1, upstream_requests), (f64::INFINITY, upstream_requests)],
            }],
        };
        let store = aside_store::StoreStats {
            hot_entries: 3,
            hot_evictions: 5,
            ..Default::default()
        };
        recorder.sample(totals(10, 1, 1), &store, UNIX_EPOCH);
        assert!(
            recorder.series().points.is_empty(),
            "the first sample is the baseline"
        );
        let t = UNIX_EPOCH + Duration::from_secs(10);
        recorder.sample(totals(25, 3, 1), &store, t);
        let series = recorder.series();
        assert_eq!(series.points.len(), 1);
        let p = &series.points[0];
        assert_eq!((p.t, p.requests.hit, p.requests.miss), (10, 15, 2));
        assert!(
            p.upstreams.is_empty(),
            "no upstream traffic in the interval"
        );
        assert_eq!((p.tiers.hot.entries, p.tiers.hot.evictions), (3, 0));
        for i in 0..POINTS as u64 + 5 {
            recorder.sample(totals(30 + i, 3, 2 + i), &store, t);
        }
        let series = recorder.series();
        assert_eq!(series.points.len(), POINTS);
        let last = series.points.last().unwrap();
        assert_eq!(last.upstreams["api"].requests, 1);
        assert_eq!(last.upstreams["api"].p50_ms, Some(50.0));
    }

    /// Requests served before the sampler first runs count in the first point.
    #[test]
    fn the_first_point_counts_from_process_start() {
        let recorder = Recorder {
            points: Mutex::new(VecDeque::new()),
            previous: Mutex::new(None),
        };
        let store = aside_store::StoreStats {
            hot_evictions: 7,
            evictions: 40,
            ..Default::default()
        };
        recorder.start(&store);
        let totals = Totals {
            requests: vec![("miss".into(), 2), ("hit".into(), 10)],
            upstreams: Vec::new(),
        };
        let later = aside_store::StoreStats {
            hot_evictions: 9,
            evictions: 40,
            ..Default::default()
        };
        recorder.sample(totals, &later, UNIX_EPOCH + Duration::from_secs(10));
        let series = recorder.series();
        assert_eq!(series.points.len(), 1);
        let p = &series.points[0];
        assert_eq!((p.requests.hit, p.requests.miss), (10, 2));
        assert_eq!((p.tiers.hot.evictions, p.tiers.disk.evictions), (2, 0));
        // A second start keeps the baseline.
        recorder.start(&aside_store::StoreStats::default());
        let kept = recorder
            .previous
            .lock()
            .as_ref()
            .unwrap()
            .totals
            .requests
            .len();
        assert_eq!(kept, 2);
    }
}
