//! From the file model to a validated [`Config`], and back (for round trips).
//!
//! Errors carry the key path only; [`crate::parse_config`] adds file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{
    default_purge_allow, Admin, Config, ListenerTls, Server, StoreSettings, TokenSource,
};
use crate::duration::{format_duration, parse_duration};
use crate::env::expand;
use crate::error::ConfigError;
use crate::file::{
    FileAdmin, FileConfig, FileKey, FileRoute, FileServer, FileStore, FileTls, FileUpstream,
    OneOrMany,
};
use crate::host::HostMatch;

/// Most URLs a route may warm at start (`POST /cache/warm` takes as many).
pub const MAX_WARM_URLS: usize = 10_000;
use crate::ipnet::IpNet;
use crate::route::{
    KeyRules, Mode, Policy, Route, SetCookie, DEFAULT_CACHEABLE_STATUSES, DEFAULT_HEURISTIC_MAX,
    DEFAULT_HEURISTIC_PERCENT, DEFAULT_MAX_OBJECT_SIZE,
};
use crate::size::parse_size;
use crate::upstream::{is_header_name, is_header_value, parse_url, Scheme, Upstream};

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
    let server = server(&f.server)?;
    let admin = admin(&f.admin)?;
    if let Some(a) = server.listen.iter().find(|a| **a == admin.listen) {
        return Err(err(
            "admin.listen",
            format!("{a} is also a server.listen address"),
        ));
    }
    let store = store(&f.store)?;
    if f.upstreams.is_empty() {
        return Err(err(
            "upstream",
            "at least one [[upstream]] is required, e.g. [[upstream]] name = \"api\" url = \"https://api.example.com\"",
        ));
    }
    let mut upstreams: Vec<Upstream> = Vec::with_capacity(f.upstreams.len());
    for (i, u) in f.upstreams.iter().enumerate() {
        let up = upstream(i, u, env)?;
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
        let route = route(i, r, &upstreams)?;
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

/// Largest per-connection buffer accepted (`server.read-buffer`, `write-buffer`).
const MAX_BUFFER: u64 = 16 << 20;

fn server(f: &FileServer) -> Result<Server> {
    let d = Server::default();
    let listen = match &f.listen {
        Some(l) => addrs("server.listen", l)?,
        None => d.listen,
    };
    let threads = match f.threads {
        None => d.threads,
        Some(n) if (1..=1024).contains(&n) => n as usize,
        Some(n) => {
            return Err(err(
                "server.threads",
                format!("{n} is not between 1 and 1024"),
            ))
        }
    };
    let grace_period =
        duration("server.grace-period", f.grace_period.as_ref())?.unwrap_or(d.grace_period);
    let tls = f.tls.as_ref().map(|t| tls(t, &listen)).transpose()?;
    let buffer = |key: &str, v: Option<&String>, default: usize| -> Result<usize> {
        match size(key, v)? {
            None => Ok(default),
            Some(n) if n <= MAX_BUFFER => Ok(n as usize),
            Some(_) => Err(err(key, "must be at most 16MiB")),
        }
    };
    Ok(Server {
        listen,
        threads,
        grace_period,
        keepalive_timeout: match positive_duration(
            "server.keepalive-timeout",
            f.keepalive_timeout.as_ref(),
        )? {
            None => d.keepalive_timeout,
            Some(t) if t >= Duration::from_secs(1) && t.subsec_nanos() == 0 => t,
            Some(_) => {
                return Err(err(
                    "server.keepalive-timeout",
                    "must be a whole number of seconds, at least 1s",
                ))
            }
        },
        first_request_timeout: positive_duration(
            "server.first-request-timeout",
            f.first_request_timeout.as_ref(),
        )?
        .unwrap_or(d.first_request_timeout),
        header_read_timeout: positive_duration(
            "server.header-read-timeout",
            f.header_read_timeout.as_ref(),
        )?
        .unwrap_or(d.header_read_timeout),
        body_read_timeout: positive_duration(
            "server.body-read-timeout",
            f.body_read_timeout.as_ref(),
        )?
        .unwrap_or(d.body_read_timeout),
        access_log: f.access_log.unwrap_or(d.access_log),
        read_buffer: buffer("server.read-buffer", f.read_buffer.as_ref(), d.read_buffer)?,
        write_buffer: buffer(
            "server.write-buffer",
            f.write_buffer.as_ref(),
            d.write_buffer,
        )?,
        tls,
    })
}

fn tls(f: &FileTls, plain: &[SocketAddr]) -> Result<ListenerTls> {
    let listen = match &f.listen {
        Some(l) => addrs("server.tls.listen", l)?,
        None => vec![SocketAddr::from(([127, 0, 0, 1], 8443))],
    };
    if let Some(a) = listen.iter().find(|a| plain.contains(a)) {
        return Err(err(
            "server.tls.listen",
            format!("{a} is also a server.listen address"),
        ));
    }
    let file = |k: &str, v: &Option<String>| -> Result<PathBuf> {
        match v.as_deref().map(str::trim) {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ => Err(err(
                format!("server.tls.{k}"),
                format!("missing: the PEM {k} file path, e.g. {k} = \"/etc/aside/{k}.pem\""),
            )),
        }
    };
    Ok(ListenerTls {
        cert: file("cert", &f.cert)?,
        key: file("key", &f.key)?,
        listen,
    })
}

fn admin(f: &FileAdmin) -> Result<Admin> {
    let listen = match &f.listen {
        Some(a) => addr("admin.listen", a)?,
        None => Admin::default().listen,
    };
    let token = match (&f.token_env, &f.token_file) {
        (Some(_), Some(_)) => {
            return Err(err(
                "admin.token-file",
                "token-env and token-file are exclusive: give one (or neither to generate a token)",
            ))
        }
        (Some(v), None) if is_env_name(v) => TokenSource::Env(v.clone()),
        (Some(v), None) => {
            return Err(err(
                "admin.token-env",
                format!("{v:?} is not an environment variable name, e.g. \"ASIDE_ADMIN_TOKEN\""),
            ))
        }
        (None, Some(p)) if !p.trim().is_empty() => TokenSource::File(PathBuf::from(p.trim())),
        (None, Some(_)) => return Err(err("admin.token-file", "must not be empty")),
        (None, None) => TokenSource::Generate,
    };
    let purge_allow = match &f.purge_allow {
        None => default_purge_allow(),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<IpNet>()
                    .map_err(|m| err(format!("admin.purge-allow[{i}]"), m))
            })
            .collect::<Result<_>>()?,
    };
    let d = Admin::default();
    let max_connections = match f.max_connections {
        None => d.max_connections,
        Some(n) if (1..=1_000_000).contains(&n) => usize::try_from(n).unwrap_or(d.max_connections),
        Some(n) => {
            return Err(err(
                "admin.max-connections",
                format!("{n} is not between 1 and 1000000"),
            ))
        }
    };
    let threads = match f.threads {
        None => None,
        Some(n) if (1..=1024).contains(&n) => usize::try_from(n).ok(),
        Some(n) => {
            return Err(err(
                "admin.threads",
                format!("{n} is not between 1 and 1024"),
            ))
        }
    };
    Ok(Admin {
        listen,
        token,
        purge_allow,
        idle_timeout: positive_duration("admin.idle-timeout", f.idle_timeout.as_ref())?
            .unwrap_or(d.idle_timeout),
        max_connections,
        threads,
    })
}

