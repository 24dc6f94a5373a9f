//! `aside stats [--watch [SECS]]`: a one-screen summary from `/metrics` and
//! `/healthz`, refreshed like `varnishstat` (totals plus rates since the last screen).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::error::CliError;
use super::http::Admin;
use super::table;

/// The order cache statuses are shown in.
const STATUSES: [&str; 6] = ["hit", "stale", "revalidated", "miss", "expired", "bypass"];

/// `aside stats` options.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Refresh every SECS seconds (default 2) until interrupted (ctrl-c) or --count screens.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    watch: Option<u64>,
    /// With --watch: stop after this many screens.
    #[arg(long, value_name = "N", requires = "watch")]
    count: Option<u64>,
}

/// What one look at the server shows.
#[derive(Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    health: String,
    /// Proxied requests by cache status.
    requests: BTreeMap<String, u64>,
    /// (hit + stale) / every request that looked in the cache (all but bypass); null before any.
    hit_ratio: Option<f64>,
    /// Requests and errors per upstream.
    upstreams: BTreeMap<String, Upstream>,
    /// Entries and bytes per store tier.
    store: BTreeMap<String, Tier>,
    evictions: u64,
    purged: u64,
}

#[derive(Debug, Default, Serialize, PartialEq, Clone, Copy)]
pub struct Upstream {
    requests: u64,
    errors: u64,
}

#[derive(Debug, Default, Serialize, PartialEq, Clone, Copy)]
pub struct Tier {
    entries: u64,
    bytes: u64,
}

/// One sample line: metric name, its labels, its value.
fn samples(text: &str) -> impl Iterator<Item = (&str, Vec<(&str, &str)>, f64)> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let value: f64 = value.parse().ok()?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                Some((k.trim(), v.trim().trim_matches('"')))
            })
            .collect();
        Some((name, labels, value))
    })
}

/// Summarize a Prometheus text exposition.
pub fn summarize(metrics: &str, health: &str) -> Summary {
    let mut s = Summary {
        health: health.to_owned(),
        ..Summary::default()
    };
    let label = |labels: &[(&str, &str)], key: &str| {
        labels
            .iter()
            .find(|(k, _)| *k == key)
            .map_or_else(String::new, |(_, v)| (*v).to_owned())
    };
    for (name, labels, value) in samples(metrics) {
        // Counters and gauges here are integers; the float text is Prometheus' format.
        let n = value.max(0.0) as u64;
        match name {
            "aside_requests_total" => {
                *s.requests
                    .entry(label(&labels, "cache_status"))
                    .or_default() += n;
            }
            "aside_upstream_requests_total" => {
                s.upstreams
                    .entry(label(&labels, "upstream"))
                    .or_default()
                    .requests += n;
            }
            "aside_upstream_errors_total" => {
                s.upstreams
                    .entry(label(&labels, "upstream"))
                    .or_default()
                    .errors += n;
            }
            "aside_store_entries" => {
                s.store.entry(label(&labels, "tier")).or_default().entries += n
            }
            "aside_store_bytes" => s.store.entry(label(&labels, "tier")).or_default().bytes += n,
            "aside_store_evictions_total" => s.evictions += n,
            "aside_purged_entries_total" => s.purged += n,
            _ => {}
        }
    }
    let get = |k: &str| s.requests.get(k).copied().unwrap_or(0);
    let looked: u64 = s
        .requests
        .iter()
        .filter(|(k, _)| k.as_str() != "bypass")
        .map(|(_, v)| v)
        .sum();
    s.hit_ratio = (looked > 0).then(|| (get("hit") + get("stale")) as f64 / looked as f64);
    s
}

async fn fetch(admin: &Admin) -> Result<Summary, CliError> {
    #[derive(serde::Deserialize)]
    struct Health {
        status: String,
    }
    let health: Health = admin.get("/healthz").await?.parse()?;
    let metrics = admin.get("/metrics").await?;
    Ok(summarize(
        &String::from_utf8_lossy(&metrics.body),
        &health.status,
    ))
}

