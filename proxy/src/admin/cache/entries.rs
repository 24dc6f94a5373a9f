//! Cache operations the admin API needs that depend on how the proxy keys and
//! encodes entries: URL normalization, injection (pre-warming) and decoding a
//! stored entry's headers. Keeping them here keeps one definition of "the key
//! of a URL" for the proxy and the admin API.

use std::time::Duration;

use bytes::Bytes;
use pingora_cache::key::{CacheHashKey, CacheKey};
use pingora_cache::CacheMeta;
use pingora_http::ResponseHeader;

use aside_policies::{Config, Route};
use aside_store::{CacheEntry, Store};

/// What can go wrong in a cache operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheOpError {
    /// The URL is not an absolute http(s) URL.
    #[error("{0}")]
    BadUrl(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] aside_store::Error),
    /// Headers, status or TTL are invalid.
    #[error("{0}")]
    BadInput(String),
}

struct Target<'a> {
    route: &'a Route,
    scheme: &'static str,
    host: String,
    path: String,
    query: Option<String>,
}

fn target<'a>(config: &'a Config, url: &str) -> Result<Target<'a>, CacheOpError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| CacheOpError::BadUrl(format!("{url:?} is not a URL: {e}")))?;
    let scheme = match uri.scheme_str() {
        Some("http") => "http",
        Some("https") => "https",
        _ => {
            return Err(CacheOpError::BadUrl(format!(
                "{url:?} must be an absolute http:// or https:// URL"
            )))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| CacheOpError::BadUrl(format!("{url:?} has no host")))?;
    let host = authority.as_str().to_ascii_lowercase();
    let path = uri.path().to_owned();
    let route = config
        .route_for(authority.host(), &path, "GET")
        .ok_or_else(|| CacheOpError::BadUrl(format!("no route matches {url:?}")))?;
    Ok(Target {
        route,
        scheme,
        host,
        path,
        query: uri.query().map(str::to_owned),
    })
}

/// Map an absolute URL to its normalized store url (what `CacheEntry::url` holds).
///
/// # Errors
/// `BadUrl` when the URL is not absolute http(s) or no route matches it.
pub fn normalize_url(config: &Config, url: &str) -> Result<String, CacheOpError> {
    let t = target(config, url)?;
    Ok(t.route
        .normalized_url(t.scheme, &t.host, &t.path, t.query.as_deref()))
}

/// Store a response for `url` as if the origin had sent it, fresh for `ttl`.
///
/// The entry is keyed exactly like a proxied GET of that URL without keyed
/// request headers; `Vary` is dropped (an injected entry has one variant).
///
/// # Errors
/// Bad URL, status, header or TTL; or the store failed.
pub async fn inject(
    store: &Store,
    config: &Config,
    url: &str,
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    ttl: Duration,
) -> Result<String, CacheOpError> {
    let t = target(config, url)?;
    if ttl.is_zero() {
        return Err(CacheOpError::BadInput(
            "ttlSeconds must be at least 1".into(),
        ));
    }
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 2))
        .map_err(|_| CacheOpError::BadInput(format!("{status} is not an HTTP status")))?;
    if !(200..600).contains(&status) {
        return Err(CacheOpError::BadInput(format!(
            "{status} is not a final HTTP status"
        )));
    }
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "vary" | "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        resp.append_header(name.clone(), value.as_str())
            .map_err(|_| CacheOpError::BadInput(format!("invalid header {name:?}")))?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
        .map_err(|_| CacheOpError::BadInput("content-length".into()))?;

    let now = store.clock().now();
    let fresh_until = now
        .checked_add(ttl)
        .ok_or_else(|| CacheOpError::BadInput("ttlSeconds is too large".into()))?;
    let meta = CacheMeta::new(fresh_until, now, 0, 0, resp);
    let (internal, header) = crate::cache_storage::serialize_meta(&meta)
        .map_err(|e| CacheOpError::BadInput(format!("cannot encode headers: {e}")))?;
    let no_headers = |_: &str| None;
    let primary = t
        .route
        .cache_key(t.scheme, &t.host, &t.path, t.query.as_deref(), &no_headers);
    let normalized = t
        .route
        .normalized_url(t.scheme, &t.host, &t.path, t.query.as_deref());
    let entry = CacheEntry {
        hash: CacheKey::new(primary, "").combined_bin(),
        url: normalized.clone(),
        host: t.host,
        tags: t.route.policy.tags.clone(),
        status,
        meta_internal: Bytes::from(internal),
        meta_header: Bytes::from(header),
        body,
        stored_at: now,
        fresh_until,
        stale_until: fresh_until,
        soft_purged: false,
    };
    store.cache_fill(entry).await?;
    Ok(normalized)
}

/// The response headers of a stored entry.
///
/// # Errors
/// The entry's meta cannot be decoded.
pub fn entry_headers(entry: &CacheEntry) -> Result<Vec<(String, String)>, CacheOpError> {
    let meta = CacheMeta::deserialize(&entry.meta_internal, &entry.meta_header)
        .map_err(|e| CacheOpError::BadInput(format!("undecodable entry: {e}")))?;
    Ok(meta
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect())
}
