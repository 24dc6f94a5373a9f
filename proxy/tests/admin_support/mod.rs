//! Shared harness of the admin API tests: the real `admin::serve` on `127.0.0.1:0`, a real
//! store in a temporary directory driven by a mock clock, and a reqwest client.
#![allow(dead_code)] // each test file uses a different part of it

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use aside_policies::{Config, HostMatch};
use aside_proxy::admin::{self, AdminState};
use aside_store::{MockClock, Store, StoreConfig};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TOKEN: &str = "test-token-0123456789";

/// A running admin API.
pub struct Admin {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub clock: Arc<MockClock>,
    pub config: Arc<ArcSwap<Config>>,
    /// What the next `POST /admin/reload` answers.
    pub reload_result: Arc<Mutex<Result<Vec<String>, String>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// The test config: a catch-all route to an origin, plus a route for host
/// `tagged.test` whose entries carry the tag `t1`.
pub fn test_config() -> Config {
    let mut config =
        Config::quick("http://origin.test", Some(Duration::from_secs(60))).expect("quick config");
    let mut tagged = config.routes[0].clone();
    tagged.name = "tagged".to_owned();
    tagged.host = HostMatch::Exact("tagged.test".to_owned());
    tagged.policy.tags = vec!["t1".to_owned()];
    config.routes.insert(0, tagged);
    config
}

pub async fn start() -> Admin {
    start_with_kv(|store| Arc::new(store.clone())).await
}

/// The admin API with the KV backend `kv` builds from the store (Redis in cluster tests).
pub async fn start_with_kv(kv: impl FnOnce(&Store) -> aside_cluster::SharedKv) -> Admin {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(MockClock::new(SystemTime::now()));
    let store = Store::open_with_clock(
        StoreConfig::new(dir.path().join("aside.redb")),
        clock.clone(),
    )
    .await
    .expect("open store");
    let config = Arc::new(ArcSwap::from_pointee(test_config()));
    let reload_result = Arc::new(Mutex::new(Ok(Vec::new())));
    let reload = {
        let result = reload_result.clone();
        Arc::new(move || result.lock().expect("lock").clone())
    };
    let state = AdminState::new(admin::AdminParts {
        kv: kv(&store),
        store: store.clone(),
        purges: Default::default(),
        config: config.clone(),
        token: Arc::from(TOKEN),
        reload,
        config_path: None,
        breakers: Arc::new(Vec::new),
        proxy: config.load().server.listen.first().copied(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let limits = admin::AdminLimits::from_config(&test_config());
        admin::serve(listener, state, limits, async move {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    Admin {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        store,
        clock,
        config,
        reload_result,
        shutdown: Some(tx),
        _dir: dir,
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Admin {
    /// A request with the token.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    /// A request without the token.
    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub async fn put(&self, key: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.req(Method::PUT, &format!("/kv/items/{key}"))
                .json(&body),
        )
        .await
    }

    pub async fn get(&self, key: &str) -> (StatusCode, Value) {
        send(self.req(Method::GET, &format!("/kv/items/{key}"))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.req(Method::POST, path).json(&body)).await
    }

    /// Every KV item (key -> value), read through the store, to check "nothing changed".
    pub async fn snapshot(&self) -> Vec<(String, Value)> {
        let page = self
            .store
            .list(aside_store::ListQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list");
        page.items
            .into_iter()
            .map(|i| (i.key, i.value.to_value()))
            .collect()
    }

    /// Send raw bytes over a fresh TCP connection and return what the server answers
    /// (empty if it closed the connection without answering).
    pub async fn raw(&self, request: &[u8]) -> String {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut read, mut write) = stream.split();
        let writer = async {
            // The server may answer and close before reading everything: ignore write errors.
            let _ = write.write_all(request).await;
            let _ = write.flush().await;
        };
        let reader = async {
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut buf)).await;
            buf
        };
        let ((), buf) = tokio::join!(writer, reader);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Send and decode: (status, JSON body, or Null when the body is empty, or a string for a
/// successful non-JSON answer such as `/metrics`). Error bodies must be JSON.
pub async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("send");
    let status = resp.status();
    let json = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else if !json && status.is_success() {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("non-JSON body ({e}) with {status}: {bytes:?}"))
    };
    (status, body)
}

/// Assert an error response: status, `error.code`, and a message.
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
