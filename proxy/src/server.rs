//! Wiring: open the store, build the pingora server with the proxy service,
//! the admin API and the reloader as background services, and run.

use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_cache::lock::CacheLock;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig, DEFAULT_L4_READ_BUFFER_SIZE};
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;

use aside_policies::Config;
use aside_store::{Limits, Store, StoreConfig};

use crate::cache_storage::AsideStorage;
use crate::conn_guard::{GuardedApp, HeaderDeadlines};
use crate::listeners::{self, Bound};
use crate::proxy::{AsideProxy, Live, Shared};
use crate::settings::{self, Overrides, Source};

/// How long a cache fill may hold the per-key lock before others stop waiting on it.
const LOCK_AGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Logs go to stderr through a background writer thread, so a request never
/// waits on a `write(2)` for its access-log line (lines are dropped, not
/// queued without bound, if stderr cannot keep up). `RUST_LOG` filters
/// (default `info`). Keep the returned guard until the end of `main`: dropping
/// it flushes the last lines.
pub fn init_tracing() -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // pingora warns once that no header compression dictionary is set: by design
        // (a dictionary could never change again without making entries unreadable).
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora_cache::meta=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    guard
}

/// The store settings of a config, in the store's terms.
pub fn store_config(config: &Config) -> StoreConfig {
    let mut sc = StoreConfig::new(config.store.path.clone());
    // The decoded-meta cache (cache_storage/meta.rs) takes its share of the hot budget.
    sc.hot_capacity =
        config.store.hot_capacity - crate::cache_storage::decoded_share(config.store.hot_capacity);
    sc.cold_capacity = config.store.cold_capacity;
    sc.redb_cache_bytes = config.store.cold_cache;
    sc.limits = Limits {
        max_key_bytes: config.store.max_key_bytes,
        max_value_bytes: config.store.max_value_bytes,
        min_ttl: config.store.min_ttl,
        max_ttl: config.store.max_ttl,
    };
    sc
}

