//! The application KV API: `/kv/items/{key}` (set / get / delete), `/kv/items` (list),
//! `/kv/get-many` and `/kv/atomic`. Wire shapes: README.md ("Application KV API").

mod wire;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aside_store::{Check, KvItem, ListQuery, Mutation, SetCondition, Version};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use percent_encoding::percent_decode_str;

use crate::admin::error::{ApiError, ErrorBody};
use crate::admin::extract::{
    answer_limit, json_answer, json_bytes, KvJsonBody as JsonBody, QueryParams,
};
use crate::admin::{AdminState, Data};

pub use wire::{
    AtomicBody, AtomicView, CheckBody, GetManyBody, GetManyView, ItemView, KeyVersion, ListParams,
    ListView, MutationBody, MutationWire, PutBody, WriteView,
};

/// Where item keys start in the request path.
pub const ITEMS_PREFIX: &str = "/kv/items/";
/// Largest `limit` of a list call and most keys of a get-many call: the store's.
pub const MAX_PAGE: usize = aside_store::MAX_LIST_LIMIT;
/// Default `limit` of a list call: the store's.
pub const DEFAULT_PAGE: usize = aside_store::DEFAULT_LIST_LIMIT;

/// The `limit` parameter of a listing: default [`DEFAULT_PAGE`], 1..=[`MAX_PAGE`].
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_PAGE}, got {limit}"
        )))
    }
}
/// Most checks, and most mutations, in one atomic call: the store's.
pub const MAX_ATOMIC_OPS: usize = aside_store::MAX_ATOMIC_OPS;

/// Description of the `{key}` path parameter; its pattern is set by `openapi`.
const KEY_PARAM_DOC: &str = "Key: 1 to 512 bytes (UTF-8), no control characters. A key of \
    several parts is written with literal `/` between them (`/kv/items/notes/abc`), which \
    OpenAPI's single path parameter cannot express; `%2F`, empty parts and `.` or `..` \
    parts are refused (400).";

/// Set an item.
#[utoipa::path(
    put,
    path = "/kv/items/{key}",
    tag = "kv",
    params(
        ("key" = String, Path, description = KEY_PARAM_DOC, min_length = 1, max_length = 512),
        ("If-Match" = Option<String>, Header, nullable = false, description = "`\"<version>\"`: compare-and-swap (412 unless the item has that version); `*`: only if the item exists"),
        ("If-None-Match" = Option<String>, Header, nullable = false, pattern = r"^\*$", description = "`*`: only if the item is absent"),
    ),
    request_body = PutBody,
    responses(
        (status = 200, description = "Stored; `ETag` is the new version", body = Data<WriteView>),
        (status = 400, description = "Malformed JSON, wrong types, invalid key or TTL", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 412, description = "The If-Match / If-None-Match condition does not hold", body = ErrorBody),
        (status = 413, description = "Value too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
pub async fn put_item(
    State(state): State<AdminState>,
    uri: Uri,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PutBody>,
) -> Result<Response, ApiError> {
    let key = key_from_path(uri.path())?;
    // An invalid key is a 400 whatever the condition headers say.
    aside_store::key::validate_key(&key, state.kv.limits())?;
    let ttl = body.ttl_seconds.map(Duration::from_secs);
    let condition = match write_condition(&headers)? {
        WriteCondition::Store(condition) => condition,
        WriteCondition::IfExists => match state.kv.get(&key).await? {
            Some(item) => SetCondition::IfVersion(item.version),
            None => return Err(precondition_failed(&key)),
        },
        WriteCondition::Never => return Err(precondition_failed(&key)),
    };
    let item = state.kv.set(&key, body.value, ttl, condition).await?;
    let etag = etag(&item.version);
    let view = WriteView {
        key: item.key,
        version: item.version.to_string(),
        expires_at: rfc3339(item.expires_at)?,
    };
    Ok(with_etag(Json(Data { data: view }).into_response(), etag))
}

/// Get an item.
#[utoipa::path(
    get,
    path = "/kv/items/{key}",
    tag = "kv",
    params(
        ("key" = String, Path, description = KEY_PARAM_DOC, min_length = 1, max_length = 512),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "`\"<version>\"`: 304 when unchanged"),
    ),
    responses(
        (status = 200, description = "The item; `ETag` is its version", body = Data<ItemView>),
        (status = 304, description = "Unchanged since the version in If-None-Match"),
        (status = 400, description = "Invalid key", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Absent or expired", body = ErrorBody),
    )
)]
pub async fn get_item(
    State(state): State<AdminState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = key_from_path(uri.path())?;
    let Some(item) = state.kv.get(&key).await? else {
        return Err(ApiError::not_found(format!("no item with key {key:?}")));
    };
    let etag = etag(&item.version);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    if unchanged {
        return Ok(with_etag(StatusCode::NOT_MODIFIED.into_response(), etag));
    }
    let view = item_view(item)?;
    Ok(with_etag(Json(Data { data: view }).into_response(), etag))
}

