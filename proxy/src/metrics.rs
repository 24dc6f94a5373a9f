//! Prometheus metrics: one process-wide registry, cheap recording functions that never
//! panic, and [`render`] for `GET /metrics`.
//!
//! Counters the proxy and the admin API increment live in the registry; the store's
//! figures (entries, bytes, evictions, ...) are owned by the store and read from a
//! [`StoreStats`] snapshot at render time, so they can never drift from the store.

use std::fmt::Write as _;
use std::sync::LazyLock;

use aside_store::StoreStats;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

/// Every metric this process records, registered in one registry.
struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    /// `requests{cache_status="hit"}`, looked up once: every hit counts.
    hits: IntCounter,
    upstream_requests: IntCounterVec,
    upstream_errors: IntCounterVec,
    aborted_responses: IntCounterVec,
    upstream_latency: HistogramVec,
    lock_waits: IntCounter,
    purged: IntCounter,
    store_errors: IntCounter,
    admin_requests: IntCounterVec,
    admin_refused: IntCounterVec,
    protection: IntCounterVec,
    warm: IntCounterVec,
}

/// Latency buckets (seconds) sized for slow external APIs: 5 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        // Names, labels and buckets below are constants that satisfy prometheus' rules
        // (valid names, no duplicates, increasing buckets), so creation and registration
        // cannot fail; the unit test `render_has_every_family` exercises this path.
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .expect("static counter definition is valid");
            registry
                .register(Box::new(c.clone()))
                .expect("metric names are unique");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("static counter definition is valid");
            registry
                .register(Box::new(c.clone()))
                .expect("metric names are unique");
            c
        };
        let requests = counter_vec(
            "aside_requests_total",
            "Proxied requests by cache status",
            &["cache_status"],
        );
        let upstream_requests = counter_vec(
            "aside_upstream_requests_total",
            "Requests sent to each upstream",
            &["upstream"],
        );
        let upstream_errors = counter_vec(
            "aside_upstream_errors_total",
            "Upstream requests that failed (connect, timeout, 5xx)",
            &["upstream"],
        );
        let aborted_responses = counter_vec(
            "aside_responses_aborted_total",
            "Responses ended incomplete because the origin failed after their headers were sent",
            &["upstream"],
        );
        let upstream_latency = HistogramVec::new(
            HistogramOpts::new(
                "aside_upstream_latency_seconds",
                "Upstream response latency",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["upstream"],
        )
        .expect("static histogram definition is valid");
        registry
            .register(Box::new(upstream_latency.clone()))
            .expect("metric names are unique");
        let lock_waits = counter(
            "aside_cache_lock_waits_total",
            "Requests that waited for another request's upstream fetch (coalesced)",
        );
        let purged = counter(
            "aside_purged_entries_total",
            "Cache entries purged (admin API and PURGE requests)",
        );
        let store_errors = counter(
            "aside_store_errors_total",
            "Store failures on the proxy path (each treated as a miss)",
        );
        let admin_requests = counter_vec(
            "aside_admin_requests_total",
            "Admin API requests by response status",
            &["status"],
        );
        let admin_refused = counter_vec(
            "aside_admin_connections_refused_total",
            "Admin connections refused (max_connections) or accepts that failed (accept_error)",
            &["reason"],
        );
        let protection = counter_vec(
            "aside_origin_protection_total",
            "Origin protection events per upstream: budget_wait, origin_rate_limited, origin_paused, origin_circuit_open (requests kept from the origin), origin_throttled (429/503 with Retry-After received), retry, stale_served",
            &["upstream", "event"],
        );
        let warm = counter_vec(
            "aside_warm_urls_total",
            "URLs fetched by cache warming jobs, by result (ok, failed, skipped)",
            &["result"],
        );
        let hits = requests.with_label_values(&["hit"]);
        Self {
            registry,
            hits,
            requests,
            upstream_requests,
            upstream_errors,
            aborted_responses,
            upstream_latency,
            lock_waits,
            purged,
            store_errors,
            admin_requests,
            admin_refused,
            protection,
            warm,
        }
    }
}

/// Count one proxied request with its cache status (`hit`, `miss`, `stale`, ...).
pub fn record_request(cache_status: &str) {
    if cache_status == "hit" {
        METRICS.hits.inc();
        return;
    }
    METRICS.requests.with_label_values(&[cache_status]).inc();
}

