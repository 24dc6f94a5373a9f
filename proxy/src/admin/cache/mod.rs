//! The cache admin API: list, inspect, inject and purge cached responses.
//! URLs given by the operator are mapped through the live config's routes
//! ([`entries::normalize_url`]) to the normalized URL the store keeps.

pub mod entries;
mod wire;

use std::time::{Duration, SystemTime};

use aside_store::{CacheFilter, CacheSelector, CacheSummary, PurgeMode};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::Json;
use base64::Engine as _;

use self::entries::CacheOpError;
use crate::admin::error::{ApiError, ErrorBody};
use crate::admin::extract::{answer_limit, json_answer, JsonBody, QueryParams, RawBody};
use crate::admin::kv::{page_limit, rfc3339, MAX_PAGE};
use crate::admin::{AdminState, Data};

pub use wire::{
    EntriesView, EntryDetail, EntryParams, EntryView, HeaderView, InjectParams, Injected,
    ListParams, PurgeBody, PurgeResult, UrlEntries,
};

/// Most selectors (urls + prefixes + hosts + tags) in one purge.
pub const MAX_SELECTORS: usize = 1000;

impl From<CacheOpError> for ApiError {
    fn from(err: CacheOpError) -> Self {
        match err {
            CacheOpError::BadUrl(message) => ApiError::BadRequest {
                code: "bad_url",
                message,
            },
            CacheOpError::BadInput(message) => ApiError::bad_request(message),
            CacheOpError::Store(err) => err.into(),
        }
    }
}

/// Longest `wait` accepted.
const MAX_WAIT: Duration = Duration::from_secs(30);

impl PurgeResult {
    fn local(matched: u64, purged: u64) -> PurgeResult {
        PurgeResult {
            matched,
            purged,
            purge_id: None,
            queued: false,
            confirmed: None,
            unconfirmed: None,
        }
    }

    /// Adds the fan-out's outcome (and waits for confirmations when asked).
    async fn fanned_out(
        mut self,
        state: &AdminState,
        receipt: aside_cluster::Receipt,
        wait: Option<Duration>,
    ) -> PurgeResult {
        use aside_cluster::Published;
        match receipt.outcome(Duration::from_secs(3)).await {
            Published::Standalone => {}
            Published::Queued => self.queued = true,
            Published::Sent(id) => {
                self.purge_id = Some(id.to_string());
                if let Some(wait) = wait {
                    match state.purges.wait_applied(id, wait).await {
                        Ok(o) => {
                            self.confirmed = Some(o.confirmed);
                            self.unconfirmed = Some(o.unconfirmed);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "purge wait: Redis unreachable");
                        }
                    }
                }
            }
        }
        self
    }
}

/// List cached responses.
#[utoipa::path(
    get,
    path = "/cache/entries",
    tag = "cache",
    params(ListParams),
    responses(
        (status = 200, description = "One page of entries, ordered by URL", body = Data<EntriesView>),
        (status = 400, description = "Bad parameter (limit, cursor, unknown name)", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    )
)]
pub async fn list_entries(
    State(state): State<AdminState>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Response, ApiError> {
    let limit = page_limit(params.limit)?;
    let filter = CacheFilter {
        prefix: params.prefix.filter(|s| !s.is_empty()),
        host: params
            .host
            .filter(|s| !s.is_empty())
            .map(|h| h.to_ascii_lowercase()),
        tag: params.tag.filter(|s| !s.is_empty()),
    };
    let cursor = params.cursor.filter(|s| !s.is_empty());
    let page = state
        .store
        .cache_list(&filter, limit, cursor.as_deref())
        .await?;
    let entries = page
        .entries
        .into_iter()
        .map(entry_view)
        .collect::<Result<_, _>>()?;
    let view = EntriesView {
        entries,
        cursor: page.cursor,
    };
    json_answer(&Data { data: view }, answer_limit(state.store.limits()))
}

/// Inspect the entries stored for a URL: metadata, headers and optionally the body.
#[utoipa::path(
    get,
    path = "/cache/entry",
    tag = "cache",
    params(EntryParams),
    responses(
        (status = 200, description = "Every Vary variant stored for the URL", body = Data<UrlEntries>),
        (status = 400, description = "Not an absolute http(s) URL, no route matches it, bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Nothing cached for the URL", body = ErrorBody),
    )
)]
pub async fn get_entry(
    State(state): State<AdminState>,
    QueryParams(params): QueryParams<EntryParams>,
) -> Result<Response, ApiError> {
    let url = entries::normalize_url(&state.config.load(), &params.url)?;
    let with_body = params.body.unwrap_or(false);
    let max = answer_limit(state.store.limits());
    // Bodies counted as they are read (base64 grows them by a third): the variants of one
    // URL stop being read once their bodies alone exceed the answer limit.
    let mut body_bytes = 0usize;
    let filter = CacheFilter {
        prefix: Some(url.clone()),
        ..CacheFilter::default()
    };
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = state
            .store
            .cache_list(&filter, MAX_PAGE, cursor.as_deref())
            .await?;
        let past_url = page.entries.iter().any(|s| s.url > url);
        for summary in page.entries.into_iter().filter(|s| s.url == url) {
            // Gone (purged or expired) since it was listed: skip it.
            let Some((entry, tier)) = state.store.cache_lookup(&summary.hash).await? else {
                continue;
            };
            let mut view = entry_view(summary)?;
            view.tier = tier.as_str();
            entries.push(entry_detail(&entry, view, with_body, &mut body_bytes, max)?);
        }
        // Entries are ordered by url: once past ours, the rest are other URLs.
        match page.cursor {
            Some(next) if !past_url => cursor = Some(next),
            _ => break,
        }
    }
    if let Some(shared) = state.purges.shared() {
        // Variants this node does not hold, as the shared tier has them.
        match shared.entries_for_url(&url).await {
            Ok(found) => {
                for entry in found {
                    let hash: String = entry.hash.iter().map(|b| format!("{b:02x}")).collect();
                    if entries.iter().any(|e| e.entry.hash == hash) {
                        continue;
                    }
                    let view = EntryView {
                        hash,
                        stored_at: time(entry.stored_at)?,
                        fresh_until: time(entry.fresh_until)?,
                        stale_until: time(entry.stale_until)?,
                        url: entry.url.clone(),
                        host: entry.host.clone(),
                        status: entry.status,
                        size: entry.body.len() as u64,
                        tier: "shared",
                        tags: entry.tags.clone(),
                        soft_purged: entry.soft_purged,
                    };
                    entries.push(entry_detail(&entry, view, with_body, &mut body_bytes, max)?);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "GET /cache/entry: shared tier unreachable; local variants only");
            }
        }
    }
    if entries.is_empty() {
        return Err(ApiError::not_found(format!("nothing cached for {url}")));
    }
    json_answer(
        &Data {
            data: UrlEntries { url, entries },
        },
        max,
    )
}

