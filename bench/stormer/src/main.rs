//! Miss-storm client for the benchmarks: `--per-target` requests on each
//! `--target`, all in flight at once, each timed from its own write to its last
//! body byte.
//!
//! Every connection is opened first (not timed, round-robin over the targets),
//! then, after `--settle-ms` for the servers to finish their accepts, one
//! request is written on each, in the order the connections were opened, and
//! the answers are read as they come. One thread (a current-thread runtime):
//! the Python epoll client this replaces spent ~20 µs per answer, which on a
//! 2-CPU machine was most of a 3,000-answer storm's latency above the origin's
//! delay; this one spends a few.
//!
//! Prints one JSON object: `{"n", "spread_ms", "results": [[target, status,
//! x_cache, ms, error, sent_ms], ...]}`, one row per request in write order;
//! `ms` is from the request's write to its answer's last byte, `sent_ms` from
//! the first write of the storm to this one; `status` is 0 and `error` says
//! why when no whole answer came.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "N requests per target in flight at once, timed from write to last body byte")]
struct Args {
    /// A server to storm (`127.0.0.1:8080`); repeat for several.
    #[arg(long = "target", required = true)]
    targets: Vec<SocketAddr>,
    /// Requests (connections) per target.
    #[arg(long, default_value_t = 1000)]
    per_target: usize,
    /// Request target (path and query).
    #[arg(long)]
    path: String,
    /// `Host` header; the target's address when absent.
    #[arg(long)]
    host: Option<String>,
    /// `User-Agent` header.
    #[arg(long, default_value = "aside-bench-stormer")]
    user_agent: String,
    /// Wait after opening every connection, before the first write.
    #[arg(long, default_value_t = 300)]
    settle_ms: u64,
    /// Give up on an answer this long after the last write.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

/// What one request came to.
struct Outcome {
    target: usize,
    status: u16,
    x_cache: String,
    t0: Instant,
    t1: Option<Instant>,
    error: Option<String>,
}

/// How far an answer has come: the head's length and what the whole takes.
enum Need {
    /// Head plus `Content-Length` bytes.
    Bytes(usize),
    /// Chunked (or close-delimited, which a keep-alive answer is not): up to
    /// the last chunk.
    Chunked,
}

/// Parses the answer's head once it is whole: status, `X-Cache`, and how many
/// bytes the whole answer takes.
fn parse_head(buf: &[u8]) -> Result<Option<(u16, String, Need)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad answer head: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let mut x_cache = String::new();
    let mut need = Need::Chunked;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("x-cache") {
            x_cache = String::from_utf8_lossy(h.value).trim().to_ascii_uppercase();
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| "bad Content-Length".to_string())?;
            need = Need::Bytes(head_len + len);
        }
    }
    Ok(Some((status, x_cache, need)))
}

