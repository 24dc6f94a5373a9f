//! Protecting slow and rate-limited origins (issue 16): the request budget,
//! pauses ordered by `429`/`503` + `Retry-After`, the circuit breaker, stale
//! answers while the origin is kept back, and one retry of a failed connect.
//! Each test checks what the client saw and what the origin received.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aside_tests::{Aside, Origin, Reply};

#[tokio::test]
async fn a_429_with_retry_after_pauses_the_upstream() {
    let origin =
        Origin::start(|_, _| Reply::status(429, "slow down").header("retry-after", "2")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;

    let first = aside.get("/quota").await;
    assert_eq!(
        first.status, 429,
        "the throttling answer itself passes through"
    );
    assert_eq!(origin.hits(), 1);

    // During the pause nothing goes out: a 503 carrying the remaining time.
    let paused = aside.get("/quota").await;
    assert_eq!(paused.status, 503);
    let retry: u64 = paused.header("retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    let body: serde_json::Value = serde_json::from_slice(&paused.body).unwrap();
    assert_eq!(body["error"]["code"], "origin_paused");
    assert_eq!(
        aside.get("/other").await.status,
        503,
        "the pause is per upstream"
    );
    assert_eq!(origin.hits(), 1, "no request reached the paused origin");

    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(aside.get("/quota").await.status, 429);
    assert_eq!(origin.hits(), 2, "the pause ended");
    let paused = aside
        .metric(
            "aside_origin_protection_total",
            &["event=\"origin_paused\"", "upstream=\"origin\""],
        )
        .await;
    assert!(paused >= 2, "{paused}");
}

#[tokio::test]
async fn a_stale_copy_answers_while_the_origin_throttles_rfc9111_4_2_4() {
    let origin = Origin::start(|_, n| {
        if n == 1 {
            Reply::ok("v1").header("cache-control", "max-age=1")
        } else {
            Reply::status(429, "slow down").header("retry-after", "30")
        }
    })
    .await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .route("path-prefix = \"/w\"\nstale-if-error = \"1m\"")
        .start()
        .await;
    assert_eq!(aside.get("/w").await.text(), "v1");
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // The revalidation is throttled: the stale copy answers instead of the 429.
    let stale = aside.get("/w").await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.text(), "v1");
    assert!(
        stale
            .header("cache-status")
            .contains("detail=origin-paused"),
        "{}",
        stale.header("cache-status")
    );
    assert_eq!(origin.hits(), 2);
    // During the pause the stale copy answers without asking the origin.
    let again = aside.get("/w").await;
    assert_eq!(again.text(), "v1");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures_then_lets_one_probe_through() {
    let origin = Origin::start(|_, _| Reply::status(500, "broken")).await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .upstream_extra("breaker-failures = 3\nbreaker-cooldown = \"1s\"")
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(aside.get("/x").await.status, 500);
    }
    assert_eq!(origin.hits(), 3);
    let open = aside.get("/x").await;
    assert_eq!(open.status, 503);
    let body: serde_json::Value = serde_json::from_slice(&open.body).unwrap();
    assert_eq!(body["error"]["code"], "origin_circuit_open");
    assert!(!open.header("retry-after").is_empty());
    assert_eq!(origin.hits(), 3, "an open breaker sends nothing");
    let state = |s: &'static str| {
        let aside = &aside;
        async move {
            aside
                .metric(
                    "aside_origin_breaker_state",
                    &["upstream=\"origin\"", &format!("state=\"{s}\"")],
                )
                .await
        }
    };
    assert_eq!((state("open").await, state("closed").await), (1, 0));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Half-open: one probe goes; it fails, so the breaker opens again.
    assert_eq!(aside.get("/x").await.status, 500);
    assert_eq!(origin.hits(), 4);
    assert_eq!(aside.get("/x").await.status, 503);
    assert_eq!(origin.hits(), 4);
    assert_eq!(state("open").await, 1);
}

