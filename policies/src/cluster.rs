//! `[cluster]`: several Aside nodes sharing the KV API and purges through Redis
//! (or Valkey). Without the section a node is standalone, as before.
//!
//! Validation only: the address is checked for shape, never contacted (this
//! crate does no I/O), and the default node id, which needs the host name, is
//! left to the binary (`node_id: None`).

use std::time::Duration;

use crate::duration::{format_duration, parse_duration};
use crate::env::expand;
use crate::error::ConfigError;
use crate::file::FileCluster;

/// Default `key-prefix`.
pub const DEFAULT_KEY_PREFIX: &str = "aside:";

/// The validated `[cluster]` section.
#[derive(Clone, PartialEq, Eq)]
pub struct Cluster {
    /// `redis = "redis://host:6379/0"` after `${ENV}` expansion: `redis://`,
    /// `rediss://` (TLS, certificate verified), `redis+unix://`, `valkey://`,
    /// `valkeys://`. May carry `user:password@`.
    pub redis: String,
    /// `username` (ACL user), after `${ENV}` expansion; overrides the URL's.
    pub username: Option<String>,
    /// `password`, after `${ENV}` expansion; overrides the URL's.
    pub password: Option<String>,
    /// This node's name in Redis (heartbeats, purge origin). `None`: the binary
    /// uses `<hostname>:<first proxy port>`.
    pub node_id: Option<String>,
    /// Prefix of every Redis key Aside writes. Default `"aside:"`.
    pub key_prefix: String,
    /// Longest wait to (re)connect. Default 1s.
    pub connect_timeout: Duration,
    /// Longest wait for one command's answer; past it the call fails (the KV API
    /// answers 503). Default 500ms.
    pub command_timeout: Duration,
    /// How often a node records its heartbeat and last applied purge. A node
    /// silent for 3 intervals counts as gone. Default 2s.
    pub heartbeat_interval: Duration,
    /// Entries the purge stream keeps (approximately, `MAXLEN ~`); a node that
    /// fell further behind soft-purges everything. Default 100000.
    pub purge_stream_length: u64,
    /// `shared-cache = true`: cached responses are copied to Redis after a fill
    /// and read by the other nodes before they go to the origin. Default off.
    pub shared_cache: bool,
    /// Larger responses (body + headers) are not shared. Default 1 MiB.
    pub shared_max_object_size: u64,
    /// Longest wait for a shared-tier lookup; slower is a miss. Default 10ms.
    pub shared_timeout: Duration,
    /// With the shared tier: how long a node that misses waits for the node
    /// fetching the same key (the lease holder) before it fetches it itself.
    /// Default 10s.
    pub lease_wait: Duration,
}

/// Hides the password (and any `user:password@` in the URL) from logs.
impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("redis", &redact_url(&self.redis))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("node_id", &self.node_id)
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("purge_stream_length", &self.purge_stream_length)
            .field("shared_cache", &self.shared_cache)
            .field("shared_max_object_size", &self.shared_max_object_size)
            .field("shared_timeout", &self.shared_timeout)
            .field("lease_wait", &self.lease_wait)
            .finish()
    }
}

/// `redis://user:secret@host` -> `redis://user:***@host`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

const SCHEMES: [&str; 5] = ["redis", "rediss", "redis+unix", "valkey", "valkeys"];

type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("cluster.{key}"), message)
}

fn duration(key: &str, v: Option<&String>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => match parse_duration(s) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(err(key, "must be more than zero")),
            Err(m) => Err(err(key, m)),
        },
    }
}

fn secret(key: &str, v: Option<&String>, env: Env<'_>) -> Result<Option<String>, ConfigError> {
    v.map(|s| expand(s, env).map_err(|m| err(key, m)))
        .transpose()
        .map(|s| s.filter(|s| !s.is_empty()))
}

