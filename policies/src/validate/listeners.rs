//! The `[server]`, `[admin]` and `[store]` tables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{default_purge_allow, Admin, ListenerTls, Server, StoreSettings, TokenSource};
use crate::duration::format_duration;
use crate::file::{FileAdmin, FileServer, FileStore, FileTls};
use crate::ipnet::IpNet;

use super::{addr, addrs, duration, err, is_env_name, positive_duration, size, Result};

/// Largest per-connection buffer accepted (`server.read-buffer`, `write-buffer`).
const MAX_BUFFER: u64 = 16 << 20;

pub(super) fn server(f: &FileServer) -> Result<Server> {
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
    // Port 0 (the kernel picks a free port) cannot clash.
    if let Some(a) = listen.iter().find(|a| a.port() != 0 && plain.contains(a)) {
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

pub(super) fn admin(f: &FileAdmin) -> Result<Admin> {
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

pub(super) fn store(f: &FileStore) -> Result<StoreSettings> {
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