/// Count one upstream request, its latency and whether it succeeded.
pub fn record_upstream(upstream: &str, seconds: f64, ok: bool) {
    let m = &*METRICS;
    m.upstream_requests.with_label_values(&[upstream]).inc();
    if !ok {
        m.upstream_errors.with_label_values(&[upstream]).inc();
    }
    if seconds.is_finite() && seconds >= 0.0 {
        let histogram: Histogram = m.upstream_latency.with_label_values(&[upstream]);
        histogram.observe(seconds);
    }
}

/// Count one response cut short because its origin failed mid-body.
pub fn record_aborted_response(upstream: &str) {
    METRICS
        .aborted_responses
        .with_label_values(&[upstream])
        .inc();
}

/// Count one request that waited on the cache lock instead of going upstream.
pub fn record_coalesced_wait() {
    METRICS.lock_waits.inc();
}

/// Count purged cache entries.
pub fn record_purge(count: u64) {
    METRICS.purged.inc_by(count);
}

/// Count one store failure on the proxy path.
pub fn record_store_error() {
    METRICS.store_errors.inc();
}

/// Count one admin API response by status code.
pub fn record_admin_request(status: u16) {
    // The usual statuses' counters are looked up once (the KV API's hot path).
    static COMMON: LazyLock<Vec<(u16, IntCounter)>> = LazyLock::new(|| {
        [200, 201, 202, 204, 304, 400, 401, 404, 409, 412, 413, 503]
            .into_iter()
            .map(|s| {
                let label = s.to_string();
                (
                    s,
                    METRICS.admin_requests.with_label_values(&[label.as_str()]),
                )
            })
            .collect()
    });
    match COMMON.iter().find(|(s, _)| *s == status) {
        Some((_, counter)) => counter.inc(),
        None => METRICS
            .admin_requests
            .with_label_values(&[status.to_string().as_str()])
            .inc(),
    }
}

/// Count one origin protection event for an upstream.
pub fn record_protection(upstream: &str, event: &str) {
    METRICS
        .protection
        .with_label_values(&[upstream, event])
        .inc();
}

/// Count one URL of a warming job by its result.
pub fn record_warm(result: &str) {
    METRICS.warm.with_label_values(&[result]).inc();
}

/// Count one admin connection refused, by reason.
pub fn record_admin_refused(reason: &str) {
    METRICS.admin_refused.with_label_values(&[reason]).inc();
}

/// Cumulative figures the dashboard's series is computed from (see `stats`).
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Proxied requests by cache status.
    pub requests: Vec<(String, u64)>,
    /// Per upstream: requests, errors, latency histogram (upper bound, cumulative count).
    pub upstreams: Vec<UpstreamTotals>,
}

/// One upstream's cumulative figures.
#[derive(Clone, Debug, Default)]
pub struct UpstreamTotals {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    /// `(upper bound in seconds, cumulative count)`, the last bound being +inf.
    pub latency_buckets: Vec<(f64, u64)>,
}

/// Reads the request and upstream counters from the registry.
pub fn totals() -> Totals {
    use prometheus::proto::MetricFamily;
    fn label<'a>(m: &'a prometheus::proto::Metric, name: &str) -> &'a str {
        m.get_label()
            .iter()
            .find(|l| l.name() == name)
            .map_or("", |l| l.value())
    }
    fn upstream<'a>(out: &'a mut Vec<UpstreamTotals>, name: &str) -> &'a mut UpstreamTotals {
        let i = match out.iter().position(|u| u.name == name) {
            Some(i) => i,
            None => {
                out.push(UpstreamTotals {
                    name: name.to_owned(),
                    ..UpstreamTotals::default()
                });
                out.len() - 1
            }
        };
        &mut out[i]
    }
    let families: Vec<MetricFamily> = METRICS.registry.gather();
    let mut totals = Totals::default();
    for family in &families {
        for m in family.get_metric() {
            match family.name() {
                "aside_requests_total" => totals.requests.push((
                    label(m, "cache_status").to_owned(),
                    m.get_counter().get_value() as u64,
                )),
                "aside_upstream_requests_total" => {
                    upstream(&mut totals.upstreams, label(m, "upstream")).requests =
                        m.get_counter().get_value() as u64;
                }
                "aside_upstream_errors_total" => {
                    upstream(&mut totals.upstreams, label(m, "upstream")).errors =
                        m.get_counter().get_value() as u64;
                }
                "aside_upstream_latency_seconds" => {
                    let h = m.get_histogram();
                    let mut buckets: Vec<(f64, u64)> = h
                        .get_bucket()
                        .iter()
                        .map(|b| (b.upper_bound(), b.cumulative_count()))
                        .collect();
                    buckets.push((f64::INFINITY, h.get_sample_count()));
                    upstream(&mut totals.upstreams, label(m, "upstream")).latency_buckets = buckets;
                }
                _ => {}
            }
        }
    }
    totals
}