/// Run Aside until SIGTERM/SIGINT. With `ready_file`, the bound addresses are
/// written there once every listener is bound ([`listeners::write_ready_file`]).
///
/// # Errors
/// The store cannot be opened, a listener cannot bind, or TLS files are invalid.
pub fn run(
    source: Source,
    overrides: Overrides,
    config: Config,
    ready_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    // Before anything is created on disk: pingora would panic on them later.
    if let Some(tls) = &config.server.tls {
        check_listener_tls(tls)?;
    }
    raise_file_limit();
    let config = Arc::new(config);
    let data_dir = settings::data_dir(&config).to_path_buf();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;

    // The store owns its threads; this runtime only drives the open.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    // The store's error names the file already.
    let store = rt.block_on(Store::open(store_config(&config)))?;
    restrict_to_owner(&config.store.path, 0o600);
    restrict_to_owner(store.bodies_dir(), 0o700);

    let mut token_source = config.admin.token.clone();
    if matches!(token_source, aside_policies::TokenSource::Generate)
        && std::env::var_os("ASIDE_ADMIN_TOKEN").is_some()
    {
        token_source = aside_policies::TokenSource::Env("ASIDE_ADMIN_TOKEN".into());
    }
    let token = crate::admin::resolve_token(&token_source, &data_dir)?;

    let grace = config.server.grace_period.as_secs().max(1);
    let conf = ServerConf {
        threads: config.server.threads.max(1),
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(grace),
        pid_file: data_dir.join("aside.pid").display().to_string(),
        upgrade_sock: data_dir.join("aside-upgrade.sock").display().to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    // Every listener is bound now, so that port 0 works and a busy port fails here.
    let fds = server.listen_fds();
    let admin_listener = listeners::bind_admin(config.admin.listen)?;
    let bound = Bound {
        proxy: (config.server.listen.iter())
            .map(|a| listeners::bind_proxy(*a, &fds))
            .collect::<anyhow::Result<_>>()?,
        tls: (config.server.tls.iter().flat_map(|t| &t.listen))
            .map(|a| listeners::bind_proxy(*a, &fds))
            .collect::<anyhow::Result<_>>()?,
        admin: admin_listener.local_addr()?,
    };

    let shared_cache = settings::shared_cache(&config)?;
    let purges = settings::purges(
        &config,
        &store,
        shared_cache.clone(),
        bound.proxy.first().copied(),
    );
    let live = Live::new(
        config.clone(),
        None,
        settings::shared_budget(&config, &purges)?,
    )?;
    let shared = Arc::new(Shared {
        live: ArcSwap::from_pointee(live),
        config: Arc::new(ArcSwap::new(config.clone())),
        storage: AsideStorage::leak(
            store.clone(),
            crate::cache_storage::decoded_share(config.store.hot_capacity),
            shared_cache,
        ),
        lock: Box::leak(CacheLock::new_boxed(LOCK_AGE_TIMEOUT)),
        purges: purges.clone(),
    });

    // Request headers must arrive within deadlines, however the client trickles
    // them (pingora restarts its read timeout at every read).
    let deadlines = HeaderDeadlines {
        first_request: config.server.first_request_timeout,
        header: config.server.header_read_timeout,
    };
    let mut proxy = Service::new(
        "aside proxy".to_owned(),
        GuardedApp::new(
            pingora_proxy::http_proxy(
                &server.configuration,
                AsideProxy {
                    shared: shared.clone(),
                },
            ),
            deadlines,
        ),
    );
    // pingora's defaults are a 64 KiB read and a 1460-byte write buffer per
    // connection: the header of a hit then leaves in one send and its body in
    // another, and idle keep-alive connections hold 64 KiB each (bench/PROFILE.md).
    let buffers = L4BufferSettings::new(config.server.read_buffer, config.server.write_buffer);
    // pingora finds each socket in its fd table under the bound address.
    for addr in &bound.proxy {
        proxy.add_listener(ListenerConfig::tcp(addr.to_string()).l4_buffer(buffers));
    }
    if let Some(tls) = &config.server.tls {
        let tls_buffers = buffers.read(DEFAULT_L4_READ_BUFFER_SIZE);
        for addr in &bound.tls {
            let settings = TlsSettings::intermediate(
                &tls.cert.display().to_string(),
                &tls.key.display().to_string(),
            )
            .map_err(|e| anyhow::anyhow!("TLS listener {addr}: {e}"))?;
            proxy.add_listener(
                ListenerConfig::tcp(addr.to_string())
                    .tls(settings)
                    .l4_buffer(tls_buffers),
            );
        }
    }
    server.add_service(proxy);

    let config_path = match &source {
        Source::File(path) => Some(Arc::from(
            std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .as_path(),
        )),
        Source::Quick { .. } => None,
    };
    let reload_fn: Arc<crate::reload::ReloadFn> = {
        let shared = shared.clone();
        let started = config.clone();
        Arc::new(move || crate::reload::reload(&shared, &started, &source, &overrides))
    };
    let kv = crate::settings::kv_backend(&config, &store)?;
    let admin_state = crate::admin::AdminState::new(crate::admin::AdminParts {
        kv,
        store,
        purges: purges.clone(),
        config: shared.config.clone(),
        token: token.into(),
        reload: reload_fn.clone(),
        config_path,
        proxy: bound.proxy.first().copied(),
        breakers: {
            let shared = shared.clone();
            Arc::new(move || {
                shared
                    .live
                    .load()
                    .upstreams
                    .iter()
                    .map(|u| (u.config.name.clone(), u.guard.breaker_state()))
                    .collect()
            })
        },
    });
    let mut admin_service = background_service(
        "admin api",
        AdminService {
            listener: parking_lot::Mutex::new(Some(admin_listener)),
            state: admin_state,
            limits: crate::admin::AdminLimits::from_config(&config),
        },
    );
    // pingora gives a background service one thread: the KV API is an
    // application's database, give it its share of the cores.
    admin_service.threads = Some(config.admin.threads_for(config.server.threads.max(1)));
    server.add_service(admin_service);
    server.add_service(background_service(
        "reloader",
        crate::reload::Reloader { reload: reload_fn },
    ));
    if purges.enabled() {
        server.add_service(background_service("purge fan-out", PurgeFanout(purges)));
    }

    tracing::info!(listen = ?bound.proxy, tls = ?bound.tls, admin = %bound.admin, store = %config.store.path.display(), "aside starting");
    if let Some(path) = ready_file {
        listeners::write_ready_file(path, &bound)?;
    }
    server.run(RunArgs::default());
    // Cache fills are committed lazily: make them durable before exiting.
    if let Err(e) = rt.block_on(shared.storage.store().flush()) {
        tracing::warn!(error = %e, "final store flush failed");
    }
    tracing::info!("aside stopped");
    Ok(())
}

/// The admin API as a pingora background service.
struct AdminService {
    /// Taken once when the service starts.
    listener: parking_lot::Mutex<Option<std::net::TcpListener>>,
    state: crate::admin::AdminState,
    /// Connection bounds, fixed at start like the listener.
    limits: crate::admin::AdminLimits,
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(std_listener) = self.listener.lock().take() else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "admin listener");
                return;
            }
        };
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        if let Some(shared) = self.state.purges.shared().cloned() {
            tokio::spawn(async move { shared.warm().await });
        }
        // The dashboard's series; ends with this runtime.
        tokio::spawn(crate::stats::run_sampler(self.state.store.clone()));
        let (config, proxy) = (self.state.config.load_full(), self.state.proxy);
        tokio::spawn(async move { crate::admin::warm::warm_at_start(&config, proxy).await });
        if let Err(e) = crate::admin::serve(listener, self.state.clone(), self.limits, stop).await {
            tracing::error!(error = %e, "admin API stopped");
        }
    }
}