#[tokio::test]
async fn the_budget_keeps_the_origin_under_its_rate() {
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = arrivals.clone();
    let origin = Origin::start(move |_, _| {
        seen.lock().unwrap().push(Instant::now());
        Reply::ok("fresh").header("cache-control", "no-store")
    })
    .await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .upstream_extra("rate-limit = \"5/s\"\nqueue-timeout = \"5s\"")
        .start()
        .await;
    let aside = Arc::new(aside);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let aside = aside.clone();
        tasks.push(tokio::spawn(async move {
            aside.get(&format!("/k{i}")).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200, "queued within the queue timeout");
    }
    let mut at = arrivals.lock().unwrap().clone();
    at.sort();
    assert_eq!(at.len(), 10);
    // 5/s with a burst of 1: one request every 200 ms at most.
    for w in at.windows(6) {
        assert!(
            w[5].duration_since(w[0]) >= Duration::from_millis(900),
            "6 requests within {:?}",
            w[5].duration_since(w[0])
        );
    }
}

#[tokio::test]
async fn beyond_the_queue_timeout_the_client_gets_503_with_retry_after() {
    let origin = Origin::start(|_, _| {
        Reply::ok("fresh")
            .header("cache-control", "no-store")
            .delay(Duration::from_millis(10))
    })
    .await;
    let aside = Arc::new(
        Aside::builder()
            .upstream(&origin.url())
            .upstream_extra("rate-limit = \"2/s\"\nqueue-timeout = \"300ms\"")
            .start()
            .await,
    );
    let mut tasks = Vec::new();
    for i in 0..6 {
        let aside = aside.clone();
        tasks.push(tokio::spawn(
            async move { aside.get(&format!("/q{i}")).await },
        ));
    }
    let mut refused = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 503 {
            refused += 1;
            assert!(!r.header("retry-after").is_empty());
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["error"]["code"], "origin_rate_limited");
        } else {
            assert_eq!(r.status, 200);
        }
    }
    assert!(
        refused >= 3,
        "only {refused} of 6 refused at 2/s with a 300 ms queue"
    );
    assert!(
        origin.hits() <= 3,
        "the origin got {} requests",
        origin.hits()
    );
}

#[tokio::test]
async fn a_failed_connect_is_retried_once_for_idempotent_requests_only() {
    // Nothing listens there: every connect is refused.
    let port = aside_tests::free_port();
    let aside = Aside::builder()
        .upstream(&format!("http://127.0.0.1:{port}"))
        .upstream_extra("breaker-failures = 0")
        .start()
        .await;
    let retries = ["event=\"retry\"", "upstream=\"origin\""];
    let name = "aside_origin_protection_total";
    assert_eq!(aside.get("/g").await.status, 502);
    assert_eq!(aside.metric(name, &retries).await, 1, "GET retried once");
    assert_eq!(aside.request("POST", "/p", &[]).await.status, 502);
    assert_eq!(aside.metric(name, &retries).await, 1, "POST is not retried");
}

#[tokio::test]
async fn an_unreachable_origin_gets_stale_answers_by_default_rfc9111_4_2_4() {
    let origin =
        Origin::start(|_, n| Reply::ok(format!("v{n}")).header("cache-control", "max-age=1")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    assert_eq!(aside.get("/down").await.text(), "v1");
    origin.stop();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = aside.get("/down").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "v1");
    assert!(
        r.header("cache-status").contains("detail=origin-down"),
        "{}",
        r.header("cache-status")
    );
}

#[tokio::test]
async fn stale_if_unreachable_0s_turns_the_default_off() {
    let origin =
        Origin::start(|_, n| Reply::ok(format!("v{n}")).header("cache-control", "max-age=1")).await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .route("path-prefix = \"/off\"\nstale-if-unreachable = \"0s\"")
        .start()
        .await;
    assert_eq!(aside.get("/off").await.text(), "v1");
    origin.stop();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(aside.get("/off").await.status, 502);
}

