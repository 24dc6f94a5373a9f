//! The cross-node lease on a key being filled: waiting for the filler's
//! "filled" notification, renewing while the fetch runs, releasing after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{hex, parse_hex, SharedCache, LEASE_MAX_HOLD, LEASE_TTL};

impl SharedCache {
    pub(super) fn waker(&self, hash: [u8; 16]) -> Arc<tokio::sync::Notify> {
        self.wakers.lock().entry(hash).or_default().clone()
    }

    /// Starts the subscriber to the `filled` channel (once): it wakes the
    /// lookups waiting for the key a node just wrote.
    pub(super) fn listen(&self) {
        if self.listener.initialized() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let started = this.listener.set(()).is_ok();
            if started {
                this.subscribe().await;
            }
        });
    }

    pub(super) async fn subscribe(&self) {
        use futures_util::StreamExt as _;
        loop {
            let client = match crate::connect::client(&self.settings.redis) {
                Ok(c) => c,
                Err(_) => return,
            };
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(&self.names.filled).await.is_ok() {
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            let Ok(payload) = msg.get_payload::<String>() else {
                                continue;
                            };
                            if let Some(hash) = parse_hex(&payload) {
                                if let Some(waker) = self.wakers.lock().get(&hash) {
                                    waker.notify_waiters();
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(target: "aside::cluster", error = %e, "shared cache tier: cannot subscribe; retrying");
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Keeps a lease alive while this node still holds it.
    pub(super) async fn renew(&self, hash: [u8; 16], token: String) {
        let key = format!("{}{}", self.names.lease, hex(&hash));
        let started = Instant::now();
        loop {
            tokio::time::sleep(LEASE_TTL / 3).await;
            let held = self.leases.lock().get(&hash) == Some(&token);
            if !held {
                return;
            }
            if started.elapsed() > LEASE_MAX_HOLD {
                self.abandon(&hash);
                return;
            }
            let renewed: redis::RedisResult<u8> = async {
                let mut conn = self.conn().await?;
                self.scripts
                    .lease
                    .key(&key)
                    .arg(&token)
                    .arg(LEASE_TTL.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
            }
            .await;
            if !matches!(renewed, Ok(1)) {
                // Lost (or Redis unreachable): another node may fetch too.
                let mut leases = self.leases.lock();
                if leases.get(&hash) == Some(&token) {
                    leases.remove(&hash);
                }
                return;
            }
        }
    }

    /// The token of the lease this node holds for `hash`, taken off the list of
    /// held leases: the caller's fill ([`SharedCache::put`]) releases it.
    pub fn take_lease(&self, hash: &[u8; 16]) -> Option<String> {
        self.leases.lock().remove(hash)
    }

    /// Gives up the lease for `hash`, if this node holds it (the fetch ended
    /// without a fill: an uncacheable answer, an error), so that waiting nodes
    /// fetch at once instead of waiting out the lease.
    pub fn abandon(&self, hash: &[u8; 16]) {
        if let Some(token) = self.take_lease(hash) {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return; // No runtime (shutdown): the lease expires by itself.
            };
            let this = self.clone();
            let hash = *hash;
            runtime.spawn(async move { this.release(hash, token).await });
        }
    }

    pub(super) async fn release(&self, hash: [u8; 16], token: String) {
        let key = format!("{}{}", self.names.lease, hex(&hash));
        let released: redis::RedisResult<u8> = async {
            let mut conn = self.conn().await?;
            self.scripts
                .lease
                .key(&key)
                .arg(&token)
                .arg(0)
                .invoke_async(&mut conn)
                .await
        }
        .await;
        if let Err(e) = released {
            tracing::debug!(target: "aside::cluster", error = %e, "shared cache tier: lease not released (it expires)");
        }
    }
}
