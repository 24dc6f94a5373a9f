//! The admin API's one error type and its one mapping to a status code and a JSON body.
//!
//! Every handler returns `Result<_, ApiError>`; extractor rejections (bad JSON, bad query,
//! body too large) are converted into it too, so no response escapes the
//! `{"error": {"code", "message"}}` shape. Internal errors are logged once, here, and
//! answered with a generic message: the client never sees paths or storage details.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// An admin API failure. Each variant is one HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Malformed JSON, wrong types, bad parameters, invalid keys or TTLs.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Missing or wrong bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The item / entry does not exist (or has expired).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The path exists but not with this method; `Allow` is added by the router.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A failed atomic check or a mutation that conflicts with the stored value.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// `If-Match` / `If-None-Match` did not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    /// A value or request body over the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The request body did not arrive within `server.body-read-timeout`.
    #[error("the request body was not received within server.body-read-timeout")]
    RequestTimeout,
    /// The answer would be larger than the answer limit (`extract::answer_limit`).
    #[error(
        "the answer would exceed the maximum of {} ({limit} bytes) per response: ask for fewer or smaller items",
        mib_text(*limit)
    )]
    AnswerTooLarge { limit: usize },
    /// A body that is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The store is shutting down.
    #[error("the store is shutting down")]
    Unavailable,
    /// The shared KV store of a cluster (Redis) cannot be reached or is too slow.
    #[error("{0}; retry later")]
    KvUnavailable(String),
    /// Anything else: logged with its detail, answered without it.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable machine-readable `code` and a human-readable `message`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// e.g. `bad_request`, `invalid_key`, `not_found`, `check_failed`, `payload_too_large`.
    #[schema(example = "invalid_key")]
    pub code: String,
    #[schema(example = "invalid key \"a//b\": empty part")]
    pub message: String,
}

impl ApiError {
    /// A 400 with code `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            code: "bad_request",
            message: message.into(),
        }
    }

    /// A 404 with code `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound {
            code: "not_found",
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) | Self::AnswerTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable | Self::KvUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::Unauthorized => "unauthorized",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PreconditionFailed(_) => "precondition_failed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::AnswerTooLarge { .. } => "answer_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unavailable => "unavailable",
            Self::KvUnavailable(_) => "kv_unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(detail) => {
                // The one place internal errors are logged; the client gets no detail.
                tracing::error!(error = %detail, "admin API internal error");
                "internal error, see the server log".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"aside-admin\""),
            );
        }
        response
    }
}

/// `16 MiB`, or `16.50 MiB` when not whole.
fn mib_text(bytes: usize) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib.fract() == 0.0 {
        format!("{mib:.0} MiB")
    } else {
        format!("{mib:.2} MiB")
    }
}

impl From<aside_store::Error> for ApiError {
    fn from(err: aside_store::Error) -> Self {
        use aside_store::Error as E;
        let message = err.to_string();
        match err {
            E::InvalidKey { .. } => Self::BadRequest {
                code: "invalid_key",
                message,
            },
            E::ValueTooLarge { .. } => Self::PayloadTooLarge(message),
            E::InvalidTtl { .. } => Self::BadRequest {
                code: "invalid_ttl",
                message,
            },
            E::PreconditionFailed { .. } => Self::PreconditionFailed(message),
            E::CheckFailed { .. } => Self::Conflict {
                code: "check_failed",
                message,
            },
            E::NotANumber { .. } => Self::Conflict {
                code: "not_a_number",
                message,
            },
            E::Overflow { .. } => Self::Conflict {
                code: "overflow",
                message,
            },
            E::IntegerOutOfRange { .. } => Self::Conflict {
                code: "integer_out_of_range",
                message,
            },
            E::InvalidVersion { .. } => Self::BadRequest {
                code: "invalid_version",
                message,
            },
            E::TooManyOperations { .. } => Self::BadRequest {
                code: "too_many_operations",
                message,
            },
            E::InvalidCursor => Self::BadRequest {
                code: "invalid_cursor",
                message,
            },
            E::Closed => Self::Unavailable,
            E::Unavailable { .. } => Self::KvUnavailable(message),
            _ => Self::Internal(message),
        }
    }
}

/// The JSON form of a response hyper writes by itself, before any router sees the
/// request: a request it cannot parse (a byte that is not ASCII in the path, a malformed
/// header, headers too large, ...) gets a head with `content-length: 0` and no body.
/// Given the bytes of such a response, this returns the same status and headers with the
/// `{"error": {"code", "message"}}` body of every other admin error. `None` for anything
/// else: the router never answers a 4xx or 5xx without a body.
pub fn json_parse_error(response: &[u8]) -> Option<Vec<u8>> {
    let head = response.strip_suffix(b"\r\n\r\n")?;
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    if !(400..600).contains(&status) {
        return None;
    }
    let headers: Vec<&str> = lines.collect();
    let is = |line: &str, name: &str| {
        line.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
    };
    let empty = headers.iter().any(|l| {
        is(l, "content-length") && l.split_once(':').is_some_and(|(_, v)| v.trim() == "0")
    });
    if !empty || headers.iter().any(|l| is(l, "content-type")) {
        return None;
    }
    let (code, message) = match status {
        400 => ("bad_request", "malformed request: the request line or a header is not valid HTTP (for example a byte that is not ASCII in the path; percent-encode it)"),
        408 => ("request_timeout", "the request was not received in time"),
        413 => ("payload_too_large", "request body too large"),
        414 => ("uri_too_long", "request target too long"),
        431 => ("headers_too_large", "request headers too large"),
        505 => ("http_version_not_supported", "only HTTP/1.1 and HTTP/1.0 are served"),
        _ => ("bad_request", "malformed request"),
    };
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let mut out = String::with_capacity(head.len() + body.len() + 64);
    out.push_str(status_line);
    out.push_str("\r\n");
    for line in headers.iter().filter(|l| !is(l, "content-length")) {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("content-type: application/json\r\n");
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    out.push_str(&body);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_parse_errors_become_json() {
        let raw = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 22:47:59 GMT\r\n\r\n";
        let out = String::from_utf8(json_parse_error(raw).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("connection: close\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.ends_with(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
        // Router responses are left alone: bodies, 2xx/3xx, partial writes.
        for other in [
            &b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
        ] {
            assert_eq!(json_parse_error(other), None, "{}", String::from_utf8_lossy(other));
        }
    }
}
