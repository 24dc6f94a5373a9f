//! The fresh-hit fast path (issue 17) answers exactly as the regular hit
//! path: same status, fields and body. A request that carries a request
//! directive goes the regular way (`Cache-Control: max-stale` changes nothing
//! for a fresh entry), so the two answers for one entry can be compared.

use std::collections::HashMap;

use aside_tests::{Aside, Origin, Reply, Resp};

/// The fields two answers must share, with the per-request ones apart.
fn fields(r: &Resp) -> HashMap<String, String> {
    let mut h = r.headers.clone();
    h.remove("age");
    h.remove("cache-status");
    h
}

fn secs(v: &str) -> i64 {
    v.parse().unwrap_or_else(|_| panic!("not a number: {v:?}"))
}

/// `ttl=N` of a `Cache-Status` value.
fn ttl(cache_status: &str) -> i64 {
    let n = cache_status
        .split("; ")
        .find_map(|p| p.strip_prefix("ttl="))
        .unwrap_or_else(|| panic!("no ttl in {cache_status:?}"));
    secs(n)
}

#[tokio::test]
async fn a_fast_hit_answers_as_the_regular_hit_path() {
    let origin = Origin::start(|_, n| {
        Reply::ok(format!("body {n}"))
            .header("cache-control", "max-age=600")
            .header("etag", "\"e1\"")
            .header("content-type", "text/plain; charset=utf-8")
            .header("x-custom", "kept")
            .header("age", "5")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let miss = aside.get("/same?b=2&a=1").await;
    assert_eq!(miss.x_cache(), "MISS");

    let fast = aside.get("/same?b=2&a=1").await;
    let regular = aside
        .request("GET", "/same?b=2&a=1", &[("cache-control", "max-stale=1")])
        .await;
    assert_eq!(origin.hits(), 1);
    for r in [&fast, &regular] {
        assert_eq!(r.status, 200);
        assert_eq!(r.x_cache(), "HIT");
        assert_eq!(r.text(), "body 1");
        assert!(r.header("cache-status").starts_with("Aside; hit; ttl="));
        // The origin's Age (5) plus the time in the cache.
        assert!((5..=7).contains(&secs(r.header("age"))), "{r:?}");
    }
    assert_eq!(fields(&fast), fields(&regular));
    assert!((ttl(fast.header("cache-status")) - ttl(regular.header("cache-status"))).abs() <= 1);
    // The query is normalized (sorted) for the key: another spelling hits too.
    let sorted = aside.get("/same?a=1&b=2").await;
    assert_eq!(sorted.x_cache(), "HIT");
    assert_eq!(fields(&sorted), fields(&regular));

    // HEAD: the same fields, no body.
    let head = aside.request("HEAD", "/same?b=2&a=1", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.x_cache(), "HIT");
    assert!(head.body.is_empty());
    assert_eq!(fields(&head), fields(&regular));
    assert_eq!(origin.hits(), 1);
}

/// One read from `conn`, within 10 s.
async fn read_some(conn: &mut tokio::net::TcpStream, chunk: &mut [u8]) -> usize {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(chunk))
        .await
        .expect("no answer within 10 s")
        .unwrap()
}

/// Reads one HTTP/1.1 response with a `Content-Length` from `conn`, after any
/// bytes left in `buf` by the previous one: (head, body).
async fn read_response(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> (String, Vec<u8>) {
    let mut chunk = [0u8; 16384];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = read_some(conn, &mut chunk).await;
        assert!(
            n > 0,
            "closed inside a head: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head}"))
        .parse()
        .unwrap();
    while buf.len() < end + len {
        let n = read_some(conn, &mut chunk).await;
        assert!(n > 0, "closed inside a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[end..end + len].to_vec();
    buf.drain(..end + len);
    (head, body)
}

/// Bodies from a few bytes to past the connection's write buffer (80 KiB),
/// around the size from which head and body leave in one vectored write
/// (vendored pingora-core's `DIRECT_WRITE_MIN`, 8 KiB): each fast hit answers
/// as the regular path, and the connection carries the next request.
#[tokio::test]
async fn large_fast_hits_answer_whole_and_keep_the_connection() {
    use tokio::io::AsyncWriteExt;
    let sizes = [10, 8 * 1024 - 200, 8 * 1024, 20_000, 64 * 1024, 200_000];
    let body = |size: usize| -> Vec<u8> { (0..size).map(|i| (i % 251) as u8).collect() };
    let origin = Origin::start(move |seen, _| {
        let size: usize = seen.uri.trim_start_matches("/b/").parse().unwrap();
        Reply::ok(body(size)).header("cache-control", "max-age=600")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    for size in sizes {
        let path = format!("/b/{size}");
        assert_eq!(aside.get(&path).await.x_cache(), "MISS");
        let regular = aside
            .request("GET", &path, &[("cache-control", "max-stale=1")])
            .await;
        assert_eq!(regular.body, body(size), "{size}");
        assert_eq!(regular.x_cache(), "HIT");
    }
    // Every size twice, one request after the other on one connection.
    let mut conn = tokio::net::TcpStream::connect(aside.addr).await.unwrap();
    let mut buf = Vec::new();
    for size in sizes {
        let req = format!("GET /b/{size} HTTP/1.1\r\nHost: {}\r\n\r\n", aside.addr);
        for _ in 0..2 {
            conn.write_all(req.as_bytes()).await.unwrap();
            let (head, got) = read_response(&mut conn, &mut buf).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(head.to_ascii_lowercase().contains("x-cache: hit"), "{head}");
            assert_eq!(got.len(), size, "{head}");
            assert!(got == body(size), "body of {size} bytes differs");
        }
    }
    assert_eq!(origin.hits(), sizes.len());
    let served = aside
        .metric("aside_requests_total", &["cache_status=\"hit\""])
        .await;
    assert_eq!(served, 3 * sizes.len() as u64);
}

/// A fresh hit read from the disk tier (after a restart, the hot tier is
/// empty) answers as the regular hit path too: the fast path then builds the
/// head from the stored header bytes instead of a decoded meta.
#[tokio::test]
async fn a_disk_tier_fast_hit_answers_as_the_regular_hit_path() {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let origin = Origin::start(move |_, n| {
        Reply::ok(format!("body {n}"))
            .header("date", &date)
            .header("cache-control", "max-age=600")
            .header("etag", "\"e1\"")
            .header("set-cookie2", "a=1")
            .header("x-custom", "kept")
            .header("x-cache", "from the origin")
            .header("accept-ranges", "none")
            .header("set-cookie2", "b=2")
            .header("age", "5")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    assert_eq!(aside.get("/d").await.x_cache(), "MISS");
    let hot = aside.get("/d").await;
    let aside = aside.restart().await;
    let cold = aside.get("/d").await;
    let reads = aside
        .metric("aside_store_cold_reads_total", &["inline"])
        .await
        + aside
            .metric("aside_store_cold_reads_total", &["pool"])
            .await;
    assert_eq!(
        reads,
        1,
        "read from the disk tier: {}",
        aside.metrics_text().await
    );
    let regular = aside
        .request("GET", "/d", &[("cache-control", "max-stale=1")])
        .await;
    let head = aside.request("HEAD", "/d", &[]).await;
    assert_eq!(origin.hits(), 1);
    for r in [&hot, &cold, &regular, &head] {
        assert_eq!(r.status, 200);
        assert_eq!(r.x_cache(), "HIT", "{r:?}");
        assert!((5..=8).contains(&secs(r.header("age"))), "{r:?}");
        assert_eq!(r.header("accept-ranges"), "bytes", "{r:?}");
    }
    assert_eq!(cold.text(), "body 1");
    assert_eq!(fields(&cold), fields(&regular));
    assert_eq!(fields(&cold), fields(&hot));
    assert_eq!(fields(&head), fields(&regular));
    assert!((ttl(cold.header("cache-status")) - ttl(regular.header("cache-status"))).abs() <= 1);
}

/// A purge, hard or soft, ends fast hits at once.
#[tokio::test]
async fn purges_end_fast_hits_at_once() {
    let origin =
        Origin::start(|_, n| Reply::ok(format!("v{n}")).header("cache-control", "max-age=600"))
            .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/p").await;
    assert_eq!(aside.get("/p").await.x_cache(), "HIT");
    let purge = aside.request("PURGE", "/p", &[]).await;
    assert_eq!(purge.status, 200, "{purge:?}");
    let after = aside.get("/p").await;
    assert_eq!(after.text(), "v2");
    assert_eq!(after.x_cache(), "MISS");
    assert_eq!(aside.get("/p").await.x_cache(), "HIT");

    let soft = aside
        .admin("POST", "/cache/purge")
        .json(&serde_json::json!({"urls": [aside.url("/p")], "soft": true}))
        .send()
        .await
        .expect("soft purge");
    assert_eq!(soft.status(), 200);
    let after_soft = aside.get("/p").await;
    assert_ne!(after_soft.x_cache(), "HIT", "{after_soft:?}");
}
