//! A response whose origin fails after the headers left is ended incomplete:
//! never a JSON error appended to a 200 body, never a clean final chunk, never
//! stored (issue 11, item 1). Pinned with hand-written origins that stall,
//! close mid-body or send a bad chunk size.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aside_tests::{eventually, raw_origin, Aside, Origin, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Send one request on a fresh connection and read until the server closes it
/// (or 10 s pass): the raw bytes, framing included.
async fn raw_get(addr: SocketAddr, path: &str) -> Vec<u8> {
    raw_exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
    .await
}

/// Write `req` on a fresh connection and read until the server closes it (or
/// 10 s pass).
async fn raw_exchange(addr: SocketAddr, req: &str) -> Vec<u8> {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 16384];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    got
}

fn split_head(raw: &[u8]) -> (String, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    (
        String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase(),
        raw[end + 4..].to_vec(),
    )
}

/// An origin that answers every request with `head` + `body` and then does
/// `then` (stall or close), counting requests.
async fn failing_origin(
    head: &'static str,
    body: Vec<u8>,
    stall: bool,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let addr = raw_origin(move |mut s| {
        let body = body.clone();
        let counter = counter.clone();
        async move {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&body).await;
            let _ = s.flush().await;
            if stall {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
    })
    .await;
    (addr, hits)
}

fn assert_no_error_appended(body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    assert!(
        !text.contains("\"error\"") && !text.contains("upstream_"),
        "an error was appended to the body: {text:?}"
    );
}

#[tokio::test]
async fn chunked_body_stalled_past_read_timeout_ends_without_final_chunk() {
    let mut chunk = b"64\r\n".to_vec();
    chunk.extend_from_slice(&[b'x'; 100]);
    chunk.extend_from_slice(b"\r\n");
    let (origin, hits) = failing_origin(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n",
        chunk,
        true,
    )
    .await;
    let aside = Aside::builder()
        .upstream(&format!("http://{origin}"))
        .start()
        .await;

    let raw = raw_get(aside.addr, "/stall").await;
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert_no_error_appended(&body);
    // The 100 bytes arrived, and the stream was cut without `0\r\n\r\n`.
    assert!(
        body.windows(100).any(|w| w == [b'x'; 100]),
        "{:?}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        !body.ends_with(b"0\r\n\r\n"),
        "a clean final chunk made the truncated body look complete: {:?}",
        String::from_utf8_lossy(&body)
    );

    // Not stored: the next request goes to the origin again.
    let again = raw_get(aside.addr, "/stall").await;
    let (head2, _) = split_head(&again);
    assert!(head2.contains("x-cache: miss"), "{head2}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(aside.metric("aside_responses_aborted_total", &[]).await >= 2);
}

#[tokio::test]
async fn content_length_body_cut_by_origin_stays_short() {
    let (origin, hits) = failing_origin(
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nCache-Control: max-age=60\r\n\r\n",
        vec![b'y'; 300],
        false,
    )
    .await;
    let aside = Aside::builder()
        .upstream(&format!("http://{origin}"))
        .start()
        .await;
    let raw = raw_get(aside.addr, "/short").await;
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 1000"), "{head}");
    assert_no_error_appended(&body);
    assert!(
        body.len() < 1000 && body.iter().all(|b| *b == b'y'),
        "{} bytes: {:?}",
        body.len(),
        String::from_utf8_lossy(&body)
    );
    let again = raw_get(aside.addr, "/short").await;
    assert!(split_head(&again).0.contains("x-cache: miss"));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(aside.metric("aside_responses_aborted_total", &[]).await >= 2);

    // reqwest, like any client, sees the transfer fail instead of a short 200.
    let resp = reqwest::get(aside.url("/short")).await.unwrap();
    assert!(
        resp.bytes().await.is_err(),
        "a truncated body read as complete"
    );
}

#[tokio::test]
async fn bad_chunk_size_ends_the_response_incomplete() {
    let mut chunk = b"64\r\n".to_vec();
    chunk.extend_from_slice(&[b'z'; 100]);
    chunk.extend_from_slice(b"\r\nzz-not-hex\r\nmore\r\n0\r\n\r\n");
    let (origin, _hits) = failing_origin(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n",
        chunk,
        true,
    )
    .await;
    let aside = Aside::builder()
        .upstream(&format!("http://{origin}"))
        .start()
        .await;
    let raw = raw_get(aside.addr, "/badchunk").await;
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_no_error_appended(&body);
    assert!(
        !body.ends_with(b"0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&body)
    );
    let again = raw_get(aside.addr, "/badchunk").await;
    assert!(split_head(&again).0.contains("x-cache: miss"));
}

/// An origin that answers every request with exactly `response`.
async fn canned_origin(response: &'static str) -> SocketAddr {
    raw_origin(move |mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(response.as_bytes()).await;
        let _ = s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_repeated_equal_content_length_is_forwarded_once() {
    // RFC 9112 §6.3: the same value repeated is that value.
    let origin = canned_origin(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\nhello",
    )
    .await;
    let aside = Aside::builder()
        .upstream(&format!("http://{origin}"))
        .start()
        .await;
    for expect in ["x-cache: miss", "x-cache: hit"] {
        let raw = raw_get(aside.addr, "/dup").await;
        let (head, body) = split_head(&raw);
        assert!(head.contains(expect), "{head}");
        assert_eq!(head.matches("content-length:").count(), 1, "{head}");
        assert_eq!(body, b"hello");
    }
}

#[tokio::test]
async fn differing_content_lengths_are_a_bad_gateway() {
    let origin =
        canned_origin("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
            .await;
    let aside = Aside::builder()
        .upstream(&format!("http://{origin}"))
        .start()
        .await;
    assert_eq!(aside.get("/mismatch").await.status, 502);
}

#[tokio::test]
async fn an_origin_status_outside_100_to_599_is_a_bad_gateway() {
    let origin = canned_origin(
        "HTTP/1.1 999 Weird\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\r\nno",
    )
    .await;
    let aside = Aside::builder()
        .upstream(&format!("http://{origin}"))
        .start()
        .await;
    let r = aside.get("/weird").await;
    assert_eq!(r.status, 502, "{:?}", r.text());
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "upstream_error");
}

/// Waits until the one body filled so far (`len` bytes, after its 32-byte
/// header) is in the disk tier's segment files.
async fn wait_for_disk_tier(aside: &Aside, len: u64) {
    assert!(
        eventually(Duration::from_secs(10), || async {
            aside.metric("aside_store_body_file_bytes", &[]).await == len + 32
        })
        .await,
        "the fill never reached the disk tier"
    );
}

/// Nothing went upstream (counters restart with the process): no origin
/// request, error or aborted response is counted.
async fn assert_nothing_counted_upstream(aside: &Aside) {
    for name in [
        "aside_upstream_requests_total",
        "aside_upstream_errors_total",
        "aside_responses_aborted_total",
    ] {
        assert_eq!(aside.metric(name, &[]).await, 0, "{name}");
    }
}

/// A large body in the disk tier that no longer matches its checksum (a disk
/// fault) is streamed until the fault shows, then the response is cut short:
/// never a complete 200 with wrong bytes. The entry is deleted, and the next
/// request refills it from the origin.
#[tokio::test]
async fn a_disk_tier_body_failing_its_checksum_is_cut_short_and_refetched() {
    let body: Vec<u8> = (0..600 * 1024).map(|i: usize| (i % 239) as u8).collect();
    let served = body.clone();
    let origin = Origin::start(move |_, _| {
        Reply::ok(served.clone()).header("cache-control", "public, max-age=60")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    // One request per connection, closed by the server after the answer.
    let get = |addr| async move {
        let req = "GET /d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        split_head(&raw_exchange(addr, req).await)
    };
    let (head, got) = get(aside.addr).await;
    assert!(head.contains("x-cache: miss"), "{head}");
    assert_eq!(got, body);
    wait_for_disk_tier(&aside, 600 * 1024).await;
    let mut aside = aside;
    aside.stop();
    // One byte flipped a third of the way into the only segment (in the body).
    let segments = aside.dir.path().join("aside.redb.bodies");
    let seg = std::fs::read_dir(segments)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x5a;
    std::fs::write(&seg, bytes).unwrap();
    let aside = aside.restart().await;

    let (head, got) = get(aside.addr).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("x-cache: hit"), "{head}\n{}", aside.log());
    assert!(
        head.to_ascii_lowercase().contains("content-length: 614400"),
        "{head}"
    );
    // The checksum is known at the end: the last chunk is withheld.
    assert!(got.len() < body.len(), "a damaged body was sent whole");
    assert!(
        aside.log().contains("fails its checksum"),
        "{}",
        aside.log()
    );
    // Nothing went upstream (counters restart with the process): no origin
    // request, error or aborted response is counted for it.
    assert_nothing_counted_upstream(&aside).await;

    let (head, got) = get(aside.addr).await;
    assert!(head.contains("x-cache: miss"), "{head}");
    assert_eq!(got, body);
    assert_eq!(origin.hits(), 2);
}

/// A client that goes away in the middle of a large hit streamed from the disk
/// tier: the response ends there, the access log says `aborted=true`, and
/// nothing is counted against the origin or logged as an error.
#[tokio::test]
async fn a_client_leaving_a_streamed_hit_is_no_origin_failure() {
    // Larger than the loopback socket buffers, so the server is still writing
    // when the client resets the connection.
    let body: Vec<u8> = (0..24 << 20).map(|i: usize| (i % 233) as u8).collect();
    let len = body.len() as u64;
    let origin = Origin::start(move |_, _| {
        Reply::ok(body.clone()).header("cache-control", "public, max-age=60")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let req = "GET /big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let (head, got) = split_head(&raw_exchange(aside.addr, req).await);
    assert!(head.contains("x-cache: miss"), "{head}");
    assert_eq!(got.len() as u64, len);
    wait_for_disk_tier(&aside, len).await;
    let aside = aside.restart().await;

    let mut conn = tokio::net::TcpStream::connect(aside.addr).await.unwrap();
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 16384];
    let n = conn.read(&mut first).await.unwrap();
    let head = String::from_utf8_lossy(&first[..n]).to_ascii_lowercase();
    assert!(head.contains("x-cache: hit"), "{head}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A reset, not a clean close: the server's next write fails.
    conn.set_zero_linger().unwrap();
    drop(conn);

    assert!(
        eventually(Duration::from_secs(10), || async {
            aside.log().contains("path=/big") && aside.log().contains("aborted=true")
        })
        .await,
        "{}",
        aside.log()
    );
    assert_nothing_counted_upstream(&aside).await;
    assert!(!aside.log().contains("ERROR"), "{}", aside.log());
}
