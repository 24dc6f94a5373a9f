//! The KV API in cluster mode (issue 14), through real sockets: two admin APIs over
//! one real `redis-server` answer alike (a write on one is read on the other, a CAS
//! race has one winner, listings agree), and a Redis outage is a JSON 503, never
//! local data, until Redis is back.

mod admin_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use admin_support::{assert_error, send, start_with_kv, Admin};
use aside_cluster::{RedisKv, RedisSettings};
use aside_tests::RedisServer;
use reqwest::{header, Method, StatusCode};
use serde_json::json;

/// An admin API whose KV backend is Redis at `redis`.
async fn node(redis: &RedisServer) -> Admin {
    let settings = RedisSettings {
        url: redis.url(),
        username: None,
        password: None,
        key_prefix: "aside:".into(),
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
    };
    start_with_kv(move |store| {
        Arc::new(RedisKv::new(settings, store.limits().clone()).expect("settings"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_the_kv_api_through_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let text = r#"{"theme": "dark", "n": 1.0}"#;
    let resp = a
        .req(Method::PUT, "/kv/items/prefs/u1")
        .body(format!(r#"{{"value": {text}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = resp.headers()[header::ETAG].to_str().unwrap().to_owned();
    let got = b
        .req(Method::GET, "/kv/items/prefs/u1")
        .send()
        .await
        .unwrap();
    assert_eq!(got.headers()[header::ETAG].to_str().unwrap(), etag);
    let body = got.text().await.unwrap();
    assert!(
        body.contains(r#""value":{"theme":"dark","n":1.0}"#),
        "{body}"
    );

    // A CAS race across the two nodes: exactly one winner.
    let (ra, rb) = tokio::join!(
        a.req(Method::PUT, "/kv/items/prefs/u1")
            .header(header::IF_MATCH, &etag)
            .json(&json!({"value": "a"}))
            .send(),
        b.req(Method::PUT, "/kv/items/prefs/u1")
            .header(header::IF_MATCH, &etag)
            .json(&json!({"value": "b"}))
            .send(),
    );
    let mut statuses = [ra.unwrap().status(), rb.unwrap().status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED]);

    // Listings and totals agree.
    for i in 0..5 {
        let (s, _) = b.put(&format!("list/{i}"), json!({"value": i})).await;
        assert_eq!(s, StatusCode::OK);
    }
    let (_, la) = send(a.req(Method::GET, "/kv/items?prefix=list&limit=2")).await;
    let (_, lb) = send(b.req(Method::GET, "/kv/items?prefix=list&limit=2")).await;
    assert_eq!(la, lb);
    assert_eq!(la["data"]["total"], 5);
    // Node A's own store holds no KV item: Redis is the source of truth.
    assert!(a.snapshot().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_is_a_json_503_then_recovers() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let node = node(&redis).await;
    let (s, _) = node.put("k", json!({"value": 1})).await;
    assert_eq!(s, StatusCode::OK);
    redis.kill().await;
    let (status, body) = node.get("k").await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "kv_unavailable",
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("unavailable"), "{message}");
    let (status, body) = node.put("k", json!({"value": 2})).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "kv_unavailable",
    );
    // Nothing was written locally instead.
    assert!(node.snapshot().await.is_empty());
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = node.get("k").await;
        if status == StatusCode::OK {
            assert_eq!(body["data"]["value"], 1);
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