/// Appends the purge fan-out's figures (cluster mode), read from its counters.
pub fn render_cluster(text: &mut String, stats: &aside_cluster::PurgeStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut family = |name: &str, kind: &str, help: &str, value: u64| {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        let _ = writeln!(text, "{name} {value}");
    };
    family(
        "aside_cluster_purges_published_total",
        "counter",
        "Purge events this node appended to the shared stream",
        stats.published.load(Relaxed),
    );
    family(
        "aside_cluster_purges_applied_total",
        "counter",
        "Purge events of other nodes applied here",
        stats.applied.load(Relaxed),
    );
    family(
        "aside_cluster_purge_lag_milliseconds",
        "gauge",
        "Age of the last applied purge event when it was applied",
        stats.lag_ms.load(Relaxed),
    );
    family(
        "aside_cluster_purges_queued",
        "gauge",
        "Purges kept on disk until Redis answers",
        stats.queued.load(Relaxed),
    );
    family(
        "aside_cluster_purge_gaps_total",
        "counter",
        "Full soft purges because entries were trimmed before this node read them",
        stats.gaps.load(Relaxed),
    );
    family(
        "aside_cluster_redis_errors_total",
        "counter",
        "Failed Redis calls of the purge fan-out",
        stats.redis_errors.load(Relaxed),
    );
    let h = aside_cluster::latency::REDIS_LATENCY.snapshot();
    let name = "aside_cluster_redis_latency_seconds";
    let _ = writeln!(
        text,
        "# HELP {name} Round trips to Redis: KV operations and purge publishing"
    );
    let _ = writeln!(text, "# TYPE {name} histogram");
    for (le, count) in &h.buckets {
        let _ = writeln!(text, "{name}_bucket{{le=\"{le}\"}} {count}");
    }
    let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(text, "{name}_sum {}", h.sum_seconds);
    let _ = writeln!(text, "{name}_count {}", h.count);
}