/// Run `aside stats`.
///
/// # Errors
/// See [`CliError`].
pub async fn run(admin: &Admin, args: StatsArgs, json: bool) -> Result<(), CliError> {
    let Some(secs) = args.watch else {
        let summary = fetch(admin).await?;
        print(admin, &summary, None, json)?;
        return Ok(());
    };
    let interval = Duration::from_secs(secs);
    let clear = !json && std::io::stdout().is_terminal();
    let mut previous: Option<(Instant, Summary)> = None;
    let mut shown = 0u64;
    loop {
        let summary = fetch(admin).await?;
        let now = Instant::now();
        if clear {
            print!("\x1b[H\x1b[2J");
        } else if shown > 0 && !json {
            println!();
        }
        let rates = previous
            .as_ref()
            .map(|(at, before)| (now.duration_since(*at).as_secs_f64(), before));
        print(admin, &summary, rates, json)?;
        shown += 1;
        if args.count.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        previous = Some((now, summary));
        tokio::time::sleep(interval).await;
    }
}

fn print(
    admin: &Admin,
    s: &Summary,
    rates: Option<(f64, &Summary)>,
    json: bool,
) -> Result<(), CliError> {
    if json {
        let text = serde_json::to_string(s)
            .map_err(|e| CliError::Failed(format!("cannot encode the summary: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    let rate = |now: u64, before: Option<u64>| match (rates, before) {
        (Some((secs, _)), Some(before)) if secs > 0.0 => {
            format!("{:.1}/s", now.saturating_sub(before) as f64 / secs)
        }
        _ => String::new(),
    };
    let total: u64 = s.requests.values().sum();
    println!("aside at {}  health {}", admin.addr, s.health);
    println!();
    let mut rows = Vec::new();
    let mut names: Vec<&str> = STATUSES.to_vec();
    names.extend(
        s.requests
            .keys()
            .map(String::as_str)
            .filter(|k| !STATUSES.contains(k)),
    );
    for name in names {
        let n = s.requests.get(name).copied().unwrap_or(0);
        let share = if total > 0 {
            format!("{:.1}%", n as f64 * 100.0 / total as f64)
        } else {
            "-".into()
        };
        let before = rates.map(|(_, b)| b.requests.get(name).copied().unwrap_or(0));
        rows.push(vec![name.to_owned(), n.to_string(), share, rate(n, before)]);
    }
    let before = rates.map(|(_, b)| b.requests.values().sum());
    rows.push(vec![
        "total".into(),
        total.to_string(),
        String::new(),
        rate(total, before),
    ]);
    table::print(&["REQUESTS", "COUNT", "SHARE", "RATE"], &rows);
    let ratio = s
        .hit_ratio
        .map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0));
    println!("hit ratio {ratio}  (hit + stale, of requests that looked in the cache)");
    println!();
    if !s.upstreams.is_empty() {
        let rows: Vec<Vec<String>> = s
            .upstreams
            .iter()
            .map(|(name, u)| {
                let before = rates.map(|(_, b)| b.upstreams.get(name).map_or(0, |u| u.requests));
                vec![
                    name.clone(),
                    u.requests.to_string(),
                    u.errors.to_string(),
                    rate(u.requests, before),
                ]
            })
            .collect();
        table::print(&["UPSTREAM", "REQUESTS", "ERRORS", "RATE"], &rows);
        println!();
    }
    let rows: Vec<Vec<String>> = s
        .store
        .iter()
        .map(|(tier, t)| vec![tier.clone(), t.entries.to_string(), table::bytes(t.bytes)])
        .collect();
    table::print(&["STORE", "ENTRIES", "BYTES"], &rows);
    println!("evictions {}  purged {}", s.evictions, s.purged);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_from_metrics_text() {
        let text = "# HELP aside_requests_total x\n\
            aside_requests_total{cache_status=\"hit\"} 6\n\
            aside_requests_total{cache_status=\"stale\"} 2\n\
            aside_requests_total{cache_status=\"miss\"} 2\n\
            aside_requests_total{cache_status=\"bypass\"} 5\n\
            aside_upstream_requests_total{upstream=\"origin\"} 7\n\
            aside_upstream_errors_total{upstream=\"origin\"} 1\n\
            aside_store_entries{tier=\"hot\"} 3\n\
            aside_store_bytes{tier=\"hot\"} 1024\n\
            aside_store_evictions_total 4\n\
            aside_purged_entries_total 9\n";
        let s = summarize(text, "ok");
        assert_eq!(s.requests["hit"], 6);
        assert_eq!(s.hit_ratio, Some(0.8));
        assert_eq!(
            s.upstreams["origin"],
            Upstream {
                requests: 7,
                errors: 1
            }
        );
        assert_eq!(
            s.store["hot"],
            Tier {
                entries: 3,
                bytes: 1024
            }
        );
        assert_eq!((s.evictions, s.purged), (4, 9));
        assert_eq!(summarize("", "ok").hit_ratio, None);
    }
}
