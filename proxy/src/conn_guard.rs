//! Deadlines on the request header, enforced under the HTTP parser.
//!
//! pingora's and hyper's read timeouts restart at every read, so a client that
//! sends one header byte every second (slowloris) holds a connection forever.
//! [`Guarded`] wraps a client connection and bounds, whatever the reads:
//! - the wait for the first byte of the first request (`first-request-timeout`);
//! - the time from a request's first byte to the end of its header
//!   (`header-read-timeout`).
//!
//! It finds the end of a header by watching the bytes read for an empty line
//! (`\r\n\r\n`, or bare `\n\n` as httparse accepts): no parsing, a few
//! instructions per request byte, and no timer on the common path, where the
//! whole header arrives in the read that starts it. After the header, reads
//! pass straight through (body deadlines are the HTTP layer's) until the
//! response is written; the next bytes read start the next request's header.
//! The waits between requests are the HTTP layer's keep-alive timeouts.
//!
//! When a deadline passes, the pending read fails with `TimedOut`, which both
//! HTTP servers treat as a dead client: the connection is closed.

use std::fmt;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType, ALPN,
};
use pingora_core::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The deadlines a [`Guarded`] connection enforces.
#[derive(Debug, Clone, Copy)]
pub struct HeaderDeadlines {
    /// From accept to the first byte of the first request.
    pub first_request: Duration,
    /// From a request's first byte to the end of its header.
    pub header: Duration,
}

/// Where the connection is in its request/response cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, nothing read yet (deadline armed: first request).
    AwaitFirst,
    /// Reading a header (deadline armed); `newlines` counts consecutive line
    /// ends seen so far, ignoring `\r`: two mean the header is complete.
    Header { newlines: u8 },
    /// The header is in; reads pass through until the response is written.
    Body,
    /// A response was written; the next byte read starts a new header.
    Responded,
}

/// A client connection whose request headers must arrive within deadlines.
pub struct Guarded<S> {
    inner: S,
    limits: HeaderDeadlines,
    phase: Phase,
    /// Armed in `AwaitFirst` and `Header`.
    deadline: Option<Instant>,
    /// Created on the first read that has to wait while a deadline is armed,
    /// then reset, never reallocated.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> Guarded<S> {
    /// Wrap a freshly accepted connection: the first-request deadline starts now.
    pub fn new(inner: S, limits: HeaderDeadlines) -> Self {
        Guarded {
            inner,
            limits,
            phase: Phase::AwaitFirst,
            deadline: Some(Instant::now() + limits.first_request),
            sleep: None,
        }
    }

