//! Configuration reloads: [`reload`] re-reads the file and swaps the live
//! config in (or keeps the old one and says why); [`Reloader`] runs it on
//! SIGHUP; `POST /admin/reload` runs it through a [`ReloadFn`].

use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use aside_policies::Config;

use crate::proxy::{Live, Shared};
use crate::settings::{self, Overrides, Source};

/// A reload: `Ok` lists the changed settings that wait for a restart.
pub type ReloadFn = dyn Fn() -> Result<Vec<String>, String> + Send + Sync;

/// Re-read the config and swap it in; the old config keeps serving on error.
///
/// Routes, upstreams, `purge-allow`, `keepalive-timeout` and `access-log` apply
/// to the next request.
/// Listeners, threads, connection buffers, the grace period, the admin token
/// and the store are fixed at start (`started`): where the file now differs,
/// the setting is returned (and logged).
pub fn reload(
    shared: &Shared,
    started: &Config,
    source: &Source,
    overrides: &Overrides,
) -> Result<Vec<String>, String> {
    let config = Arc::new(settings::load(source, overrides)?);
    let previous = shared.live.load();
    let live = Live::new(config.clone(), Some(&previous), previous.budget.clone())
        .map_err(|e| format!("{e:#}"))?;
    let restart_needed = restart_needed(started, &config);
    shared.live.store(Arc::new(live));
    shared.config.store(config);
    if restart_needed.is_empty() {
        tracing::info!("configuration reloaded");
    } else {
        tracing::warn!(
            restart_needed = %restart_needed.join(", "),
            "configuration reloaded; these changed settings take effect at the next restart"
        );
    }
    Ok(restart_needed)
}

/// The settings read only at start that differ between the running `old` and `new`.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let (o, n) = (&old.server, &new.server);
    [
        ("server.listen", o.listen != n.listen),
        ("server.threads", o.threads != n.threads),
        ("server.grace-period", o.grace_period != n.grace_period),
        ("server.read-buffer", o.read_buffer != n.read_buffer),
        ("server.write-buffer", o.write_buffer != n.write_buffer),
        ("server.tls", o.tls != n.tls),
        ("admin.listen", old.admin.listen != new.admin.listen),
        ("admin.token", old.admin.token != new.admin.token),
        ("store", old.store != new.store),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(name, _)| name.to_owned())
    .collect()
}

/// Re-reads the config on SIGHUP.
pub struct Reloader {
    pub reload: Arc<ReloadFn>,
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    // Success (and settings waiting for a restart) is logged by `reload`.
                    if let Err(e) = (self.reload)() {
                        tracing::error!(error = %e, "reload rejected; the old configuration keeps serving");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
