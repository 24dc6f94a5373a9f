//! From a validated [`Config`] back to the file model and TOML text, every
//! value explicit: what `Config::to_toml` prints and what round-trip tests
//! feed back to the validator.

use std::net::SocketAddr;

use crate::config::{Config, TokenSource};
use crate::duration::format_duration;
use crate::file::{
    FileAdmin, FileConfig, FileKey, FileRoute, FileServer, FileStore, FileTls, FileUpstream,
    OneOrMany,
};
use crate::route::{Mode, Route};
use crate::size::format_size;
use crate::upstream::{Scheme, Upstream};

// The `Config` methods live here rather than in `config.rs`, so that the
// config model does not depend on its rendering.
impl Config {
    /// The config as TOML that [`crate::parse_config`] turns back into an
    /// equal `Config` (every value explicit, header values already expanded).
    pub fn to_toml(&self) -> String {
        // Serializing plain strings, numbers, booleans, arrays and tables cannot fail.
        toml::to_string(&to_file(self)).unwrap_or_default()
    }

    /// [`Config::to_toml`] for display: upstream header values, the cluster
    /// password and a password inside the Redis URL are replaced by `***`.
    pub fn to_toml_masked(&self) -> String {
        let mut file = to_file(self);
        for upstream in file.upstreams.iter_mut() {
            for value in upstream.headers.values_mut() {
                *value = "***".to_owned();
            }
        }
        if let Some(cluster) = file.cluster.as_mut() {
            cluster.redis = cluster.redis.as_deref().map(crate::cluster::redact_url);
            if cluster.password.is_some() {
                cluster.password = Some("***".to_owned());
            }
        }
        toml::to_string(&file).unwrap_or_default()
    }
}

fn path_str(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

fn many(addrs: &[SocketAddr]) -> OneOrMany {
    OneOrMany::Many(addrs.iter().map(ToString::to_string).collect())
}

/// The file model of a validated config, every value explicit.
pub fn to_file(c: &Config) -> FileConfig {
    let (token_env, token_file) = match &c.admin.token {
        TokenSource::Env(v) => (Some(v.clone()), None),
        TokenSource::File(p) => (None, Some(path_str(p))),
        TokenSource::Generate => (None, None),
    };
    FileConfig {
        cluster: c.cluster.as_ref().map(crate::cluster::to_file),
        server: FileServer {
            listen: Some(many(&c.server.listen)),
            threads: Some(c.server.threads as i64),
            grace_period: Some(format_duration(c.server.grace_period)),
            keepalive_timeout: Some(format_duration(c.server.keepalive_timeout)),
            first_request_timeout: Some(format_duration(c.server.first_request_timeout)),
            header_read_timeout: Some(format_duration(c.server.header_read_timeout)),
            body_read_timeout: Some(format_duration(c.server.body_read_timeout)),
            access_log: Some(c.server.access_log),
            read_buffer: Some(format_size(c.server.read_buffer as u64)),
            write_buffer: Some(format_size(c.server.write_buffer as u64)),
            tls: c.server.tls.as_ref().map(|t| FileTls {
                listen: Some(many(&t.listen)),
                cert: Some(path_str(&t.cert)),
                key: Some(path_str(&t.key)),
            }),
        },
        admin: FileAdmin {
            listen: Some(c.admin.listen.to_string()),
            token_env,
            token_file,
            purge_allow: Some(
                c.admin
                    .purge_allow
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
            idle_timeout: Some(format_duration(c.admin.idle_timeout)),
            max_connections: Some(c.admin.max_connections as i64),
            threads: c.admin.threads.map(|n| n as i64),
        },
        store: FileStore {
            path: Some(path_str(&c.store.path)),
            hot_capacity: Some(format_size(c.store.hot_capacity)),
            cold_capacity: Some(format_size(c.store.cold_capacity)),
            cold_cache: Some(format_size(c.store.cold_cache as u64)),
            max_key_size: Some(format_size(c.store.max_key_bytes as u64)),
            max_value_size: Some(format_size(c.store.max_value_bytes as u64)),
            min_ttl: Some(format_duration(c.store.min_ttl)),
            max_ttl: Some(format_duration(c.store.max_ttl)),
        },
        upstreams: c.upstreams.iter().map(upstream_file).collect(),
        routes: c.routes.iter().map(|r| route_file(c, r)).collect(),
    }
}

fn upstream_file(u: &Upstream) -> FileUpstream {
    let https = u.scheme == Scheme::Https;
    FileUpstream {
        name: Some(u.name.clone()),
        url: Some(format!(
            "{}://{}:{}{}",
            u.scheme.as_str(),
            u.host,
            u.port,
            u.base_path
        )),
        connect_timeout: Some(format_duration(u.connect_timeout)),
        read_timeout: Some(format_duration(u.read_timeout)),
        idle_timeout: Some(format_duration(u.idle_timeout)),
        sni: https.then(|| u.sni.clone()),
        verify_cert: https.then_some(u.verify_cert),
        ca_file: u.ca_file.as_deref().map(path_str),
        max_concurrent: u
            .max_concurrent
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        rate_limit: u.protection.rate_limit.map(|r| r.to_string()),
        burst: u
            .protection
            .rate_limit
            .map(|_| i64::from(u.protection.burst)),
        queue_timeout: Some(format_duration(u.protection.queue_timeout)),
        max_retry_after: Some(format_duration(u.protection.max_retry_after)),
        breaker_failures: Some(u.protection.breaker.map_or(0, |b| i64::from(b.failures))),
        breaker_window: u.protection.breaker.map(|b| format_duration(b.window)),
        breaker_cooldown: u.protection.breaker.map(|b| format_duration(b.cooldown)),
        retry: Some(u.protection.retry),
        // `$${` is a literal `${`, so expanded values survive a second expansion.
        headers: u
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.replace("${", "$${")))
            .collect(),
    }
}

