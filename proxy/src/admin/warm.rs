//! `POST /cache/warm` and `GET /cache/warm/{id}`: fetch URLs through the proxy's
//! normal path (so routes, keys, the budget and the origin protection all apply)
//! as a background job, and report progress and each URL's outcome.
//!
//! A job sends `GET` requests to this node's own plain HTTP listener with the
//! URL's authority as `Host`; `https://` URLs are not warmed this way (their
//! cache key carries the scheme, which only the TLS listener gives) and are
//! reported as skipped. Jobs live in memory; the newest `MAX_JOBS` are kept.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::JsonBody;
use super::{AdminState, Data};

/// URLs one job may hold.
const MAX_URLS: usize = aside_policies::MAX_WARM_URLS;
/// Jobs remembered (finished ones are dropped oldest first).
const MAX_JOBS: usize = 64;
/// Concurrency when the request gives none, and the most it may ask for.
const DEFAULT_CONCURRENCY: usize = 4;
const MAX_CONCURRENCY: usize = 64;
/// One fetch, from connect to the last body byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// `POST /cache/warm` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmRequest {
    /// Absolute `http://` URLs, as clients request them (at most 10,000).
    #[schema(min_items = 1, max_items = 10000)]
    pub urls: Vec<String>,
    /// Fetches at once (1..=64). Default: 4.
    #[schema(minimum = 1, maximum = 64)]
    pub concurrency: Option<usize>,
}

/// How one URL went.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmOutcome {
    pub url: String,
    /// `pending`, `ok` (a 2xx/3xx answer), `failed` or `skipped`.
    pub result: &'static str,
    /// The proxy's answer status, when there was one.
    pub status: Option<u16>,
    /// The answer's `Cache-Status`, or why the URL failed or was skipped.
    pub detail: Option<String>,
}

/// A warming job's progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmJob {
    pub id: String,
    /// `running` or `done`.
    pub state: &'static str,
    pub total: usize,
    pub done: usize,
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    pub results: Vec<WarmOutcome>,
}

/// `POST /cache/warm` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmStarted {
    pub id: String,
    pub total: usize,
}

type JobRef = Arc<Mutex<WarmJob>>;

static JOBS: LazyLock<Mutex<VecDeque<JobRef>>> = LazyLock::new(|| Mutex::new(VecDeque::new()));
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Start warming URLs in the background; answers the job id at once.
#[utoipa::path(
    post,
    path = "/cache/warm",
    tag = "cache",
    request_body = WarmRequest,
    responses(
        (status = 202, description = "Job started; poll `GET /cache/warm/{id}`", body = Data<WarmStarted>),
        (status = 400, description = "No URL, too many, a URL that is not absolute, or a bad concurrency", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 413, description = "Request body over the limit", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
    )
)]
pub async fn start(
    State(state): State<AdminState>,
    JsonBody(req): JsonBody<WarmRequest>,
) -> Result<(StatusCode, Json<Data<WarmStarted>>), ApiError> {
    if req.urls.is_empty() || req.urls.len() > MAX_URLS {
        return Err(ApiError::bad_request(format!(
            "urls: give 1 to {MAX_URLS} URLs"
        )));
    }
    let concurrency = req.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return Err(ApiError::bad_request(format!(
            "concurrency: {concurrency} is not between 1 and {MAX_CONCURRENCY}"
        )));
    }
    let mut targets = Vec::with_capacity(req.urls.len());
    for (i, url) in req.urls.iter().enumerate() {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| ApiError::bad_request(format!("urls[{i}]: {url:?} is not a URL")))?;
        if uri.authority().is_none() || uri.scheme().is_none() {
            return Err(ApiError::bad_request(format!(
                "urls[{i}]: {url:?} is not an absolute http:// URL"
            )));
        }
        targets.push(uri);
    }
    let proxy = state.proxy;
    let total = targets.len();
    let id = spawn_job(req.urls, targets, proxy, concurrency);
    Ok((
        StatusCode::ACCEPTED,
        Json(Data {
            data: WarmStarted { id, total },
        }),
    ))
}

