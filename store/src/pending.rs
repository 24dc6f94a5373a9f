//! What the writer has not committed yet, shared between callers and the writer
//! thread: cache fills answered but still queued (`PendingFills`, consulted by
//! every lookup first), cold hits waiting to be written to the LRU index
//! (`Touches`), and cold reads in flight that concurrent lookups of one hash
//! share (`Inflight`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;

use crate::cold::Hash;

/// Cold hits remembered for the LRU index between two writer commits, and
/// hashes remembered as recently touched.
pub(crate) const MAX_PENDING_TOUCHES: usize = 65_536;

/// A cold hit moves its entry to the recent end of the LRU index at most once
/// per this interval: the LRU order only needs to be coarse, and each touch is
/// B-tree writes (and a record read) on the writer thread.
pub(crate) const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Cold hits for the writer to fold into the LRU index, at most one per hash per
/// [`TOUCH_INTERVAL`].
#[derive(Default)]
pub(crate) struct Touches {
    /// Not yet written.
    pending: Vec<Hash>,
    /// When each hash was last noted; pruned every `TOUCH_INTERVAL`.
    recent: HashMap<Hash, SystemTime>,
    pruned_at: Option<SystemTime>,
}

impl Touches {
    /// A cold hit of `h` at `now`. Dropped when the hash was noted within the
    /// interval, or under a flood (both bounds are `MAX_PENDING_TOUCHES`): the
    /// LRU order is an approximation anyway.
    pub(crate) fn note(&mut self, h: &Hash, now: SystemTime) {
        if let Some(at) = self.recent.get(h) {
            if now < *at + TOUCH_INTERVAL {
                return;
            }
        }
        if self.pending.len() >= MAX_PENDING_TOUCHES || self.recent.len() >= MAX_PENDING_TOUCHES {
            return;
        }
        self.pending.push(*h);
        self.recent.insert(*h, now);
    }

    /// Writer: the touches to write now; forgets hashes noted over an interval ago.
    pub(crate) fn take(&mut self, now: SystemTime) -> Vec<Hash> {
        if self.pruned_at.is_none_or(|at| now >= at + TOUCH_INTERVAL) {
            self.recent.retain(|_, at| now < *at + TOUCH_INTERVAL);
            self.pruned_at = Some(now);
        }
        std::mem::take(&mut self.pending)
    }
}

/// A cold read of one hash that other lookups may wait for.
pub(crate) struct Inflight {
    /// The hot-tier epoch of the hash's shard when the read was queued: a lookup
    /// that sees another epoch (a write committed since) must not share the
    /// read's older answer, and reads on its own.
    pub(crate) epoch: u64,
    pub(crate) waiters: Vec<oneshot::Sender<Option<ColdFound>>>,
}

/// What a cold read found: the entry, with its body unless the body is to be
/// streamed from its segment (file handle and location, see `stream`).
#[derive(Clone)]
pub(crate) struct ColdFound {
    pub(crate) entry: Arc<crate::CacheEntry>,
    pub(crate) external: Option<(Arc<std::fs::File>, crate::bodies::BodyLoc)>,
}

/// Queued, uncommitted cache fills by hash (the newest one per hash).
pub(crate) type PendingFills = std::collections::HashMap<Hash, Arc<crate::CacheEntry>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_hits_touch_at_most_once_per_interval() {
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        let mut t = Touches::default();
        t.note(&[1; 16], t0);
        t.note(&[1; 16], t0 + std::time::Duration::from_secs(1));
        assert_eq!(t.take(t0), vec![[1; 16]]);
        t.note(&[1; 16], t0 + std::time::Duration::from_secs(59));
        assert!(t.take(t0 + std::time::Duration::from_secs(59)).is_empty());
        let later = t0 + TOUCH_INTERVAL;
        t.note(&[1; 16], later);
        assert_eq!(t.take(later), vec![[1; 16]]);
    }
}
