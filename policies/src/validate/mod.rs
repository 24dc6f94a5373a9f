//! From the file model to a validated [`Config`], and back (for round trips).
//!
//! Errors carry the key path only; [`crate::parse_config`] adds file and line.

mod listeners;
mod route;
mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Config;
use crate::duration::{format_duration, parse_duration};
use crate::error::ConfigError;
use crate::file::{FileConfig, FileRoute, FileUpstream, OneOrMany};

/// Most URLs a route may warm at start (`POST /cache/warm` takes as many).
pub const MAX_WARM_URLS: usize = 10_000;
use crate::route::Route;
use crate::size::parse_size;
use crate::upstream::Upstream;

type Env<'e> = &'e dyn Fn(&str) -> Option<String>;
type Result<T> = std::result::Result<T, ConfigError>;

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(key, message)
}

fn duration(key: &str, v: Option<&String>) -> Result<Option<Duration>> {
    v.map(|s| parse_duration(s).map_err(|m| err(key, m)))
        .transpose()
}

fn positive_duration(key: &str, v: Option<&String>) -> Result<Option<Duration>> {
    match duration(key, v)? {
        Some(d) if d.is_zero() => Err(err(key, "must be more than 0s")),
        d => Ok(d),
    }
}

/// `heuristic-freshness`: `"off"` or a whole percentage `"1%"..="100%"`.
fn heuristic_percent(key: &str, v: &str) -> Result<Option<u8>> {
    if v == "off" {
        return Ok(None);
    }
    let n = v
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<u8>().ok())
        .filter(|n| (1..=100).contains(n));
    match n {
        Some(n) => Ok(Some(n)),
        None => Err(err(
            key,
            format!("{v:?} is not a percentage from \"1%\" to \"100%\" or \"off\", e.g. \"10%\""),
        )),
    }
}

fn size(key: &str, v: Option<&String>) -> Result<Option<u64>> {
    match v
        .map(|s| parse_size(s).map_err(|m| err(key, m)))
        .transpose()?
    {
        Some(0) => Err(err(key, "must be more than 0 bytes")),
        s => Ok(s),
    }
}

fn addrs(key: &str, v: &OneOrMany) -> Result<Vec<SocketAddr>> {
    let list = v.to_vec();
    if list.is_empty() {
        return Err(err(
            key,
            "at least one address is required, e.g. \"127.0.0.1:8080\"",
        ));
    }
    list.iter().map(|a| addr(key, a)).collect()
}

fn addr(key: &str, a: &str) -> Result<SocketAddr> {
    a.trim().parse().map_err(|_| {
        err(
            key,
            format!("{a:?} is not a socket address, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""),
        )
    })
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

fn status(key: &str, n: i64) -> Result<u16> {
    match u16::try_from(n) {
        Ok(s) if (100..=599).contains(&s) => Ok(s),
        _ => Err(err(
            key,
            format!("{n} is not an HTTP status (expected 100..=599)"),
        )),
    }
}

/// Validates the whole file model.
pub(crate) fn validate(f: &FileConfig, env: Env<'_>) -> Result<Config> {
    let server = listeners::server(&f.server)?;
    let admin = listeners::admin(&f.admin)?;
    // Port 0 (the kernel picks a free port) cannot clash.
    if let Some(a) = (server.listen.iter()).find(|a| a.port() != 0 && **a == admin.listen) {
        return Err(err(
            "admin.listen",
            format!("{a} is also a server.listen address"),
        ));
    }
    let store = listeners::store(&f.store)?;
    if f.upstreams.is_empty() {
        return Err(err(
            "upstream",
            "at least one [[upstream]] is required, e.g. [[upstream]] name = \"api\" url = \"https://api.example.com\"",
        ));
    }
    let mut upstreams: Vec<Upstream> = Vec::with_capacity(f.upstreams.len());
    for (i, u) in f.upstreams.iter().enumerate() {
        let up = upstream::upstream(i, u, env)?;
        if let Some(j) = upstreams.iter().position(|o| o.name == up.name) {
            return Err(err(
                format!("upstream[{i}].name"),
                format!("duplicate upstream name {:?} (also upstream[{j}])", up.name),
            ));
        }
        upstreams.push(up);
    }
    let mut routes: Vec<Route> = Vec::with_capacity(f.routes.len());
    for (i, r) in f.routes.iter().enumerate() {
        let route = route::route(i, r, &upstreams)?;
        if r.name.is_some() {
            if let Some(j) = routes.iter().position(|o| o.name == route.name) {
                return Err(err(
                    format!("route[{i}].name"),
                    format!("duplicate route name {:?} (also route[{j}])", route.name),
                ));
            }
        }
        routes.push(route);
    }
    match routes.iter().position(Route::is_catch_all) {
        None => {
            let key = if routes.is_empty() {
                "route".to_owned()
            } else {
                format!("route[{}]", routes.len() - 1)
            };
            return Err(err(
                key,
                "no catch-all route: the last [[route]] must take every request (no host or host = \"*\", path-prefix = \"/\", no methods)",
            ));
        }
        Some(c) if c + 1 < routes.len() => {
            return Err(err(
                format!("route[{}]", c + 1),
                format!(
                    "unreachable: {} before it takes every request; move the catch-all route last",
                    routes[c].name
                ),
            ));
        }
        Some(_) => {}
    }
    let cluster = f
        .cluster
        .as_ref()
        .map(|c| crate::cluster::validate(c, env))
        .transpose()?;
    Ok(Config {
        server,
        admin,
        store,
        upstreams,
        routes,
        cluster,
    })
}

// `Config::quick` lives here rather than in `config.rs`, so that the config
// model does not depend on its own validation.
impl Config {
    /// A config with a single catch-all route to `url` (for
    /// `aside --to URL [--ttl D]`): respect-origin mode, or override with
    /// `ttl` when `Some`. All other settings default; the upstream is named
    /// `origin`, the route `default`.
    ///
    /// # Errors
    /// When `url` is not an `http://` or `https://` URL (key `upstream[0].url`,
    /// file `--to`), or `ttl` is zero.
    pub fn quick(url: &str, ttl: Option<Duration>) -> Result<Config> {
        let file = FileConfig {
            upstreams: vec![FileUpstream {
                name: Some("origin".to_owned()),
                url: Some(url.to_owned()),
                ..FileUpstream::default()
            }],
            routes: vec![FileRoute {
                name: Some("default".to_owned()),
                mode: Some(
                    if ttl.is_some() {
                        "override"
                    } else {
                        "respect-origin"
                    }
                    .to_owned(),
                ),
                ttl: ttl.map(format_duration),
                ..FileRoute::default()
            }],
            ..FileConfig::default()
        };
        validate(&file, &|_| None).map_err(|mut e| {
            e.file = "--to".to_owned();
            e
        })
    }
}
