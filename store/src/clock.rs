//! Injectable time. Every expiry decision of the store asks its clock, so tests
//! move time with a [`MockClock`] instead of sleeping.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone, Debug)]
pub struct MockClock {
    /// Shared so that the test and the store (which holds a clone) see the same time.
    now: Arc<Mutex<SystemTime>>,
}

impl MockClock {
    pub fn new(start: SystemTime) -> MockClock {
        MockClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock();
        *now += by;
    }

    pub fn set(&self, to: SystemTime) {
        *self.now.lock() = to;
    }
}

impl Default for MockClock {
    /// Starts at 2024-01-01T00:00:00Z, a fixed point so tests are reproducible.
    fn default() -> Self {
        MockClock::new(UNIX_EPOCH + Duration::from_secs(1_704_067_200))
    }
}

impl Clock for MockClock {
    fn now(&self) -> SystemTime {
        *self.now.lock()
    }
}

/// Nanoseconds since the Unix epoch; times before 1970 clamp to 0 and times after
/// 2554 saturate (the on-disk format stores u64 nanoseconds).
pub(crate) fn to_nanos(t: SystemTime) -> u64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}

pub(crate) fn from_nanos(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(n)
}

/// Whole seconds, rounded up: the expiry index bucket of a deadline. An entry in
/// bucket `s` is expired once `now_secs_floor >= s`.
pub(crate) fn secs_ceil(t: SystemTime) -> u64 {
    let n = to_nanos(t);
    n.div_ceil(1_000_000_000)
}

pub(crate) fn secs_floor(t: SystemTime) -> u64 {
    to_nanos(t) / 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_clock_moves_only_when_told() {
        let c = MockClock::default();
        let t0 = c.now();
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now(), t0 + Duration::from_secs(5));
        let other = c.clone();
        other.set(t0);
        assert_eq!(c.now(), t0);
    }

    #[test]
    fn nanos_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(from_nanos(to_nanos(t)), t);
        assert_eq!(secs_ceil(t), 1_700_000_001);
        assert_eq!(secs_floor(t), 1_700_000_000);
    }
}