/// Delete an item (whether or not it exists).
#[utoipa::path(
    delete,
    path = "/kv/items/{key}",
    tag = "kv",
    params(("key" = String, Path, description = KEY_PARAM_DOC, min_length = 1, max_length = 512)),
    responses(
        (status = 204, description = "Deleted (or was absent)"),
        (status = 400, description = "Invalid key", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    )
)]
pub async fn delete_item(
    State(state): State<AdminState>,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    let key = key_from_path(uri.path())?;
    state.kv.delete(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List items in key order.
#[utoipa::path(
    get,
    path = "/kv/items",
    tag = "kv",
    params(ListParams),
    responses(
        (status = 200, description = "One page of items", body = Data<ListView>),
        (status = 400, description = "Bad parameter (limit, cursor, reverse, unknown name)", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    )
)]
pub async fn list_items(
    State(state): State<AdminState>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Response, ApiError> {
    let limit = page_limit(params.limit)?;
    let mut query = ListQuery {
        prefix: params.prefix.filter(|s| !s.is_empty()),
        start: params.start.filter(|s| !s.is_empty()),
        end: params.end.filter(|s| !s.is_empty()),
        limit,
        cursor: params.cursor.filter(|s| !s.is_empty()),
        reverse: params.reverse.unwrap_or(false),
    };
    let max = answer_limit(state.kv.limits());
    let mut page = state.kv.list(query.clone()).await?;
    let fit = items_that_fit(&page.items, max, state.kv.limits().max_key_bytes);
    if fit < page.items.len() {
        // A shorter page: listed again with the limit that fits, so the cursor the store
        // issues continues right after the last item answered.
        query.limit = fit.max(1);
        page = state.kv.list(query).await?;
    }
    let items = page
        .items
        .into_iter()
        .map(item_view)
        .collect::<Result<_, _>>()?;
    let view = ListView {
        items,
        total: page.total,
        cursor: page.cursor,
    };
    json_answer(&Data { data: view }, max)
}

/// How many of `items`, from the first, fit in an answer of `max` bytes, counted generously
/// (keys escaped, room for version, expiry, `total` and a cursor of the longest key).
fn items_that_fit(items: &[KvItem], max: usize, max_key_bytes: usize) -> usize {
    let mut size = 1024 + 2 * max_key_bytes;
    for (i, item) in items.iter().enumerate() {
        size += item.value.len() + 2 * item.key.len() + 256;
        if size > max {
            return i;
        }
    }
    items.len()
}

/// Get several items at once.
#[utoipa::path(
    post,
    path = "/kv/get-many",
    tag = "kv",
    request_body = GetManyBody,
    responses(
        (status = 200, description = "Items in the order of `keys`, null for missing; a key named several times is read once and answered at each place", body = Data<GetManyView>),
        (status = 400, description = "Malformed JSON, wrong types, invalid key, more than 1000 keys", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 413, description = "Body too large, or the answer would exceed 16 MiB (`answer_too_large`)", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
pub async fn get_many(
    State(state): State<AdminState>,
    JsonBody(body): JsonBody<GetManyBody>,
) -> Result<Response, ApiError> {
    if body.keys.len() > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "keys: at most {MAX_PAGE} keys per call, got {}",
            body.keys.len()
        )));
    }
    let limits = state.kv.limits();
    for key in &body.keys {
        aside_store::key::validate_key(key, limits)?;
    }
    let max = answer_limit(limits);
    // Each distinct key is read and serialized once; `order` names, for each requested
    // key, its distinct slot, and `times` how often each slot is answered.
    let mut slot_of: HashMap<&str, usize> = HashMap::with_capacity(body.keys.len());
    let mut distinct: Vec<&str> = Vec::new();
    let mut order = Vec::with_capacity(body.keys.len());
    for key in &body.keys {
        let slot = *slot_of.entry(key.as_str()).or_insert_with(|| {
            distinct.push(key.as_str());
            distinct.len() - 1
        });
        order.push(slot);
    }
    let mut times = vec![0usize; distinct.len()];
    for &slot in &order {
        times[slot] += 1;
    }
    const HEAD: &[u8] = br#"{"data":{"items":["#;
    const TAIL: &[u8] = b"]}}";
    let mut size = HEAD.len() + TAIL.len() + order.len();
    let mut answers: Vec<Vec<u8>> = Vec::with_capacity(distinct.len());
    for (slot, key) in distinct.iter().enumerate() {
        let bytes = match state.kv.get(key).await? {
            Some(item) => serde_json::to_vec(&item_view(item)?)
                .map_err(|e| ApiError::Internal(format!("serializing an item: {e}")))?,
            None => b"null".to_vec(),
        };
        // Checked as each key is read: an answer over the limit stops before the next read.
        size = size.saturating_add(bytes.len().saturating_mul(times[slot]));
        if size > max {
            return Err(ApiError::AnswerTooLarge { limit: max });
        }
        answers.push(bytes);
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(HEAD);
    for (i, &slot) in order.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&answers[slot]);
    }
    out.extend_from_slice(TAIL);
    Ok(json_bytes(out))
}

