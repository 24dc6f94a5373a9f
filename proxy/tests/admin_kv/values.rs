//! Values come back exactly as written; increments on text values; JSON bodies
//! whatever the Content-Type; regressions found by schemathesis.

use super::*;

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
