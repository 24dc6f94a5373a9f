//! Test harness: a real `redis-server` per test, on a Unix socket in a temporary
//! directory (no TCP port to race for), with AOF `appendfsync always` so that a
//! kill and restart on the same directory keeps every acknowledged write.
#![allow(dead_code)] // each test file uses a different part of it

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aside_cluster::{RedisKv, RedisSettings};
use aside_store::{Limits, Store, StoreConfig};

/// A running `redis-server`, killed on drop.
pub struct Redis {
    pub dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl Redis {
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// `None` when `redis-server` is not installed and `CI` is not set (then the
    /// Redis half of the suite is skipped with a message; on CI it fails).
    pub async fn start() -> Option<Redis> {
        if which("redis-server").is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not installed (scripts/prereqs.sh installs it)"
            );
            eprintln!("SKIPPED: redis-server is not installed (run scripts/prereqs.sh)");
            return None;
        }
        let mut redis = Redis {
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        redis.spawn().await;
        Some(redis)
    }

    async fn spawn(&mut self) {
        let dir = self.dir.path();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(dir)
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                "--maxmemory-policy",
                "noeviction",
                "--loglevel",
                "warning",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        // Ready when it answers PING (never a fixed sleep).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = tokio::net::UnixStream::connect(self.socket()).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                if s.write_all(b"PING\r\n").await.is_ok() {
                    let mut buf = [0u8; 16];
                    if let Ok(n) = s.read(&mut buf).await {
                        if buf[..n].starts_with(b"+PONG") {
                            return;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGKILL (nothing flushed beyond what AOF `always` already has).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Start again on the same directory.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    pub fn settings(&self, prefix: &str) -> RedisSettings {
        RedisSettings {
            url: self.url(),
            username: None,
            password: None,
            key_prefix: prefix.to_owned(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(2),
        }
    }

    pub fn kv(&self, limits: Limits) -> RedisKv {
        RedisKv::new(self.settings("aside:"), limits).expect("valid settings")
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// An embedded store in a temporary directory (system clock, like Redis).
pub async fn store(limits: Limits) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = StoreConfig::new(dir.path().join("aside.redb"));
    config.limits = limits;
    let store = Store::open(config).await.expect("open store");
    (store, dir)
}
