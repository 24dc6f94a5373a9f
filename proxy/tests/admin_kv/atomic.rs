//! The atomic endpoint: all or nothing, and check-and-set under concurrency.

use super::*;

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
