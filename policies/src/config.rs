//! The validated configuration and its lookups.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::ipnet::IpNet;
use crate::route::Route;
use crate::upstream::{Upstream, UNKNOWN_UPSTREAM};

/// The whole validated configuration. Built by [`crate::parse_config`] or
/// [`Config::quick`]; every value is parsed and cross-checked (route upstreams
/// exist, a catch-all route is last, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The proxy listener(s).
    pub server: Server,
    /// The admin API listener.
    pub admin: Admin,
    /// Store location and limits.
    pub store: StoreSettings,
    /// Origins, in file order; at least one.
    pub upstreams: Vec<Upstream>,
    /// Routes in file order, the first match wins; the last one is a catch-all.
    pub routes: Vec<Route>,
    /// `[cluster]`: `None` for a standalone node.
    pub cluster: Option<Cluster>,
}

impl Config {
    /// First matching route; `None` only if nothing matches (validation
    /// requires a catch-all, so normally `Some`).
    pub fn route_for(&self, host: &str, path: &str, method: &str) -> Option<&Route> {
        self.route_index_for(host, path, method)
            .map(|i| &self.routes[i])
    }

    /// Index in [`Config::routes`] of the first matching route (what the proxy
    /// keeps per request, so a request's route survives a config reload).
    pub fn route_index_for(&self, host: &str, path: &str, method: &str) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| r.matches(host, path, method))
    }

    /// The upstream of a route of this config. A route from another config
    /// whose index is out of range gets a placeholder upstream (empty host,
    /// port 0) that fails to connect, rather than a panic.
    pub fn upstream(&self, route: &Route) -> &Upstream {
        self.upstreams
            .get(route.upstream)
            .unwrap_or(&UNKNOWN_UPSTREAM)
    }

    /// The upstream with this name.
    pub fn upstream_named(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

/// `[server]`: the proxy listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Plain HTTP listen addresses. Default: `127.0.0.1:8080`.
    pub listen: Vec<SocketAddr>,
    /// Worker threads. Default: 2.
    pub threads: usize,
    /// Time given to in-flight requests at shutdown. Default: 5s.
    pub grace_period: Duration,
    /// How long an idle client connection is kept open for its next request,
    /// whole seconds (pingora's unit). Default: 60s.
    pub keepalive_timeout: Duration,
    /// How long a new connection (proxy or admin) may take to send the first
    /// byte of its first request. Default: 10s.
    pub first_request_timeout: Duration,
    /// How long a request's header may take to arrive in full, from its first
    /// byte, on both listeners: a client that trickles its header (slowloris)
    /// is closed then, however often it sends a byte. Default: 10s.
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive in full, from the end of the
    /// header, on both listeners; a trickled body gets 408 then. Default: 30s.
    pub body_read_timeout: Duration,
    /// One log line per request (target `aside::access`). Default: true.
    pub access_log: bool,
    /// Per-connection read buffer of the plain HTTP listeners (TLS listeners keep
    /// 64 KiB: TLS records are read 16 KiB at a time). Default: 4 KiB.
    pub read_buffer: usize,
    /// Per-connection write buffer: a response whose header and body fit leaves
    /// in one `send` (a body that does not fit is written after the header).
    /// pingora flushes a `Content-Length` body only when the buffer fills or the
    /// body ends, so a trickling origin reaches clients (header included) in
    /// pieces of this size.
    /// Default: 80 KiB (a 64 KiB body with up to 16 KiB of headers).
    pub write_buffer: usize,
    /// Optional TLS listener.
    pub tls: Option<ListenerTls>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            threads: 2,
            grace_period: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(60),
            first_request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            access_log: true,
            read_buffer: 4 << 10,
            write_buffer: 80 << 10,
            tls: None,
        }
    }
}

/// `[server.tls]`: an HTTPS listener for clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// TLS listen addresses.
    pub listen: Vec<SocketAddr>,
    /// PEM certificate chain file.
    pub cert: PathBuf,
    /// PEM private key file.
    pub key: PathBuf,
}

/// `[admin]`: the admin API listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Listen address. Default: `127.0.0.1:9080`.
    pub listen: SocketAddr,
    /// Where the bearer token comes from.
    pub token: TokenSource,
    /// Client networks allowed to send `PURGE` to the proxy listener.
    /// Default: `127.0.0.0/8` and `::1/128`.
    pub purge_allow: Vec<IpNet>,
    /// How long an admin connection may stay idle between requests. Default: 60s.
    pub idle_timeout: Duration,
    /// Admin connections open at once; beyond it a new connection gets a 503
    /// and is closed, so idle clients cannot exhaust the process's files.
    /// Default: 256.
    pub max_connections: usize,
    /// Worker threads of the admin API (the KV API's throughput). `None`: half
    /// the proxy's `threads`, at least 1 (both share the machine's cores, and a
    /// KV call mostly waits on the store or Redis).
    pub threads: Option<usize>,
}

impl Admin {
    /// The admin API's worker threads, given the proxy's.
    pub fn threads_for(&self, proxy_threads: usize) -> usize {
        self.threads.unwrap_or((proxy_threads / 2).max(1))
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from(([127, 0, 0, 1], 9080)),
            token: TokenSource::Generate,
            purge_allow: default_purge_allow(),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
            threads: None,
        }
    }
}

pub(crate) fn default_purge_allow() -> Vec<IpNet> {
    vec![IpNet::LOOPBACK_V4, IpNet::LOOPBACK_V6]
}

/// Where the admin bearer token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `token-env = "ASIDE_ADMIN_TOKEN"`: read from this environment variable.
    Env(String),
    /// `token-file = "/run/secrets/aside"`: read from this file (trimmed).
    File(PathBuf),
    /// Neither given: the binary generates a random token at start and prints it.
    Generate,
}

/// `[store]`: the two-tier store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// The redb file of the cold tier. Default: `data/aside.redb`.
    pub path: PathBuf,
    /// Memory tier budget in bytes (the proxy gives 1/16 of it, at most 16 MiB,
    /// to decoded response headers). Default: 256 MiB.
    pub hot_capacity: u64,
    /// Disk tier budget in bytes. Default: 10 GiB.
    pub cold_capacity: u64,
    /// Memory redb may use for pages of the disk tier file (its read cache and
    /// write buffer); the OS page cache does the rest. Default: 4 MiB.
    pub cold_cache: usize,
    /// Longest KV key in bytes. Default: 512.
    pub max_key_bytes: usize,
    /// Largest KV value (serialized JSON) in bytes. Default: 1 MiB.
    pub max_value_bytes: usize,
    /// Shortest KV `ttlSeconds` accepted. Default: 1s.
    pub min_ttl: Duration,
    /// Longest KV `ttlSeconds` accepted. Default: 365 days.
    pub max_ttl: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            path: PathBuf::from("data/aside.redb"),
            hot_capacity: 256 << 20,
            cold_capacity: 10 << 30,
            cold_cache: 4 << 20,
            max_key_bytes: 512,
            max_value_bytes: 1 << 20,
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(365 * 86_400),
        }
    }
}
