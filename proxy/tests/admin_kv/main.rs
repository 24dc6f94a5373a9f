//! End-to-end tests of the application KV API through a real socket: reads,
//! writes, lists, limits and errors here; `atomic.rs` the atomic endpoint;
//! `values.rs` values kept exactly as written and body handling.

#[path = "../admin_support/mod.rs"]
mod admin_support;
mod atomic;
mod values;

use std::collections::BTreeSet;
use std::time::Duration;

use admin_support::{assert_error, send, start};
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn set_get_delete_roundtrip() {
    let admin = start().await;
    let resp = admin
        .req(Method::PUT, "/kv/items/notes/abc-123")
        .json(&json!({"value": {"title": "hi", "n": [1, 2]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = resp.headers()[header::ETAG].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let version = body["data"]["version"].as_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{version}\""));
    assert_eq!(body["data"]["key"], "notes/abc-123");
    assert_eq!(body["data"]["expiresAt"], Value::Null);

    let resp = admin
        .req(Method::GET, "/kv/items/notes/abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::ETAG].to_str().unwrap(), etag);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"data": {"key": "notes/abc-123", "value": {"title": "hi", "n": [1, 2]},
                        "version": version, "expiresAt": null}})
    );

    // Conditional GET.
    let resp = admin
        .req(Method::GET, "/kv/items/notes/abc-123")
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    let (status, body) = send(admin.req(Method::DELETE, "/kv/items/notes/abc-123")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let (status, body) = admin.get("notes/abc-123").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // Deleting an absent key is still 204.
    let (status, _) = send(admin.req(Method::DELETE, "/kv/items/notes/abc-123")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn ttl_expiry_is_visible_through_get() {
    let admin = start().await;
    let (status, body) = admin
        .put("s/1", json!({"value": "x", "ttlSeconds": 10}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expires = body["data"]["expiresAt"].as_str().unwrap().to_owned();
    let parsed =
        time::OffsetDateTime::parse(&expires, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let now = time::OffsetDateTime::from(admin.store.clock().now());
    let left = (parsed - now).whole_seconds();
    assert!((9..=10).contains(&left), "{expires} is {left}s away");

    let (status, body) = admin.get("s/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["expiresAt"], expires.as_str());

    admin.clock.advance(Duration::from_secs(11));
    let (status, body) = admin.get("s/1").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, body) = send(admin.req(Method::GET, "/kv/items?prefix=s")).await;
    assert_eq!(body["data"]["total"], 0, "{body}");

    // TTL bounds: 0 and over a year are 400.
    for ttl in [0u64, 366 * 86_400] {
        let (status, body) = admin
            .put("s/2", json!({"value": 1, "ttlSeconds": ttl}))
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_ttl");
    }
}

#[tokio::test]
async fn conditional_writes() {
    let admin = start().await;
    let put = |cond: Option<(&'static str, String)>, value: i64| {
        let mut req = admin
            .req(Method::PUT, "/kv/items/flags/a")
            .json(&json!({ "value": value }));
        if let Some((name, v)) = cond {
            req = req.header(name, v);
        }
        send(req)
    };
    let (status, body) = put(Some(("If-None-Match", "*".into())), 1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v1 = body["data"]["version"].as_str().unwrap().to_owned();
    let (status, body) = put(Some(("If-None-Match", "*".into())), 2).await;
    assert_error(
        status,
        &body,
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
    );

    let (status, body) = put(Some(("If-Match", format!("\"{v1}\""))), 3).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v2 = body["data"]["version"].as_str().unwrap().to_owned();
    assert_ne!(v1, v2);
    // The old version no longer matches.
    let (status, body) = put(Some(("If-Match", format!("\"{v1}\""))), 4).await;
    assert_error(
        status,
        &body,
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
    );
    // Not a version at all, and a weak tag: never match.
    for tag in ["\"nonsense\"", "W/\"x\""] {
        let (status, body) = put(Some(("If-Match", tag.into())), 5).await;
        assert_error(
            status,
            &body,
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
        );
    }
    // `*` = must exist.
    let (status, _) = put(Some(("If-Match", "*".into())), 6).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        admin
            .req(Method::PUT, "/kv/items/flags/absent")
            .header("If-Match", "*")
            .json(&json!({"value": 1})),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
    );
    // Unsupported combinations are 400.
    let (status, body) = send(
        admin
            .req(Method::PUT, "/kv/items/flags/a")
            .header("If-None-Match", "\"x\"")
            .json(&json!({"value": 1})),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");

    let (_, body) = admin.get("flags/a").await;
    assert_eq!(body["data"]["value"], 6);
    assert!(admin.get("flags/absent").await.0 == StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn list_filters_and_order() {
    let admin = start().await;
    for key in ["a/1", "a/2", "a/3", "ab/1", "b/1"] {
        assert_eq!(
            admin.put(key, json!({"value": key})).await.0,
            StatusCode::OK
        );
    }
    let keys = |body: &Value| -> Vec<String> {
        body["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, body) = send(admin.req(Method::GET, "/kv/items?prefix=a")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys(&body),
        ["a/1", "a/2", "a/3"],
        "prefixes match whole parts"
    );
    assert_eq!(body["data"]["total"], 3);
    assert_eq!(body["data"]["cursor"], Value::Null);
    assert_eq!(body["data"]["items"][0]["value"], "a/1");

    let (_, body) = send(admin.req(Method::GET, "/kv/items?prefix=a&reverse=true")).await;
    assert_eq!(keys(&body), ["a/3", "a/2", "a/1"]);
    let (_, body) = send(admin.req(Method::GET, "/kv/items?start=a/2&end=b")).await;
    assert_eq!(keys(&body), ["a/2", "a/3", "ab/1"]);
    let (_, body) = send(admin.req(Method::GET, "/kv/items?limit=2")).await;
    assert_eq!(keys(&body), ["a/1", "a/2"]);
    assert_eq!(body["data"]["total"], 5);
    assert!(body["data"]["cursor"].is_string());
}

#[tokio::test]
async fn list_pagination_while_writes_happen() {
    let admin = start().await;
    // Stable keys that exist during the whole walk: each must be seen exactly once.
    let stable: BTreeSet<String> = (0..60).map(|i| format!("p/{i:03}")).collect();
    for key in &stable {
        assert_eq!(admin.put(key, json!({"value": 0})).await.0, StatusCode::OK);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut page_no = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/kv/items?prefix=p&limit=7&cursor={}", urlencode(c)),
            None => "/kv/items?prefix=p&limit=7".to_owned(),
        };
        let (status, body) = send(admin.req(Method::GET, &path)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for item in body["data"]["items"].as_array().unwrap() {
            seen.push(item["key"].as_str().unwrap().to_owned());
        }
        // Writes between pages: new keys, updates of seen and unseen stable keys.
        page_no += 1;
        admin
            .put(&format!("p/{:03}x", page_no * 5), json!({"value": "new"}))
            .await;
        admin.put("p/000", json!({"value": page_no})).await;
        admin.put("p/059", json!({"value": page_no})).await;
        match body["data"]["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(page_no < 100, "pagination does not end");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages are in key order");
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a key appeared twice: {seen:?}");
    assert!(stable.is_subset(&unique), "a stable key was skipped");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn list_rejects_bad_parameters() {
    let admin = start().await;
    for (query, code) in [
        ("limit=0", "bad_request"),
        ("limit=1001", "bad_request"),
        ("limit=abc", "bad_request"),
        ("limit=-1", "bad_request"),
        ("reverse=maybe", "bad_request"),
        ("cursor=not-a-cursor", "invalid_cursor"),
        ("prefx=a", "bad_request"),
    ] {
        let (status, body) = send(admin.req(Method::GET, &format!("/kv/items?{query}"))).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, code);
    }
    let (status, _) = send(admin.req(Method::GET, "/kv/items?limit=1000&reverse=false")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn get_many_keeps_order_with_nulls() {
    let admin = start().await;
    admin.put("m/a", json!({"value": 1})).await;
    admin.put("m/c", json!({"value": 3})).await;
    let (status, body) = admin
        .post("/kv/get-many", json!({"keys": ["m/c", "m/b", "m/a"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["value"], 3);
    assert_eq!(items[1], Value::Null);
    assert_eq!(items[2]["key"], "m/a");
    let (status, body) = admin.post("/kv/get-many", json!({"keys": ["a//b"]})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_key");
    let keys: Vec<String> = (0..1001).map(|i| format!("k/{i}")).collect();
    let (status, body) = admin.post("/kv/get-many", json!({ "keys": keys })).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn value_and_body_size_limits() {
    let admin = start().await;
    let big = "x".repeat(1_600_000);
    let (status, body) = admin.put("big/1", json!({ "value": big })).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Value size (1562.50 KB) exceeds the maximum allowed size of 1 MB (1024 KB)"
        ),
        "{message}"
    );
    let huge = "y".repeat(5 * 1024 * 1024);
    let (status, body) = admin.put("big/2", json!({ "value": huge })).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(admin.snapshot().await.is_empty());
}

#[tokio::test]
async fn method_media_type_and_route_errors() {
    let admin = start().await;
    let resp = admin.req(Method::POST, "/kv/items/a").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = resp.headers()[header::ALLOW].to_str().unwrap().to_owned();
    for m in ["GET", "PUT", "DELETE"] {
        assert!(allow.contains(m), "{allow}");
    }
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");

    let resp = admin
        .req(Method::DELETE, "/kv/get-many")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()[header::ALLOW], "POST");

    // A body that is not JSON, without a JSON Content-Type: 415 (a JSON body is accepted
    // whatever its Content-Type; see `json_bodies_need_no_json_content_type`).
    let (status, body) = send(
        admin
            .req(Method::PUT, "/kv/items/a")
            .header(header::CONTENT_TYPE, "text/plain")
            .body("value=1"),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let (status, body) = send(admin.req(Method::POST, "/kv/atomic").body("{checks")).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let (status, body) = send(admin.req(Method::GET, "/nope")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "no_route");
    let (status, body) = send(admin.req(Method::GET, "/kv/items/")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "no_route");
    assert!(admin.snapshot().await.is_empty());
}