#[tokio::test]
async fn a_5xx_is_answered_stale_only_with_an_explicit_stale_if_error() {
    let origin = Origin::start(|_, n| {
        if n == 1 {
            Reply::ok("v1").header("cache-control", "max-age=1")
        } else {
            Reply::status(500, "broken")
        }
    })
    .await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .upstream_extra("breaker-failures = 0")
        .start()
        .await;
    assert_eq!(aside.get("/5xx").await.text(), "v1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        aside.get("/5xx").await.status,
        500,
        "the default is for an unreachable origin only"
    );
}

#[tokio::test]
async fn must_revalidate_and_no_cache_are_never_served_stale_rfc9111_4_2_4() {
    let origin = Origin::start(|s, _| {
        let cc = if s.uri.starts_with("/mr") {
            "max-age=1, must-revalidate, stale-if-error=60"
        } else {
            "max-age=1, no-cache, stale-if-error=60"
        };
        Reply::ok("v1").header("cache-control", cc)
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    assert_eq!(aside.get("/mr").await.status, 200);
    assert_eq!(aside.get("/nc").await.status, 200);
    origin.stop();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for path in ["/mr", "/nc"] {
        let r = aside.get(path).await;
        assert_eq!(
            r.status,
            502,
            "{path}: {} {}",
            r.header("cache-status"),
            r.text()
        );
    }
}

#[tokio::test]
async fn refresh_ahead_refreshes_a_popular_key_before_it_expires() {
    let origin =
        Origin::start(|_, n| Reply::ok(format!("v{n}")).header("cache-control", "max-age=6")).await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .route("path-prefix = \"/ra\"\nrefresh-ahead = \"50%\"")
        .start()
        .await;
    let start = Instant::now();
    assert_eq!(aside.get("/ra").await.text(), "v1");
    // Early in its life: a plain hit.
    let early = aside.get("/ra").await;
    assert_eq!((early.x_cache(), early.text().as_str()), ("HIT", "v1"));
    assert_eq!(origin.hits(), 1);
    // In the last half of its freshness: still answered at once from the
    // cache, while one background request refreshes it.
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(start.elapsed())).await;
    let late = aside.get("/ra").await;
    assert_eq!(late.status, 200);
    assert_eq!(late.text(), "v1");
    assert_eq!(late.x_cache(), "HIT", "{}", late.header("cache-status"));
    assert!(
        late.header("cache-status").contains("detail=refresh-ahead"),
        "{}",
        late.header("cache-status")
    );
    assert!(
        aside_tests::eventually(Duration::from_secs(5), || async { origin.hits() == 2 }).await,
        "no background refresh reached the origin"
    );
    // The refreshed entry answers (once its fill is stored), before the old
    // one would have expired.
    let refreshed = aside_tests::eventually(Duration::from_secs(2), || async {
        let r = aside.get("/ra").await;
        r.x_cache() == "HIT" && r.text() == "v2"
    })
    .await;
    assert!(refreshed, "the refreshed entry never answered");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "too slow to prove anything"
    );
    assert_eq!(origin.hits(), 2, "one refresh, no more");
}

