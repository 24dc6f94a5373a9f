//! The bound on the size of one admin answer (issue 11, item 3): get-many reads each
//! distinct key once and refuses an answer over 16 MiB, list pages stop short of it.

mod admin_support;

use std::time::{Duration, Instant};

use admin_support::{assert_error, send, start};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A string value whose JSON serialization is just under the 1 MiB value limit.
fn big_value(fill: char) -> Value {
    Value::String(fill.to_string().repeat(1024 * 1024 - 64))
}

/// The peak resident set of this process (the test and the server it hosts), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Regression (issue 11, item 3): a 13 KB request naming one 1 MiB key 1,000 times
/// built a 1 GiB answer and took the process to 2.6-2.9 GB RSS, kept afterwards.
#[tokio::test]
async fn get_many_naming_a_big_key_1000_times_is_refused_quickly() {
    let admin = start().await;
    let (status, body) = admin.put("big/1", json!({ "value": big_value('x') })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys = vec!["big/1"; 1000];
    let before = peak_rss_kib();
    let started = Instant::now();
    for _ in 0..10 {
        let (status, body) = admin.post("/kv/get-many", json!({ "keys": keys })).await;
        assert_error(
            status,
            &body,
            StatusCode::PAYLOAD_TOO_LARGE,
            "answer_too_large",
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("16 MiB (16777216 bytes)"), "{message}");
    }
    let elapsed = started.elapsed();
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(
        elapsed < Duration::from_secs(10),
        "10 refused get-many took {elapsed:?}"
    );
    // Each refusal reads the value once (1 MiB, parsed and serialized once): the peak
    // grows by a few MiB, not by the gigabyte the answer would have been.
    assert!(grown_mib < 200, "peak RSS grew by {grown_mib} MiB");

    // 15 times fits under 16 MiB: answered, every place filled.
    let (status, body) = admin
        .post("/kv/get-many", json!({ "keys": vec!["big/1"; 15] }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = body["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 15);
    assert!(items.iter().all(|i| i["key"] == "big/1"));
}

#[tokio::test]
async fn get_many_repeats_answers_in_request_order() {
    let admin = start().await;
    admin.put("r/a", json!({"value": "A"})).await;
    admin.put("r/b", json!({"value": [1, 2]})).await;
    let (status, body) = admin
        .post(
            "/kv/get-many",
            json!({"keys": ["r/b", "r/a", "r/missing", "r/b", "r/a", "r/missing", "r/a"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let values: Vec<Value> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.get("value").cloned().unwrap_or(Value::Null))
        .collect();
    assert_eq!(
        values,
        [
            json!([1, 2]),
            json!("A"),
            Value::Null,
            json!([1, 2]),
            json!("A"),
            Value::Null,
            json!("A")
        ]
    );
    let version = &body["data"]["items"][0]["version"];
    assert_eq!(&body["data"]["items"][3]["version"], version);
    // An invalid key anywhere is refused before anything is read.
    let (status, body) = admin
        .post("/kv/get-many", json!({"keys": ["r/a", "r//b"]}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_key");
}

/// A page whose items would exceed the answer limit ends early; its cursor continues
/// right after the last item answered, so paging still sees every item once.
#[tokio::test]
async fn list_pages_stop_short_of_the_answer_limit() {
    let admin = start().await;
    let fills = "abcdefghijklmnopqrst";
    for (i, fill) in fills.chars().enumerate() {
        let (status, body) = admin
            .put(&format!("p/{i:02}"), json!({ "value": big_value(fill) }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/kv/items?prefix=p&limit=100".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let resp = admin.req(Method::GET, &path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = resp.bytes().await.unwrap();
        assert!(
            bytes.len() <= 16 * 1024 * 1024,
            "page of {} bytes",
            bytes.len()
        );
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["data"]["total"], 20);
        pages += 1;
        for item in body["data"]["items"].as_array().unwrap() {
            seen.push(item["key"].as_str().unwrap().to_owned());
        }
        match body["data"]["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..20).map(|i| format!("p/{i:02}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(
        pages, 2,
        "20 MiB of items fit in two pages of at most 16 MiB"
    );

    // Small items still come 100 to a page.
    for i in 0..150 {
        admin.put(&format!("s/{i:03}"), json!({"value": i})).await;
    }
    let (status, body) = send(admin.req(Method::GET, "/kv/items?prefix=s&limit=100")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["items"].as_array().unwrap().len(), 100);
}
