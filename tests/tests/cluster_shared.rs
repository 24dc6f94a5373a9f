//! The shared cache tier (issue 15, `[cluster] shared-cache = true`): real
//! `aside` processes on loopback sharing a real `redis-server`, a local origin
//! that counts. Every wait is a poll with a deadline.

use std::time::Duration;

use aside_tests::{eventually, Aside, Origin, RedisServer, Reply};
use serde_json::json;

/// Every request names the same site, so that all nodes share the cache keys.
const HOST: &str = "shared.test";
const DEADLINE: Duration = Duration::from_secs(10);

async fn node(origin: &Origin, redis: &RedisServer, extra: &str) -> Aside {
    Aside::builder()
        .upstream(&origin.url())
        // A generous timeout: a debug build on a busy CI machine is slow, and a
        // lookup past the timeout is (rightly) a miss.
        .extra(&format!(
            "{}shared-cache = true\nshared-timeout = \"500ms\"\n{extra}",
            redis.cluster_toml()
        ))
        .start()
        .await
}

async fn get(aside: &Aside, path: &str) -> aside_tests::Resp {
    aside.request("GET", path, &[("host", HOST)]).await
}

/// Fills `path` on `aside` and waits until the copy is in Redis (the write
/// goes after the response).
async fn fill(aside: &Aside, path: &str) -> String {
    let before = aside
        .metric("aside_cluster_shared_cache_total", &["event=\"write\""])
        .await;
    let r = get(aside, path).await;
    assert_eq!(r.status, 200);
    let written = eventually(DEADLINE, || async {
        aside
            .metric("aside_cluster_shared_cache_total", &["event=\"write\""])
            .await
            > before
    })
    .await;
    assert!(
        written,
        "{path} never reached the shared tier; log:\n{}",
        aside.log()
    );
    r.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_on_one_node_is_a_hit_on_the_others_with_the_right_age() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start(|seen, n| {
        Reply::ok(format!("{} #{n}", seen.uri))
            .header("cache-control", "max-age=300")
            .header("cache-tag", "reports")
    })
    .await;
    let a = node(&origin, &redis, "").await;
    let b = node(&origin, &redis, "").await;
    let body = fill(&a, "/report").await;
    assert_eq!(origin.hits(), 1);
    // The admin API of node 2 says where the entry is: only in the shared tier.
    let url = format!("http://{HOST}/report");
    let r = b
        .admin("GET", "/cache/entry")
        .query(&[("url", url.as_str()), ("body", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let variants = v["data"]["entries"].as_array().unwrap();
    assert_eq!(variants.len(), 1, "{v}");
    assert_eq!(variants[0]["tier"], "shared", "{v}");
    assert_eq!(variants[0]["body"], body.as_str(), "{v}");
    assert_eq!(origin.hits(), 1, "looking does not fetch");
    // Let the copy age: Age on the other node counts from the origin's answer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get(&b, "/report").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.x_cache(), "HIT", "{:?}", r.header("cache-status"));
    assert_eq!(r.text(), body, "node 2 serves node 1's copy");
    let age: u64 = r.header("age").parse().expect("Age");
    assert!(
        age >= 1,
        "Age {age} counts from the copy, not the origin's answer"
    );
    assert_eq!(origin.hits(), 1, "node 2 went to the origin");
    // Promoted: the next hit is local, and the shared tier counted one hit.
    assert_eq!(get(&b, "/report").await.x_cache(), "HIT");
    assert_eq!(
        b.metric("aside_cluster_shared_cache_total", &["event=\"hit\""])
            .await,
        1
    );

    // A purge by tag on node 1 reaches the shared tier and node 2: a third
    // node that never saw the entry finds no copy either.
    let r = a
        .admin("POST", "/cache/purge")
        .json(&json!({"tags": ["reports"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let gone = eventually(DEADLINE, || async {
        get(&b, "/report").await.x_cache() == "MISS"
    })
    .await;
    assert!(
        gone,
        "node 2 still serves the purged copy; log:\n{}",
        b.log()
    );
    let refilled = eventually(DEADLINE, || async {
        b.metric("aside_cluster_shared_cache_total", &["event=\"write\""])
            .await
            >= 1
    })
    .await;
    assert!(refilled, "node 2's refill never reached the shared tier");
    let hits_after_purge = origin.hits();
    let c = node(&origin, &redis, "").await;
    assert_eq!(
        get(&c, "/report").await.x_cache(),
        "HIT",
        "node 2's refill is shared"
    );
    assert_eq!(origin.hits(), hits_after_purge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_by_url_and_prefix_and_soft_purges_reach_the_shared_tier() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start(|seen, n| {
        Reply::ok(format!("{} #{n}", seen.uri)).header("cache-control", "max-age=300")
    })
    .await;
    let a = node(&origin, &redis, "").await;
    for path in ["/v1/a", "/v1/b", "/v2/c"] {
        fill(&a, path).await;
    }
    let purge = |body: serde_json::Value| {
        let a = &a;
        async move {
            let r = a
                .admin("POST", "/cache/purge")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{body}");
        }
    };
    purge(json!({"urls": [format!("http://{HOST}/v1/a")]})).await;
    purge(json!({"prefixes": [format!("http://{HOST}/v2/")], "soft": true})).await;
    // A node started after the purges: /v1/a is gone from the shared tier,
    // /v1/b is still shared, /v2/c is shared but stale (soft purge).
    let b = node(&origin, &redis, "").await;
    let hits = origin.hits();
    assert_eq!(get(&b, "/v1/b").await.x_cache(), "HIT");
    assert_eq!(origin.hits(), hits);
    let r = get(&b, "/v1/a").await;
    assert_eq!(r.x_cache(), "MISS");
    assert_eq!(origin.hits(), hits + 1);
    let r = get(&b, "/v2/c").await;
    assert_ne!(r.x_cache(), "HIT", "a soft-purged copy is not fresh");
    assert_eq!(
        origin.hits(),
        hits + 2,
        "the stale copy was revalidated at the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_stay_local_and_a_dead_redis_is_a_miss_not_an_error() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start(|seen, _| {
        let size = if seen.uri.starts_with("/big") {
            64 * 1024
        } else {
            10
        };
        Reply::ok(vec![b'x'; size]).header("cache-control", "max-age=300")
    })
    .await;
    let a = node(&origin, &redis, "shared-max-object-size = \"16KiB\"\n").await;
    let b = node(&origin, &redis, "shared-max-object-size = \"16KiB\"\n").await;
    assert_eq!(get(&a, "/big").await.status, 200);
    let skipped = eventually(DEADLINE, || async {
        a.metric("aside_cluster_shared_cache_total", &["event=\"too_large\""])
            .await
            == 1
    })
    .await;
    assert!(skipped);
    assert_eq!(get(&b, "/big").await.x_cache(), "MISS");
    assert_eq!(origin.hits(), 2);

    redis.kill().await;
    for path in ["/small-1", "/small-2", "/small-3"] {
        let r = get(&b, path).await;
        assert_eq!(r.status, 200, "{path} failed while Redis was down");
        assert_eq!(get(&b, path).await.x_cache(), "HIT");
    }
    assert!(
        b.metric("aside_cluster_shared_cache_total", &["event=\"error\""])
            .await
            >= 1
    );
}

/// Sends `n` concurrent GETs of `path`, spread round-robin over `nodes`;
/// returns the bodies.
async fn storm(nodes: &[std::sync::Arc<Aside>], path: &str, n: usize) -> Vec<String> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let node = nodes[i % nodes.len()].clone();
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            let r = get(&node, &path).await;
            assert_eq!(r.status, 200, "{path} on {}", node.addr);
            r.text()
        }));
    }
    let mut bodies = Vec::new();
    for t in tasks {
        bodies.push(t.await.unwrap());
    }
    bodies
}

async fn sum(nodes: &[std::sync::Arc<Aside>], event: &str) -> u64 {
    let mut total = 0;
    for n in nodes {
        total += n
            .metric(
                "aside_cluster_shared_cache_total",
                &[&format!("event=\"{event}\"")],
            )
            .await;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_misses_over_three_nodes_make_one_origin_request() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start(|seen, n| {
        Reply::ok(format!("{} #{n}", seen.uri))
            .header("cache-control", "max-age=300")
            .delay(Duration::from_millis(500))
    })
    .await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(std::sync::Arc::new(node(&origin, &redis, "").await));
    }
    let bodies = storm(&nodes, "/hot", 300).await;
    assert_eq!(origin.hits(), 1, "one origin request for the whole cluster");
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every client got the one answer"
    );
    assert_eq!(sum(&nodes, "lease").await, 1);
    assert_eq!(
        sum(&nodes, "origin_avoided").await,
        2,
        "the two other nodes waited"
    );
    assert_eq!(sum(&nodes, "lease_timeout").await, 0);
    // A second key, asked on every node again: one more origin request.
    storm(&nodes, "/hot-2", 30).await;
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fill_does_not_hold_other_nodes_past_the_lease_wait() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start(|seen, n| {
        Reply::ok(format!("{} #{n}", seen.uri))
            .header("cache-control", "max-age=300")
            .delay(Duration::from_millis(1500))
    })
    .await;
    let a = std::sync::Arc::new(node(&origin, &redis, "lease-wait = \"200ms\"\n").await);
    let b = std::sync::Arc::new(node(&origin, &redis, "lease-wait = \"200ms\"\n").await);
    let first = {
        let a = a.clone();
        tokio::spawn(async move { get(&a, "/slow").await })
    };
    // Node A holds the lease once the origin has the request.
    let asked = eventually(DEADLINE, || async { origin.seen().len() == 1 }).await;
    assert!(asked);
    let started = std::time::Instant::now();
    let r = get(&b, "/slow").await;
    assert_eq!(r.status, 200);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(1500 + 1000),
        "node B waited {waited:?}: the 200 ms lease-wait, then its own fetch"
    );
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(origin.hits(), 2, "B fetched itself after the wait ran out");
    assert_eq!(
        b.metric(
            "aside_cluster_shared_cache_total",
            &["event=\"lease_timeout\""]
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_each_node_falls_back_to_its_own_single_flight() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start(|seen, n| {
        Reply::ok(format!("{} #{n}", seen.uri))
            .header("cache-control", "max-age=300")
            .delay(Duration::from_millis(300))
    })
    .await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(std::sync::Arc::new(node(&origin, &redis, "").await));
    }
    redis.kill().await;
    let bodies = storm(&nodes, "/while-down", 90).await;
    assert_eq!(bodies.len(), 90);
    assert_eq!(
        origin.hits(),
        3,
        "one origin request per node (local single flight), not per client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_variants_stay_apart_in_the_shared_tier() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start(|seen, _| {
        let lang = seen
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        Reply::ok(format!("hello in {lang}"))
            .header("cache-control", "max-age=300")
            .header("vary", "Accept-Language")
    })
    .await;
    let a = node(&origin, &redis, "").await;
    let b = node(&origin, &redis, "").await;
    for lang in ["fr", "de"] {
        let r = a
            .request(
                "GET",
                "/greeting",
                &[("host", HOST), ("accept-language", lang)],
            )
            .await;
        assert_eq!(r.text(), format!("hello in {lang}"));
    }
    let written = eventually(DEADLINE, || async {
        a.metric("aside_cluster_shared_cache_total", &["event=\"write\""])
            .await
            >= 2
    })
    .await;
    assert!(written);
    assert_eq!(origin.hits(), 2);
    for lang in ["de", "fr"] {
        let r = b
            .request(
                "GET",
                "/greeting",
                &[("host", HOST), ("accept-language", lang)],
            )
            .await;
        assert_eq!(r.text(), format!("hello in {lang}"), "node 2, {lang}");
        assert_eq!(r.x_cache(), "HIT", "node 2, {lang}");
    }
    assert_eq!(origin.hits(), 2, "both variants came from the shared tier");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revalidation_on_one_node_refreshes_the_shared_copy() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start(|seen, _| {
        if seen.headers.get("if-none-match").is_some() {
            Reply::status(304, "")
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=1")
        } else {
            Reply::ok("versioned")
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=1")
        }
    })
    .await;
    let a = node(&origin, &redis, "").await;
    let b = node(&origin, &redis, "").await;
    fill(&a, "/etag").await;
    // The shared copy's freshness as node 2's admin API reports it.
    let shared_fresh_until = || async {
        let url = format!("http://{HOST}/etag");
        let r = b
            .admin("GET", "/cache/entry")
            .query(&[("url", url.as_str())])
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        v["data"]["entries"][0]["freshUntil"].clone()
    };
    let before = shared_fresh_until().await;
    assert!(before.is_string(), "{before}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Expired on node 1: it revalidates (304), and the shared copy is fresh again.
    let r = get(&a, "/etag").await;
    assert_eq!(r.status, 200);
    assert_eq!(origin.hits(), 2);
    let conditional = origin.seen()[1].headers.get("if-none-match").is_some();
    assert!(conditional, "node 1 revalidated with If-None-Match");
    let refreshed = eventually(DEADLINE, || async { shared_fresh_until().await != before }).await;
    assert!(refreshed, "the shared copy kept its old freshness");
    // Node 2 finds a fresh copy: no request of its own (within the new second).
    let r = get(&b, "/etag").await;
    assert_eq!(r.text(), "versioned");
    assert_eq!(r.x_cache(), "HIT", "{:?}", r.header("cache-status"));
    assert_eq!(origin.hits(), 2, "node 2 revalidated the shared copy again");
}