/// Starts a job fetching `targets` (parsed from `urls`, same order) through
/// the listener at `proxy`; returns its id.
fn spawn_job(
    urls: Vec<String>,
    targets: Vec<http::Uri>,
    proxy: Option<SocketAddr>,
    concurrency: usize,
) -> String {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed).to_string();
    let job = Arc::new(Mutex::new(WarmJob {
        id: id.clone(),
        state: "running",
        total: targets.len(),
        done: 0,
        ok: 0,
        failed: 0,
        skipped: 0,
        results: urls
            .into_iter()
            .map(|url| WarmOutcome {
                url,
                result: "pending",
                status: None,
                detail: None,
            })
            .collect(),
    }));
    {
        let mut jobs = JOBS.lock();
        jobs.push_back(job.clone());
        while jobs.len() > MAX_JOBS {
            jobs.pop_front();
        }
    }
    tokio::spawn(run(job, targets, proxy, concurrency));
    id
}

/// Warms every route's `warm` URLs once the proxy listener accepts
/// connections (a job like `POST /cache/warm`'s, its id logged).
pub async fn warm_at_start(config: &aside_policies::Config, proxy: Option<SocketAddr>) {
    let urls: Vec<String> = config
        .routes
        .iter()
        .flat_map(|r| r.policy.warm.iter().cloned())
        .collect();
    if urls.is_empty() {
        return;
    }
    // Validation only lets absolute http:// URLs through.
    let Ok(targets) = urls
        .iter()
        .map(|u| u.parse::<http::Uri>())
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    let Some(proxy) = proxy else {
        tracing::warn!("warm: no plain HTTP listener; the routes' warm URLs are skipped");
        return;
    };
    // The proxy service starts beside this one: wait until it accepts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::net::TcpStream::connect(proxy).await.is_err() {
        if std::time::Instant::now() > deadline {
            tracing::warn!(%proxy, "warm: the proxy listener never accepted; warm URLs skipped");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let total = urls.len();
    let id = spawn_job(urls, targets, Some(proxy), DEFAULT_CONCURRENCY);
    tracing::info!(job = %id, urls = total, "warming the routes' warm URLs (GET /cache/warm/{id})");
}

/// A warming job's progress and each URL's outcome.
#[utoipa::path(
    get,
    path = "/cache/warm/{id}",
    tag = "cache",
    params(("id" = String, Path, description = "The id `POST /cache/warm` answered")),
    responses(
        (status = 200, description = "Progress", body = Data<WarmJob>),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such job (or an old one, forgotten)", body = ErrorBody),
    )
)]
pub async fn status(Path(id): Path<String>) -> Result<Json<Data<WarmJob>>, ApiError> {
    let job = JOBS
        .lock()
        .iter()
        .find(|j| j.lock().id == id)
        .map(|j| j.lock().clone());
    job.map(|data| Json(Data { data }))
        .ok_or_else(|| ApiError::NotFound {
            code: "job_not_found",
            message: format!("no warming job {id}"),
        })
}

async fn run(job: JobRef, targets: Vec<http::Uri>, proxy: Option<SocketAddr>, concurrency: usize) {
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, uri) in targets.into_iter().enumerate() {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let job = job.clone();
        tasks.spawn(async move {
            let outcome = warm_one(&uri, proxy).await;
            drop(permit);
            crate::metrics::record_warm(outcome.0);
            let mut j = job.lock();
            match outcome.0 {
                "ok" => j.ok += 1,
                "skipped" => j.skipped += 1,
                _ => j.failed += 1,
            }
            j.done += 1;
            if let Some(r) = j.results.get_mut(i) {
                r.result = outcome.0;
                r.status = outcome.1;
                r.detail = outcome.2;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    job.lock().state = "done";
}

/// Fetch one URL through the proxy: (result, status, detail).
async fn warm_one(
    uri: &http::Uri,
    proxy: Option<SocketAddr>,
) -> (&'static str, Option<u16>, Option<String>) {
    if uri.scheme_str() != Some("http") {
        return (
            "skipped",
            None,
            Some("only http:// URLs are warmed (an https key needs the TLS listener)".to_owned()),
        );
    }
    let Some(addr) = proxy else {
        return ("skipped", None, Some("no plain HTTP listener".to_owned()));
    };
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let fetch = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(conn);
        let req = Request::get(path)
            .header(header::HOST, authority)
            .header(header::USER_AGENT, "aside-warm")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let cache = resp
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Read the whole body: the fill is stored only once it is complete.
        resp.into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        driver.abort();
        Ok::<_, String>((status, cache))
    };
    match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
        Ok(Ok((status, cache))) if status < 400 => ("ok", Some(status), cache),
        Ok(Ok((status, cache))) => ("failed", Some(status), cache),
        Ok(Err(e)) => ("failed", None, Some(e)),
        Err(_) => ("failed", None, Some("timed out".to_owned())),
    }
}