/// Check versions and apply mutations, all or nothing.
#[utoipa::path(
    post,
    path = "/kv/atomic",
    tag = "kv",
    request_body = AtomicBody,
    responses(
        (status = 200, description = "All mutations committed", body = Data<AtomicView>),
        (status = 400, description = "Malformed JSON, wrong types, invalid key or TTL", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 409, description = "A check failed (the message names the key), or an increment of a non-number", body = ErrorBody),
        (status = 413, description = "A value or the body is too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
pub async fn atomic(
    State(state): State<AdminState>,
    JsonBody(body): JsonBody<AtomicBody>,
) -> Result<Response, ApiError> {
    if body.checks.len() > MAX_ATOMIC_OPS || body.mutations.len() > MAX_ATOMIC_OPS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_ATOMIC_OPS} checks and {MAX_ATOMIC_OPS} mutations per call"
        )));
    }
    let mut checks = Vec::with_capacity(body.checks.len());
    for check in body.checks {
        let version = match check.version {
            None => None,
            Some(text) => match text.trim_matches('"').parse::<Version>() {
                Ok(version) => Some(version),
                // Not a version this store ever issued: the check cannot hold.
                Err(_) => {
                    return Err(ApiError::Conflict {
                        code: "check_failed",
                        message: format!(
                            "check failed for key {:?}: {text:?} is not a current version",
                            check.key
                        ),
                    })
                }
            },
        };
        checks.push(Check {
            key: check.key,
            version,
        });
    }
    let mutations = body
        .mutations
        .into_iter()
        .map(|m| match m {
            MutationBody::Set {
                key,
                value,
                ttl_seconds,
            } => Mutation::Set {
                key,
                value,
                ttl: ttl_seconds.map(Duration::from_secs),
            },
            MutationBody::Delete { key } => Mutation::Delete { key },
            MutationBody::Increment {
                key,
                delta,
                ttl_seconds,
            } => Mutation::Increment {
                key,
                delta,
                ttl: ttl_seconds.map(Duration::from_secs),
            },
        })
        .collect();
    let result = state.kv.atomic(checks, mutations).await?;
    let versions = result
        .versions
        .into_iter()
        .map(|(key, version)| KeyVersion {
            key,
            version: version.map(|v| v.to_string()),
        })
        .collect();
    json_answer(
        &Data {
            data: AtomicView { versions },
        },
        answer_limit(state.kv.limits()),
    )
}

