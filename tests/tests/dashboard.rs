//! The dashboard's API (issue 19): `/stats/series`, `/stats/top`,
//! `/admin/config`, and its static files under `/ui/`. The pages themselves
//! are driven in a real browser by `dashboard_browser.rs`.

use std::time::Duration;

use aside_tests::{eventually, Aside, Origin, Reply, TOKEN};
use serde_json::Value;

async fn json(aside: &Aside, path: &str) -> (u16, Value) {
    let resp = aside
        .admin("GET", path)
        .send()
        .await
        .expect("admin request");
    let status = resp.status().as_u16();
    let body = resp.json().await.expect("JSON body");
    (status, body)
}

fn sum(points: &[Value], field: impl Fn(&Value) -> &Value) -> u64 {
    points.iter().filter_map(|p| field(p).as_u64()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_endpoints_follow_the_traffic() {
    let origin = Origin::start(|_, _| Reply::ok("x").header("cache-control", "max-age=300")).await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .upstream_extra("headers = { Authorization = \"Bearer origin-s3cret\" }")
        .start()
        .await;
    for _ in 0..3 {
        for path in ["/popular", "/popular", "/popular", "/rare"] {
            let resp = aside.get(path).await;
            assert_eq!(resp.status, 200);
        }
    }
    // Top URLs and hosts: /popular first, its hit ratio 8 hits of 9.
    let (status, top) = json(&aside, "/stats/top?limit=1").await;
    assert_eq!(status, 200, "{top}");
    let urls = top["data"]["urls"].as_array().expect("urls");
    assert_eq!(urls.len(), 1, "{top}");
    assert!(
        urls[0]["name"].as_str().unwrap().ends_with("/popular"),
        "{top}"
    );
    assert_eq!(urls[0]["requests"], 9, "{top}");
    assert_eq!(urls[0]["hits"], 8, "{top}");
    let hosts = top["data"]["hosts"].as_array().expect("hosts");
    assert_eq!(hosts[0]["requests"], 12, "{top}");
    let (status, err) = json(&aside, "/stats/top?limit=0").await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("limit"));

    // The series: a point appears within one interval and counts the traffic
    // (hits and misses of the interval, the origin's requests).
    let points = || async {
        let (_, series) = json(&aside, "/stats/series").await;
        assert_eq!(series["data"]["intervalSeconds"], 10);
        series["data"]["points"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let seen = eventually(Duration::from_secs(25), || async {
        sum(&points().await, |p| &p["requests"]["hit"]) == 10
    })
    .await;
    let points = points().await;
    assert!(seen, "no points with the 10 hits appeared: {points:?}");
    assert_eq!(sum(&points, |p| &p["requests"]["miss"]), 2, "{points:?}");
    assert_eq!(
        sum(&points, |p| &p["upstreams"]["origin"]["requests"]),
        2,
        "{points:?}"
    );
    let last = points.last().unwrap();
    assert!(last["t"].as_u64().unwrap() > 1_700_000_000, "{last}");
    assert!(
        points
            .iter()
            .any(|p| p["upstreams"]["origin"]["p99Ms"].as_f64() > Some(0.0)),
        "{points:?}"
    );
    assert!(
        last["tiers"]["hot"]["bytes"].as_u64() > Some(0)
            || last["tiers"]["disk"]["entries"].as_u64() > Some(0),
        "{last}"
    );

    // The running config, secrets masked.
    let (status, config) = json(&aside, "/admin/config").await;
    assert_eq!(status, 200, "{config}");
    let text = config["data"]["text"].as_str().unwrap();
    assert!(!text.contains("origin-s3cret"), "{text}");
    assert!(text.contains("Authorization = \"***\""), "{text}");
    assert!(text.contains(&origin.url()), "{text}");
    assert!(config["data"]["path"]
        .as_str()
        .unwrap()
        .ends_with("aside.toml"));

    // Every one of them needs the token.
    for path in ["/stats/series", "/stats/top", "/admin/config"] {
        let resp = reqwest::Client::new()
            .get(aside.admin_url(path))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_files_are_served_without_a_token_with_a_strict_policy() {
    let origin = Origin::start(|_, _| Reply::ok("x")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(aside.admin_url("/ui")).send().await.unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["location"], "/ui/");

    let resp = client.get(aside.admin_url("/ui/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let etag = resp.headers()["etag"].clone();
    let page = resp.text().await.unwrap();
    assert!(page.contains("<script"), "{page}");
    assert!(!page.contains(TOKEN), "the page must not carry the token");

    // Revalidation by ETag.
    let resp = client
        .get(aside.admin_url("/ui/"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);

    let resp = client
        .get(aside.admin_url("/ui/no-such-file.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_route");
    // Outside /ui/ the token is still required.
    let resp = client.get(aside.admin_url("/uix")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}
