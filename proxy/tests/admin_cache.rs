//! End-to-end tests of the cache admin API: list, inspect, inject, delete and purge.

mod admin_support;

use std::time::Duration;

use admin_support::{assert_error, send, start, Admin};
use aside_proxy::admin::cache::entries;
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

/// Inject a response through the same code path the proxy's keys use.
async fn inject(admin: &Admin, url: &str, body: &str) -> String {
    let config = admin.config.load_full();
    entries::inject(
        &admin.store,
        &config,
        url,
        200,
        vec![("content-type".into(), "text/plain".into())],
        bytes::Bytes::from(body.to_owned()),
        Duration::from_secs(60),
    )
    .await
    .expect("inject")
}

/// Five entries on three hosts; the `tagged.test` ones carry tag `t1`.
async fn seed(admin: &Admin) {
    for url in [
        "http://a.test/v1/x",
        "http://a.test/v1/y?b=2&a=1",
        "http://a.test/v2/z",
        "http://b.test/v1/x",
        "http://tagged.test/t",
    ] {
        inject(admin, url, url).await;
    }
}

async fn listed(admin: &Admin, query: &str) -> Vec<String> {
    let (status, body) = send(admin.req(Method::GET, &format!("/cache/entries?{query}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_and_inspect_entries() {
    let admin = start().await;
    seed(&admin).await;
    assert_eq!(listed(&admin, "").await.len(), 5);
    assert_eq!(
        listed(&admin, "prefix=http://a.test/v1/").await,
        ["http://a.test/v1/x", "http://a.test/v1/y?a=1&b=2"]
    );
    assert_eq!(listed(&admin, "host=B.test").await, ["http://b.test/v1/x"]);
    assert_eq!(listed(&admin, "tag=t1").await, ["http://tagged.test/t"]);

    // Pagination.
    let (_, body) = send(admin.req(Method::GET, "/cache/entries?limit=2")).await;
    assert_eq!(body["data"]["entries"].as_array().unwrap().len(), 2);
    let cursor = body["data"]["cursor"].as_str().unwrap().to_owned();
    let (status, body) = send(
        admin
            .req(Method::GET, "/cache/entries")
            .query(&[("limit", "10"), ("cursor", cursor.as_str())]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["entries"].as_array().unwrap().len(), 3);
    let entry = &body["data"]["entries"][0];
    for field in [
        "url",
        "hash",
        "status",
        "size",
        "tier",
        "storedAt",
        "freshUntil",
        "staleUntil",
        "tags",
    ] {
        assert!(!entry[field].is_null(), "{field} missing: {entry}");
    }
    for (query, code) in [
        ("limit=0", "bad_request"),
        ("cursor=zzz", "invalid_cursor"),
        ("bogus=1", "bad_request"),
    ] {
        let (status, body) = send(admin.req(Method::GET, &format!("/cache/entries?{query}"))).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, code);
    }

    // One entry, with headers and (on request) the body; the URL is normalized (query sorted).
    let (status, body) = send(
        admin
            .req(Method::GET, "/cache/entry")
            .query(&[("url", "http://A.test/v1/y?a=1&b=2"), ("body", "true")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["url"], "http://a.test/v1/y?a=1&b=2");
    let entry = &body["data"]["entries"][0];
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["body"], "http://a.test/v1/y?b=2&a=1");
    assert_eq!(entry["bodyEncoding"], "utf8");
    let headers = entry["headers"].as_array().unwrap();
    assert!(
        headers
            .iter()
            .any(|h| h["name"] == "content-type" && h["value"] == "text/plain"),
        "{headers:?}"
    );
    let (_, body) = send(
        admin
            .req(Method::GET, "/cache/entry")
            .query(&[("url", "http://a.test/v1/x")]),
    )
    .await;
    assert!(body["data"]["entries"][0].get("body").is_none(), "{body}");

    let (status, body) = send(
        admin
            .req(Method::GET, "/cache/entry")
            .query(&[("url", "http://a.test/none")]),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    for url in ["not a url", "/relative", "ftp://a.test/x"] {
        let (status, body) = send(
            admin
                .req(Method::GET, "/cache/entry")
                .query(&[("url", url)]),
        )
        .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_url");
    }
    let (status, body) = send(admin.req(Method::GET, "/cache/entry")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn inject_through_the_api_then_delete() {
    let admin = start().await;
    let (status, body) = send(
        admin
            .req(Method::PUT, "/cache/entry")
            .query(&[("url", "http://a.test/warm?z=1&a=2"), ("ttlSeconds", "120")])
            .header(header::CONTENT_TYPE, "application/json")
            .body(r#"{"warm": true}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["url"], "http://a.test/warm?a=2&z=1");
    let (_, body) = send(
        admin
            .req(Method::GET, "/cache/entry")
            .query(&[("url", "http://a.test/warm?a=2&z=1"), ("body", "true")]),
    )
    .await;
    let entry = &body["data"]["entries"][0];
    assert_eq!(entry["body"], r#"{"warm": true}"#);
    assert!(entry["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["name"] == "content-type" && h["value"] == "application/json"));
    // Binary bodies come back as base64.
    send(
        admin
            .req(Method::PUT, "/cache/entry")
            .query(&[
                ("url", "http://a.test/bin"),
                ("ttlSeconds", "60"),
                ("status", "203"),
            ])
            .body(vec![0xffu8, 0x00, 0x80]),
    )
    .await;
    let (_, body) = send(
        admin
            .req(Method::GET, "/cache/entry")
            .query(&[("url", "http://a.test/bin"), ("body", "true")]),
    )
    .await;
    assert_eq!(body["data"]["entries"][0]["body"], "/wCA");
    assert_eq!(body["data"]["entries"][0]["bodyEncoding"], "base64");
    assert_eq!(body["data"]["entries"][0]["status"], 203);

    // Bad injections.
    for query in [
        vec![("url", "http://a.test/x")],
        vec![("url", "http://a.test/x"), ("ttlSeconds", "0")],
        vec![("url", "http://a.test/x"), ("ttlSeconds", "abc")],
        vec![
            ("url", "http://a.test/x"),
            ("ttlSeconds", "60"),
            ("status", "99"),
        ],
        vec![("url", "nope"), ("ttlSeconds", "60")],
    ] {
        let (status, body) = send(
            admin
                .req(Method::PUT, "/cache/entry")
                .query(&query)
                .body("x"),
        )
        .await;
        assert!(
            status == StatusCode::BAD_REQUEST,
            "{query:?}: {status} {body}"
        );
    }
    assert_eq!(listed(&admin, "").await.len(), 2);

    let (status, body) = send(
        admin
            .req(Method::DELETE, "/cache/entry")
            .query(&[("url", "http://a.test/warm?z=1&a=2")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"data": {"matched": 1, "purged": 1}}));
    let (status, _) = send(
        admin
            .req(Method::GET, "/cache/entry")
            .query(&[("url", "http://a.test/warm?a=2&z=1")]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = send(
        admin
            .req(Method::DELETE, "/cache/entry")
            .query(&[("url", "http://a.test/warm")]),
    )
    .await;
    assert_eq!(body, json!({"data": {"matched": 0, "purged": 0}}));
}

async fn purge(admin: &Admin, body: Value) -> (StatusCode, Value) {
    admin.post("/cache/purge", body).await
}

#[tokio::test]
async fn purge_by_each_selector_and_dry_run() {
    let admin = start().await;
    seed(&admin).await;

    // Dry run counts and changes nothing.
    let (status, body) = purge(&admin, json!({"hosts": ["a.test"], "dryRun": true})).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"data": {"matched": 3, "purged": 0}}))
    );
    assert_eq!(listed(&admin, "").await.len(), 5);
    let (_, body) = purge(&admin, json!({"everything": true, "dryRun": true})).await;
    assert_eq!(body, json!({"data": {"matched": 5, "purged": 0}}));
    assert_eq!(listed(&admin, "").await.len(), 5);

    // Nothing selected: 400, and `everything` must be explicit.
    for body in [
        json!({}),
        json!({"everything": false}),
        json!({"urls": [], "soft": true}),
    ] {
        let (status, resp) = purge(&admin, body).await;
        assert_error(status, &resp, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(listed(&admin, "").await.len(), 5);

    // By URL (normalized like the proxy does).
    let (_, body) = purge(&admin, json!({"urls": ["http://A.test/v1/y?a=1&b=2"]})).await;
    assert_eq!(body, json!({"data": {"matched": 1, "purged": 1}}));
    // By prefix.
    let (_, body) = purge(&admin, json!({"prefixes": ["http://a.test/v2/"]})).await;
    assert_eq!(body, json!({"data": {"matched": 1, "purged": 1}}));
    // By tag.
    let (_, body) = purge(&admin, json!({"tags": ["t1"]})).await;
    assert_eq!(body, json!({"data": {"matched": 1, "purged": 1}}));
    // By host.
    let (_, body) = purge(&admin, json!({"hosts": ["B.TEST"]})).await;
    assert_eq!(body, json!({"data": {"matched": 1, "purged": 1}}));
    assert_eq!(listed(&admin, "").await, ["http://a.test/v1/x"]);
    // Everything.
    seed(&admin).await;
    let (_, body) = purge(&admin, json!({"everything": true})).await;
    assert_eq!(body, json!({"data": {"matched": 5, "purged": 5}}));
    assert!(listed(&admin, "").await.is_empty());
    // Purges are counted in the metrics.
    let (_, text) = send(admin.req(Method::GET, "/metrics")).await;
    assert!(text
        .as_str()
        .unwrap()
        .contains("aside_purged_entries_total"));
}

#[tokio::test]
async fn soft_purge_marks_stale_and_keeps_the_entry() {
    let admin = start().await;
    seed(&admin).await;
    let (status, body) = purge(
        &admin,
        json!({"prefixes": ["http://a.test/v1/"], "soft": true}),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"data": {"matched": 2, "purged": 2}}))
    );
    let (_, body) = send(admin.req(Method::GET, "/cache/entries?prefix=http://a.test/")).await;
    let entries = body["data"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "soft-purged entries are kept");
    for entry in entries {
        let soft = entry["url"]
            .as_str()
            .unwrap()
            .starts_with("http://a.test/v1/");
        assert_eq!(entry["softPurged"], soft, "{entry}");
    }
    // The store no longer treats them as fresh.
    let now = admin.store.clock().now();
    let page = admin
        .store
        .cache_list(&aside_store::CacheFilter::default(), 100, None)
        .await
        .unwrap();
    for summary in page.entries {
        let fresh = summary.fresh_until > now;
        assert_eq!(
            fresh,
            !summary.url.starts_with("http://a.test/v1/"),
            "{}",
            summary.url
        );
    }
}
