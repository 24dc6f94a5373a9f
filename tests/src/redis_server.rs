//! A real `redis-server` for cluster tests, on a Unix socket in a temporary
//! directory (no TCP port to race for), with AOF `appendfsync always` so that a
//! kill and restart on the same directory keeps every acknowledged write.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl RedisServer {
    /// `None` when `redis-server` is not installed and `CI` is not set (the
    /// caller then skips with a message; on CI a missing server fails the test).
    pub async fn start() -> Option<RedisServer> {
        let installed = std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|p| p.join("redis-server").is_file())
        });
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not installed (scripts/prereqs.sh installs it)"
            );
            eprintln!("SKIPPED: redis-server is not installed (run scripts/prereqs.sh)");
            return None;
        }
        let mut redis = RedisServer {
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        redis.spawn().await;
        Some(redis)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// `redis+unix:///…/redis.sock`
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// A `[cluster]` section pointing at this server (TOML).
    pub fn cluster_toml(&self) -> String {
        format!(
            "\n[cluster]\nredis = \"{}\"\nheartbeat-interval = \"3s\"\ncommand-timeout = \"1s\"\n",
            self.url()
        )
    }

    async fn spawn(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(self.dir.path())
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

    /// SIGKILL (AOF `always` already holds every acknowledged write).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Start again on the same directory and socket.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }
}
