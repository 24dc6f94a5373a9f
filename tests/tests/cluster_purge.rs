//! Cluster mode, purge fan-out (issue 14): 3 real `aside` processes on loopback
//! sharing a real `redis-server`. Every wait is a poll with a deadline.

use std::time::Duration;

use aside_tests::{eventually, Aside, Origin, RedisServer, Reply};
use serde_json::{json, Value};

/// Every request names the same site, so that all nodes share the cache keys.
const HOST: &str = "site.test";
const DEADLINE: Duration = Duration::from_secs(10);

async fn origin() -> Origin {
    Origin::start(|_, n| Reply::ok(format!("v{n}")).header("cache-control", "max-age=300")).await
}

async fn node(origin: &Origin, redis: &RedisServer) -> Aside {
    Aside::builder()
        .upstream(&origin.url())
        .extra(&redis.cluster_toml())
        .start()
        .await
}

async fn get(aside: &Aside, path: &str) -> String {
    aside
        .request("GET", path, &[("host", HOST)])
        .await
        .x_cache()
        .to_owned()
}

/// Cached and a HIT on this node.
async fn warm(aside: &Aside, path: &str) {
    get(aside, path).await;
    assert_eq!(get(aside, path).await, "HIT", "{path} on {}", aside.addr);
}

/// Whether the node still holds an entry for the path (asked without refilling it).
async fn holds(aside: &Aside, path: &str) -> bool {
    let url = format!("http://{HOST}{path}");
    let r = aside
        .admin("GET", "/cache/entry")
        .query(&[("url", url.as_str())])
        .send()
        .await
        .expect("admin request");
    r.status() == 200
}

async fn gone_everywhere(nodes: &[&Aside], path: &str) {
    for n in nodes {
        let gone = eventually(DEADLINE, || async { !holds(n, path).await }).await;
        assert!(gone, "{path} still cached on {}; log:\n{}", n.addr, n.log());
        assert_eq!(get(n, path).await, "MISS", "{path} on {}", n.addr);
    }
}

async fn admin_purge(aside: &Aside, body: Value) -> Value {
    let r = aside
        .admin("POST", "/cache/purge")
        .json(&body)
        .send()
        .await
        .expect("purge");
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.expect("json")["data"].clone()
}

async fn admin_json(aside: &Aside, path: &str) -> Value {
    aside
        .admin("GET", path)
        .send()
        .await
        .expect("admin")
        .json::<Value>()
        .await
        .expect("json")["data"]
        .clone()
}

async fn metric(aside: &Aside, name: &str) -> u64 {
    aside.metric(name, &[]).await
}

