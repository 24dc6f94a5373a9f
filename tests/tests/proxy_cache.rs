//! End-to-end HTTP caching behaviour through the real `aside` binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aside_tests::{eventually, Aside, Origin, Reply};

fn cached(body: &str) -> Reply {
    Reply::ok(body.to_owned()).header("cache-control", "public, max-age=60")
}

#[tokio::test]
async fn miss_then_hit_with_identical_body_and_headers() {
    let origin = Origin::start(|_, n| cached(&format!("body {n}")).header("x-custom", "yes")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;

    let first = aside.get("/a?x=1").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(
        first.header("cache-status"),
        "Aside; fwd=miss; fwd-status=200",
        "a miss streams its body while it is stored: `stored` is not known yet"
    );
    let second = aside.get("/a?x=1").await;
    assert_eq!(second.x_cache(), "HIT", "{:?}", second.headers);
    assert!(second
        .header("cache-status")
        .starts_with("Aside; hit; ttl="));
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("x-custom"), "yes");
    assert_eq!(second.header("cache-control"), "public, max-age=60");
    assert!(second.headers.contains_key("age"));
    assert_eq!(origin.hits(), 1);

    // A different query is a different key.
    let other = aside.get("/a?x=2").await;
    assert_eq!(other.x_cache(), "MISS");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn concurrent_misses_are_coalesced_into_one_origin_request() {
    let origin =
        Origin::start(|_, n| cached(&format!("slow {n}")).delay(Duration::from_millis(300))).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let aside = Arc::new(aside);

    let mut tasks = Vec::new();
    for _ in 0..200 {
        let a = aside.clone();
        tasks.push(tokio::spawn(async move { a.get("/coalesce").await }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "slow 1");
    }
    assert_eq!(origin.hits(), 1, "the origin must see exactly one request");
}

#[tokio::test]
async fn expired_entries_are_fetched_again() {
    let origin =
        Origin::start(|_, n| Reply::ok(format!("v{n}")).header("cache-control", "max-age=1")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;

    assert_eq!(aside.get("/ttl").await.text(), "v1");
    assert_eq!(aside.get("/ttl").await.x_cache(), "HIT");
    let refreshed = eventually(Duration::from_secs(5), || async {
        aside.get("/ttl").await.text() == "v2"
    })
    .await;
    assert!(refreshed, "entry never expired");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once_in_background() {
    let origin = Origin::start(|_, n| {
        let r = Reply::ok(format!("v{n}"))
            .header("cache-control", "max-age=1, stale-while-revalidate=60");
        if n > 1 {
            r.delay(Duration::from_millis(700))
        } else {
            r
        }
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    assert_eq!(aside.get("/swr").await.text(), "v1");
    tokio::time::sleep(Duration::from_millis(1100)).await; // let the 1 s max-age pass

    let started = Instant::now();
    let stale = aside.get("/swr").await;
    assert_eq!(stale.text(), "v1", "stale copy served");
    assert_eq!(stale.x_cache(), "STALE");
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "served without waiting for the origin"
    );
    // More requests during the refresh still get the stale copy and cause no extra fetch.
    assert_eq!(aside.get("/swr").await.text(), "v1");
    let refreshed = eventually(Duration::from_secs(5), || async {
        aside.get("/swr").await.text() == "v2"
    })
    .await;
    assert!(refreshed, "background refresh never landed");
    assert_eq!(origin.hits(), 2, "exactly one background refresh");
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_origin_is_down_and_502_otherwise() {
    let origin = Origin::start(|_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=1, stale-if-error=60")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    assert_eq!(aside.get("/sie").await.text(), "v1");
    origin.stop();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let r = aside.get("/sie").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "v1");
    assert_eq!(r.x_cache(), "STALE");
    assert_eq!(
        r.header("connection"),
        "close",
        "pingora drops this connection: say so"
    );

    let never = aside.get("/never-stored").await;
    assert_eq!(never.status, 502);
    assert!(never.text().contains("upstream_error"), "{}", never.text());
}

#[tokio::test]
async fn origin_5xx_triggers_stale_if_error() {
    let origin = Origin::start(|_, n| {
        if n == 1 {
            Reply::ok("good").header("cache-control", "max-age=1, stale-if-error=60")
        } else {
            Reply::status(503, "down")
        }
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    assert_eq!(aside.get("/five").await.text(), "good");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = aside.get("/five").await;
    assert_eq!((r.status, r.text().as_str()), (200, "good"));
}

#[tokio::test]
async fn etag_revalidation_refreshes_without_body_transfer() {
    let origin = Origin::start(|seen, n| {
        if seen
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"tag1\"")
        {
            Reply::status(304, "")
                .header("etag", "\"tag1\"")
                .header("cache-control", "max-age=1")
        } else {
            Reply::ok(format!("full {n}"))
                .header("etag", "\"tag1\"")
                .header("cache-control", "max-age=1")
        }
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    assert_eq!(aside.get("/etag").await.text(), "full 1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = aside.get("/etag").await;
    assert_eq!(
        r.text(),
        "full 1",
        "the stored body is reused; origin saw {:?}",
        origin.seen().last().map(|s| s.headers.clone())
    );
    assert_eq!(r.x_cache(), "REVALIDATED");
    assert_eq!(origin.hits(), 2);
    assert_eq!(
        aside.get("/etag").await.x_cache(),
        "HIT",
        "freshness was renewed"
    );
    let seen = origin.seen();
    assert_eq!(
        seen[1]
            .headers
            .get("if-none-match")
            .map(|v| v.to_str().unwrap()),
        Some("\"tag1\"")
    );
}

#[tokio::test]
async fn last_modified_revalidation() {
    let lm = "Wed, 21 Oct 2015 07:28:00 GMT";
    let origin = Origin::start(move |seen, _| {
        if seen
            .headers
            .get("if-modified-since")
            .is_some_and(|v| v == lm)
        {
            Reply::status(304, "").header("cache-control", "max-age=1")
        } else {
            Reply::ok("dated")
                .header("last-modified", lm)
                .header("cache-control", "max-age=1")
        }
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/lm").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = aside.get("/lm").await;
    assert_eq!((r.text().as_str(), r.x_cache()), ("dated", "REVALIDATED"));
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let origin = Origin::start(|seen, _| {
        let lang = seen
            .headers
            .get("accept-language")
            .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
        cached(&format!("lang={lang}")).header("vary", "Accept-Language")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let en = aside
        .request("GET", "/v", &[("accept-language", "en")])
        .await;
    let fr = aside
        .request("GET", "/v", &[("accept-language", "fr")])
        .await;
    assert_eq!(en.text(), "lang=en");
    assert_eq!(fr.text(), "lang=fr");
    let en2 = aside
        .request("GET", "/v", &[("accept-language", "en")])
        .await;
    let fr2 = aside
        .request("GET", "/v", &[("accept-language", "fr")])
        .await;
    assert_eq!((en2.text().as_str(), en2.x_cache()), ("lang=en", "HIT"));
    assert_eq!((fr2.text().as_str(), fr2.x_cache()), ("lang=fr", "HIT"));
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn vary_star_is_not_stored() {
    let origin = Origin::start(|_, n| cached(&format!("{n}")).header("vary", "*")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/star").await;
    assert_eq!(aside.get("/star").await.text(), "2");
}

#[tokio::test]
async fn private_responses_are_never_shared() {
    let origin = Origin::start(|seen, n| match seen.uri.as_str() {
        "/no-store" => Reply::ok(format!("{n}")).header("cache-control", "no-store"),
        "/private" => Reply::ok(format!("{n}")).header("cache-control", "private, max-age=60"),
        "/cookie" => cached(&format!("{n}")).header("set-cookie", "session=abc"),
        "/auth" => Reply::ok(format!("{n}")).header("cache-control", "max-age=60"),
        _ => cached(&format!("{n}")),
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    for path in ["/no-store", "/private", "/cookie"] {
        let a = aside.get(path).await;
        let b = aside.get(path).await;
        assert_ne!(a.body, b.body, "{path} was served from the cache");
        assert_eq!(b.x_cache(), "MISS", "{path}");
    }
    // Authorization: not shared unless the origin says public / s-maxage.
    let a = aside
        .request("GET", "/auth", &[("authorization", "Bearer x")])
        .await;
    let b = aside
        .request("GET", "/auth", &[("authorization", "Bearer y")])
        .await;
    assert_ne!(a.body, b.body);
}

#[tokio::test]
async fn no_freshness_information_is_not_cached_by_default() {
    let origin = Origin::start(|_, n| Reply::ok(format!("{n}"))).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/plain").await;
    let r = aside.get("/plain").await;
    assert_eq!((r.text().as_str(), r.x_cache()), ("2", "MISS"));
}

#[tokio::test]
async fn head_and_range_on_a_hit() {
    let origin = Origin::start(|_, _| cached("0123456789")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/r").await;
    let head = aside.request("HEAD", "/r", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.x_cache(), "HIT");
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), "10");
    let range = aside.request("GET", "/r", &[("range", "bytes=2-5")]).await;
    assert_eq!(range.status, 206);
    assert_eq!(range.text(), "2345");
    assert_eq!(range.header("content-range"), "bytes 2-5/10");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn client_conditional_request_gets_304_from_cache() {
    let origin = Origin::start(|_, _| cached("x").header("etag", "\"e1\"")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/c").await;
    let r = aside
        .request("GET", "/c", &[("if-none-match", "\"e1\"")])
        .await;
    assert_eq!(r.status, 304);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn cached_entry_survives_a_restart_from_the_cold_tier() {
    let origin = Origin::start(|_, n| cached(&format!("persisted {n}"))).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/persist").await;
    assert_eq!(aside.get("/persist").await.x_cache(), "HIT");
    let aside = aside.restart().await;
    let r = aside.get("/persist").await;
    assert_eq!(r.x_cache(), "HIT", "{}", aside.log());
    assert_eq!(r.text(), "persisted 1");
    assert_eq!(origin.hits(), 1);
}

/// Bodies over 2 KiB live in segment files beside the redb file: after a
/// restart they come back byte for byte, `Range` reads slice them, and a purge
/// gives their space back.
#[tokio::test]
async fn large_bodies_come_back_whole_from_the_disk_tier_after_a_restart() {
    fn body(path: &str) -> Vec<u8> {
        let len = if path == "/mid" { 20_000 } else { 300_000 };
        (0..len)
            .map(|i: usize| (i % 251) as u8 ^ path.len() as u8)
            .collect()
    }
    let origin = Origin::start(|seen, _| {
        Reply::ok(body(&seen.uri)).header("cache-control", "public, max-age=60")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    for path in ["/mid", "/large"] {
        assert_eq!(aside.get(path).await.body, body(path));
    }
    // Two bodies, each after its 32-byte header (fills are written just after
    // the responses).
    assert!(
        eventually(Duration::from_secs(5), || async {
            aside.metric("aside_store_body_file_bytes", &[]).await == 20_000 + 300_000 + 2 * 32
        })
        .await,
        "{}",
        aside.metrics_text().await
    );
    let aside = aside.restart().await;
    for path in ["/mid", "/large"] {
        let r = aside.get(path).await;
        assert_eq!(r.x_cache(), "HIT", "{path}: {}", aside.log());
        assert_eq!(r.body, body(path), "{path} after the restart");
    }
    // Each was read from the disk tier once: on the proxy thread when the page
    // cache holds it (files just written do, where RWF_NOWAIT works), else
    // through the store's reader threads.
    let inline = aside
        .metric("aside_store_cold_reads_total", &["inline"])
        .await;
    let pool = aside
        .metric("aside_store_cold_reads_total", &["pool"])
        .await;
    assert_eq!(inline + pool, 2, "{}", aside.metrics_text().await);
    let r = aside
        .request("GET", "/large", &[("range", "bytes=299990-")])
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, body("/large")[299_990..]);
    assert_eq!(origin.hits(), 2);
    for path in ["/mid", "/large"] {
        assert_eq!(aside.request("PURGE", path, &[]).await.status, 200);
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            aside.metric("aside_store_body_file_bytes", &[]).await == 0
        })
        .await,
        "segment files not reclaimed after the purges"
    );
}

/// A disk-tier body over 256 KiB is served in chunks from its segment file and
/// not promoted into the hot tier (each hit reads the disk tier again); a
/// smaller one is promoted. Full reads, `HEAD` and `Range` stay exact.
#[tokio::test]
async fn large_disk_tier_bodies_are_streamed_and_not_promoted() {
    fn body(path: &str) -> Vec<u8> {
        let len = if path == "/small" { 200_000 } else { 1 << 20 };
        (0..len).map(|i: usize| (i % 241) as u8).collect()
    }
    let origin = Origin::start(|seen, _| {
        Reply::ok(body(&seen.uri)).header("cache-control", "public, max-age=60")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    for path in ["/small", "/big"] {
        assert_eq!(aside.get(path).await.body, body(path));
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            aside.metric("aside_store_body_file_bytes", &[]).await == 200_000 + (1 << 20) + 2 * 32
        })
        .await,
        "{}",
        aside.metrics_text().await
    );
    let aside = aside.restart().await;
    let cold_reads = || async {
        aside
            .metric("aside_store_cold_reads_total", &["inline"])
            .await
            + aside
                .metric("aside_store_cold_reads_total", &["pool"])
                .await
    };
    for round in 1..=3 {
        for path in ["/small", "/big"] {
            let r = aside.get(path).await;
            assert_eq!(
                (r.status, r.x_cache()),
                (200, "HIT"),
                "{path}: {}",
                aside.log()
            );
            assert_eq!(r.body, body(path), "{path}, round {round}");
        }
        // `/small` was read from the disk tier once, then promoted; `/big` every time.
        assert_eq!(cold_reads().await, 1 + round, "round {round}");
    }
    let head = aside.request("HEAD", "/big", &[]).await;
    assert_eq!((head.status, head.x_cache()), (200, "HIT"));
    assert_eq!(head.header("content-length"), "1048576");
    assert!(head.body.is_empty());
    let r = aside
        .request("GET", "/big", &[("range", "bytes=500000-700000")])
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), "bytes 500000-700000/1048576");
    assert_eq!(r.body, body("/big")[500_000..=700_000]);
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn purge_method_removes_the_url() {
    let origin = Origin::start(|_, n| cached(&format!("{n}"))).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/p").await;
    assert_eq!(aside.get("/p").await.x_cache(), "HIT");
    let purge = aside.request("PURGE", "/p", &[]).await;
    assert_eq!(purge.status, 200, "{}", purge.text());
    assert_eq!(
        purge.header("cache-status"),
        "Aside; fwd=bypass; detail=purge"
    );
    let r = aside.get("/p").await;
    assert_eq!((r.x_cache(), r.text().as_str()), ("MISS", "2"));
    assert_eq!(aside.request("PURGE", "/p-never", &[]).await.status, 404);
}

#[tokio::test]
async fn unsafe_methods_pass_through_and_invalidate() {
    let origin = Origin::start(|seen, n| {
        if seen.method == "POST" {
            Reply::status(201, "created").header("location", "/items/7")
        } else {
            cached(&format!("{n}"))
        }
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/items").await;
    aside.get("/items/7").await;
    assert_eq!(aside.get("/items").await.x_cache(), "HIT");
    let post = aside.request("POST", "/items", &[]).await;
    assert_eq!((post.status, post.x_cache()), (201, "BYPASS"));
    assert_eq!(aside.get("/items").await.x_cache(), "MISS");
    assert_eq!(
        aside.get("/items/7").await.x_cache(),
        "MISS",
        "Location invalidated"
    );
}

#[tokio::test]
async fn override_route_and_reload_shortening_the_ttl() {
    let origin = Origin::start(|_, n| Reply::ok(format!("{n}"))).await;
    let builder = Aside::builder()
        .upstream(&origin.url())
        .route("path-prefix = \"/api/\"\nmode = \"override\"\nttl = \"1h\"");
    let aside = builder.start().await;
    aside.get("/api/x").await;
    assert_eq!(
        aside.get("/api/x").await.x_cache(),
        "HIT",
        "override caches without origin headers"
    );

    let cfg = std::fs::read_to_string(&aside.config_path)
        .unwrap()
        .replace("ttl = \"1h\"", "ttl = \"1s\"");
    std::fs::write(&aside.config_path, cfg).unwrap();
    aside.sighup();
    let refetched = eventually(Duration::from_secs(6), || async {
        aside.get("/api/x").await.x_cache() == "MISS"
    })
    .await;
    assert!(
        refetched,
        "shortened TTL was not applied to the stored entry"
    );
}

#[tokio::test]
async fn bad_config_on_reload_keeps_the_old_one() {
    let origin = Origin::start(|_, n| cached(&format!("{n}"))).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    std::fs::write(&aside.config_path, "[server]\nlisten = 12\n").unwrap();
    aside.sighup();
    let logged = eventually(Duration::from_secs(5), || async {
        aside.log().contains("reload rejected")
    })
    .await;
    assert!(logged, "{}", aside.log());
    assert_eq!(aside.get("/still").await.status, 200);
}

#[tokio::test]
async fn connection_buffers_of_any_size_carry_large_requests_and_responses() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let served = body.clone();
    let origin = Origin::start(move |_, _| {
        Reply::ok(served.clone()).header("cache-control", "public, max-age=60")
    })
    .await;
    let big_header = "v".repeat(6000);
    // Tiny buffers, and the defaults (a body larger than the 80 KiB write buffer).
    for server in ["read-buffer = \"512B\"\nwrite-buffer = \"1KiB\"", ""] {
        let aside = Aside::builder()
            .upstream(&origin.url())
            .server_extra(server)
            .start()
            .await;
        for expected in ["MISS", "HIT"] {
            let resp = aside
                .request("GET", "/big", &[("x-big", big_header.as_str())])
                .await;
            assert_eq!((resp.status, resp.x_cache()), (200, expected), "{server}");
            assert!(
                resp.body == body,
                "{server}: body differs ({} bytes)",
                resp.body.len()
            );
        }
    }
}
