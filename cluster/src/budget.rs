//! Request budgets shared by every node: one token bucket per upstream inside
//! Redis (`lua/budget.lua`, on Redis's clock), so N nodes together send an
//! origin no more than its `rate-limit`.
//!
//! A Redis error or timeout is reported to the caller, which falls back to a
//! budget of its own: the rate divided by the number of live nodes last seen
//! ([`SharedBudget::live_nodes`], kept fresh by the purge fan-out's heartbeats).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use crate::connect::{connection, ConnectError, RedisSettings};

/// Shared budgets over one Redis. Cheap to clone.
#[derive(Clone)]
pub struct SharedBudget {
    conn: Arc<tokio::sync::OnceCell<ConnectionManager>>,
    settings: Arc<RedisSettings>,
    script: Arc<Script>,
    live_nodes: Arc<AtomicU64>,
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudget")
            .field("key_prefix", &self.settings.key_prefix)
            .finish_non_exhaustive()
    }
}

impl SharedBudget {
    /// Budgets in the Redis of `settings`; connects on first use. `live_nodes`
    /// is the count of live nodes the purge fan-out maintains (0: unknown).
    ///
    /// # Errors
    /// [`ConnectError::Url`] for an address redis-rs does not accept.
    pub fn new(
        settings: RedisSettings,
        live_nodes: Arc<AtomicU64>,
    ) -> Result<SharedBudget, ConnectError> {
        use redis::IntoConnectionInfo;
        settings
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| ConnectError::Url(e.to_string()))?;
        Ok(SharedBudget {
            conn: Arc::new(tokio::sync::OnceCell::new()),
            settings: Arc::new(settings),
            script: Arc::new(Script::new(include_str!("lua/budget.lua"))),
            live_nodes,
        })
    }

    /// Takes one request from `bucket`'s budget of `per_second` with room for
    /// `burst` at once: `Ok(None)` when taken, `Ok(Some(wait))` when the next
    /// token comes after `wait`.
    ///
    /// # Errors
    /// Redis unreachable, slower than the command timeout, or refusing.
    pub async fn take(
        &self,
        bucket: &str,
        burst: u32,
        per_second: f64,
    ) -> redis::RedisResult<Option<Duration>> {
        let mut conn = self
            .conn
            .get_or_try_init(|| async { connection(&self.settings) })
            .await
            .map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "bad Redis URL",
                    e.to_string(),
                ))
            })?
            .clone();
        let key = format!("{}rl:{{{bucket}}}", self.settings.key_prefix);
        let (ok, wait_ms): (u8, u64) = crate::latency::timed(
            self.script
                .key(key)
                .arg(burst.max(1))
                .arg(per_second)
                .invoke_async(&mut conn),
        )
        .await?;
        Ok((ok != 1).then(|| Duration::from_millis(wait_ms.max(1))))
    }

    /// Live nodes as last seen in the heartbeats, at least 1.
    pub fn live_nodes(&self) -> u64 {
        self.live_nodes.load(Ordering::Relaxed).max(1)
    }
}