/// The key of a `/kv/items/{key}` path. Percent-decoded, but an encoded `/` (`%2F`) is
/// refused: it would make `a%2Fb` and `a/b` the same key by two spellings.
pub fn key_from_path(path: &str) -> Result<String, ApiError> {
    let raw = path.strip_prefix(ITEMS_PREFIX).unwrap_or_default();
    let invalid = |reason: &str| ApiError::BadRequest {
        code: "invalid_key",
        message: format!("invalid key {raw:?}: {reason}"),
    };
    if raw.to_ascii_lowercase().contains("%2f") {
        return Err(invalid(
            "percent-encoded '/' (%2F) is not allowed; separate parts with a literal '/'",
        ));
    }
    let key = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| invalid("not UTF-8 once percent-decoded"))?
        .into_owned();
    if key.is_empty() {
        return Err(invalid("empty key"));
    }
    for part in key.split('/') {
        if part.is_empty() {
            return Err(invalid("empty part"));
        }
        if part == "." || part == ".." {
            return Err(invalid("'.' and '..' parts are not allowed"));
        }
    }
    Ok(key)
}

enum WriteCondition {
    Store(SetCondition),
    IfExists,
    /// An `If-Match` tag no version can equal.
    Never,
}

fn write_condition(headers: &HeaderMap) -> Result<WriteCondition, ApiError> {
    let text = |name: header::HeaderName| -> Result<Option<String>, ApiError> {
        headers
            .get(&name)
            .map(|v| {
                v.to_str()
                    .map(|s| s.trim().to_owned())
                    .map_err(|_| ApiError::bad_request(format!("{name}: not visible ASCII")))
            })
            .transpose()
    };
    match (text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?) {
        (None, None) => Ok(WriteCondition::Store(SetCondition::Always)),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "If-Match and If-None-Match cannot be combined",
        )),
        (None, Some(tag)) if tag == "*" => Ok(WriteCondition::Store(SetCondition::IfAbsent)),
        (None, Some(tag)) => Err(ApiError::bad_request(format!(
            "If-None-Match: only `*` is supported on writes, got {tag:?}"
        ))),
        (Some(tag), None) if tag == "*" => Ok(WriteCondition::IfExists),
        (Some(tag), None) => {
            if tag.contains(',') {
                return Err(ApiError::bad_request(
                    "If-Match: give exactly one version (or `*`)",
                ));
            }
            if tag.starts_with("W/") {
                // Weak tags never match in If-Match (RFC 9110 13.1.1).
                return Ok(WriteCondition::Never);
            }
            Ok(match tag.trim_matches('"').parse::<Version>() {
                Ok(version) => WriteCondition::Store(SetCondition::IfVersion(version)),
                Err(_) => WriteCondition::Never,
            })
        }
    }
}

fn precondition_failed(key: &str) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "precondition failed for key {key:?}: the item's current version does not satisfy the request's condition"
    ))
}

fn etag(version: &Version) -> String {
    format!("\"{version}\"")
}

fn with_etag(mut response: Response, etag: String) -> Response {
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Format an expiry as RFC 3339 (UTC).
pub fn rfc3339(at: Option<SystemTime>) -> Result<Option<String>, ApiError> {
    at.map(|t| {
        let since_epoch = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| ApiError::Internal(format!("time before 1970: {t:?}")))?;
        let nanos = i128::try_from(since_epoch.as_nanos())
            .map_err(|_| ApiError::Internal(format!("time out of range: {t:?}")))?;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|e| ApiError::Internal(format!("time out of range: {e}")))?
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| ApiError::Internal(format!("cannot format time: {e}")))
    })
    .transpose()
}

fn item_view(item: KvItem) -> Result<ItemView, ApiError> {
    Ok(ItemView {
        expires_at: rfc3339(item.expires_at)?,
        version: item.version.to_string(),
        key: item.key,
        value: item.value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_paths() {
        assert_eq!(key_from_path("/kv/items/a/b").unwrap(), "a/b");
        assert_eq!(key_from_path("/kv/items/a%20b/c").unwrap(), "a b/c");
        for bad in [
            "/kv/items/a%2Fb",
            "/kv/items/a%2fb",
            "/kv/items/a//b",
            "/kv/items/a/",
            "/kv/items//a",
            "/kv/items/a/../b",
            "/kv/items/a/%2E%2E/b",
            "/kv/items/./b",
            "/kv/items/%FF",
            "/kv/items/",
        ] {
            let err = key_from_path(bad).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn rfc3339_formatting() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
        assert_eq!(
            rfc3339(Some(t)).unwrap().as_deref(),
            Some("1970-01-02T00:00:00Z")
        );
        assert_eq!(rfc3339(None).unwrap(), None);
    }
}