fn store(f: &FileStore) -> Result<StoreSettings> {
    let d = StoreSettings::default();
    let path = match f.path.as_deref().map(str::trim) {
        None => d.path,
        Some("") => {
            return Err(err(
                "store.path",
                "must not be empty, e.g. \"data/aside.redb\"",
            ))
        }
        Some(p) => PathBuf::from(p),
    };
    let as_usize = |key: &str, v: Option<u64>, default: usize| -> Result<usize> {
        v.map_or(Ok(default), |n| {
            usize::try_from(n).map_err(|_| err(key, "too large for this platform"))
        })
    };
    let s = StoreSettings {
        path,
        hot_capacity: size("store.hot-capacity", f.hot_capacity.as_ref())?
            .unwrap_or(d.hot_capacity),
        cold_capacity: size("store.cold-capacity", f.cold_capacity.as_ref())?
            .unwrap_or(d.cold_capacity),
        cold_cache: as_usize(
            "store.cold-cache",
            size("store.cold-cache", f.cold_cache.as_ref())?,
            d.cold_cache,
        )?,
        max_key_bytes: as_usize(
            "store.max-key-size",
            size("store.max-key-size", f.max_key_size.as_ref())?,
            d.max_key_bytes,
        )?,
        max_value_bytes: as_usize(
            "store.max-value-size",
            size("store.max-value-size", f.max_value_size.as_ref())?,
            d.max_value_bytes,
        )?,
        min_ttl: positive_duration("store.min-ttl", f.min_ttl.as_ref())?.unwrap_or(d.min_ttl),
        max_ttl: positive_duration("store.max-ttl", f.max_ttl.as_ref())?.unwrap_or(d.max_ttl),
    };
    if s.min_ttl > s.max_ttl {
        return Err(err(
            "store.min-ttl",
            format!(
                "min-ttl ({}) is more than max-ttl ({})",
                format_duration(s.min_ttl),
                format_duration(s.max_ttl)
            ),
        ));
    }
    Ok(s)
}

