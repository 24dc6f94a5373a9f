//! The fresh-hit fast path (issue 17) answers exactly as the regular hit
//! path: same status, fields and body. A request that carries a request
//! directive goes the regular way (`Cache-Control: max-stale` changes nothing
//! for a fresh entry), so the two answers for one entry can be compared.

use std::collections::HashMap;

use aside_tests::{Aside, Origin, Reply, Resp};

/// The fields two answers must share, with the per-request ones apart.
fn fields(r: &Resp) -> HashMap<String, String> {
    let mut h = r.headers.clone();
    h.remove("age");
    h.remove("cache-status");
    h
}

fn secs(v: &str) -> i64 {
    v.parse().unwrap_or_else(|_| panic!("not a number: {v:?}"))
}

/// `ttl=N` of a `Cache-Status` value.
fn ttl(cache_status: &str) -> i64 {
    let n = cache_status
        .split("; ")
        .find_map(|p| p.strip_prefix("ttl="))
        .unwrap_or_else(|| panic!("no ttl in {cache_status:?}"));
    secs(n)
}

#[tokio::test]
async fn a_fast_hit_answers_as_the_regular_hit_path() {
    let origin = Origin::start(|_, n| {
        Reply::ok(format!("body {n}"))
            .header("cache-control", "max-age=600")
            .header("etag", "\"e1\"")
            .header("content-type", "text/plain; charset=utf-8")
            .header("x-custom", "kept")
            .header("age", "5")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let miss = aside.get("/same?b=2&a=1").await;
    assert_eq!(miss.x_cache(), "MISS");

    let fast = aside.get("/same?b=2&a=1").await;
    let regular = aside
        .request("GET", "/same?b=2&a=1", &[("cache-control", "max-stale=1")])
        .await;
    assert_eq!(origin.hits(), 1);
    for r in [&fast, &regular] {
        assert_eq!(r.status, 200);
        assert_eq!(r.x_cache(), "HIT");
        assert_eq!(r.text(), "body 1");
        assert!(r.header("cache-status").starts_with("Aside; hit; ttl="));
        // The origin's Age (5) plus the time in the cache.
        assert!((5..=7).contains(&secs(r.header("age"))), "{r:?}");
    }
    assert_eq!(fields(&fast), fields(&regular));
    assert!((ttl(fast.header("cache-status")) - ttl(regular.header("cache-status"))).abs() <= 1);
    // The query is normalized (sorted) for the key: another spelling hits too.
    let sorted = aside.get("/same?a=1&b=2").await;
    assert_eq!(sorted.x_cache(), "HIT");
    assert_eq!(fields(&sorted), fields(&regular));

    // HEAD: the same fields, no body.
    let head = aside.request("HEAD", "/same?b=2&a=1", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.x_cache(), "HIT");
    assert!(head.body.is_empty());
    assert_eq!(fields(&head), fields(&regular));
    assert_eq!(origin.hits(), 1);
}

/// A fresh hit read from the disk tier (after a restart, the hot tier is
/// empty) answers as the regular hit path too: the fast path then builds the
/// head from the stored header bytes instead of a decoded meta.
#[tokio::test]
async fn a_disk_tier_fast_hit_answers_as_the_regular_hit_path() {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let origin = Origin::start(move |_, n| {
        Reply::ok(format!("body {n}"))
            .header("date", &date)
            .header("cache-control", "max-age=600")
            .header("etag", "\"e1\"")
            .header("set-cookie2", "a=1")
            .header("x-custom", "kept")
            .header("x-cache", "from the origin")
            .header("accept-ranges", "none")
            .header("set-cookie2", "b=2")
            .header("age", "5")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    assert_eq!(aside.get("/d").await.x_cache(), "MISS");
    let hot = aside.get("/d").await;
    let aside = aside.restart().await;
    let cold = aside.get("/d").await;
    let reads = aside
        .metric("aside_store_cold_reads_total", &["inline"])
        .await
        + aside
            .metric("aside_store_cold_reads_total", &["pool"])
            .await;
    assert_eq!(
        reads,
        1,
        "read from the disk tier: {}",
        aside.metrics_text().await
    );
    let regular = aside
        .request("GET", "/d", &[("cache-control", "max-stale=1")])
        .await;
    let head = aside.request("HEAD", "/d", &[]).await;
    assert_eq!(origin.hits(), 1);
    for r in [&hot, &cold, &regular, &head] {
        assert_eq!(r.status, 200);
        assert_eq!(r.x_cache(), "HIT", "{r:?}");
        assert!((5..=8).contains(&secs(r.header("age"))), "{r:?}");
        assert_eq!(r.header("accept-ranges"), "bytes", "{r:?}");
    }
    assert_eq!(cold.text(), "body 1");
    assert_eq!(fields(&cold), fields(&regular));
    assert_eq!(fields(&cold), fields(&hot));
    assert_eq!(fields(&head), fields(&regular));
    assert!((ttl(cold.header("cache-status")) - ttl(regular.header("cache-status"))).abs() <= 1);
}

/// A purge, hard or soft, ends fast hits at once.
#[tokio::test]
async fn purges_end_fast_hits_at_once() {
    let origin =
        Origin::start(|_, n| Reply::ok(format!("v{n}")).header("cache-control", "max-age=600"))
            .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/p").await;
    assert_eq!(aside.get("/p").await.x_cache(), "HIT");
    let purge = aside.request("PURGE", "/p", &[]).await;
    assert_eq!(purge.status, 200, "{purge:?}");
    let after = aside.get("/p").await;
    assert_eq!(after.text(), "v2");
    assert_eq!(after.x_cache(), "MISS");
    assert_eq!(aside.get("/p").await.x_cache(), "HIT");

    let soft = aside
        .admin("POST", "/cache/purge")
        .json(&serde_json::json!({"urls": [aside.url("/p")], "soft": true}))
        .send()
        .await
        .expect("soft purge");
    assert_eq!(soft.status(), 200);
    let after_soft = aside.get("/p").await;
    assert_ne!(after_soft.x_cache(), "HIT", "{after_soft:?}");
}
