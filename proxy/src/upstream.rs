//! Upstream peers: turning a configured origin into pingora `HttpPeer`s.
//!
//! `HttpPeer::new` wants a resolved address and pingora resolves names
//! synchronously (and panics when that fails), so names are resolved here with
//! tokio's async resolver and the answer is kept for a short while.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::utils::tls::WrappedX509;
use pingora_error::{Error, ErrorType, Result};

use aside_policies::{Scheme, Upstream};

use crate::protect::{OriginGuard, SharedBudget};

/// How long a resolved address is reused before asking the resolver again.
const RESOLVE_TTL: Duration = Duration::from_secs(30);

/// A configured upstream, ready to hand out peers.
pub struct UpstreamRuntime {
    /// The configuration it was built from (name, headers, host header, base path).
    pub config: Upstream,
    /// Per-peer CA certificates from `ca-file`, parsed once at load.
    ca: Option<Arc<[WrappedX509]>>,
    /// Last resolution of `config.host`; a literal IP never needs one.
    resolved: Mutex<Option<(SocketAddr, Instant)>>,
    /// Bounds concurrent upstream requests when `max-concurrent` is set.
    pub limit: Option<Arc<tokio::sync::Semaphore>>,
    /// Budget, pauses and circuit breaker; kept across reloads that leave the
    /// upstream's protection settings as they were.
    pub guard: Arc<OriginGuard>,
}

impl UpstreamRuntime {
    /// Build the runtime form of an upstream, reading its CA file if any.
    ///
    /// # Errors
    /// The CA file cannot be read or holds no valid certificate.
    pub fn new(
        config: Upstream,
        previous: Option<&UpstreamRuntime>,
        budget: Option<&aside_cluster::SharedBudget>,
    ) -> anyhow::Result<UpstreamRuntime> {
        let ca = match &config.ca_file {
            Some(path) => Some(load_ca(path)?),
            None => None,
        };
        let limit = config
            .max_concurrent
            .map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
        let guard = match previous {
            Some(p) if p.guard.settings == config.protection => p.guard.clone(),
            _ => Arc::new(OriginGuard::new(
                config.protection.clone(),
                budget.map(|b| SharedBudget {
                    budget: b.clone(),
                    upstream: config.name.clone(),
                }),
            )),
        };
        Ok(UpstreamRuntime {
            config,
            ca,
            resolved: Mutex::new(None),
            limit,
            guard,
        })
    }

    async fn address(&self) -> Result<SocketAddr> {
        if let Ok(ip) = self.config.host.parse::<std::net::IpAddr>() {
            return Ok(SocketAddr::new(ip, self.config.port));
        }
        if let Some((addr, at)) = *self.resolved.lock() {
            if at.elapsed() < RESOLVE_TTL {
                return Ok(addr);
            }
        }
        let target = (self.config.host.as_str(), self.config.port);
        let addr = tokio::net::lookup_host(target)
            .await
            .map_err(|e| {
                Error::because(
                    ErrorType::ConnectNoRoute,
                    format!("cannot resolve upstream host {}", self.config.host),
                    e,
                )
            })?
            .next()
            .ok_or_else(|| {
                Error::explain(
                    ErrorType::ConnectNoRoute,
                    format!("upstream host {} has no address", self.config.host),
                )
            })?;
        *self.resolved.lock() = Some((addr, Instant::now()));
        Ok(addr)
    }

    /// A peer for one upstream request, with the configured timeouts and TLS settings.
    ///
    /// # Errors
    /// The upstream's host name cannot be resolved.
    pub async fn peer(&self) -> Result<Box<HttpPeer>> {
        let addr = self.address().await?;
        let tls = matches!(self.config.scheme, Scheme::Https);
        let mut peer = HttpPeer::new(addr, tls, self.config.sni.clone());
        let o = &mut peer.options;
        o.connection_timeout = Some(self.config.connect_timeout);
        o.total_connection_timeout = Some(self.config.connect_timeout * 2);
        o.read_timeout = Some(self.config.read_timeout);
        o.write_timeout = Some(self.config.read_timeout);
        o.idle_timeout = Some(self.config.idle_timeout);
        o.verify_cert = self.config.verify_cert;
        o.verify_hostname = self.config.verify_cert;
        if let Some(ca) = &self.ca {
            o.ca = Some(ca.clone());
        }
        Ok(Box::new(peer))
    }
}

fn load_ca(path: &std::path::Path) -> anyhow::Result<Arc<[WrappedX509]>> {
    use anyhow::Context;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read CA file {}", path.display()))?
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("CA file {} is not valid PEM", path.display()))?;
    let mut out = Vec::with_capacity(certs.len());
    for der in certs {
        // WrappedX509::new panics on bad DER: check first.
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| {
            anyhow::anyhow!(
                "CA file {} holds an invalid certificate: {e}",
                path.display()
            )
        })?;
        out.push(WrappedX509::new(
            der.to_vec(),
            pingora_core::utils::tls::parse_x509,
        ));
    }
    anyhow::ensure!(
        !out.is_empty(),
        "CA file {} holds no certificate",
        path.display()
    );
    Ok(out.into())
}
