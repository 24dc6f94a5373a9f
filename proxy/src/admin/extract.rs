//! What comes in and what goes out of a handler, both bounded and both in the JSON shape:
//! extractors whose rejections are [`ApiError`]s, so that malformed input is answered with a
//! message saying what is wrong and where, and [`json_answer`], which refuses to build an
//! answer larger than [`answer_limit`] (413) instead of letting one request hold gigabytes.

use std::fmt;

use aside_store::Limits;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Serialize;

use super::error::ApiError;

/// Largest JSON answer one admin request may build (get-many, list pages, atomic answers,
/// cache listings): 16 MiB, raised by [`answer_limit`] so one item at the value limit fits.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The answer bound in force: [`MAX_ANSWER_BYTES`], or one largest item (value, its key
/// escaped, version, expiry and envelope) when the configured value limit is larger.
pub fn answer_limit(limits: &Limits) -> usize {
    let one_item = limits
        .max_value_bytes
        .saturating_add(limits.max_key_bytes.saturating_mul(4))
        .saturating_add(4096);
    MAX_ANSWER_BYTES.max(one_item)
}

/// Serializes `value` as the JSON answer, but never past `limit` bytes: the buffer stops
/// growing there and the request is answered 413 `answer_too_large` instead.
///
/// # Errors
/// [`ApiError::AnswerTooLarge`]; `Internal` if `value` cannot be serialized.
pub fn json_answer<T: Serialize>(value: &T, limit: usize) -> Result<Response, ApiError> {
    let mut out = BoundedBuf {
        bytes: Vec::new(),
        limit,
    };
    match serde_json::to_writer(&mut out, value) {
        Ok(()) => Ok(json_bytes(out.bytes)),
        Err(err) if err.is_io() => Err(ApiError::AnswerTooLarge { limit }),
        Err(err) => Err(ApiError::Internal(format!("serializing an answer: {err}"))),
    }
}

/// A response of already-serialized JSON.
pub fn json_bytes(bytes: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// A `Vec` that refuses to grow past `limit`.
struct BoundedBuf {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for BoundedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > self.limit {
            return Err(std::io::Error::other("answer limit reached"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Deserializes an optional `ttlSeconds`: null or absent is `None`, an integer from 0 to
/// 2^64 - 1 is kept for the TTL check (which names the accepted range), and anything else
/// (negative, fractional, exponent, too large for an integer) is refused with a message
/// that does not echo the number in float notation.
pub fn ttl_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    deserializer.deserialize_option(TtlVisitor)
}

struct TtlVisitor;

const TTL_EXPECTED: &str =
    "whole seconds: an integer from 1 to the TTL limit (365 days by default)";

impl<'de> Visitor<'de> for TtlVisitor {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(TTL_EXPECTED)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom(format!("{v} is negative; expected {TTL_EXPECTED}")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        let what = if v.fract() != 0.0 {
            "not a whole number"
        } else if v < 0.0 {
            "negative"
        } else if v >= u64::MAX as f64 {
            "too large"
        } else {
            "written with a decimal point or an exponent"
        };
        Err(E::custom(format!("{what}; expected {TTL_EXPECTED}")))
    }
}

/// A JSON request body: `Content-Type: application/json` (or `+json`) required (415 otherwise),
/// the size limit answered with 413, parse errors with 400 naming the line/column or field path.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a request body with `Content-Type: application/json`".to_owned(),
            ));
        }
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A KV request body (`PUT /kv/items/..`, `POST /kv/get-many`, `POST /kv/atomic`): JSON by
/// content. A declared JSON `Content-Type` behaves as [`JsonBody`]; any other (or none) is
/// accepted when the body is valid JSON, since plain `curl -d` sends
/// `application/x-www-form-urlencoded`, and refused with 415 otherwise.
#[derive(Debug)]
pub struct KvJsonBody<T>(pub T);

impl<S, T> FromRequest<S> for KvJsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared = is_json(req.headers().get(header::CONTENT_TYPE));
        let bytes = body_bytes(req, state).await?;
        if !declared && serde_json::from_slice::<de::IgnoredAny>(&bytes).is_err() {
            return Err(ApiError::UnsupportedMediaType(
                "expected a JSON request body (`Content-Type: application/json`); this body \
                 is not JSON"
                    .to_owned(),
            ));
        }
        parse_json(&bytes).map(KvJsonBody)
    }
}

/// The request body limit in force, put in every request's extensions by the router so that
/// the 413 message names it.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// A raw request body whose rejections (size limit, read failure) are JSON errors, unlike
/// axum's `Bytes`, which answers a too large body in `text/plain`.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        body_bytes(req, state).await.map(RawBody)
    }
}

/// The raw body, with the size limit answered as 413 and read failures as 400.
pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(super::MAX_BODY_BYTES, |l| l.0);
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("request body exceeds the maximum of {limit} bytes"))
        } else if super::listener::is_body_timeout(&rejection) {
            ApiError::RequestTimeout
        } else {
            ApiError::bad_request(format!("could not read the request body: {rejection}"))
        }
    })
}

/// Parse `bytes` as a JSON object into `T`; errors name the field path (`mutations[1].delta`)
/// and position. Every admin body is an object: the array form serde would also accept for
/// structs (`[value, ttl]`) is refused.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => return Err(ApiError::bad_request("empty body: expected a JSON object")),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid request body: expected a JSON object",
            ))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let what = match inner.classify() {
            serde_json::error::Category::Eof => "truncated JSON",
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Data => "invalid request body",
            serde_json::error::Category::Io => "unreadable request body",
        };
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("{what}: {inner}"))
        } else {
            ApiError::bad_request(format!("{what}: at `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|err| ApiError::bad_request(format!("malformed JSON: {err}")))?;
    Ok(value)
}

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(Ok(value)) = content_type.map(|v| v.to_str()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Query parameters; a rejection names the bad parameter (400).
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        items: Vec<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn json_errors_name_the_path() {
        let err = parse_json::<Body>(br#"{"items": [{"n": 1}, {"n": "x"}]}"#).unwrap_err();
        assert!(err.to_string().contains("items[1].n"), "{err}");
        let err = parse_json::<Body>(br#"{"items": [{"n": 1}"#).unwrap_err();
        assert!(err.to_string().starts_with("truncated JSON"), "{err}");
        let err = parse_json::<Body>(b"{\"items\": [] } x").unwrap_err();
        assert!(err.to_string().contains("malformed"), "{err}");
        let err = parse_json::<Body>(b" [[]]").unwrap_err();
        assert!(err.to_string().contains("JSON object"), "{err}");
        assert!(parse_json::<Body>(b" \n{\"items\": []}").is_ok());
    }

    #[test]
    fn content_types() {
        let ok = |s: &str| is_json(Some(&header::HeaderValue::from_str(s).unwrap()));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!is_json(None));
    }
}
