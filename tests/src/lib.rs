//! End-to-end test harness: a scriptable local origin and the real `aside`
//! binary started on ephemeral loopback ports.
//!
//! ```ignore
//! let origin = Origin::start(|req| Reply::ok("hello").header("cache-control", "max-age=60")).await;
//! let aside = Aside::builder().upstream(&origin.url()).start().await;
//! let r = aside.get("/x").await;
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

mod binary;
pub mod redis_server;
mod wait;
pub use binary::aside_bin;
pub use redis_server::RedisServer;
pub use wait::eventually;

/// Admin token every test instance uses.
pub const TOKEN: &str = "test-token-0123456789";

/// What the scripted origin received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Request headers.
    pub headers: HeaderMap,
}

/// A response the origin sends.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Delay before answering.
    pub delay: Duration,
}

impl Reply {
    /// 200 with a body.
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// Any status with a body.
    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            ..Reply::ok(body)
        }
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answer after `d`.
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

/// A local origin whose answers a closure decides; it records every request.
pub struct Origin {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    /// Requests being answered right now, and the most seen at once.
    in_flight: Arc<(AtomicUsize, AtomicUsize)>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    /// Start an origin on `127.0.0.1:0`. The closure gets the request and the
    /// 1-based number of requests received so far.
    pub async fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Origin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind origin");
        Origin::serve(listener, Arc::new(handler))
    }

    /// Start an origin on a given, already bound listener (for restarts on the same port).
    pub fn serve(listener: tokio::net::TcpListener, handler: Arc<Handler>) -> Origin {
        let addr = listener.local_addr().expect("origin addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let (h2, s2, f2) = (hits.clone(), seen.clone(), in_flight.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (hits, seen, handler, flight) =
                (h2.clone(), s2.clone(), handler.clone(), f2.clone());
            async move {
                let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
                let now = flight.0.fetch_add(1, Ordering::SeqCst) + 1;
                flight.1.fetch_max(now, Ordering::SeqCst);
                let s = Seen {
                    method: req.method().to_string(),
                    uri: req.uri().to_string(),
                    headers: req.headers().clone(),
                };
                seen.lock().expect("seen lock").push(s.clone());
                let reply = handler(&s, n);
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                flight.0.fetch_sub(1, Ordering::SeqCst);
                let mut resp = Response::new(Body::from(reply.body));
                *resp.status_mut() = StatusCode::from_u16(reply.status).expect("status");
                for (k, v) in reply.headers {
                    resp.headers_mut().append(
                        HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                        HeaderValue::from_str(&v).expect("header value"),
                    );
                }
                resp
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Origin {
            addr,
            hits,
            in_flight,
            seen,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The origin's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The most requests the origin was answering at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.1.load(Ordering::SeqCst)
    }

    /// Requests received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// Stop answering (the port closes).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A free loopback port (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A hand-written origin for what an HTTP library would not send (no `Date`,
/// garbage, a stalled body): `serve` gets each accepted connection on its own task.
pub async fn raw_origin<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind raw origin");
    let addr = listener.local_addr().expect("raw origin addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// A [`raw_origin`] that answers every request on every connection with
/// `reply`, written as it is (a response without `Date`, odd fields, ...).
pub async fn fixed_reply_origin(reply: &'static [u8]) -> SocketAddr {
    raw_origin(move |mut s| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 || s.write_all(reply).await.is_err() {
                break;
            }
        }
    })
    .await
}

/// A running `aside` process with its own data directory and ports.
pub struct Aside {
    child: Child,
    /// Proxy address.
    pub addr: SocketAddr,
    /// Admin address.
    pub admin: SocketAddr,
    /// TLS proxy addresses (`[server.tls] listen`), as bound.
    pub tls: Vec<SocketAddr>,
    /// Data directory (kept for restarts).
    pub dir: Arc<tempfile::TempDir>,
    /// The config file.
    pub config_path: PathBuf,
    /// HTTP client without connection reuse surprises.
    pub client: reqwest::Client,
}

/// Builds an Aside config for tests.
pub struct AsideBuilder {
    upstream: String,
    routes: Vec<String>,
    extra: String,
    dir: Option<Arc<tempfile::TempDir>>,
    upstream_extra: String,
    server_extra: String,
    admin_extra: String,
}

impl Aside {
    /// Start configuring an instance.
    pub fn builder() -> AsideBuilder {
        AsideBuilder {
            upstream: String::new(),
            routes: Vec::new(),
            extra: String::new(),
            dir: None,
            upstream_extra: String::new(),
            server_extra: String::new(),
            admin_extra: String::new(),
        }
    }

    /// `http://ADDR`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Admin URL.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// GET through the proxy.
    pub async fn get(&self, path: &str) -> Resp {
        Resp::from(
            self.client
                .get(self.url(path))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// Request with custom headers through the proxy.
    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = self
            .client
            .request(method.parse().expect("method"), self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    /// An authorized admin request.
    pub fn admin(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method.parse().expect("method"), self.admin_url(path))
            .bearer_auth(TOKEN)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `/metrics` text of the admin API.
    pub async fn metrics_text(&self) -> String {
        self.admin("GET", "/metrics")
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// The sum of the samples of the metric `name` whose labels include every
    /// `labels` item (`"upstream=\"origin\""`); 0 when there are none.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> u64 {
        let prefix = format!("{name}{{");
        self.metrics_text()
            .await
            .lines()
            .filter(|l| {
                (l.starts_with(&prefix) || l.starts_with(&format!("{name} ")))
                    && labels.iter().all(|p| l.contains(p))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Send SIGHUP (config reload).
    pub fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success());
    }

    /// Stop the process (SIGTERM, then SIGKILL after a deadline) and wait for it.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop and start again with the same config, data directory and ports
    /// (passed as `--listen` / `--admin-listen`, so the node id stays the same).
    pub async fn restart(mut self) -> Aside {
        self.stop();
        let cfg = std::fs::read_to_string(&self.config_path).expect("config");
        Aside::spawn(self.dir.clone(), cfg, Some((self.addr, self.admin))).await
    }

    /// Starts `aside` on `config` (which may listen on port 0) and learns the
    /// bound addresses from its `--ready-file`: no port is picked by the
    /// harness and then raced for.
    async fn spawn(
        dir: Arc<tempfile::TempDir>,
        config: String,
        fixed: Option<(SocketAddr, SocketAddr)>,
    ) -> Aside {
        let config_path = dir.path().join("aside.toml");
        std::fs::write(&config_path, &config).expect("write config");
        let ready = dir.path().join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::File::create(dir.path().join("aside.log")).expect("log file");
        let mut cmd = Command::new(aside_bin());
        cmd.arg("--config")
            .arg(&config_path)
            .arg("--ready-file")
            .arg(&ready);
        if let Some((addr, admin)) = fixed {
            cmd.arg("--listen").arg(addr.to_string());
            cmd.arg("--admin-listen").arg(admin.to_string());
        }
        let mut child = cmd
            .env("ASIDE_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn aside");
        let bound = binary::read_ready_file(&ready, &mut child, dir.path()).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let aside = Aside {
            child,
            addr: *bound.proxy.first().expect("a proxy listener"),
            admin: bound.admin,
            tls: bound.tls,
            dir,
            config_path,
            client,
        };
        aside.wait_ready().await;
        aside
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self
                .client
                .get(self.admin_url("/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
                && tokio::net::TcpStream::connect(self.addr).await.is_ok();
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "aside did not become ready; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("aside.log")).unwrap_or_default()
    }
}

impl Drop for Aside {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AsideBuilder {
    /// The origin every route goes to.
    pub fn upstream(mut self, url: &str) -> Self {
        self.upstream = url.to_owned();
        self
    }

    /// Extra keys for the `[server]` table (TOML lines).
    pub fn server_extra(mut self, toml: &str) -> Self {
        self.server_extra.push_str(toml);
        self.server_extra.push('\n');
        self
    }

    /// Extra keys for the `[admin]` table (TOML lines).
    pub fn admin_extra(mut self, toml: &str) -> Self {
        self.admin_extra.push_str(toml);
        self.admin_extra.push('\n');
        self
    }

    /// Extra keys for the `[[upstream]]` table (TOML lines).
    pub fn upstream_extra(mut self, toml: &str) -> Self {
        self.upstream_extra.push_str(toml);
        self.upstream_extra.push('\n');
        self
    }

    /// Add a route (TOML lines inside a `[[route]]` table; `upstream` is added).
    /// Routes come before the default catch-all (respect-origin).
    pub fn route(mut self, toml: &str) -> Self {
        self.routes.push(toml.to_owned());
        self
    }

    /// Extra top-level TOML appended to the config.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self
    }

    /// The config text this builder produces (for given ports and directory).
    pub fn config_text(&self, addr: SocketAddr, admin: SocketAddr, dir: &Path) -> String {
        let mut s = format!(
            "[server]\nlisten = [\"{addr}\"]\nthreads = 2\ngrace-period = \"1s\"\n{}\n[admin]\nlisten = \"{admin}\"\ntoken-env = \"ASIDE_ADMIN_TOKEN\"\n{}\n[store]\npath = \"{}\"\nhot-capacity = \"64MiB\"\ncold-capacity = \"1GiB\"\n\n[[upstream]]\nname = \"origin\"\nurl = \"{}\"\nconnect-timeout = \"1s\"\nread-timeout = \"2s\"\n{}\n",
            self.server_extra,
            self.admin_extra,
            dir.join("aside.redb").display(),
            self.upstream,
            self.upstream_extra,
        );
        for r in &self.routes {
            s.push_str("[[route]]\nupstream = \"origin\"\n");
            s.push_str(r);
            s.push_str("\n\n");
        }
        s.push_str("[[route]]\nupstream = \"origin\"\nmode = \"respect-origin\"\n\n");
        s.push_str(&self.extra);
        s
    }

    /// Write the config and start the process; returns once it answers.
    pub async fn start(self) -> Aside {
        let dir = self
            .dir
            .clone()
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("tempdir")));
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let text = self.config_text(any, any, dir.path());
        Aside::spawn(dir, text, None).await
    }
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status.
    pub status: u16,
    /// Headers (lowercase names; last value wins).
    pub headers: HashMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
}

impl Resp {
    async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = r.bytes().await.expect("body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A header value or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// `X-Cache`.
    pub fn x_cache(&self) -> &str {
        self.header("x-cache")
    }

    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
