//! Fills in progress on this node, so that requests arriving during a miss
//! storm wait for the fill and are then answered by the fresh-hit fast path
//! (`proxy::fast_hit`), not one by one through pingora's cache lock and hit
//! state machine, which costs several times as much per request.
//!
//! The first request whose lookup misses both local tiers registers the hash
//! (the one pingora's cache lock then lets fetch); it is done when its fill is
//! in the store, when it turns out not to fill (an uncacheable response), or
//! at the request's end, whichever comes first. A waiter's wait is bounded by
//! its caller; after it, the waiter looks again and, if the entry is still not
//! a plain fresh one, goes pingora's way as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// A fill in progress: its owner's registration id, and the sender whose drop
/// lets its waiters go.
type InProgress = (u64, watch::Sender<()>);

/// The registry. One per storage.
#[derive(Debug, Default)]
pub(crate) struct Fills {
    in_progress: parking_lot::Mutex<HashMap<[u8; 16], InProgress>>,
    next_id: AtomicU64,
}

/// What one request registered (see [`Fills::start`]); in `KeyInfo`, so that
/// the lookup can record it, and in the request's context, so that its end
/// releases it.
#[derive(Debug, Default)]
pub struct FillSlot {
    taken: parking_lot::Mutex<Option<([u8; 16], u64)>>,
}

impl Fills {
    /// After a lookup missed both local tiers: registers `hash` for `slot`'s
    /// request unless another request already did.
    pub(crate) fn start(&self, hash: &[u8; 16], slot: &FillSlot) {
        let mut map = self.in_progress.lock();
        if map.contains_key(hash) {
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        map.insert(*hash, (id, watch::channel(()).0));
        drop(map);
        *slot.taken.lock() = Some((*hash, id));
    }

    /// The fill of `hash` is in the store (or never will be): its waiters go.
    pub(crate) fn done(&self, hash: &[u8; 16]) {
        // Dropping the sender ends every receiver's `changed()`.
        self.in_progress.lock().remove(hash);
    }

    /// What `slot`'s request registered, if it is still registered, is done
    /// (the request ends, or will not fill).
    pub(crate) fn release(&self, slot: &FillSlot) {
        let Some((hash, id)) = slot.taken.lock().take() else {
            return;
        };
        let mut map = self.in_progress.lock();
        if map.get(&hash).is_some_and(|(owner, _)| *owner == id) {
            map.remove(&hash);
        }
    }

    /// A receiver whose `changed()` ends when the fill of `hash` in progress
    /// is done; `None` when there is none.
    pub(crate) fn watch(&self, hash: &[u8; 16]) -> Option<watch::Receiver<()>> {
        self.in_progress
            .lock()
            .get(hash)
            .map(|(_, tx)| tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_go_when_the_fill_is_done_and_only_the_owner_releases() {
        let fills = Fills::default();
        let (a, b) = (FillSlot::default(), FillSlot::default());
        let h = [7u8; 16];
        assert!(fills.watch(&h).is_none());
        fills.start(&h, &a);
        fills.start(&h, &b); // already registered: b takes nothing
        let mut rx = fills.watch(&h).unwrap();
        fills.release(&b);
        assert!(fills.watch(&h).is_some(), "only the owner releases");
        let waiter = tokio::spawn(async move { rx.changed().await.is_err() });
        fills.done(&h);
        assert!(waiter.await.unwrap(), "the waiter is let go");
        assert!(fills.watch(&h).is_none());
        // A new fill of the same hash is not ended by the old owner's release.
        fills.start(&h, &b);
        fills.release(&a);
        assert!(fills.watch(&h).is_some());
        fills.release(&b);
        assert!(fills.watch(&h).is_none());
    }
}