/// Reads one whole answer from `stream`.
async fn read_answer(stream: &mut TcpStream) -> Result<(u16, String), String> {
    let mut buf = Vec::with_capacity(8192);
    let mut head: Option<(u16, String, Need)> = None;
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len());
        }
        let n = stream.read_buf(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the answer ended".into());
        }
        if head.is_none() {
            head = parse_head(&buf)?;
        }
        if let Some((status, x_cache, need)) = &head {
            let done = match need {
                Need::Bytes(total) => buf.len() >= *total,
                Need::Chunked => buf.ends_with(b"0\r\n\r\n"),
            };
            if done {
                return Ok((*status, x_cache.clone()));
            }
        }
    }
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let mut conns = Vec::with_capacity(args.per_target * args.targets.len());
    for _ in 0..args.per_target {
        for (i, addr) in args.targets.iter().enumerate() {
            let s = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            conns.push((i, s));
        }
    }
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;

    let deadline = Duration::from_secs_f64(args.timeout);
    let mut tasks = Vec::with_capacity(conns.len());
    for (target, mut stream) in conns {
        let host = args
            .host
            .clone()
            .unwrap_or_else(|| args.targets[target].to_string());
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\n\r\n",
            args.path, args.user_agent
        );
        // On a current-thread runtime tasks start in the order spawned: every
        // write happens, in order, before the first answer is read.
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let mut out = Outcome {
                target,
                status: 0,
                x_cache: String::new(),
                t0,
                t1: None,
                error: None,
            };
            if let Err(e) = stream.write_all(req.as_bytes()).await {
                out.error = Some(format!("write: {e}"));
                return (out, stream);
            }
            match tokio::time::timeout(deadline, read_answer(&mut stream)).await {
                Ok(Ok((status, x_cache))) => {
                    out.t1 = Some(Instant::now());
                    out.status = status;
                    out.x_cache = x_cache;
                }
                Ok(Err(e)) => out.error = Some(e),
                Err(_) => out.error = Some("timed out".into()),
            }
            // The connection stays open until every answer is in: closing it
            // now would make the server handle the close while it still
            // answers the rest of the storm.
            (out, stream)
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    let mut streams = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (outcome, stream) = t.await.map_err(|e| e.to_string())?;
        outcomes.push(outcome);
        streams.push(stream);
    }
    drop(streams);
    let first = outcomes.iter().map(|o| o.t0).min();
    let last = outcomes.iter().map(|o| o.t0).max();
    let spread = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64() * 1000.0,
        _ => 0.0,
    };
    let rows: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            let ms =
                o.t1.map(|t1| t1.duration_since(o.t0).as_secs_f64() * 1000.0);
            let sent = first.map_or(0.0, |f| o.t0.duration_since(f).as_secs_f64() * 1000.0);
            serde_json::json!([o.target, o.status, o.x_cache, ms, o.error, sent])
        })
        .collect();
    Ok(serde_json::json!({"n": rows.len(), "spread_ms": spread, "results": rows}))
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match rt.block_on(run(args)) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("stormer: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole storm through real sockets: a local server that answers one
    /// target with a length-delimited hit and the other with a chunked error,
    /// each answer written in two parts.
    #[tokio::test]
    async fn a_storm_over_two_servers_reports_every_answer() {
        async fn serve(listener: tokio::net::TcpListener, answer: &'static [u8]) {
            loop {
                let (mut s, _) = listener.accept().await.expect("accept");
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    while !req.ends_with(b"\r\n\r\n") {
                        if s.read_buf(&mut req).await.unwrap_or(0) == 0 {
                            return;
                        }
                    }
                    let (a, b) = answer.split_at(answer.len() / 2);
                    let _ = s.write_all(a).await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let _ = s.write_all(b).await;
                    // Held open, as a keep-alive server does.
                    let _ = s.read_buf(&mut req).await;
                });
            }
        }
        let hit = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let targets = [hit.local_addr().unwrap(), err.local_addr().unwrap()];
        tokio::spawn(serve(
            hit,
            b"HTTP/1.1 200 OK\r\nX-Cache: hit\r\nContent-Length: 10\r\n\r\n0123456789",
        ));
        tokio::spawn(serve(
            err,
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n0\r\n\r\n",
        ));
        let args = Args::parse_from([
            "stormer",
            "--per-target",
            "5",
            "--path",
            "/x",
            "--settle-ms",
            "0",
            "--timeout",
            "10",
            "--target",
            &targets[0].to_string(),
            "--target",
            &targets[1].to_string(),
        ]);
        let out = run(args).await.expect("a storm");
        assert_eq!(out["n"], 10);
        let rows = out["results"].as_array().unwrap();
        for (i, row) in rows.iter().enumerate() {
            // Round-robin over the targets, in write order.
            assert_eq!(row[0], i % 2);
            let (status, x_cache) = if i % 2 == 0 { (200, "HIT") } else { (503, "") };
            assert_eq!(row[1], status, "{row}");
            assert_eq!(row[2], x_cache, "{row}");
            assert!(row[3].as_f64().is_some_and(|ms| ms >= 5.0), "{row}");
            assert!(row[4].is_null(), "{row}");
        }
    }

    #[test]
    fn heads_are_parsed_once_whole() {
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nX-Cache"),
            Ok(None)
        ));
        let head = b"HTTP/1.1 200 OK\r\nx-cache: hit\r\nContent-Length: 5\r\n\r\nab";
        match parse_head(head) {
            Ok(Some((200, xc, Need::Bytes(n)))) => {
                assert_eq!(xc, "HIT");
                assert_eq!(n, head.len() - 2 + 5);
            }
            _ => panic!("not parsed"),
        }
        let chunked = b"HTTP/1.1 503 x\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            parse_head(chunked),
            Ok(Some((503, _, Need::Chunked)))
        ));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
