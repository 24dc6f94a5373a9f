//! Test harness: a real `redis-server` per test (`aside_tests::RedisServer`: a Unix
//! socket in a temporary directory, AOF `appendfsync always`), the Redis backend
//! over it, and an embedded store.
#![allow(dead_code)] // each test file uses a different part of it

use std::time::Duration;

use aside_cluster::{RedisKv, RedisSettings};
use aside_store::{Limits, Store, StoreConfig};

/// The shared harness's `redis-server` (Unix socket, AOF `always`, killed on drop).
pub use aside_tests::RedisServer as Redis;

/// What these tests need of a running Redis.
pub trait RedisExt {
    fn settings(&self, prefix: &str) -> RedisSettings;
    fn kv(&self, limits: Limits) -> RedisKv;
}

impl RedisExt for Redis {
    fn settings(&self, prefix: &str) -> RedisSettings {
        RedisSettings {
            url: self.url(),
            username: None,
            password: None,
            key_prefix: prefix.to_owned(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(2),
        }
    }

    fn kv(&self, limits: Limits) -> RedisKv {
        RedisKv::new(self.settings("aside:"), limits).expect("valid settings")
    }
}

/// An embedded store in a temporary directory (system clock, like Redis).
pub async fn store(limits: Limits) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = StoreConfig::new(dir.path().join("aside.redb"));
    config.limits = limits;
    let store = Store::open(config).await.expect("open store");
    (store, dir)
}