/// Validates `[cluster]`.
pub(crate) fn validate(f: &FileCluster, env: Env<'_>) -> Result<Cluster, ConfigError> {
    let Some(url) = f.redis.as_deref() else {
        return Err(err(
            "redis",
            "missing: the Redis (or Valkey) address, e.g. redis = \"redis://127.0.0.1:6379/0\"",
        ));
    };
    let redis = expand(url.trim(), env).map_err(|m| err("redis", m))?;
    check_url(&redis).map_err(|m| err("redis", m))?;
    let node_id = match f.node_id.as_deref() {
        None => None,
        Some(id) => {
            check_node_id(id).map_err(|m| err("node-id", m))?;
            Some(id.to_owned())
        }
    };
    let key_prefix = f
        .key_prefix
        .clone()
        .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned());
    check_prefix(&key_prefix).map_err(|m| err("key-prefix", m))?;
    let purge_stream_length = match f.purge_stream_length {
        None => 100_000,
        Some(n) if (1_000..=100_000_000).contains(&n) => n as u64,
        Some(n) => {
            return Err(err(
                "purge-stream-length",
                format!("{n} is not between 1000 and 100000000"),
            ))
        }
    };
    Ok(Cluster {
        redis,
        username: secret("username", f.username.as_ref(), env)?,
        password: secret("password", f.password.as_ref(), env)?,
        node_id,
        key_prefix,
        connect_timeout: duration(
            "connect-timeout",
            f.connect_timeout.as_ref(),
            Duration::from_secs(1),
        )?,
        command_timeout: duration(
            "command-timeout",
            f.command_timeout.as_ref(),
            Duration::from_millis(500),
        )?,
        heartbeat_interval: duration(
            "heartbeat-interval",
            f.heartbeat_interval.as_ref(),
            Duration::from_secs(2),
        )?,
        purge_stream_length,
        shared_cache: f.shared_cache.unwrap_or(false),
        shared_max_object_size: match f.shared_max_object_size.as_deref() {
            None => 1 << 20,
            Some(v) => match crate::size::parse_size(v) {
                Ok(n) if (1..=512 << 20).contains(&n) => n,
                Ok(_) => {
                    return Err(err(
                        "shared-max-object-size",
                        "must be between 1B and 512MiB (Redis's largest string)",
                    ))
                }
                Err(m) => return Err(err("shared-max-object-size", m)),
            },
        },
        shared_timeout: duration(
            "shared-timeout",
            f.shared_timeout.as_ref(),
            Duration::from_millis(10),
        )?,
        lease_wait: duration("lease-wait", f.lease_wait.as_ref(), Duration::from_secs(10))?,
    })
}

fn check_url(url: &str) -> Result<(), String> {
    let example = "e.g. \"redis://127.0.0.1:6379/0\", \"rediss://cache.internal:6380\" or \"redis+unix:///run/redis.sock\"";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("{:?} is not a URL; {example}", redact_url(url)));
    };
    if !SCHEMES.contains(&scheme) {
        return Err(format!(
            "scheme {scheme:?} is not one of {}; {example}",
            SCHEMES.join(", ")
        ));
    }
    if scheme == "redis+unix" {
        return if rest.starts_with('/') {
            Ok(())
        } else {
            Err(format!(
                "a socket path is required after {scheme}://; {example}"
            ))
        };
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(format!("a host is required; {example}"));
    }
    if let Some(db) = rest
        .split_once('/')
        .map(|(_, p)| p.split('?').next().unwrap_or_default())
    {
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(format!("database {db:?} is not a number; {example}"));
        }
    }
    Ok(())
}

fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 100 {
        return Err("must be 1 to 100 characters".to_owned());
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(format!(
            "{id:?}: only letters, digits, '-', '_', '.' and ':' are allowed, e.g. \"edge-1\""
        ));
    }
    Ok(())
}

fn check_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() || p.len() > 64 {
        return Err("must be 1 to 64 characters".to_owned());
    }
    if p.contains(['{', '}']) {
        return Err(format!(
            "{p:?} contains '{{' or '}}': Aside adds its own hash tags after the prefix"
        ));
    }
    if !p.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{p:?}: only visible ASCII characters are allowed"));
    }
    Ok(())
}