fn route_file(c: &Config, r: &Route) -> FileRoute {
    let p = &r.policy;
    let clamp = p.mode == Mode::Clamp;
    FileRoute {
        name: Some(r.name.clone()),
        host: Some(r.host.to_string()),
        path_prefix: Some(r.path_prefix.clone()),
        methods: r.methods.clone(),
        upstream: Some(c.upstream(r).name.clone()),
        cache: Some(p.cache),
        bypass_headers: Some(p.bypass_headers.clone()),
        bypass_cookies: Some(p.bypass_cookies.clone()),
        mode: Some(p.mode.as_str().to_owned()),
        ttl: p.ttl.map(format_duration),
        default_ttl: p.default_ttl.map(format_duration),
        min_ttl: clamp.then(|| format_duration(p.min_ttl)),
        max_ttl: if clamp {
            p.max_ttl.map(format_duration)
        } else {
            None
        },
        heuristic_freshness: (p.mode != Mode::Override).then(|| {
            p.heuristic_freshness
                .map_or_else(|| "off".to_owned(), |n| format!("{n}%"))
        }),
        heuristic_max: p
            .heuristic_freshness
            .map(|_| format_duration(p.heuristic_max)),
        stale_while_revalidate: p.stale_while_revalidate.map(format_duration),
        stale_if_error: p.stale_if_error.map(format_duration),
        stale_if_unreachable: Some(format_duration(p.stale_if_unreachable)),
        refresh_ahead: p.refresh_ahead.map(|n| format!("{n}%")),
        warm: (!p.warm.is_empty()).then(|| p.warm.clone()),
        cacheable_statuses: (!p.any_status_with_explicit_freshness)
            .then(|| p.cacheable_statuses.iter().map(|s| i64::from(*s)).collect()),
        cache_authorized: Some(p.cache_authorized),
        set_cookie: Some(p.set_cookie.as_str().to_owned()),
        tags: Some(p.tags.clone()),
        max_object_size: Some(format_size(p.max_object_size)),
        status_ttl: Some(
            p.status_ttl
                .iter()
                .map(|(s, d)| (s.to_string(), format_duration(*d)))
                .collect(),
        ),
        key: Some(FileKey {
            ignore_query: Some(p.key.ignore_query.clone()),
            sort_query: Some(p.key.sort_query),
            headers: Some(p.key.headers.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masked_toml_hides_header_values_and_redis_passwords() {
        let text = r#"
[[upstream]]
name = "api"
url = "http://127.0.0.1:9"
headers = { Authorization = "Bearer s3cret-token", X-Key = "${KEY}" }

[cluster]
redis = "redis://app:hunter2@127.0.0.1:6379/0"
password = "other-s3cret"

[[route]]
upstream = "api"
"#;
        let env = |name: &str| (name == "KEY").then(|| "env-s3cret".to_owned());
        let config = crate::parse_config(text, "t.toml", &env).expect("valid");
        let masked = config.to_toml_masked();
        for secret in ["s3cret-token", "env-s3cret", "hunter2", "other-s3cret"] {
            assert!(!masked.contains(secret), "{secret} shown in\n{masked}");
        }
        assert!(masked.contains("***"), "{masked}");
        assert!(
            masked.contains("redis://app:***@127.0.0.1:6379/0"),
            "{masked}"
        );
        assert!(config.to_toml().contains("s3cret-token"));
    }
}