/// Appends each upstream's circuit breaker state, one-hot over its three states.
pub fn render_breakers(text: &mut String, breakers: &[(String, &'static str)]) {
    let name = "aside_origin_breaker_state";
    let _ = writeln!(
        text,
        "# HELP {name} Circuit breaker state per upstream: 1 for the current state (closed, half-open, open)"
    );
    let _ = writeln!(text, "# TYPE {name} gauge");
    for (upstream, current) in breakers {
        let upstream = upstream.replace('\\', "\\\\").replace('"', "\\\"");
        for state in ["closed", "half-open", "open"] {
            let _ = writeln!(
                text,
                "{name}{{upstream=\"{upstream}\",state=\"{state}\"}} {}",
                u8::from(*current == state)
            );
        }
    }
}

/// Appends the shared cache tier's figures (`[cluster] shared-cache`).
pub fn render_shared(text: &mut String, stats: &aside_cluster::SharedStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let name = "aside_cluster_shared_cache_total";
    let _ = writeln!(
        text,
        "# HELP {name} Shared cache tier: lookups (hit, miss, error: failed or slower than shared-timeout), writes (write, write_error, too_large), entries purged, leases taken (lease), waits for another node's fill (lease_wait), waits that ran out (lease_timeout) and waits that ended with the other node's copy (origin_avoided)"
    );
    let _ = writeln!(text, "# TYPE {name} counter");
    for (event, value) in [
        ("hit", &stats.hits),
        ("miss", &stats.misses),
        ("error", &stats.errors),
        ("write", &stats.writes),
        ("write_error", &stats.write_errors),
        ("too_large", &stats.too_large),
        ("purged", &stats.purged),
        ("lease", &stats.leases),
        ("lease_wait", &stats.lease_waits),
        ("lease_timeout", &stats.lease_timeouts),
        ("origin_avoided", &stats.origin_avoided),
    ] {
        let _ = writeln!(text, "{name}{{event=\"{event}\"}} {}", value.load(Relaxed));
    }
}

/// The Prometheus text exposition of every metric, plus the store's figures.
pub fn render(stats: &StoreStats) -> String {
    let mut out = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&METRICS.registry.gather(), &mut out) {
        tracing::warn!(error = %err, "cannot encode metrics");
    }
    let mut text = String::from_utf8(out).unwrap_or_default();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(text, "{name}{labels} {value}");
        }
    };
    family(
        "aside_store_entries",
        "gauge",
        "Entries in each store tier",
        &[
            ("{tier=\"hot\"}", stats.hot_entries),
            ("{tier=\"cold\"}", stats.cold_entries),
        ],
    );
    family(
        "aside_store_bytes",
        "gauge",
        "Bytes used by each store tier",
        &[
            ("{tier=\"hot\"}", stats.hot_bytes),
            ("{tier=\"cold\"}", stats.cold_bytes),
        ],
    );
    family(
        "aside_store_body_segments",
        "gauge",
        "Body segment files of the disk tier (bodies over 2 KiB)",
        &[("", stats.body_segments)],
    );
    family(
        "aside_store_body_file_bytes",
        "gauge",
        "Bytes of the disk tier's body segment files, live and not yet reclaimed",
        &[("", stats.body_file_bytes)],
    );
    family(
        "aside_store_cold_reads_total",
        "counter",
        "Disk-tier lookups read on the proxy thread (bytes in the page cache) or through the reader pool",
        &[
            ("{path=\"inline\"}", stats.cold_reads_inline),
            ("{path=\"pool\"}", stats.cold_reads_pooled),
        ],
    );
    family(
        "aside_store_inline_read_pauses_total",
        "counter",
        "Times inline disk-tier reads were paused for 1 s because too many recent ones found their bytes outside the page cache",
        &[("", stats.inline_read_pauses)],
    );
    family(
        "aside_store_evictions_total",
        "counter",
        "Entries evicted to stay within capacity",
        &[("", stats.evictions)],
    );
    family(
        "aside_store_hot_evictions_total",
        "counter",
        "Hot-tier entries evicted to stay within hot-capacity (they stay on disk)",
        &[("", stats.hot_evictions)],
    );
    family(
        "aside_store_expired_collected_total",
        "counter",
        "Expired entries removed by the background collector",
        &[("", stats.expired_collected)],
    );
    family(
        "aside_store_write_errors_total",
        "counter",
        "Store commits that failed",
        &[("", stats.write_errors)],
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_every_family() {
        record_request("hit");
        record_upstream("weather", 0.2, false);
        record_upstream("weather", f64::NAN, true);
        record_coalesced_wait();
        record_aborted_response("weather");
        record_purge(3);
        record_store_error();
        record_admin_request(200);
        let stats = StoreStats {
            hot_entries: 7,
            cold_bytes: 42,
            ..StoreStats::default()
        };
        let text = render(&stats);
        for needle in [
            "aside_requests_total{cache_status=\"hit\"}",
            "aside_upstream_requests_total{upstream=\"weather\"} 2",
            "aside_store_body_file_bytes 0",
            "aside_store_cold_reads_total{path=\"inline\"} 0",
            "aside_upstream_errors_total{upstream=\"weather\"} 1",
            "aside_upstream_latency_seconds_bucket{upstream=\"weather\",le=\"0.25\"} 1",
            "aside_cache_lock_waits_total",
            "aside_responses_aborted_total{upstream=\"weather\"} 1",
            "aside_purged_entries_total",
            "aside_store_errors_total",
            "aside_admin_requests_total{status=\"200\"}",
            "aside_store_entries{tier=\"hot\"} 7",
            "aside_store_bytes{tier=\"cold\"} 42",
            "aside_store_evictions_total 0",
            "aside_store_expired_collected_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
