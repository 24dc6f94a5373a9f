//! Authentication on every route, the OpenAPI document, and the operational endpoints.

mod admin_support;

use admin_support::{assert_error, send, start, TOKEN};
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

/// Every (method, path) the OpenAPI document lists, with `{key}` filled in.
async fn documented_routes(admin: &admin_support::Admin) -> Vec<(Method, String)> {
    let (status, spec) = send(admin.req(Method::GET, "/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let mut routes = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if let Ok(m) = method.to_uppercase().parse::<Method>() {
                routes.push((m, path.replace("{key}", "probe/key")));
            }
        }
    }
    routes
}

#[tokio::test]
async fn openapi_documents_every_endpoint() {
    let admin = start().await;
    let (_, spec) = send(admin.req(Method::GET, "/openapi.json")).await;
    let mut documented: Vec<String> = documented_routes(&admin)
        .await
        .into_iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    documented.sort();
    let mut expected = vec![
        "GET /kv/items",
        "PUT /kv/items/probe/key",
        "GET /kv/items/probe/key",
        "DELETE /kv/items/probe/key",
        "POST /kv/get-many",
        "POST /kv/atomic",
        "GET /cache/entries",
        "GET /cache/entry",
        "PUT /cache/entry",
        "DELETE /cache/entry",
        "POST /cache/purge",
        "GET /healthz",
        "POST /admin/reload",
        "GET /metrics",
        "GET /cluster",
        "POST /cache/warm",
        "GET /cache/warm/{id}",
        "GET /stats/series",
        "GET /stats/top",
        "GET /admin/config",
        "GET /openapi.json",
    ];
    expected.sort();
    assert_eq!(documented, expected);
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Bodies, parameters and errors are documented.
    let put = &spec["paths"]["/kv/items/{key}"]["put"];
    assert!(put["requestBody"].is_object(), "{put}");
    for status in ["200", "400", "401", "412", "413", "415"] {
        assert!(
            put["responses"][status].is_object(),
            "PUT item lacks {status}"
        );
    }
    let list = &spec["paths"]["/kv/items"]["get"]["parameters"];
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["prefix", "start", "end", "limit", "cursor", "reverse"]
    );
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn every_documented_route_requires_the_token_and_exists() {
    let admin = start().await;
    for (method, path) in documented_routes(&admin).await {
        let resp = admin.anon(method.clone(), &path).send().await.unwrap();
        if path == "/healthz" {
            assert_eq!(resp.status(), StatusCode::OK);
            continue;
        }
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(
            resp.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{method} {path}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");

        // Wrong token, other scheme: 401 too.
        for auth in [
            "Bearer wrong",
            "Basic dGVzdA==",
            &format!("Bearer {TOKEN}x"),
            "Bearer",
        ] {
            let resp = admin
                .anon(method.clone(), &path)
                .header(header::AUTHORIZATION, auth)
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth}"
            );
        }

        // With the token the route exists (whatever the answer to an empty request is).
        let (status, body) = send(admin.req(method.clone(), &path)).await;
        assert!(status.as_u16() < 500, "{method} {path}: {status} {body}");
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if status == StatusCode::NOT_FOUND {
            assert_ne!(body["error"]["code"], "no_route", "{method} {path}");
        }
    }
    // Unknown paths are not revealed without a token.
    let resp = admin
        .anon(Method::GET, "/no/such/route")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn healthz_reload_and_metrics() {
    let admin = start().await;
    let (status, body) = send(admin.anon(Method::GET, "/healthz")).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"data": {"status": "ok"}}))
    );

    let (status, body) = send(admin.req(Method::POST, "/admin/reload")).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"data": {"reloaded": true, "restartNeeded": []}})
        )
    );
    *admin.reload_result.lock().unwrap() = Ok(vec!["store".to_owned()]);
    let (status, body) = send(admin.req(Method::POST, "/admin/reload")).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"data": {"reloaded": true, "restartNeeded": ["store"]}})
        )
    );
    let message = "conf/aside.toml:3: server.lisen: unknown key (expected one of: listen, threads, grace-period, keepalive-timeout, access-log, read-buffer, write-buffer, tls)";
    *admin.reload_result.lock().unwrap() = Err(message.to_owned());
    let (status, body) = send(admin.req(Method::POST, "/admin/reload")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_config");
    assert_eq!(body["error"]["message"], message);

    admin.put("m/1", json!({"value": 1})).await;
    let resp = admin.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for needle in [
        "aside_admin_requests_total{status=\"200\"}",
        "aside_admin_requests_total{status=\"400\"}",
        "aside_store_entries{tier=\"hot\"}",
        "aside_store_bytes{tier=\"cold\"}",
        "aside_store_evictions_total",
        "aside_store_expired_collected_total",
        "aside_purged_entries_total",
        "aside_cache_lock_waits_total",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
}