/// One variant's details: its view, response headers and (with `body`) its body,
/// counting bodies against the answer limit.
fn entry_detail(
    entry: &aside_store::CacheEntry,
    entry_view: EntryView,
    with_body: bool,
    body_bytes: &mut usize,
    max: usize,
) -> Result<EntryDetail, ApiError> {
    let headers = entries::entry_headers(entry)?
        .into_iter()
        .map(|(name, value)| HeaderView { name, value })
        .collect();
    if with_body {
        *body_bytes = body_bytes.saturating_add(entry.body.len().saturating_mul(4) / 3);
        if *body_bytes > max {
            return Err(ApiError::AnswerTooLarge { limit: max });
        }
    }
    let (body, body_encoding) = if with_body {
        match std::str::from_utf8(&entry.body) {
            Ok(text) => (Some(text.to_owned()), Some("utf8")),
            Err(_) => (
                Some(base64::engine::general_purpose::STANDARD.encode(&entry.body)),
                Some("base64"),
            ),
        }
    } else {
        (None, None)
    };
    Ok(EntryDetail {
        entry: entry_view,
        headers,
        body,
        body_encoding,
    })
}

/// Inject (pre-warm) a response for a URL as if the origin had sent it.
#[utoipa::path(
    put,
    path = "/cache/entry",
    tag = "cache",
    params(
        InjectParams,
        ("Content-Type" = Option<String>, Header, description = "Stored as the response's Content-Type"),
    ),
    request_body(content = Vec<u8>, description = "The response body, stored as given", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored (replaces every variant of the URL)", body = Data<Injected>),
        (status = 400, description = "Bad URL, TTL or status", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    )
)]
pub async fn put_entry(
    State(state): State<AdminState>,
    QueryParams(params): QueryParams<InjectParams>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Data<Injected>>, ApiError> {
    if params.ttl_seconds == 0 || params.ttl_seconds > state.store.limits().max_ttl.as_secs() {
        return Err(ApiError::BadRequest {
            code: "invalid_ttl",
            message: format!(
                "ttlSeconds: must be between 1 and {}, got {}",
                state.store.limits().max_ttl.as_secs(),
                params.ttl_seconds
            ),
        });
    }
    let config = state.config.load_full();
    let normalized = entries::normalize_url(&config, &params.url)?;
    let mut response_headers = Vec::new();
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let value = content_type
            .to_str()
            .map_err(|_| ApiError::bad_request("Content-Type: not visible ASCII"))?;
        response_headers.push(("content-type".to_owned(), value.to_owned()));
    }
    // Replace every variant: the injected response is the only one afterwards.
    let selector = CacheSelector {
        urls: vec![normalized],
        ..CacheSelector::default()
    };
    state
        .store
        .cache_purge(&selector, PurgeMode::Hard, false)
        .await?;
    let url = entries::inject(
        &state.store,
        &config,
        &params.url,
        params.status.unwrap_or(200),
        response_headers,
        body,
        Duration::from_secs(params.ttl_seconds),
    )
    .await?;
    Ok(Json(Data {
        data: Injected { url },
    }))
}

