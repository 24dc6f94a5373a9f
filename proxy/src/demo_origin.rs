//! A small, deliberately slow origin for the quickstart (`aside demo-origin`):
//! it lets `make run` show MISS → HIT without internet access.
//!
//! - `GET /weather?city=paris` — 300 ms, `Cache-Control: public, max-age=60`, an ETag;
//! - `GET /slow?ms=800` — waits `ms` (at most 10 s), `max-age=30`;
//! - `GET /time` — no freshness information (not cached by the default config);
//! - `GET /private` — `Cache-Control: private` (never shared);
//! - `GET /bytes?size=1024&ms=0&max-age=3600` — `size` bytes (at most 16 MiB) after `ms`, for benchmarks;
//! - every response carries `X-Origin-Hits`, the origin's request counter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

#[derive(Default)]
struct Counter(AtomicU64);

fn hits(counter: &Counter) -> (&'static str, String) {
    let n = counter.0.fetch_add(1, Ordering::Relaxed) + 1;
    ("x-origin-hits", n.to_string())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn weather(
    State(c): State<Arc<Counter>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let city = q
        .get("city")
        .map_or("paris", String::as_str)
        .to_ascii_lowercase();
    let temp = city.bytes().map(u64::from).sum::<u64>() % 35;
    let etag = format!("\"{city}-{temp}\"");
    let h = hits(&c);
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, "public, max-age=60".into()),
            ],
            [h],
        )
            .into_response();
    }
    let body = serde_json::json!({"city": city, "temperatureC": temp, "observedAt": unix_now()});
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CACHE_CONTROL, "public, max-age=60".to_owned()),
            (header::ETAG, etag),
        ],
        [h, ("cache-tag", format!("weather,city-{city}"))],
        body.to_string(),
    )
        .into_response()
}

async fn slow(State(c): State<Arc<Counter>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let ms = q
        .get("ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(500)
        .min(10_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    (
        [(header::CACHE_CONTROL, "max-age=30")],
        [hits(&c)],
        format!("waited {ms} ms\n"),
    )
        .into_response()
}

async fn time(State(c): State<Arc<Counter>>) -> Response {
    ([hits(&c)], format!("{}\n", unix_now())).into_response()
}

async fn private(State(c): State<Arc<Counter>>) -> Response {
    let mut resp = ([hits(&c)], "only for you\n").into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=60"),
    );
    resp
}

async fn bytes_body(
    State(c): State<Arc<Counter>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let num = |k: &str, default: u64| {
        q.get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let size = num("size", 1024).min(16 << 20);
    let ms = num("ms", 0).min(10_000);
    let max_age = num("max-age", 3600);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let body = vec![b'a'; usize::try_from(size).unwrap_or(0)];
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CACHE_CONTROL, format!("public, max-age={max_age}")),
        ],
        [hits(&c)],
        body,
    )
        .into_response()
}

/// The demo origin's routes.
pub fn router() -> Router {
    Router::new()
        .route("/weather", get(weather))
        .route("/slow", get(slow))
        .route("/time", get(time))
        .route("/private", get(private))
        .route("/bytes", get(bytes_body))
        .with_state(Arc::new(Counter::default()))
}

/// Serve the demo origin until the process is stopped.
///
/// # Errors
/// The address cannot be bound.
pub fn run_blocking(listen: SocketAddr) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        tracing::info!(%listen, "demo origin listening");
        axum::serve(listener, router()).await?;
        Ok(())
    })
}
