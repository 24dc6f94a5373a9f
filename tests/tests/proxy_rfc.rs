//! RFC 9111 / 9213 details and route policies, end to end.

use std::time::{Duration, SystemTime};

use aside_tests::{Aside, Origin, Reply};

#[tokio::test]
async fn cdn_cache_control_wins_over_cache_control() {
    let origin = Origin::start(|_, n| {
        Reply::ok(format!("{n}"))
            .header("cache-control", "no-store")
            .header("cdn-cache-control", "max-age=60")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/cdn").await;
    assert_eq!(aside.get("/cdn").await.x_cache(), "HIT");
}

#[tokio::test]
async fn age_includes_the_origin_age_and_reduces_freshness() {
    let origin = Origin::start(|seen, n| match seen.uri.as_str() {
        // 100 s old with a 60 s lifetime: already stale, must not be served as fresh.
        "/old" => Reply::ok(format!("{n}"))
            .header("cache-control", "max-age=60")
            .header("age", "100"),
        _ => Reply::ok(format!("{n}"))
            .header("cache-control", "max-age=600")
            .header("age", "30"),
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/aged").await;
    let hit = aside.get("/aged").await;
    assert_eq!(hit.x_cache(), "HIT");
    let age: u64 = hit.header("age").parse().unwrap();
    assert!(age >= 30, "Age {age} must include the origin's 30 s");
    aside.get("/old").await;
    assert_ne!(aside.get("/old").await.x_cache(), "HIT");
}

#[tokio::test]
async fn date_is_added_when_the_origin_sends_none() {
    // A raw origin (axum would add a Date of its own); pingora's server sets it.
    let addr = aside_tests::fixed_reply_origin(
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncache-control: max-age=60\r\n\r\nx",
    )
    .await;
    let aside = Aside::builder()
        .upstream(&format!("http://{addr}"))
        .start()
        .await;
    let miss = aside.get("/d").await;
    let hit = aside.get("/d").await;
    assert_eq!((miss.text().as_str(), hit.x_cache()), ("x", "HIT"));
    for r in [miss, hit] {
        let date = r.header("date");
        assert!(httpdate_like(date), "missing or malformed Date: {date:?}");
    }
}

/// RFC 9110 §6.6.1: a response that arrives without `Date` is stored with the
/// time it was received, and its hits carry that time, not the time of the
/// hit (their `Age` says how old it is).
#[tokio::test]
async fn a_response_without_date_is_stored_with_its_receive_time_rfc9110_6_6_1() {
    let addr = aside_tests::fixed_reply_origin(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncache-control: max-age=600\r\n\r\nok",
    )
    .await;
    let aside = Aside::builder()
        .upstream(&format!("http://{addr}"))
        .start()
        .await;
    let miss = aside.get("/d").await;
    assert_eq!(miss.text(), "ok");
    let received = httpdate::parse_http_date(miss.header("date")).expect("miss Date");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let hit = aside.get("/d").await;
    assert_eq!(hit.x_cache(), "HIT");
    let date = httpdate::parse_http_date(hit.header("date")).expect("hit Date");
    let apart = |a: SystemTime, b: SystemTime| {
        a.duration_since(b)
            .or_else(|_| b.duration_since(a))
            .unwrap_or_default()
    };
    assert!(apart(date, received) <= Duration::from_secs(1), "{hit:?}");
    assert!(
        apart(SystemTime::now(), date) >= Duration::from_secs(2),
        "{hit:?}"
    );
    assert!(
        hit.header("age").parse::<u64>().unwrap_or(0) >= 2,
        "{hit:?}"
    );
}

/// `Tue, 24 Nov 2026 04:06:47 GMT`
fn httpdate_like(v: &str) -> bool {
    v.len() == 29 && v.ends_with(" GMT") && v.as_bytes()[3] == b','
}

#[tokio::test]
async fn request_directives() {
    let origin = Origin::start(|seen, n| match seen.uri.as_str() {
        "/mr" => Reply::ok(format!("{n}")).header("cache-control", "max-age=1, must-revalidate"),
        _ => Reply::ok(format!("{n}")).header("cache-control", "max-age=1"),
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;

    // no-cache: revalidate with the origin even though the entry is fresh.
    aside.get("/nc").await;
    let r = aside
        .request("GET", "/nc", &[("cache-control", "no-cache")])
        .await;
    assert_ne!(r.x_cache(), "HIT");
    assert_eq!(origin.hits(), 2);

    // only-if-cached: 504 when nothing is stored, the entry when it is.
    let miss = aside
        .request("GET", "/oic", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(miss.status, 504);
    // Aside's own answer: no stored response used, nothing forwarded.
    assert_eq!(miss.header("cache-status"), "Aside; detail=only-if-cached");
    let before = origin.hits();
    aside.get("/oic").await;
    let hit = aside
        .request("GET", "/oic", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!((hit.status, hit.x_cache()), (200, "HIT"));
    assert_eq!(origin.hits(), before + 1);

    // max-stale: a stale entry is acceptable to this client, but not past must-revalidate.
    aside.get("/ms").await;
    aside.get("/mr").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale_ok = aside
        .request("GET", "/ms", &[("cache-control", "max-stale")])
        .await;
    assert_eq!(
        stale_ok.x_cache(),
        "HIT",
        "max-stale accepts the stale entry"
    );
    let must = aside
        .request("GET", "/mr", &[("cache-control", "max-stale")])
        .await;
    assert_ne!(must.x_cache(), "HIT", "must-revalidate wins over max-stale");

    // min-fresh: this entry has less than 3600 s left, so go to the origin.
    aside.get("/mf").await;
    let r = aside
        .request("GET", "/mf", &[("cache-control", "min-fresh=3600")])
        .await;
    assert_ne!(r.x_cache(), "HIT");

    // request no-store: served from the origin and not stored.
    aside
        .request("GET", "/ns", &[("cache-control", "no-store")])
        .await;
    assert_eq!(aside.get("/ns").await.x_cache(), "MISS");
}

#[tokio::test]
async fn negative_caching_ignored_parameters_and_bypass() {
    let origin = Origin::start(|seen, n| {
        if seen.uri.starts_with("/api/missing") {
            Reply::status(404, format!("gone {n}"))
        } else {
            Reply::ok(format!("{n}"))
        }
    })
    .await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .route(
            "path-prefix = \"/api/\"\nmode = \"override\"\nttl = \"1h\"\nstatus-ttl = { 404 = \"30s\" }\n\
             key = { ignore-query = [\"utm_*\"] }\nbypass-headers = [\"x-no-cache\"]",
        )
        .start()
        .await;
    let a = aside.get("/api/missing").await;
    assert_eq!(a.status, 404);
    let b = aside.get("/api/missing").await;
    assert_eq!((b.status, b.x_cache()), (404, "HIT"));

    aside.get("/api/list?page=1&utm_source=mail").await;
    let r = aside.get("/api/list?utm_campaign=x&page=1").await;
    assert_eq!(
        r.x_cache(),
        "HIT",
        "utm_* parameters are not part of the key"
    );

    let r = aside
        .request("GET", "/api/list?page=1", &[("x-no-cache", "1")])
        .await;
    assert_eq!(r.x_cache(), "BYPASS");
    assert!(r.header("cache-status").contains("fwd=bypass"));
}

#[tokio::test]
async fn soft_purge_is_answered_stale_and_revalidated() {
    let origin = Origin::start(|seen, n| {
        if seen.headers.get("if-none-match").is_some() {
            Reply::status(304, "")
                .header("etag", "\"v\"")
                .header("cache-control", "max-age=600")
        } else {
            Reply::ok(format!("body {n}"))
                .header("etag", "\"v\"")
                .header("cache-control", "max-age=600")
        }
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/soft").await;
    assert_eq!(aside.get("/soft").await.x_cache(), "HIT");

    let url = aside.url("/soft");
    let resp = aside
        .admin("POST", "/cache/purge")
        .json(&serde_json::json!({"urls": [url], "soft": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["purged"], 1, "{body}");

    let r = aside.get("/soft").await;
    assert_eq!(r.x_cache(), "REVALIDATED");
    assert_eq!(r.text(), "body 1", "the body is kept, only revalidated");
    assert_eq!(origin.hits(), 2);
    assert_eq!(aside.get("/soft").await.x_cache(), "HIT");

    // A hard purge by prefix forgets it entirely.
    let resp = aside
        .admin("POST", "/cache/purge")
        .json(&serde_json::json!({"prefixes": [aside.url("/")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r = aside.get("/soft").await;
    assert_eq!((r.x_cache(), r.text().as_str()), ("MISS", "body 3"));
}

#[tokio::test]
async fn injected_entries_are_served_as_hits() {
    let origin = Origin::start(|_, n| Reply::ok(format!("origin {n}"))).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let url = aside.url("/warm?x=1");
    let resp = aside
        .admin("PUT", "/cache/entry")
        .query(&[("url", url.as_str()), ("ttlSeconds", "60")])
        .header("content-type", "application/json")
        .body("{\"prewarmed\":true}")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let r = aside.get("/warm?x=1").await;
    assert_eq!(
        (r.x_cache(), r.text().as_str()),
        ("HIT", "{\"prewarmed\":true}")
    );
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn hop_by_hop_keep_alive_headers_of_the_origin_are_not_forwarded() {
    let origin = Origin::start(|_, _| {
        Reply::ok("k")
            .header("cache-control", "max-age=60")
            .header("keep-alive", "timeout=5, max=100")
            .header("proxy-connection", "keep-alive")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    for expected in ["MISS", "HIT"] {
        let resp = aside.get("/hop").await;
        assert_eq!(resp.x_cache(), expected);
        assert_eq!(resp.header("keep-alive"), "", "{:?}", resp.headers);
        assert_eq!(resp.header("proxy-connection"), "", "{:?}", resp.headers);
    }
}