/// Purge one URL, all its Vary variants.
#[utoipa::path(
    delete,
    path = "/cache/entry",
    tag = "cache",
    params(EntryParams),
    responses(
        (status = 200, description = "How many entries were purged", body = Data<PurgeResult>),
        (status = 400, description = "Not an absolute http(s) URL, or no route matches it", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    )
)]
pub async fn delete_entry(
    State(state): State<AdminState>,
    QueryParams(params): QueryParams<EntryParams>,
) -> Result<Json<Data<PurgeResult>>, ApiError> {
    let url = entries::normalize_url(&state.config.load(), &params.url)?;
    let selector = CacheSelector {
        urls: vec![url],
        ..CacheSelector::default()
    };
    let purged = state
        .store
        .cache_purge(&selector, PurgeMode::Hard, false)
        .await?;
    crate::metrics::record_purge(purged);
    let receipt = state.purges.publish(&selector, PurgeMode::Hard).await;
    let result = PurgeResult::local(purged, purged);
    Ok(Json(Data {
        data: result.fanned_out(&state, receipt, None).await,
    }))
}

/// Purge by URL, URL prefix, host or tag (any match), or everything.
#[utoipa::path(
    post,
    path = "/cache/purge",
    tag = "cache",
    request_body = PurgeBody,
    responses(
        (status = 200, description = "How many entries matched and were purged; in cluster mode the purge's ID and, with `wait`, which nodes applied it", body = Data<PurgeResult>),
        (status = 400, description = "Malformed JSON, wrong types, nothing selected, bad URL", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
pub async fn purge(
    State(state): State<AdminState>,
    JsonBody(body): JsonBody<PurgeBody>,
) -> Result<Json<Data<PurgeResult>>, ApiError> {
    let selectors = body.urls.len() + body.prefixes.len() + body.hosts.len() + body.tags.len();
    if selectors == 0 && !body.everything {
        return Err(ApiError::bad_request(
            "nothing selected: give urls, prefixes, hosts or tags, or \"everything\": true",
        ));
    }
    if selectors > MAX_SELECTORS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_SELECTORS} selectors per purge, got {selectors}"
        )));
    }
    if let Some(empty) = [&body.prefixes, &body.hosts, &body.tags]
        .into_iter()
        .flatten()
        .find(|s| s.is_empty())
    {
        // An empty prefix would select everything without saying so.
        return Err(ApiError::bad_request(format!(
            "empty selector {empty:?}: use \"everything\": true to purge everything"
        )));
    }
    let wait = match body.wait.as_deref() {
        None => None,
        Some(text) => match aside_policies::parse_duration(text) {
            Ok(d) if d <= MAX_WAIT => Some(d),
            Ok(_) => return Err(ApiError::bad_request("wait: at most 30s")),
            Err(m) => return Err(ApiError::bad_request(format!("wait: {m}"))),
        },
    };
    let config = state.config.load();
    let urls = body
        .urls
        .iter()
        .map(|u| entries::normalize_url(&config, u))
        .collect::<Result<Vec<_>, _>>()?;
    let selector = CacheSelector {
        urls,
        prefixes: body.prefixes,
        hosts: body.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        tags: body.tags,
        hashes: Vec::new(),
        everything: body.everything,
    };
    let mode = if body.soft {
        PurgeMode::Soft
    } else {
        PurgeMode::Hard
    };
    let matched = state
        .store
        .cache_purge(&selector, mode, body.dry_run)
        .await?;
    let purged = if body.dry_run { 0 } else { matched };
    crate::metrics::record_purge(purged);
    let result = PurgeResult::local(matched, purged);
    if body.dry_run {
        return Ok(Json(Data { data: result }));
    }
    let receipt = state.purges.publish(&selector, mode).await;
    Ok(Json(Data {
        data: result.fanned_out(&state, receipt, wait).await,
    }))
}

fn entry_view(s: CacheSummary) -> Result<EntryView, ApiError> {
    Ok(EntryView {
        hash: s.hash.iter().map(|b| format!("{b:02x}")).collect(),
        stored_at: time(s.stored_at)?,
        fresh_until: time(s.fresh_until)?,
        stale_until: time(s.stale_until)?,
        url: s.url,
        host: s.host,
        status: s.status,
        size: s.size,
        tier: s.tier.as_str(),
        tags: s.tags,
        soft_purged: s.soft_purged,
    })
}

fn time(t: SystemTime) -> Result<Option<String>, ApiError> {
    rfc3339(Some(t))
}
