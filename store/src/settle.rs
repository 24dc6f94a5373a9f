//! The settler: what is left of a batch after its commit (`Settle`), applied by
//! a second thread in commit order (hot-tier changes, fills out of `pending`,
//! answers) while the writer builds the next transaction. The writer starts the
//! thread and hands it each batch (`Writer::start_settler`, `Writer::settle`).

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OwnedSemaphorePermit;

use crate::hot::{HotKey, HotTier, HotValue};
use crate::op::Done;
use crate::pending::PendingFills;
use crate::CacheEntry;

/// Committed batches waiting for the settler thread; the writer waits when it
/// is this far ahead, so that unanswered work stays bounded.
pub(crate) const SETTLE_QUEUE: usize = 2;

/// What is left of a batch after its commit: hot-tier changes, answers and the
/// fills to take out of `pending`. Settled strictly in commit order (one FIFO
/// consumer), so the hot tier never goes back in time, and each caller is
/// answered only once its write is in both tiers.
pub(crate) struct Settle {
    pub(crate) hot: Vec<HotUpdate>,
    pub(crate) answers: Vec<Done>,
    /// The commit failed with this message: answer errors, change nothing.
    pub(crate) failed: Option<String>,
    pub(crate) filled: Vec<Arc<CacheEntry>>,
    /// Released once the fills are out of `pending`.
    pub(crate) budget: Vec<OwnedSemaphorePermit>,
}

impl Settle {
    pub(crate) fn run(
        self,
        tier: &HotTier,
        pending: &Mutex<PendingFills>,
        rt: &tokio::runtime::Runtime,
    ) {
        let Settle {
            hot,
            answers,
            failed,
            filled,
            budget,
        } = self;
        if !hot.is_empty() {
            rt.block_on(async {
                for u in hot {
                    match u {
                        HotUpdate::Put(k, v) => tier.put(k, v).await,
                        HotUpdate::Remove(k) => tier.remove(&k).await,
                    }
                }
            });
        }
        // After the hot tier has them: a lookup finds a fill in `pending` or in
        // the hot tier (or, if moka refused it, in the committed cold tier).
        if !filled.is_empty() {
            let mut pending = pending.lock();
            for e in &filled {
                // Unless a newer fill of the same hash (still queued) replaced it.
                if pending.get(&e.hash).is_some_and(|p| Arc::ptr_eq(p, e)) {
                    pending.remove(&e.hash);
                }
            }
        }
        drop(budget);
        for a in answers {
            a(failed.as_deref());
        }
    }
}

/// A hot-tier change, applied after the commit.
pub(crate) enum HotUpdate {
    Put(HotKey, HotValue),
    Remove(HotKey),
}