#[tokio::test]
async fn warming_fetches_urls_through_the_proxy_as_a_background_job() {
    let origin = Origin::start(|s, _| {
        Reply::ok(format!("body of {}", s.uri)).header("cache-control", "max-age=600")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let urls = [
        "http://warm.test/a",
        "http://warm.test/b?x=1",
        "http://warm.test/c",
        "https://warm.test/d",
    ];
    let started = aside
        .admin("POST", "/cache/warm")
        .json(&serde_json::json!({ "urls": urls, "concurrency": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let started: serde_json::Value = started.json().await.unwrap();
    let id = started["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(started["data"]["total"], 4);

    let fetch = || async {
        aside
            .admin("GET", &format!("/cache/warm/{id}"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()["data"]
            .clone()
    };
    let done = aside_tests::eventually(Duration::from_secs(10), || async {
        fetch().await["state"] == "done"
    })
    .await;
    let job = fetch().await;
    assert!(done, "{job}");
    assert_eq!(
        (
            job["ok"].clone(),
            job["failed"].clone(),
            job["skipped"].clone()
        ),
        (3.into(), 0.into(), 1.into()),
        "{job}"
    );
    assert_eq!(job["results"][0]["result"], "ok");
    assert!(
        job["results"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("fwd=miss"),
        "{job}"
    );
    assert_eq!(job["results"][3]["result"], "skipped");
    assert_eq!(origin.hits(), 3, "each http URL fetched once");

    // Warmed: a client's request is a hit.
    let hit = aside
        .request("GET", "/b?x=1", &[("host", "warm.test")])
        .await;
    assert_eq!(hit.x_cache(), "HIT", "{}", hit.header("cache-status"));
    assert_eq!(hit.text(), "body of /b?x=1");
    assert_eq!(origin.hits(), 3);

    for bad in [
        serde_json::json!({ "urls": [] }),
        serde_json::json!({ "urls": ["/relative"] }),
        serde_json::json!({ "urls": ["http://warm.test/a"], "concurrency": 0 }),
    ] {
        let r = aside
            .admin("POST", "/cache/warm")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let missing = aside
        .admin("GET", "/cache/warm/999999")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_route_warms_its_urls_at_start() {
    let origin = Origin::start(|seen, _| {
        Reply::ok(format!("body of {}", seen.uri)).header("cache-control", "max-age=300")
    })
    .await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .route(
            "host = \"warm.test\"\nmode = \"respect-origin\"\nwarm = [\"http://warm.test/cities\", \"http://warm.test/cities?page=2\"]",
        )
        .start()
        .await;
    let warmed =
        aside_tests::eventually(Duration::from_secs(10), || async { origin.hits() == 2 }).await;
    assert!(
        warmed,
        "origin saw {} requests; log:\n{}",
        origin.hits(),
        aside.log()
    );
    let mut uris: Vec<String> = origin.seen().into_iter().map(|s| s.uri).collect();
    uris.sort();
    assert_eq!(uris, ["/cities", "/cities?page=2"]);
    // The first client finds them cached.
    for path in ["/cities", "/cities?page=2"] {
        let r = aside.request("GET", path, &[("host", "warm.test")]).await;
        assert_eq!(r.x_cache(), "HIT", "{path}");
        assert_eq!(r.text(), format!("body of {path}"));
    }
    assert_eq!(origin.hits(), 2);
    // The warm job counts a URL once it has read the whole answer, which may be
    // after the entry is already served.
    let counted = aside_tests::eventually(Duration::from_secs(10), || async {
        aside
            .metric("aside_warm_urls_total", &["result=\"ok\""])
            .await
            == 2
    })
    .await;
    assert!(
        counted,
        "aside_warm_urls_total{{result=\"ok\"}} = {}",
        aside
            .metric("aside_warm_urls_total", &["result=\"ok\""])
            .await
    );
}

#[test]
fn warm_urls_must_be_absolute_http_urls() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("warm.toml");
    for (url, ok) in [
        ("http://api.test/v1/cities", true),
        ("https://api.test/v1/cities", false),
        ("/v1/cities", false),
        ("http:///nohost", false),
        ("http://api.test/a b", false),
    ] {
        std::fs::write(
            &file,
            format!("[[upstream]]\nname = \"o\"\nurl = \"http://127.0.0.1:9\"\n\n[[route]]\nupstream = \"o\"\nwarm = [\"{url}\"]\n"),
        )
        .unwrap();
        let out = std::process::Command::new(aside_tests::aside_bin())
            .arg("--check-config")
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "{url}: {err}");
        if !ok {
            assert!(err.contains("warm.toml:7"), "{url}: {err}");
            assert!(
                err.contains("warm[0]") && err.contains("http://"),
                "{url}: {err}"
            );
        }
    }
}
