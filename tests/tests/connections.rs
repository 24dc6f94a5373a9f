//! Every connection is bounded (issue 11, item 2): slow headers, slow bodies
//! and idle connections are closed within the configured times on both
//! listeners, the admin listener caps its connections, and connections held
//! open on one port never stop the other from serving.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aside_tests::{Aside, Origin, Reply, TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short limits, so that a test waits seconds, not minutes.
fn bounded() -> aside_tests::AsideBuilder {
    Aside::builder()
        .server_extra("first-request-timeout = \"2s\"")
        .server_extra("header-read-timeout = \"2s\"")
        .server_extra("body-read-timeout = \"2s\"")
}

/// Write `head` one byte every `every` until the server closes the
/// connection; how long that took (capped at `cap`).
async fn trickle_until_closed(
    addr: SocketAddr,
    head: &[u8],
    every: Duration,
    cap: Duration,
) -> Duration {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    for b in head.iter().cycle() {
        if start.elapsed() > cap {
            break;
        }
        if conn.write_all(&[*b]).await.is_err() {
            break;
        }
        // Closed (EOF, reset, or an answer followed by a close)?
        match tokio::time::timeout(every, conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => {
                // An error answer: read on until the close.
                let _ = tokio::time::timeout(cap, async {
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                })
                .await;
                break;
            }
            Err(_) => {}
        }
    }
    start.elapsed()
}

/// Open a connection and wait (without sending anything) until it closes.
async fn idle_until_closed(addr: SocketAddr, cap: Duration) -> Duration {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(cap, conn.read(&mut buf)).await;
    start.elapsed()
}

#[tokio::test]
async fn slowloris_is_closed_within_the_header_timeout_on_both_listeners() {
    let origin = Origin::start(|_, _| Reply::ok("ok")).await;
    let aside = bounded().upstream(&origin.url()).start().await;
    let head = b"GET /slow HTTP/1.1\r\nHost: localhost\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let (proxy, admin) = tokio::join!(
        trickle_until_closed(
            aside.addr,
            head,
            Duration::from_millis(700),
            Duration::from_secs(30)
        ),
        trickle_until_closed(
            aside.admin,
            head,
            Duration::from_millis(700),
            Duration::from_secs(30)
        ),
    );
    // header-read-timeout = 2s from the first byte, plus a read interval of slack.
    assert!(
        proxy < Duration::from_secs(5),
        "proxy kept a slowloris for {proxy:?}"
    );
    assert!(
        admin < Duration::from_secs(5),
        "admin kept a slowloris for {admin:?}"
    );
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_first_request_timeout() {
    let origin = Origin::start(|_, _| Reply::ok("ok")).await;
    let aside = bounded().upstream(&origin.url()).start().await;
    let (proxy, admin) = tokio::join!(
        idle_until_closed(aside.addr, Duration::from_secs(30)),
        idle_until_closed(aside.admin, Duration::from_secs(30)),
    );
    assert!(
        proxy >= Duration::from_millis(1500) && proxy < Duration::from_secs(5),
        "proxy: {proxy:?}"
    );
    assert!(
        admin >= Duration::from_millis(1500) && admin < Duration::from_secs(5),
        "admin: {admin:?}"
    );
}

#[tokio::test]
async fn admin_connections_idle_between_requests_are_closed() {
    let origin = Origin::start(|_, _| Reply::ok("ok")).await;
    let aside = bounded()
        .admin_extra("idle-timeout = \"2s\"")
        .upstream(&origin.url())
        .start()
        .await;
    let mut conn = TcpStream::connect(aside.admin).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "an idle keep-alive admin connection stayed open"
    );
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    let idle = start.elapsed();
    assert!(idle < Duration::from_secs(5), "{idle:?}");
}

#[tokio::test]
async fn a_trickled_request_body_is_cut_within_the_body_timeout() {
    // An origin that answers only once it has the whole body.
    let origin = aside_tests::raw_origin(|mut s| async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < 1000 + 40 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await;
    })
    .await;
    let aside = bounded()
        .upstream(&format!("http://{origin}"))
        .start()
        .await;
    for (addr, head) in [
        (
            aside.addr,
            "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n".to_owned(),
        ),
        (
            aside.admin,
            format!(
                "PUT /kv/items/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            ),
        ),
    ] {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        let start = Instant::now();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        // One body byte every 300 ms would take 300 s to finish.
        let done = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let _ = conn.write_all(b" ").await;
                match tokio::time::timeout(Duration::from_millis(300), conn.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
        })
        .await;
        let took = start.elapsed();
        assert!(done.is_ok(), "{addr}: a trickled body kept the connection for 30 s");
        assert!(took < Duration::from_secs(6), "{addr}: {took:?}");
        let answer = String::from_utf8_lossy(&answer).to_string();
        assert!(answer.starts_with("HTTP/1.1 408"), "{addr}: {answer}");
        assert!(answer.contains("request_timeout"), "{addr}: {answer}");
    }
}

/// Hold `n` TCP connections to `addr` open without sending anything.
async fn hold_idle(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match TcpStream::connect(addr).await {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    held
}

#[tokio::test]
async fn thousands_of_idle_admin_connections_and_a_slowloris_do_not_stop_the_proxy() {
    let origin =
        Origin::start(|_, n| Reply::ok(format!("body {n}")).header("cache-control", "max-age=60"))
            .await;
    // Idle connections stay until they leave (the first-request timeout is
    // long here), so the cap is what protects the process.
    let aside = Aside::builder()
        .server_extra("first-request-timeout = \"120s\"")
        .admin_extra("max-connections = 100")
        .upstream(&origin.url())
        .start()
        .await;
    assert_eq!(aside.get("/hot").await.x_cache(), "MISS");

    let held = hold_idle(aside.admin, 2_000).await;
    assert_eq!(held.len(), 2_000, "could not even connect 2000 times");
    let slowloris = tokio::spawn(trickle_until_closed(
        aside.admin,
        b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Duration::from_millis(1500),
        Duration::from_secs(8),
    ));

    // The proxy keeps answering hits.
    for _ in 0..200 {
        let r = aside.get("/hot").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.x_cache(), "HIT");
    }
    // A new admin connection beyond the cap gets a clear JSON 503 (a fresh
    // client: the harness's own keeps a pooled connection inside the cap).
    let r = reqwest::Client::new()
        .get(aside.admin_url("/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match r {
        Ok(r) => {
            assert_eq!(r.status(), 503);
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "too_many_connections");
        }
        // The 503 may be lost when the refusal races the request; never a hang.
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
    // Once the idle connections are gone, the admin API answers again.
    drop(held);
    let back = aside_tests::eventually(Duration::from_secs(10), || async {
        aside
            .admin("GET", "/metrics")
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(
        back,
        "the admin API did not recover after the idle clients left"
    );
    let metrics = aside.metrics_text().await;
    assert!(
        metrics.contains("aside_admin_connections_refused_total{reason=\"max_connections\"}"),
        "{metrics}"
    );
    slowloris.await.unwrap();
    assert!(aside.get("/hot").await.x_cache() == "HIT");
}

#[tokio::test]
async fn the_open_file_limit_is_raised_and_logged() {
    let origin = Origin::start(|_, _| Reply::ok("ok")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let log = aside.log();
    assert!(log.contains("open-file limit"), "{log}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", aside.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "Max open files <soft> <hard> files": soft raised to hard.
    assert_eq!(fields[3], fields[4], "{line}");
}
