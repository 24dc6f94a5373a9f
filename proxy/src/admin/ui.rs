//! The dashboard's static files under `/ui/`, embedded in the binary (debug
//! builds too, so the tests serve what ships). They need no token:
//! the page asks for it and sends it as a bearer header on its API calls.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::error::ApiError;

/// Everything under `proxy/ui/`.
#[derive(rust_embed::Embed)]
#[folder = "ui/"]
struct Assets;

/// The prefix the files are served under.
pub const PREFIX: &str = "/ui";

/// No inline code, nothing from elsewhere, never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'none'";

/// `GET /ui` → `/ui/`.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/ui/")
}

/// `GET /ui/` → the page.
pub async fn index(request: HeaderMap) -> Response {
    asset("index.html", &request)
}

/// `GET /ui/{*path}` → a file.
pub async fn file(Path(path): Path<String>, request: HeaderMap) -> Response {
    asset(&path, &request)
}

fn asset(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return ApiError::NotFound {
            code: "no_route",
            message: format!("no file /ui/{path}"),
        }
        .into_response();
    };
    let mime = file.metadata.mimetype();
    // Files change with the binary: always revalidate, cheaply, by ETag.
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..12]));
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, file.data).into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, mime),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
