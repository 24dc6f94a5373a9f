//! The admin listener: accepts connections and serves the [`router`](super::router)
//! over HTTP/1.1 with every connection bounded.
//!
//! `axum::serve` closes no connection on its own: idle clients could hold
//! file descriptors until the process ran out of them, and then neither the
//! admin API nor the proxy could accept anything. Here:
//! - at most `admin.max-connections` are open at once; a connection beyond it
//!   gets a JSON 503 and is closed (the refusals themselves are bounded);
//! - each connection is [`Guarded`]: the first request's first byte within
//!   `server.first-request-timeout`, each header within
//!   `server.header-read-timeout` of its first byte;
//! - hyper's header timer closes a connection idle for `admin.idle-timeout`
//!   between requests;
//! - a request body must arrive whole within `server.body-read-timeout`.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt;

use super::AdminState;
use crate::conn_guard::{Guarded, HeaderDeadlines};

/// The bounds of the admin listener (from `[admin]` and `[server]`).
#[derive(Debug, Clone, Copy)]
pub struct AdminLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Idle time allowed between two requests of a connection.
    pub idle: Duration,
    /// First request and header deadlines.
    pub deadlines: HeaderDeadlines,
    /// Time for a whole request body, from the end of its header.
    pub body: Duration,
    /// Time given to open connections to finish at shutdown.
    pub grace: Duration,
}

impl AdminLimits {
    /// The admin listener's bounds in a config.
    pub fn from_config(config: &aside_policies::Config) -> Self {
        AdminLimits {
            max_connections: config.admin.max_connections,
            idle: config.admin.idle_timeout,
            deadlines: HeaderDeadlines {
                first_request: config.server.first_request_timeout,
                header: config.server.header_read_timeout,
            },
            body: config.server.body_read_timeout,
            grace: config.server.grace_period,
        }
    }
}

/// Refusals in flight at once (each holds a socket for at most `REFUSE_TIME`);
/// beyond it an excess connection is closed without an answer.
const MAX_REFUSALS: usize = 64;
/// How long a refused client gets to read its 503.
const REFUSE_TIME: Duration = Duration::from_millis(500);
/// Back-off after a failed accept (out of file descriptors, typically), so
/// the loop does not spin while nothing can be accepted.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serve the admin API on `listener` until `shutdown` resolves, then let open
/// connections finish their request (for at most `limits.grace`).
///
/// # Errors
/// None today: accept failures are logged and retried. The `Result` leaves
/// room for fatal listener errors.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    limits: AdminLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, max_connections = limits.max_connections, "admin API listening");
    }
    let router = super::router(state);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    crate::metrics::record_admin_refused("accept_error");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Reap finished connection tasks so the set stays as small as the open ones.
        while tasks.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            crate::metrics::record_admin_refused("max_connections");
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let io = TokioIo::new(JsonErrors::new(Guarded::new(stream, limits.deadlines)));
            let body_limit = limits.body;
            let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let req = req.map(|body| bounded_body(body, body_limit));
                router.clone().oneshot(req)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                // Runs from the end of one response until the next header is in.
                .header_read_timeout(limits.idle);
            let mut conn = pin!(builder.serve_connection(io, service));
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "admin connection ended");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.grace, conn).await;
                }
            }
            drop(slot);
        });
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(limits.grace + Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Answer a connection over the cap with a JSON 503 and close it.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = r#"{"error":{"code":"too_many_connections","message":"the admin listener has admin.max-connections connections open; retry later"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(REFUSE_TIME, async {
        stream.write_all(response.as_bytes()).await?;
        // Closing with the client's request unread would reset the connection
        // and could discard the 503 before the client reads it: half-close,
        // then wait (briefly) for the client to close.
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        std::io::Result::Ok(())
    })
    .await;
}

/// The request body, failing once `limit` has passed (none when there is no body).
fn bounded_body(body: Incoming, limit: Duration) -> Body {
    if body.is_end_stream() {
        Body::new(body)
    } else {
        Body::new(DeadlineBody {
            inner: body,
            sleep: Box::pin(tokio::time::sleep(limit)),
        })
    }
}

/// The error a [`DeadlineBody`] fails with once its deadline has passed.
#[derive(Debug)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body not received within server.body-read-timeout")
    }
}

impl std::error::Error for BodyTimeout {}

/// Whether a body-read failure (anywhere in its source chain) is a [`BodyTimeout`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A body that errors when it has not ended by its deadline.
struct DeadlineBody {
    inner: Incoming,
    sleep: Pin<Box<Sleep>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose bodiless error answers get the JSON body of every other
/// admin error. hyper answers a request it cannot parse (a byte that is not
/// ASCII in the path, a malformed header, headers too large) by itself,
/// before any router runs, with a head and `content-length: 0`; this writer
/// recognises such a head ([`super::error::json_parse_error`]) and sends the
/// JSON form in its place. Everything else passes through untouched.
struct JsonErrors<S> {
    inner: S,
    /// A rewritten answer being written, and how much of it has gone.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonErrors<S> {
    fn new(inner: S) -> Self {
        JsonErrors {
            inner,
            pending: None,
        }
    }
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    /// Write what is pending; `Ready(Ok)` once all of it is gone.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// `buf` is taken whole: either rewritten (then reported written once the
    /// rewrite is out) or passed on.
    fn write_one(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.pending.is_none() && is_bodiless_error_head(buf) {
            if let Some(json) = super::error::json_parse_error(buf) {
                self.pending = Some((json, 0));
            }
        }
        if self.pending.is_some() {
            return match self.poll_pending(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.len())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            };
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
}

/// Cheap test before the full parse: a whole `HTTP/1.1 4xx`/`5xx` head.
fn is_bodiless_error_head(buf: &[u8]) -> bool {
    (buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.1 5")) && buf.ends_with(b"\r\n\r\n")
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_one(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        // A head alone (hyper's own error answers) arrives as one slice.
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next()) {
            return self.write_one(cx, only);
        }
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}