fn ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_purge_on_one_node_is_a_miss_on_the_others() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = origin().await;
    let (n1, n2, n3) = (
        node(&origin, &redis).await,
        node(&origin, &redis).await,
        node(&origin, &redis).await,
    );
    let all = [&n1, &n2, &n3];
    for path in ["/a", "/b", "/c", "/t/1", "/t/2"] {
        for n in all {
            warm(n, path).await;
        }
    }
    // Every node has reported before the first `wait`.
    let listed = eventually(DEADLINE, || async {
        admin_json(&n1, "/cluster").await["nodes"]
            .as_array()
            .is_some_and(|a| a.len() == 3)
    })
    .await;
    assert!(listed, "{}", admin_json(&n1, "/cluster").await);

    // POST /cache/purge with wait: every live node confirms.
    let r = admin_purge(
        &n1,
        json!({"urls": [format!("http://{HOST}/a")], "wait": "5s"}),
    )
    .await;
    assert!(r["purgeId"].is_string(), "{r}");
    assert_eq!(ids(&r["unconfirmed"]), Vec::<String>::new(), "{r}");
    assert_eq!(ids(&r["confirmed"]).len(), 3, "{r}");
    gone_everywhere(&[&n2, &n3], "/a").await;

    // The PURGE method on node 2.
    let purge = n2.request("PURGE", "/b", &[("host", HOST)]).await;
    assert_eq!(purge.status, 200);
    gone_everywhere(&[&n1, &n3], "/b").await;

    // Invalidation after an unsafe method on node 3 (RFC 9111 §4.4).
    let post = n3.request("POST", "/c", &[("host", HOST)]).await;
    assert_eq!(post.status, 200);
    gone_everywhere(&[&n1, &n2], "/c").await;

    // A prefix purge, soft, on node 1: the others mark their copies stale.
    admin_purge(
        &n1,
        json!({"prefixes": [format!("http://{HOST}/t/")], "soft": true}),
    )
    .await;
    for n in [&n2, &n3] {
        let stale = eventually(DEADLINE, || async {
            let url = format!("http://{HOST}/t/1");
            let v: Value = n
                .admin("GET", "/cache/entry")
                .query(&[("url", url.as_str())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"]["entries"][0]["softPurged"] == json!(true)
        })
        .await;
        assert!(stale, "soft purge did not reach {}", n.addr);
    }

    // Each node applies the others' events and skips its own.
    assert!(metric(&n1, "aside_cluster_purges_published_total").await >= 2);
    let applied = eventually(DEADLINE, || async {
        metric(&n1, "aside_cluster_purges_applied_total").await == 2
            && metric(&n2, "aside_cluster_purges_applied_total").await == 3
            && metric(&n3, "aside_cluster_purges_applied_total").await == 3
    })
    .await;
    assert!(applied, "own events must be skipped, others applied once");
    // Every publish was a timed Redis round trip.
    let timed = metric(&n1, "aside_cluster_redis_latency_seconds_count").await;
    assert!(timed >= 2, "redis latency histogram count {timed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_is_unconfirmed_and_replays_missed_purges_on_restart() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = origin().await;
    let (n1, n2, mut n3) = (
        node(&origin, &redis).await,
        node(&origin, &redis).await,
        node(&origin, &redis).await,
    );
    for path in ["/r1", "/r2", "/keep"] {
        for n in [&n1, &n2, &n3] {
            warm(n, path).await;
        }
    }
    let listed = eventually(DEADLINE, || async {
        admin_json(&n1, "/cluster").await["nodes"]
            .as_array()
            .is_some_and(|a| a.len() == 3)
    })
    .await;
    assert!(listed);
    let n3_id = admin_json(&n3, "/cluster").await["node"]
        .as_str()
        .expect("node id")
        .to_owned();
    assert!(n3_id.ends_with(&format!(":{}", n3.addr.port())), "{n3_id}");

    n3.stop();
    let r = admin_purge(
        &n1,
        json!({"urls": [format!("http://{HOST}/r1")], "wait": "2s"}),
    )
    .await;
    assert_eq!(ids(&r["unconfirmed"]), vec![n3_id.clone()], "{r}");
    assert_eq!(ids(&r["confirmed"]).len(), 2, "{r}");
    assert_eq!(
        n2.request("PURGE", "/r2", &[("host", HOST)]).await.status,
        200
    );
    gone_everywhere(&[&n2], "/r1").await;

    let n3 = n3.restart().await;
    gone_everywhere(&[&n3], "/r1").await;
    gone_everywhere(&[&n3], "/r2").await;
    assert_eq!(get(&n3, "/keep").await, "HIT", "an unpurged copy survives");
    let caught_up = eventually(DEADLINE, || async {
        let c = admin_json(&n1, "/cluster").await;
        c["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["id"] == json!(n3_id)).cloned())
            .is_some_and(|n| n["lag"] == json!(0) && n["live"] == json!(true))
    })
    .await;
    assert!(caught_up, "{}", admin_json(&n1, "/cluster").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_taken_while_redis_is_down_are_queued_then_delivered() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let origin = origin().await;
    let (n1, n2) = (node(&origin, &redis).await, node(&origin, &redis).await);
    for n in [&n1, &n2] {
        warm(n, "/q").await;
        warm(n, "/q2").await;
    }
    redis.kill().await;
    let degraded = eventually(DEADLINE, || async {
        admin_json(&n1, "/healthz").await["status"] == json!("degraded")
    })
    .await;
    assert!(degraded, "{}", admin_json(&n1, "/healthz").await);

    let r = admin_purge(&n1, json!({"urls": [format!("http://{HOST}/q")]})).await;
    assert_eq!(r["queued"], json!(true), "{r}");
    assert!(r.get("purgeId").is_none(), "{r}");
    assert_eq!(
        n1.request("PURGE", "/q2", &[("host", HOST)]).await.status,
        200
    );
    // Applied here at once; the other node keeps its copy until Redis is back.
    assert!(!holds(&n1, "/q").await);
    assert_eq!(get(&n2, "/q").await, "HIT");
    let both_queued = eventually(DEADLINE, || async {
        admin_json(&n1, "/healthz").await["cluster"]["queuedPurges"] == json!(2)
    })
    .await;
    assert!(both_queued, "{}", admin_json(&n1, "/healthz").await);

    redis.restart().await;
    gone_everywhere(&[&n2], "/q").await;
    gone_everywhere(&[&n2], "/q2").await;
    let ok = eventually(DEADLINE, || async {
        admin_json(&n1, "/healthz").await["status"] == json!("ok")
    })
    .await;
    assert!(ok, "{}", admin_json(&n1, "/healthz").await);
}

#[tokio::test]
async fn a_node_without_cluster_section_is_unchanged() {
    let origin = origin().await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    warm(&aside, "/s").await;
    let health = admin_json(&aside, "/healthz").await;
    assert_eq!(health, json!({"status": "ok"}));
    let r = admin_purge(&aside, json!({"urls": [format!("http://{HOST}/s")]})).await;
    assert_eq!(r, json!({"matched": 1, "purged": 1}));
    let c = admin_json(&aside, "/cluster").await;
    assert_eq!(c["enabled"], json!(false));
    assert_eq!(c["nodes"], json!([]));
    assert!(!aside.dir.path().join("cluster-purge-cursor").exists());
}