/// Header names an upstream may not set: they describe the connection or
/// the body, which the proxy manages.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
];

fn upstream(i: usize, f: &FileUpstream, env: Env<'_>) -> Result<Upstream> {
    let k = |field: &str| format!("upstream[{i}].{field}");
    let name = match f.name.as_deref() {
        None => {
            return Err(err(
                k("name"),
                "missing: every upstream needs a name, e.g. name = \"api\"",
            ))
        }
        Some(n)
            if !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            n.to_owned()
        }
        Some(n) => {
            return Err(err(
                k("name"),
                format!("{n:?} is not a name (letters, digits, '-' and '_'), e.g. \"weather-api\""),
            ))
        }
    };
    let Some(url) = f.url.as_deref() else {
        return Err(err(
            k("url"),
            "missing: the origin's URL, e.g. url = \"https://api.example.com\"",
        ));
    };
    let url = parse_url(url.trim()).map_err(|m| err(k("url"), m))?;
    let https = url.scheme == Scheme::Https;
    let only_https = |field: &str| {
        err(
            k(field),
            format!(
                "only applies to https upstreams, and {:?} is http",
                url.host_header()
            ),
        )
    };
    let sni = match &f.sni {
        Some(_) if !https => return Err(only_https("sni")),
        Some(s) => {
            let s = s.trim().to_ascii_lowercase();
            if s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(err(
                    k("sni"),
                    format!("{s:?} is not a host name, e.g. \"api.example.com\""),
                ));
            }
            s
        }
        None => url
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    };
    let verify_cert = match f.verify_cert {
        Some(_) if !https => return Err(only_https("verify-cert")),
        Some(v) => v,
        None => true,
    };
    let ca_file = match &f.ca_file {
        Some(_) if !https => return Err(only_https("ca-file")),
        Some(_) if !verify_cert => {
            return Err(err(
                k("ca-file"),
                "has no effect with verify-cert = false; remove one of them",
            ))
        }
        Some(p) if p.trim().is_empty() => return Err(err(k("ca-file"), "must not be empty")),
        Some(p) => Some(PathBuf::from(p.trim())),
        None => None,
    };
    let mut headers = Vec::with_capacity(f.headers.len());
    for (name, value) in &f.headers {
        let hk = format!("upstream[{i}].headers.{name}");
        if !is_header_name(name) {
            return Err(err(hk, format!("{name:?} is not a valid header name")));
        }
        if RESERVED_HEADERS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
        {
            return Err(err(
                hk,
                format!(
                    "{name} is managed by the proxy and cannot be set (reserved: {})",
                    RESERVED_HEADERS.join(", ")
                ),
            ));
        }
        let value = expand(value, env).map_err(|m| err(hk.clone(), m))?;
        if !is_header_value(&value) {
            return Err(err(
                hk,
                "the value contains control characters (after ${VAR} expansion)",
            ));
        }
        headers.push((name.clone(), value));
    }
    let max_concurrent = match f.max_concurrent {
        None => None,
        Some(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(n) => return Err(err(k("max-concurrent"), format!("{n} is not at least 1"))),
    };
    Ok(Upstream {
        name,
        host_header: url.host_header(),
        scheme: url.scheme,
        host: url.host,
        port: url.port,
        base_path: url.base_path,
        sni,
        verify_cert,
        ca_file,
        connect_timeout: positive_duration(&k("connect-timeout"), f.connect_timeout.as_ref())?
            .unwrap_or(Duration::from_secs(5)),
        read_timeout: positive_duration(&k("read-timeout"), f.read_timeout.as_ref())?
            .unwrap_or(Duration::from_secs(30)),
        idle_timeout: positive_duration(&k("idle-timeout"), f.idle_timeout.as_ref())?
            .unwrap_or(Duration::from_secs(60)),
        headers,
        max_concurrent,
        protection: protection(&k, f)?,
    })
}