/// Publishes this node's purges and applies the other nodes' (cluster mode).
struct PurgeFanout(aside_cluster::Purges);

#[async_trait]
impl BackgroundService for PurgeFanout {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.0
            .run(async move {
                let _ = shutdown.changed().await;
            })
            .await;
    }
}

/// The store file holds every cached response and KV value: readable by its
/// owner only, like the admin token beside it (redb creates it 0644).
fn restrict_to_owner(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), error = %e, mode = format!("{mode:o}"), "cannot make the store private");
    }
}

/// Raise the soft open-file limit to the hard limit: every client connection
/// holds a descriptor, and the usual soft limit (1024) is reached by a few
/// hundred keep-alive clients plus the store's and the upstreams' files.
fn raise_file_limit() {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
            tracing::warn!("cannot read the open-file limit");
            return;
        };
        // An unlimited hard limit cannot be the soft one (the kernel caps it at
        // fs.nr_open): use that cap.
        let target = if hard == RLIM_INFINITY {
            std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(1 << 20)
        } else {
            hard
        };
        if soft >= target {
            tracing::info!(limit = soft, "open-file limit");
            return;
        }
        match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
            Ok(()) => tracing::info!(from = soft, to = target, "open-file limit raised"),
            Err(e) => tracing::warn!(limit = soft, error = %e, "cannot raise the open-file limit"),
        }
    }
}

/// Loads the TLS listener's certificate chain and key the way pingora's
/// `TlsSettings::build` will, which panics (in a service thread, leaving the
/// process to exit 0) on files it cannot use: here they are an error instead.
fn check_listener_tls(tls: &aside_policies::ListenerTls) -> anyhow::Result<()> {
    use pingora_core::tls;
    let (cert, key) = (
        tls.cert.display().to_string(),
        tls.key.display().to_string(),
    );
    let bad = |why: String| anyhow::anyhow!("server.tls: cert {cert} / key {key}: {why}");
    let Some((certs, key_der)) =
        tls::load_certs_and_key_files(&cert, &key).map_err(|e| bad(e.to_string()))?
    else {
        return Err(bad(
            "no PEM certificate in the cert file or no PEM private key (PKCS#1, PKCS#8 or SEC1) in the key file"
                .to_owned(),
        ));
    };
    tls::install_default_crypto_provider();
    tls::ServerConfig::builder_with_protocol_versions(&[&tls::version::TLS12, &tls::version::TLS13])
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map(drop)
        .map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `aside-policies` cannot depend on `aside-store`, so the config's
    /// `[store]` defaults repeat the store's own: they must not drift apart.
    #[test]
    fn store_settings_defaults_are_the_stores() {
        let settings = aside_policies::StoreSettings::default();
        let limits = Limits::default();
        assert_eq!(settings.max_key_bytes, limits.max_key_bytes);
        assert_eq!(settings.max_value_bytes, limits.max_value_bytes);
        assert_eq!(settings.min_ttl, limits.min_ttl);
        assert_eq!(settings.max_ttl, limits.max_ttl);
        let store = StoreConfig::new(settings.path.clone());
        assert_eq!(settings.hot_capacity, store.hot_capacity);
        assert_eq!(settings.cold_capacity, store.cold_capacity);
        assert_eq!(settings.cold_cache, store.redb_cache_bytes);
    }
}
