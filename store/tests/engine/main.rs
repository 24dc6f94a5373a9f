//! Integration tests of the engine through its public API (one binary, several modules).

mod basic;
mod bodies;
mod crash;
mod errors;
mod model;
mod refill;
mod restart;
mod runtimes;

use std::sync::Arc;
use std::time::Duration;

use aside_store::{MockClock, Store, StoreConfig};

/// A store in a fresh temp dir with a mock clock.
pub struct Fixture {
    pub store: Store,
    pub clock: MockClock,
    pub dir: tempfile::TempDir,
}

pub fn config(dir: &tempfile::TempDir) -> StoreConfig {
    let mut c = StoreConfig::new(dir.path().join("data").join("aside.redb"));
    c.hot_capacity = 16 * 1024 * 1024;
    c.redb_cache_bytes = 4 * 1024 * 1024;
    c.gc_interval = Duration::from_secs(3600);
    c
}

pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = MockClock::default();
    let store = Store::open_with_clock(config(&dir), Arc::new(clock.clone()))
        .await
        .unwrap();
    Fixture { store, clock, dir }
}