fn protection(k: &dyn Fn(&str) -> String, f: &FileUpstream) -> Result<crate::Protection> {
    use crate::protect::{Breaker, Protection, Rate};
    let d = Protection::default();
    let rate_limit = f
        .rate_limit
        .as_deref()
        .map(|r| Rate::parse(r).map_err(|m| err(k("rate-limit"), m)))
        .transpose()?;
    let burst = match f.burst {
        None => d.burst,
        Some(_) if rate_limit.is_none() => {
            return Err(err(
                k("burst"),
                "only applies with rate-limit; set rate-limit too",
            ))
        }
        Some(n) if (1..=100_000).contains(&n) => u32::try_from(n).unwrap_or(d.burst),
        Some(n) => return Err(err(k("burst"), format!("{n} is not between 1 and 100000"))),
    };
    let failures = match f.breaker_failures {
        None => d.breaker.map_or(0, |b| b.failures),
        Some(n) if (0..=1_000_000).contains(&n) => u32::try_from(n).unwrap_or(0),
        Some(n) => {
            return Err(err(
                k("breaker-failures"),
                format!("{n} is not between 0 (off) and 1000000"),
            ))
        }
    };
    let default_breaker = d.breaker.unwrap_or(Breaker {
        failures: 5,
        window: Duration::from_secs(10),
        cooldown: Duration::from_secs(5),
    });
    let window = positive_duration(&k("breaker-window"), f.breaker_window.as_ref())?
        .unwrap_or(default_breaker.window);
    let cooldown = positive_duration(&k("breaker-cooldown"), f.breaker_cooldown.as_ref())?
        .unwrap_or(default_breaker.cooldown);
    Ok(Protection {
        rate_limit,
        burst,
        queue_timeout: positive_duration(&k("queue-timeout"), f.queue_timeout.as_ref())?
            .unwrap_or(d.queue_timeout),
        max_retry_after: positive_duration(&k("max-retry-after"), f.max_retry_after.as_ref())?
            .unwrap_or(d.max_retry_after),
        breaker: (failures > 0).then_some(Breaker {
            failures,
            window,
            cooldown,
        }),
        retry: f.retry.unwrap_or(d.retry),
    })
}