/// The file model of a validated section (secrets as expanded).
pub(crate) fn to_file(c: &Cluster) -> FileCluster {
    FileCluster {
        redis: Some(c.redis.clone()),
        username: c.username.clone(),
        password: c.password.clone(),
        node_id: c.node_id.clone(),
        key_prefix: Some(c.key_prefix.clone()),
        connect_timeout: Some(format_duration(c.connect_timeout)),
        command_timeout: Some(format_duration(c.command_timeout)),
        heartbeat_interval: Some(format_duration(c.heartbeat_interval)),
        purge_stream_length: Some(c.purge_stream_length as i64),
        shared_cache: Some(c.shared_cache),
        shared_max_object_size: Some(crate::size::format_size(c.shared_max_object_size)),
        shared_timeout: Some(format_duration(c.shared_timeout)),
        lease_wait: Some(format_duration(c.lease_wait)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(url: &str) -> FileCluster {
        FileCluster {
            redis: Some(url.to_owned()),
            ..FileCluster::default()
        }
    }

    #[test]
    fn urls() {
        let env = |_: &str| None;
        for ok in [
            "redis://127.0.0.1:6379/0",
            "rediss://u:p@cache.internal:6380",
            "redis://[::1]:6379",
            "redis+unix:///run/redis.sock",
            "valkey://v",
        ] {
            assert!(validate(&file(ok), &env).is_ok(), "{ok}");
        }
        for (bad, what) in [
            ("127.0.0.1:6379", "not a URL"),
            ("http://x", "scheme"),
            ("redis://:6379", "host"),
            ("redis://h/x", "database"),
            ("redis+unix://run", "socket path"),
        ] {
            let e = validate(&file(bad), &env).unwrap_err();
            assert_eq!(e.key, "cluster.redis");
            assert!(e.message.contains(what), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn secrets_from_env_and_redaction() {
        let env = |n: &str| (n == "REDIS_PASSWORD").then(|| "s3cret".to_owned());
        let mut f = file("redis://:${REDIS_PASSWORD}@h:6379");
        f.password = Some("${REDIS_PASSWORD}".to_owned());
        let c = validate(&f, &env).unwrap();
        assert_eq!(c.redis, "redis://:s3cret@h:6379");
        assert_eq!(c.password.as_deref(), Some("s3cret"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        f.password = Some("${MISSING}".to_owned());
        let e = validate(&f, &env).unwrap_err();
        assert_eq!(e.key, "cluster.password");
        assert!(e.message.contains("MISSING"));
    }

    #[test]
    fn prefixes_ids_and_timeouts() {
        let env = |_: &str| None;
        let c = validate(&file("redis://h"), &env).unwrap();
        assert_eq!(c.key_prefix, "aside:");
        assert_eq!(c.command_timeout, Duration::from_millis(500));
        assert_eq!(c.node_id, None);
        let mut f = file("redis://h");
        f.key_prefix = Some("a{b}:".to_owned());
        assert_eq!(validate(&f, &env).unwrap_err().key, "cluster.key-prefix");
        let mut f = file("redis://h");
        f.node_id = Some("a b".to_owned());
        assert_eq!(validate(&f, &env).unwrap_err().key, "cluster.node-id");
        let mut f = file("redis://h");
        f.command_timeout = Some("0s".to_owned());
        assert_eq!(
            validate(&f, &env).unwrap_err().key,
            "cluster.command-timeout"
        );
        let mut f = file("redis://h");
        f.purge_stream_length = Some(10);
        assert_eq!(
            validate(&f, &env).unwrap_err().key,
            "cluster.purge-stream-length"
        );
        assert_eq!(
            validate(&FileCluster::default(), &env).unwrap_err().key,
            "cluster.redis"
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("redis://u:p@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }
}
