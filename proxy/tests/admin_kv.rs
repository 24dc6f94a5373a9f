//! End-to-end tests of the application KV API through a real socket.

mod admin_support;

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
async fn atomic_commits_all_or_nothing() {
    let admin = start().await;
    let (_, body) = admin.put("acct/a", json!({"value": 10})).await;
    let va = body["data"]["version"].as_str().unwrap().to_owned();

    let (status, body) = admin
        .post(
            "/kv/atomic",
            json!({
                "checks": [{"key": "acct/a", "version": va}, {"key": "acct/b", "version": null}],
                "mutations": [
                    {"type": "increment", "key": "acct/a", "delta": -3},
                    {"type": "set", "key": "acct/b", "value": 3, "ttlSeconds": 3600},
                    {"type": "increment", "key": "acct/n"},
                    {"type": "delete", "key": "acct/gone"}
                ]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let versions = body["data"]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 4);
    assert_eq!(versions[0]["key"], "acct/a");
    assert!(versions[0]["version"].is_string());
    assert_eq!(versions[3]["version"], Value::Null);
    assert_eq!(admin.get("acct/a").await.1["data"]["value"], 7);
    assert_eq!(admin.get("acct/n").await.1["data"]["value"], 1);
    assert!(admin.get("acct/b").await.1["data"]["expiresAt"].is_string());

    // A failed check (stale version) names the key and changes nothing.
    let before = admin.snapshot().await;
    let (status, body) = admin
        .post(
            "/kv/atomic",
            json!({
                "checks": [{"key": "acct/a", "version": va}],
                "mutations": [{"type": "set", "key": "acct/a", "value": 0},
                              {"type": "set", "key": "acct/z", "value": 0}]
            }),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "check_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("acct/a"),
        "{body}"
    );
    // "Must be absent" on an existing key.
    let (status, body) = admin
        .post(
            "/kv/atomic",
            json!({"checks": [{"key": "acct/b", "version": null}],
                   "mutations": [{"type": "delete", "key": "acct/a"}]}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "check_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("acct/b"),
        "{body}"
    );
    // Increment of a non-number.
    admin.put("acct/s", json!({"value": "text"})).await;
    let before_s = admin.snapshot().await;
    let (status, body) = admin
        .post(
            "/kv/atomic",
            json!({"mutations": [{"type": "set", "key": "acct/q", "value": 1},
                                 {"type": "increment", "key": "acct/s", "delta": 1}]}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "not_a_number");
    assert_eq!(admin.snapshot().await, before_s);
    assert_eq!(before.len() + 1, before_s.len());
    // Unknown mutation type / wrong delta type: 400 naming the place.
    let (status, body) = admin
        .post(
            "/kv/atomic",
            json!({"mutations": [{"type": "frobnicate", "key": "x"}]}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mutations[0]"),
        "{body}"
    );
    let (status, body) = admin
        .post(
            "/kv/atomic",
            json!({"mutations": [{"type": "increment", "key": "x", "delta": "1"}]}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(admin.snapshot().await, before_s);
}

/// 50 clients move units between two counters with check-and-set transfers; the sum is
/// invariant and every successful transfer is counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn atomic_transfers_under_50_concurrent_clients() {
    let admin = std::sync::Arc::new(start().await);
    const CLIENTS: usize = 50;
    const TRANSFERS: usize = 4;
    admin.put("bank/a", json!({"value": 1000})).await;
    admin.put("bank/b", json!({"value": 0})).await;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            let mut conflicts = 0u32;
            while done < TRANSFERS {
                let (status, body) = admin
                    .post("/kv/get-many", json!({"keys": ["bank/a", "bank/b"]}))
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                let items = &body["data"]["items"];
                let (va, vb) = (items[0]["version"].clone(), items[1]["version"].clone());
                let (status, body) = admin
                    .post(
                        "/kv/atomic",
                        json!({
                            "checks": [{"key": "bank/a", "version": va}, {"key": "bank/b", "version": vb}],
                            "mutations": [
                                {"type": "increment", "key": "bank/a", "delta": -1},
                                {"type": "increment", "key": "bank/b", "delta": 1},
                                {"type": "increment", "key": "bank/transfers", "delta": 1}
                            ]
                        }),
                    )
                    .await;
                match status {
                    StatusCode::OK => done += 1,
                    StatusCode::CONFLICT => conflicts += 1,
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let total = (CLIENTS * TRANSFERS) as i64;
    let a = admin.get("bank/a").await.1["data"]["value"]
        .as_i64()
        .unwrap();
    let b = admin.get("bank/b").await.1["data"]["value"]
        .as_i64()
        .unwrap();
    let n = admin.get("bank/transfers").await.1["data"]["value"]
        .as_i64()
        .unwrap();
    assert_eq!(
        (a, b, n),
        (1000 - total, total, total),
        "{conflicts} conflicts"
    );

    // Blind increments (no checks) from 50 clients: none lost.
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            let (status, body) = admin
                .post(
                    "/kv/atomic",
                    json!({"mutations": [{"type": "increment", "key": "bank/hits"}]}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let hits = admin.get("bank/hits").await.1["data"]["value"]
        .as_i64()
        .unwrap();
    assert_eq!(hits, CLIENTS as i64);
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

/// The raw text of a successful answer.
async fn text(req: reqwest::RequestBuilder) -> (StatusCode, String) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

/// Issue 13: a value comes back as it was written (key order, `1.0`, integers beyond
/// u64, long decimals, string escapes) from get, get-many, list and after an atomic set.
/// Before the fix, `{"theme","notifications"}` came back sorted and `1.0` as `1`.
#[tokio::test]
async fn values_come_back_exactly_as_stored() {
    let admin = start().await;
    let value = r#"{"theme": "dark", "notifications": true, "ratio": 1.0, "big": 18446744073709551617, "neg": -9223372036854775809, "dec": 3.141592653589793238462643383279, "exp": 1E+2, "s": "caf\u00e9 \"q\" \/ \n", "z": {"b": [1, 2.50], "a": null}}"#;
    // Whitespace between tokens goes; everything else is kept.
    let compact = r#"{"theme":"dark","notifications":true,"ratio":1.0,"big":18446744073709551617,"neg":-9223372036854775809,"dec":3.141592653589793238462643383279,"exp":1E+2,"s":"caf\u00e9 \"q\" \/ \n","z":{"b":[1,2.50],"a":null}}"#;
    let put = |key: &str| {
        admin
            .req(Method::PUT, &format!("/kv/items/{key}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(format!(r#"{{"value": {value}, "ttlSeconds": 3600}}"#))
    };
    let (status, body) = text(put("prefs/user-123")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expect = format!(r#""value":{compact},"#);

    let (status, body) = text(admin.req(Method::GET, "/kv/items/prefs/user-123")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&expect), "get: {body}");

    let (status, body) = text(
        admin
            .req(Method::POST, "/kv/get-many")
            .json(&json!({"keys": ["prefs/user-123", "nope", "prefs/user-123"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.matches(&expect).count(), 2, "get-many: {body}");

    let (status, body) = text(
        admin
            .req(Method::POST, "/kv/atomic")
            .header(header::CONTENT_TYPE, "application/json")
            .body(format!(
                r#"{{"mutations": [{{"type": "set", "key": "prefs/user-456", "value": {value}}}]}}"#
            )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = text(admin.req(Method::GET, "/kv/items?prefix=prefs")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.matches(&expect).count(), 2, "list: {body}");

    // Scalars too, and a value whose text has no whitespace to drop.
    for v in [
        "1.0",
        "-0.0",
        "12345678901234567890123",
        "\"\\u2028\"",
        "[]",
        "1e-7",
    ] {
        let (status, _) = text(
            admin
                .req(Method::PUT, "/kv/items/scalar")
                .header(header::CONTENT_TYPE, "application/json")
                .body(format!(r#"{{"value":{v}}}"#)),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, body) = text(admin.req(Method::GET, "/kv/items/scalar")).await;
        assert!(body.contains(&format!(r#""value":{v},"#)), "{v}: {body}");
    }
}

/// Issue 13: increment adds integers exactly (up to i64), keeps working after a value
/// written as text, and says clearly when a value or delta is not an integer it can add.
#[tokio::test]
async fn increment_on_values_kept_as_text() {
    let admin = start().await;
    let inc = |key: &str, delta: &str| {
        admin
            .req(Method::POST, "/kv/atomic")
            .header(header::CONTENT_TYPE, "application/json")
            .body(format!(
                r#"{{"mutations": [{{"type": "increment", "key": "{key}", "delta": {delta}}}]}}"#
            ))
    };
    let get_text = |key: &str| admin.req(Method::GET, &format!("/kv/items/{key}"));
    let (status, _) = send(inc("c", "9223372036854775806")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(inc("c", "1")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = text(get_text("c")).await;
    assert!(body.contains(r#""value":9223372036854775807,"#), "{body}");
    let (status, body) = send(inc("c", "1")).await;
    assert_error(status, &body, StatusCode::CONFLICT, "overflow");

    // An integer beyond i64 is stored exactly but cannot be incremented.
    let (status, _) = admin.put("big", json!({"value": 1})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        admin
            .req(Method::PUT, "/kv/items/big")
            .header(header::CONTENT_TYPE, "application/json")
            .body(r#"{"value": 18446744073709551617}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(inc("big", "1")).await;
    assert_error(status, &body, StatusCode::CONFLICT, "integer_out_of_range");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("outside the 64-bit range"), "{message}");
    let (status, body) = send(inc("c", "-18446744073709551617")).await;
    assert_error(status, &body, StatusCode::CONFLICT, "integer_out_of_range");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("the delta"));
    let (_, body) = text(get_text("big")).await;
    assert!(body.contains(r#""value":18446744073709551617,"#), "{body}");

    // Not a number: 409 naming the key; decimals add as doubles.
    let (status, _) = admin.put("s", json!({"value": {"n": 1}})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(inc("s", "1")).await;
    assert_error(status, &body, StatusCode::CONFLICT, "not_a_number");
    assert!(body["error"]["message"].as_str().unwrap().contains("\"s\""));
    let (status, _) = send(inc("f", "1.5")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(inc("f", "1")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = text(get_text("f")).await;
    assert!(body.contains(r#""value":2.5,"#), "{body}");
}

/// Issue 13: `curl -d` sends `application/x-www-form-urlencoded`; a KV write whose body
/// is JSON is accepted whatever the Content-Type (or none), on every KV body route.
#[tokio::test]
async fn json_bodies_need_no_json_content_type() {
    let admin = start().await;
    for (i, content_type) in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let mut req = admin
            .req(Method::PUT, &format!("/kv/items/form/{i}"))
            .body(r#"{"value": {"b": 1, "a": 2}}"#);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let (status, body) = send(req).await;
        assert_eq!(status, StatusCode::OK, "{content_type:?}: {body}");
        let (_, body) = text(admin.req(Method::GET, &format!("/kv/items/form/{i}"))).await;
        assert!(body.contains(r#""value":{"b":1,"a":2}"#), "{body}");
    }
    let (status, body) = send(
        admin
            .req(Method::POST, "/kv/get-many")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(r#"{"keys": ["form/0"]}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(
        admin
            .req(Method::POST, "/kv/atomic")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(r#"{"mutations": [{"type": "delete", "key": "form/0"}]}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Valid JSON of the wrong shape is the 400 of a JSON body; not JSON at all is 415.
    let (status, body) = send(
        admin
            .req(Method::PUT, "/kv/items/form/x")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(r#"{"valu": 1}"#),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, body) = send(
        admin
            .req(Method::PUT, "/kv/items/form/x")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("value=1"),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    // A declared JSON body that is not JSON stays a 400.
    let (status, body) = send(
        admin
            .req(Method::PUT, "/kv/items/form/x")
            .header(header::CONTENT_TYPE, "application/json")
            .body("value=1"),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

/// Regressions found by schemathesis (issue 11, item 4): an explicit `"delta": null`
/// is not a number (absent means 1), and an invalid key is a 400 whatever the
/// condition headers say (it was a 412 with a non-matching `If-Match`).
#[tokio::test]
async fn null_delta_and_invalid_keys_under_conditions_are_400() {
    let admin = start().await;
    let (status, body) = admin
        .post(
            "/kv/atomic",
            json!({"checks": [], "mutations": [{"type": "increment", "key": "n", "delta": null}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        admin.get("n").await.0 == StatusCode::NOT_FOUND,
        "nothing was written"
    );

    let long = "k".repeat(600);
    let (status, body) = send(
        admin
            .req(Method::PUT, &format!("/kv/items/{long}"))
            .header("if-match", "\"nope\"")
            .json(&json!({"value": 1})),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_key");
}
