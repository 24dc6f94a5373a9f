//! Waiting in tests.
//!
//! A test waits for something the process does in the background (a request
//! reaching the origin, a purge reaching another node, a metric moving) by
//! polling for it with [`eventually`], never by sleeping a guessed time.
//!
//! Tests do sleep for time itself to pass: a `max-age=1` response turning stale
//! (`sleep(1100 ms)`), a breaker's open period, a budget's next second. The
//! binary runs on the system clock because freshness, `Age` and `Date` are
//! computed against it and against the origin's `Date`; a mock clock would
//! have to be a test-only time source inside the production binary and the
//! origin both. The store's own tests, which run in-process, use
//! `aside_store::MockClock` instead and do not sleep.

use std::time::{Duration, Instant};

/// Poll `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
