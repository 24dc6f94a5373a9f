//! `aside-policies`: the config file of Aside and the operator's caching
//! decisions.
//!
//! Architecture: [`parse_config`] reads TOML text into a file model
//! ([`file::FileConfig`]: every key optional, unknown keys rejected, found
//! first by `keys` against the keys each model struct declares), then
//! `validate` turns it into a [`Config`] of parsed, cross-checked values
//! (durations, byte sizes, socket addresses, host matchers, compiled globs).
//! Errors are located by re-reading the text with `toml_edit`, which keeps the
//! span of every key, so messages name file, line and key path. At request
//! time the proxy asks a `Config` for the [`Route`] of a request
//! ([`Config::route_for`]), and the route for its cache key
//! ([`Route::cache_key`]), whether to bypass the cache ([`Route::bypass`]) and
//! what to do with a response ([`Route::freshness`], `now` a parameter).
//!
//! The crate is pure: no I/O, no async runtime, no environment access (the
//! environment is a closure parameter), so every decision is tested with
//! tables.

mod cluster;
mod config;
mod duration;
mod env;
mod error;
pub mod file;
mod freshness;
mod host;
mod ipnet;
mod key;
mod keys;
mod locate;
mod protect;
mod render;
mod route;
mod size;
mod upstream;
mod validate;

pub use cluster::{redact_url, Cluster, DEFAULT_KEY_PREFIX};
pub use config::{Admin, Config, ListenerTls, Server, StoreSettings, TokenSource};
pub use duration::{format_duration, parse_duration};
pub use env::expand as expand_env;
pub use error::ConfigError;
pub use freshness::{Freshness, OriginFreshness};
pub use host::HostMatch;
pub use ipnet::IpNet;
pub use protect::{Breaker, Protection, Rate};
pub use render::to_file;
pub use route::{
    KeyRules, Mode, Policy, Route, SetCookie, DEFAULT_CACHEABLE_STATUSES, DEFAULT_HEURISTIC_MAX,
    DEFAULT_HEURISTIC_PERCENT, DEFAULT_MAX_OBJECT_SIZE, DEFAULT_STALE_IF_UNREACHABLE,
};
pub use size::{format_size, parse_size};
pub use upstream::{Scheme, Upstream};
pub use validate::MAX_WARM_URLS;

/// Parses and validates a config file's text.
///
/// `file` is only used in messages; `env` looks up environment variables for
/// `${NAME}` / `${NAME:-default}` in upstream header values (pass
/// `&|name| std::env::var(name).ok()` in the binary).
///
/// # Errors
/// The first problem found, located by file, line and key path: TOML syntax,
/// an unknown key, a value of the wrong type or form, or a failed cross-check
/// (unknown upstream, missing catch-all route, unset variable, ...).
pub fn parse_config(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let located = |mut e: ConfigError, line: Option<usize>| {
        e.file = file.to_owned();
        e.line = line;
        e
    };
    let map = match locate::SourceMap::parse(text) {
        Ok(m) => m,
        Err(e) => {
            let line = e.span().map(|s| locate::line_of(text, s.start));
            return Err(located(
                ConfigError::new(
                    "",
                    e.message().trim().lines().collect::<Vec<_>>().join("; "),
                ),
                line,
            ));
        }
    };
    // Syntax is checked above, so the document parses.
    if let Ok(doc) = text.parse::<toml::Table>() {
        if let Some((key, message)) = keys::first_unknown(&doc) {
            let line = map.line_for_path(&key);
            return Err(located(ConfigError::new(key, message), line));
        }
    }
    let model: file::FileConfig = match toml::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            let start = e.span().map(|s| s.start);
            let line = start.map(|s| locate::line_of(text, s));
            let path = start.and_then(|s| map.path_at(s)).unwrap_or_default();
            let (key, message) = serde_message(&path, e.message());
            return Err(located(ConfigError::new(key, message), line));
        }
    };
    validate::validate(&model, env).map_err(|e| {
        let line = map.line_for_path(&e.key);
        located(e, line)
    })
}

/// serde's type errors in the crate's words (unknown keys never get here:
/// `keys::first_unknown` finds them first); returns (key, message).
fn serde_message(path: &str, message: &str) -> (String, String) {
    let message = message.trim();
    let message = message
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected a table");
    // "expected struct FileKey": the file model's type names mean nothing to users.
    let message = match message.find("expected struct ") {
        Some(i) => format!("{}expected a table", &message[..i]),
        None => message,
    };
    (path.to_owned(), message)
}
