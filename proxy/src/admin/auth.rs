//! Bearer-token authentication: the middleware in front of every admin route but `/healthz`,
//! and [`resolve_token`], which finds (or creates) the token at startup.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use aside_policies::TokenSource;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AdminState;

/// The one API route reachable without a token, so that load balancers and orchestrators can
/// probe. The dashboard's static files under `/ui/` need none either (they hold no data).
pub const UNAUTHENTICATED_PATH: &str = "/healthz";

/// Name of the generated token file inside the data directory.
pub const TOKEN_FILE: &str = "admin-token";

/// Rejects requests without `Authorization: Bearer <token>` (401 + `WWW-Authenticate`).
pub async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == UNAUTHENTICATED_PATH || path == super::ui::PREFIX || path.starts_with("/ui/") {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match presented {
        Some(token) if token_matches(token, &state.token) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// The credentials of a `Bearer` authorization value (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Constant-time comparison: the time taken does not depend on how many leading bytes match.
/// (Lengths differing is revealed, which leaks nothing useful about a random token.)
fn token_matches(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Resolve the admin token: from the configured environment variable or file, or, when
/// none is configured, from `data_dir/admin-token`, generating a random one (mode 0600)
/// on first start. The file's path is logged so the operator can find it.
///
/// # Errors
/// The environment variable is unset or empty, the token file is unreadable or empty, or
/// the generated token cannot be written.
pub fn resolve_token(source: &TokenSource, data_dir: &Path) -> anyhow::Result<String> {
    match source {
        TokenSource::Env(name) => {
            let token = std::env::var(name)
                .with_context(|| format!("admin token: environment variable {name} is not set"))?;
            non_empty(token, || format!("environment variable {name}"))
        }
        TokenSource::File(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("admin token: cannot read {}", path.display()))?;
            non_empty(token, || path.display().to_string())
        }
        TokenSource::Generate => generated_token(data_dir),
    }
}

fn non_empty(token: String, origin: impl FnOnce() -> String) -> anyhow::Result<String> {
    let token = token.trim();
    anyhow::ensure!(!token.is_empty(), "admin token: {} is empty", origin());
    Ok(token.to_owned())
}

fn generated_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(token) => {
            let token = non_empty(token, || path.display().to_string())?;
            tracing::info!(path = %path.display(), "admin API token read from file");
            return Ok(token);
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(err).with_context(|| format!("admin token: cannot read {}", path.display()))
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("admin token: cannot create {}", data_dir.display()))?;
    let token: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("admin token: cannot create {}", path.display()))?;
    file.write_all(token.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("admin token: cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new admin API token (readable only by its owner)");
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn compare() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
        assert!(!token_matches("", "abc"));
    }

    #[test]
    fn generate_then_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("data");
        let first = resolve_token(&TokenSource::Generate, &sub).unwrap();
        assert_eq!(first.len(), 64);
        let second = resolve_token(&TokenSource::Generate, &sub).unwrap();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(sub.join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn file_and_env_sources() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tok");
        std::fs::write(&file, " secret \n").unwrap();
        assert_eq!(
            resolve_token(&TokenSource::File(file.clone()), dir.path()).unwrap(),
            "secret"
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(resolve_token(&TokenSource::File(file), dir.path()).is_err());
        let missing = TokenSource::Env("ASIDE_TEST_SURELY_UNSET_VARIABLE".into());
        let err = resolve_token(&missing, dir.path()).unwrap_err().to_string();
        assert!(err.contains("ASIDE_TEST_SURELY_UNSET_VARIABLE"), "{err}");
    }
}