fn header_list(key: &str, list: Option<&Vec<String>>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (j, h) in list.into_iter().flatten().enumerate() {
        if !is_header_name(h) {
            return Err(err(
                format!("{key}[{j}]"),
                format!("{h:?} is not a valid header name"),
            ));
        }
        let h = h.to_ascii_lowercase();
        if !out.contains(&h) {
            out.push(h);
        }
    }
    Ok(out)
}

fn route(i: usize, f: &FileRoute, upstreams: &[Upstream]) -> Result<Route> {
    let k = |field: &str| format!("route[{i}].{field}");
    let name = match f.name.as_deref() {
        None => format!("route[{i}]"),
        Some(n) if !n.trim().is_empty() && n.bytes().all(|b| b.is_ascii_graphic()) => n.to_owned(),
        Some(n) => {
            return Err(err(
                k("name"),
                format!("{n:?} is not a name (no spaces), e.g. \"weather\""),
            ))
        }
    };
    let host = match &f.host {
        None => HostMatch::Any,
        Some(h) => HostMatch::parse(h).map_err(|m| err(k("host"), m))?,
    };
    let path_prefix = match &f.path_prefix {
        None => "/".to_owned(),
        Some(p) if p.starts_with('/') && !p.contains(['?', '#', ' ']) => p.clone(),
        Some(p) => {
            return Err(err(
                k("path-prefix"),
                format!("{p:?} is not a path prefix, e.g. \"/v1/\""),
            ))
        }
    };
    let methods = match &f.methods {
        None => None,
        Some(ms) if ms.is_empty() => {
            return Err(err(
                k("methods"),
                "must not be empty; remove it to take every method",
            ))
        }
        Some(ms) => {
            let mut out: Vec<String> = Vec::new();
            for (j, m) in ms.iter().enumerate() {
                if !is_header_name(m) {
                    return Err(err(
                        format!("{}[{j}]", k("methods")),
                        format!("{m:?} is not an HTTP method, e.g. \"GET\""),
                    ));
                }
                let m = m.to_ascii_uppercase();
                if !out.contains(&m) {
                    out.push(m);
                }
            }
            Some(out)
        }
    };
    let known = || {
        upstreams
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let upstream = match &f.upstream {
        None if upstreams.len() == 1 => 0,
        None => {
            return Err(err(
                k("upstream"),
                format!(
                    "missing: which upstream serves this route (known: {})",
                    known()
                ),
            ))
        }
        Some(u) => upstreams.iter().position(|x| &x.name == u).ok_or_else(|| {
            err(
                k("upstream"),
                format!("unknown upstream {u:?} (known: {})", known()),
            )
        })?,
    };
    let policy = policy(i, f)?;
    Ok(Route {
        name,
        host,
        path_prefix,
        methods,
        upstream,
        policy,
    })
}

fn policy(i: usize, f: &FileRoute) -> Result<Policy> {
    let k = |field: &str| format!("route[{i}].{field}");
    let d = Policy::default();
    let mode = match &f.mode {
        None => Mode::RespectOrigin,
        Some(m) => Mode::parse(m).map_err(|msg| err(k("mode"), msg))?,
    };
    let ttl = duration(&k("ttl"), f.ttl.as_ref())?;
    let default_ttl = duration(&k("default-ttl"), f.default_ttl.as_ref())?;
    let min_ttl = duration(&k("min-ttl"), f.min_ttl.as_ref())?;
    let max_ttl = duration(&k("max-ttl"), f.max_ttl.as_ref())?;
    let mode_str = mode.as_str();
    match mode {
        Mode::Override => {
            match ttl {
                None => {
                    return Err(err(
                        k("ttl"),
                        "missing: mode = \"override\" requires ttl, e.g. ttl = \"10m\"",
                    ))
                }
                Some(t) if t.is_zero() => return Err(err(k("ttl"), "must be more than 0s")),
                Some(_) => {}
            }
            if default_ttl.is_some() {
                return Err(err(
                    k("default-ttl"),
                    "does not apply to mode = \"override\" (ttl is used for every response); remove it",
                ));
            }
        }
        Mode::RespectOrigin | Mode::Clamp => {
            if ttl.is_some() {
                return Err(err(
                    k("ttl"),
                    format!(
                        "only applies to mode = \"override\" (this route is {mode_str:?}); use default-ttl for responses without freshness information"
                    ),
                ));
            }
        }
    }
    let heuristic_max = positive_duration(&k("heuristic-max"), f.heuristic_max.as_ref())?;
    let heuristic_freshness = match &f.heuristic_freshness {
        None => Some(DEFAULT_HEURISTIC_PERCENT),
        Some(v) => heuristic_percent(&k("heuristic-freshness"), v)?,
    };
    if mode == Mode::Override {
        for (field, set) in [
            ("heuristic-freshness", f.heuristic_freshness.is_some()),
            ("heuristic-max", heuristic_max.is_some()),
        ] {
            if set {
                return Err(err(
                    k(field),
                    "does not apply to mode = \"override\" (ttl is used for every response); remove it",
                ));
            }
        }
    } else if heuristic_freshness.is_none() && heuristic_max.is_some() {
        return Err(err(
            k("heuristic-max"),
            "has no effect with heuristic-freshness = \"off\"; remove one of them",
        ));
    }
    // Override stores every response for `ttl`: nothing is heuristic there.
    let heuristic_freshness = heuristic_freshness.filter(|_| mode != Mode::Override);
    if mode != Mode::Clamp {
        for (field, v) in [("min-ttl", min_ttl), ("max-ttl", max_ttl)] {
            if v.is_some() {
                return Err(err(
                    k(field),
                    format!("only applies to mode = \"clamp\" (this route is {mode_str:?})"),
                ));
            }
        }
    } else {
        if min_ttl.is_none() && max_ttl.is_none() {
            return Err(err(
                k("mode"),
                "mode = \"clamp\" requires min-ttl or max-ttl, e.g. max-ttl = \"1h\"",
            ));
        }
        if let (Some(lo), Some(hi)) = (min_ttl, max_ttl) {
            if lo > hi {
                return Err(err(
                    k("min-ttl"),
                    format!(
                        "min-ttl ({}) is more than max-ttl ({})",
                        format_duration(lo),
                        format_duration(hi)
                    ),
                ));
            }
        }
    }
    let mut status_ttl = BTreeMap::new();
    for (code, v) in f.status_ttl.iter().flatten() {
        let key = format!("route[{i}].status-ttl.{code}");
        let s = code
            .trim()
            .parse::<i64>()
            .map_err(|_| {
                err(
                    key.clone(),
                    format!("{code:?} is not an HTTP status (expected 100..=599)"),
                )
            })
            .and_then(|n| status(&key, n))?;
        let ttl = parse_duration(v).map_err(|m| err(key.clone(), m))?;
        status_ttl.insert(s, ttl);
    }
    let mut cacheable: BTreeSet<u16> = BTreeSet::new();
    match &f.cacheable_statuses {
        None => cacheable.extend(DEFAULT_CACHEABLE_STATUSES),
        Some(list) => {
            for (j, n) in list.iter().enumerate() {
                cacheable.insert(status(&format!("route[{i}].cacheable-statuses[{j}]"), *n)?);
            }
        }
    }
    cacheable.extend(status_ttl.keys().copied());
    let mut bypass_cookies = Vec::new();
    for (j, c) in f.bypass_cookies.iter().flatten().enumerate() {
        if c.is_empty()
            || !c
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"=;,\"".contains(&b))
        {
            return Err(err(
                format!("route[{i}].bypass-cookies[{j}]"),
                format!("{c:?} is not a cookie name, e.g. \"session\""),
            ));
        }
        if !bypass_cookies.contains(c) {
            bypass_cookies.push(c.clone());
        }
    }
    let key = key_rules(i, f.key.as_ref())?;
    let set_cookie = match &f.set_cookie {
        None => SetCookie::DoNotCache,
        Some(s) => SetCookie::parse(s).map_err(|m| err(k("set-cookie"), m))?,
    };
    let mut tags: Vec<String> = Vec::new();
    for (j, t) in f.tags.iter().flatten().enumerate() {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(err(
                format!("route[{i}].tags[{j}]"),
                format!("{t:?} is not a tag (no spaces or commas), e.g. \"weather\""),
            ));
        }
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    let mut warm: Vec<String> = Vec::new();
    for (j, url) in f.warm.iter().flatten().enumerate() {
        let rest = url.strip_prefix("http://").unwrap_or_default();
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.is_empty() || url.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(err(
                format!("route[{i}].warm[{j}]"),
                format!(
                    "{url:?} is not an absolute http:// URL (the URL clients request through \
                     Aside, e.g. \"http://api.example.com/v1/cities\")"
                ),
            ));
        }
        if !warm.contains(url) {
            warm.push(url.clone());
        }
    }
    if warm.len() > MAX_WARM_URLS {
        return Err(err(
            k("warm"),
            format!("at most {MAX_WARM_URLS} URLs, got {}", warm.len()),
        ));
    }
    Ok(Policy {
        cache: f.cache.unwrap_or(d.cache),
        bypass_headers: header_list(&k("bypass-headers"), f.bypass_headers.as_ref())?,
        bypass_cookies,
        mode,
        ttl,
        default_ttl,
        min_ttl: min_ttl.unwrap_or(Duration::ZERO),
        max_ttl,
        heuristic_freshness,
        heuristic_max: heuristic_max.unwrap_or(DEFAULT_HEURISTIC_MAX),
        stale_while_revalidate: duration(
            &k("stale-while-revalidate"),
            f.stale_while_revalidate.as_ref(),
        )?,
        stale_if_error: duration(&k("stale-if-error"), f.stale_if_error.as_ref())?,
        stale_if_unreachable: duration(
            &k("stale-if-unreachable"),
            f.stale_if_unreachable.as_ref(),
        )?
        .unwrap_or(d.stale_if_unreachable),
        refresh_ahead: match &f.refresh_ahead {
            None => d.refresh_ahead,
            Some(v) => match heuristic_percent(&k("refresh-ahead"), v)? {
                Some(100) => {
                    return Err(err(
                        k("refresh-ahead"),
                        "\"100%\" would refresh on every hit; use at most \"99%\"",
                    ))
                }
                n => n,
            },
        },
        warm,
        status_ttl,
        cacheable_statuses: cacheable.into_iter().collect(),
        any_status_with_explicit_freshness: f.cacheable_statuses.is_none(),
        key,
        cache_authorized: f.cache_authorized.unwrap_or(false),
        set_cookie,
        tags,
        max_object_size: size(&k("max-object-size"), f.max_object_size.as_ref())?
            .unwrap_or(DEFAULT_MAX_OBJECT_SIZE),
    })
}

fn key_rules(i: usize, f: Option<&FileKey>) -> Result<KeyRules> {
    let Some(f) = f else {
        return Ok(KeyRules::default());
    };
    let ignore = f.ignore_query.clone().unwrap_or_default();
    for (j, g) in ignore.iter().enumerate() {
        if g.is_empty() {
            return Err(err(
                format!("route[{i}].key.ignore-query[{j}]"),
                "must not be empty, e.g. \"utm_*\"",
            ));
        }
        KeyRules::new(vec![g.clone()], true, Vec::new())
            .map_err(|m| err(format!("route[{i}].key.ignore-query[{j}]"), m))?;
    }
    let headers = header_list(&format!("route[{i}].key.headers"), f.headers.as_ref())?;
    KeyRules::new(ignore, f.sort_query.unwrap_or(true), headers)
        .map_err(|m| err(format!("route[{i}].key.ignore-query"), m))
}

/// [`Config::quick`].
pub(crate) fn quick(url: &str, ttl: Option<Duration>) -> Result<Config> {
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