    /// Account for the bytes just read.
    fn on_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut newlines = match self.phase {
            Phase::Body => return,
            Phase::Header { newlines } => newlines,
            Phase::AwaitFirst | Phase::Responded => {
                self.deadline = Some(Instant::now() + self.limits.header);
                0
            }
        };
        // Line ends found with `memchr`: a byte-by-byte loop was ~400
        // instructions of every hit.
        let mut rest = bytes;
        loop {
            if newlines == 1 {
                // After a line end: carriage returns, then a second line end
                // ends the header; anything else starts a new line.
                let crs = rest.iter().take_while(|&&b| b == b'\r').count();
                match rest.get(crs) {
                    None => break,
                    Some(b'\n') => {
                        self.phase = Phase::Body;
                        self.deadline = None;
                        return;
                    }
                    Some(_) => {
                        newlines = 0;
                        rest = &rest[crs..];
                    }
                }
            }
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    newlines = 1;
                    rest = &rest[i + 1..];
                }
                None => break,
            }
        }
        self.phase = Phase::Header { newlines };
    }

    /// `Ready(Err)` once the armed deadline has passed; registers the wake-up otherwise.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(deadline) = self.deadline else {
            return Poll::Pending;
        };
        let sleep = match &mut self.sleep {
            Some(s) => {
                if s.deadline() != deadline {
                    s.as_mut().reset(deadline);
                }
                s
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let what = if self.phase == Phase::AwaitFirst {
                    "no request"
                } else {
                    "request header incomplete"
                };
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{what} within the deadline"),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.on_read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadline(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.phase == Phase::Body {
            self.phase = Phase::Responded;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.phase == Phase::Body {
            self.phase = Phase::Responded;
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: fmt::Debug> fmt::Debug for Guarded<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

// pingora's `IO` is a bundle of traits; each is the wrapped stream's.

#[async_trait]
impl Shutdown for Guarded<Stream> {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Guarded<Stream> {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded<Stream> {
    fn get_ssl(&self) -> Option<&pingora_core::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora_core::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded<Stream> {
    fn get_timing_digest(&self) -> Vec<Option<pingora_core::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded<Stream> {
    fn get_proxy_digest(&self) -> Option<Arc<pingora_core::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: pingora_core::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Guarded<Stream> {
    fn get_socket_digest(&self) -> Option<Arc<pingora_core::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: pingora_core::protocols::SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Guarded<Stream> {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// A pingora app whose HTTP/1 connections are [`Guarded`]. HTTP/2 connections
/// (ALPN `h2`) pass as they are: their frames have no header lines to watch,
/// and the h2 server bounds its own handshake and idle time.
pub struct GuardedApp<A> {
    inner: Arc<A>,
    limits: HeaderDeadlines,
}

impl<A> GuardedApp<A> {
    /// Guard every HTTP/1 connection `inner` serves.
    pub fn new(inner: A, limits: HeaderDeadlines) -> Self {
        GuardedApp {
            inner: Arc::new(inner),
            limits,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for GuardedApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let stream: Stream = if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            stream
        } else {
            Box::new(Guarded::new(stream, self.limits))
        };
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: HeaderDeadlines = HeaderDeadlines {
        first_request: Duration::from_secs(5),
        header: Duration::from_secs(2),
    };

    #[tokio::test(start_paused = true)]
    async fn a_trickled_header_times_out_from_its_first_byte() {
        let (client, server) = tokio::io::duplex(1024);
        let mut guarded = Guarded::new(server, LIMITS);
        let mut client = client;
        let writer = tokio::spawn(async move {
            for b in b"GET / HTTP/1.1\r\nHost: x\r\n" {
                client.write_all(&[*b]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            client
        });
        let start = Instant::now();
        let mut buf = [0u8; 64];
        let err = loop {
            match guarded.read(&mut buf).await {
                Ok(0) => panic!("eof"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        writer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_header_disarms_until_the_next_request() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut guarded = Guarded::new(server, LIMITS);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = guarded.read(&mut buf).await.unwrap();
        assert_eq!(n, 27);
        assert_eq!(guarded.phase, Phase::Body);
        // A slow origin: nothing to read for a long time, no deadline fires.
        let quiet = tokio::time::timeout(Duration::from_secs(60), guarded.read(&mut buf)).await;
        assert!(quiet.is_err(), "a read after the header must not time out");
        guarded.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert_eq!(guarded.phase, Phase::Responded);
        // The next request's first byte arms the header deadline again.
        client.write_all(b"G").await.unwrap();
        let _ = guarded.read(&mut buf).await.unwrap();
        assert!(matches!(guarded.phase, Phase::Header { .. }));
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_times_out_after_the_first_request_timeout() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut guarded = Guarded::new(server, LIMITS);
        let start = Instant::now();
        let mut buf = [0u8; 8];
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn header_end_split_across_reads_and_bare_newlines() {
        let (_c, server) = tokio::io::duplex(8);
        let mut g = Guarded::new(server, LIMITS);
        g.on_read(b"GET / HTTP/1.1\r\nHost: x\r");
        assert!(matches!(g.phase, Phase::Header { .. }));
        g.on_read(b"\n\r");
        assert!(matches!(g.phase, Phase::Header { .. }));
        g.on_read(b"\nbody");
        assert_eq!(g.phase, Phase::Body);
        let (_c, server) = tokio::io::duplex(8);
        let mut g = Guarded::new(server, LIMITS);
        g.on_read(b"GET / HTTP/1.0\nHost: x\n\n");
        assert_eq!(g.phase, Phase::Body);
    }

    /// The header's end is found where a byte-by-byte count of line ends
    /// (ignoring `\r`) finds it, however the bytes are split into reads.
    #[test]
    fn header_end_matches_a_bytewise_count_for_every_split() {
        let inputs: [&[u8]; 6] = [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody",
            b"GET / HTTP/1.1\nA: b\n\r\r\nrest",
            b"GET / HTTP/1.1\r\nA: \r\nB: c\r\n\r",
            b"\r\n\r\n",
            b"GET /\n\rx\n\r\rr\n",
            b"no line end at all",
        ];
        for input in inputs {
            // Where a byte-by-byte count reaches two line ends, if it does.
            let mut count = 0;
            let end = input.iter().position(|&b| {
                match b {
                    b'\n' => count += 1,
                    b'\r' => {}
                    _ => count = 0,
                }
                count == 2
            });
            for split in 0..=input.len() {
                let (_c, server) = tokio::io::duplex(8);
                let mut g = Guarded::new(server, LIMITS);
                let (a, b) = input.split_at(split);
                g.on_read(a);
                let body_after_a = g.phase == Phase::Body;
                assert_eq!(
                    body_after_a,
                    end.is_some_and(|e| e < split),
                    "{input:?} at {split}"
                );
                if !body_after_a {
                    g.on_read(b);
                }
                assert_eq!(
                    g.phase == Phase::Body,
                    end.is_some(),
                    "{input:?} split at {split}"
                );
            }
        }
    }
}
