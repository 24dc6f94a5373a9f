//! The request budget shared by every node (issue 16 with issue 14's cluster):
//! two real `aside` processes and a real `redis-server`; the origin records
//! when each request arrives. While Redis is down each node keeps to its share.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aside_tests::{eventually, Aside, Origin, RedisServer, Reply};

/// Requests the origin received within any `window`, at most.
fn most_within(arrivals: &[Instant], window: Duration) -> usize {
    let mut at = arrivals.to_vec();
    at.sort();
    (0..at.len())
        .map(|i| {
            at[i..]
                .iter()
                .take_while(|t| t.duration_since(at[i]) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn node(origin: &Origin, redis: &RedisServer) -> Arc<Aside> {
    Arc::new(
        Aside::builder()
            .upstream(&origin.url())
            .upstream_extra("rate-limit = \"4/s\"\nqueue-timeout = \"10s\"")
            .extra(&redis.cluster_toml())
            .start()
            .await,
    )
}

/// Sends `n` misses (distinct keys, nothing cacheable) to each node at once;
/// all must be answered 200 (queued within the queue timeout).
async fn misses(nodes: &[Arc<Aside>], n: usize, tag: &str) {
    let mut tasks = Vec::new();
    for (j, node) in nodes.iter().enumerate() {
        for i in 0..n {
            let node = node.clone();
            let path = format!("/{tag}/{j}/{i}");
            tasks.push(tokio::spawn(async move { node.get(&path).await.status }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_budget_and_fall_back_to_their_share() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = arrivals.clone();
    let origin = Origin::start(move |_, _| {
        seen.lock().unwrap().push(Instant::now());
        Reply::ok("fresh").header("cache-control", "no-store")
    })
    .await;
    let nodes = [node(&origin, &redis).await, node(&origin, &redis).await];
    // Both nodes see each other's heartbeat before the outage part below.
    let both = eventually(Duration::from_secs(10), || async {
        let r = nodes[0].admin("GET", "/cluster").send().await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        v["data"]["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().filter(|n| n["live"] == true).count() == 2)
    })
    .await;
    assert!(both, "the nodes did not see each other");

    // 4/s shared: 12 misses on each node (24) take about 6 s, never more than
    // 4 (+1 for the bucket's edge) in any second. Each node alone would allow 8.
    let start = Instant::now();
    misses(&nodes, 12, "shared").await;
    let took = start.elapsed();
    let got = arrivals.lock().unwrap().clone();
    assert_eq!(got.len(), 24);
    let peak = most_within(&got, Duration::from_secs(1));
    assert!(
        peak <= 5,
        "{peak} origin requests within one second (budget 4/s)"
    );
    assert!(
        took >= Duration::from_secs(5),
        "24 requests at 4/s in {took:?}"
    );

    // Redis down: each node keeps to half the budget (2 live nodes), so the
    // origin still sees about 4/s in all, and clients are still answered.
    redis.kill().await;
    arrivals.lock().unwrap().clear();
    let start = Instant::now();
    misses(&nodes, 8, "fallback").await;
    let took = start.elapsed();
    let got = arrivals.lock().unwrap().clone();
    assert_eq!(got.len(), 16);
    let peak = most_within(&got, Duration::from_secs(1));
    assert!(
        peak <= 6,
        "{peak} origin requests within one second while Redis was down"
    );
    assert!(
        took >= Duration::from_secs(3),
        "16 requests at 2/s per node in {took:?}"
    );
    let fallbacks = nodes[0]
        .metric(
            "aside_origin_protection_total",
            &["event=\"budget_fallback\""],
        )
        .await;
    assert!(fallbacks > 0, "no fallback counted");
}
