//! Where the configuration comes from (a file, or `--to URL`), plus the
//! command-line overrides applied on top, loaded the same way at start and on
//! every reload.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aside_policies::Config;

/// The origin of the configuration, kept for reloads.
#[derive(Clone, Debug)]
pub enum Source {
    /// A TOML file.
    File(PathBuf),
    /// `aside --to URL [--ttl D]`: one catch-all route.
    Quick {
        /// Origin URL.
        url: String,
        /// Override TTL, or respect the origin when `None`.
        ttl: Option<Duration>,
    },
}

/// Command-line flags that win over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--admin-listen`
    pub admin_listen: Option<SocketAddr>,
    /// `--data`: the store goes to `DIR/aside.redb`.
    pub data: Option<PathBuf>,
    /// `--threads`
    pub threads: Option<usize>,
}

/// Read, validate and apply overrides.
///
/// # Errors
/// The file cannot be read or is invalid; the message names the file, line and key.
pub fn load(source: &Source, overrides: &Overrides) -> Result<Config, String> {
    let mut config = match source {
        Source::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read config file: {e}", path.display()))?;
            let env = |name: &str| std::env::var(name).ok();
            aside_policies::parse_config(&text, &path.display().to_string(), &env)
                .map_err(|e| e.to_string())?
        }
        Source::Quick { url, ttl } => Config::quick(url, *ttl).map_err(|e| e.to_string())?,
    };
    if let Some(addr) = overrides.listen {
        config.server.listen = vec![addr];
    }
    if let Some(addr) = overrides.admin_listen {
        config.admin.listen = addr;
    }
    if let Some(dir) = &overrides.data {
        config.store.path = dir.join("aside.redb");
    }
    if let Some(n) = overrides.threads {
        config.server.threads = n;
    }
    Ok(config)
}

/// The data directory: where the store file lives (and the generated admin token).
pub fn data_dir(config: &Config) -> &Path {
    config
        .store
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The KV API's backend: the embedded store, or Redis when the config has a
/// `[cluster]` section (connected on first use, so a node starts while Redis is
/// down and its KV API answers 503 until Redis is back).
///
/// # Errors
/// A Redis address redis-rs does not accept.
pub fn kv_backend(
    config: &aside_policies::Config,
    store: &aside_store::Store,
) -> anyhow::Result<aside_cluster::SharedKv> {
    let Some(c) = &config.cluster else {
        return Ok(std::sync::Arc::new(store.clone()));
    };
    let kv = aside_cluster::RedisKv::new(redis_settings(c), store.limits().clone())
        .map_err(|e| anyhow::anyhow!("cluster.redis: {e}"))?;
    tracing::info!(
        redis = %aside_policies::redact_url(&c.redis),
        "cluster mode: KV items live in Redis"
    );
    Ok(std::sync::Arc::new(kv))
}

/// In cluster mode, the request budgets shared through Redis (the live-node
/// count the fallback divides by comes from the purge fan-out's heartbeats).
///
/// # Errors
/// The Redis URL is not one redis-rs accepts (validation already checked it).
pub fn shared_budget(
    config: &Config,
    purges: &aside_cluster::Purges,
) -> anyhow::Result<Option<aside_cluster::SharedBudget>> {
    let (Some(c), Some(stats)) = (&config.cluster, purges.stats()) else {
        return Ok(None);
    };
    let budget = aside_cluster::SharedBudget::new(redis_settings(c), stats.live_nodes.clone())
        .map_err(|e| anyhow::anyhow!("cluster.redis: {e}"))?;
    Ok(Some(budget))
}

fn redis_settings(c: &aside_policies::Cluster) -> aside_cluster::RedisSettings {
    aside_cluster::RedisSettings {
        url: c.redis.clone(),
        username: c.username.clone(),
        password: c.password.clone(),
        key_prefix: c.key_prefix.clone(),
        connect_timeout: c.connect_timeout,
        command_timeout: c.command_timeout,
    }
}

/// This node's id: `[cluster] node-id`, else `<hostname>:<first proxy port>`
/// (unique per process on one host, stable across restarts). `proxy` is the
/// first plain HTTP listener as bound (a configured port 0 resolved).
pub fn node_id(config: &Config, proxy: Option<SocketAddr>) -> String {
    if let Some(id) = config.cluster.as_ref().and_then(|c| c.node_id.clone()) {
        return id;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    // Only the characters `node-id` accepts.
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let port = proxy.map_or(0, |a| a.port());
    format!("{host}:{port}")
}

/// The purge fan-out: a no-op handle without `[cluster]`.
/// The shared cache tier, with `[cluster] shared-cache = true`.
///
/// # Errors
/// The Redis URL is not one redis-rs accepts (validation already checked it).
pub fn shared_cache(config: &Config) -> anyhow::Result<Option<aside_cluster::SharedCache>> {
    let Some(c) = config.cluster.as_ref().filter(|c| c.shared_cache) else {
        return Ok(None);
    };
    let shared = aside_cluster::SharedCache::new(aside_cluster::SharedSettings {
        redis: redis_settings(c),
        max_object_size: usize::try_from(c.shared_max_object_size).unwrap_or(usize::MAX),
        timeout: c.shared_timeout,
        lease_wait: c.lease_wait,
    })
    .map_err(|e| anyhow::anyhow!("cluster.redis: {e}"))?;
    tracing::info!("cluster mode: cached responses are shared through Redis");
    Ok(Some(shared))
}

/// `proxy`: the first plain HTTP listener as bound (see [`node_id`]).
pub fn purges(
    config: &Config,
    store: &aside_store::Store,
    shared: Option<aside_cluster::SharedCache>,
    proxy: Option<SocketAddr>,
) -> aside_cluster::Purges {
    let Some(c) = &config.cluster else {
        return aside_cluster::Purges::default();
    };
    let node_id = node_id(config, proxy);
    tracing::info!(node = %node_id, "cluster mode: purges fan out through Redis");
    aside_cluster::Purges::new(
        aside_cluster::PurgeSettings {
            redis: redis_settings(c),
            node_id,
            address: proxy.map(|a| a.to_string()).unwrap_or_default(),
            data_dir: data_dir(config).to_path_buf(),
            stream_length: c.purge_stream_length,
            heartbeat_interval: c.heartbeat_interval,
            shared,
        },
        store.clone(),
    )
}
