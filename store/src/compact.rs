//! Compaction of body segments (see `bodies`): when expired and replaced
//! entries leave a segment mostly dead but not empty (long-lived bodies among
//! short-lived ones), the writer moves its live bodies to the active segment, a
//! bounded slice per GC pass, until the segment holds none and is deleted after
//! the next durable commit.
//!
//! A segment is a candidate when its live bytes are under two thirds of its
//! length, so the segment files never take more than about 1.5 x the bytes of
//! the bodies they hold (plus the active segment and one being compacted).
//!
//! Compaction keeps pace with the churn: besides a slice per GC pass, every
//! write batch that frees body bytes (replacements, evictions, purges) walks up
//! to three times as many (a candidate is at most two-thirds live, so walking
//! 3 x bytes reclaims at least the x freed), bounded per batch. Under heavy
//! churn a writer busy with durable commits runs few GC passes, and a slice
//! per pass fell behind: segment files reached 1.7 x the bytes held in a soak.
//! Moving a body rewrites only its record (`WriteTables::cache_relocate`): the
//! indexes and the LRU order stay as they are. A crash mid-compaction is safe:
//! the moved records become durable only with a durable commit, before which
//! the new copies are synced, and the old segment is deleted only after one.

use std::collections::HashSet;

use crate::cold::Ctx;
use crate::tables::WriteTables;
use crate::Result;

/// Bytes of segments walked (and at most moved) per GC pass.
pub(crate) const SLICE_BYTES: u64 = 8 * 1024 * 1024;

/// Bytes walked per freed byte in a write batch (see the module docs).
pub(crate) const WALK_PER_FREED: u64 = 3;

/// The most a write batch walks for the bytes it freed (bounds its latency;
/// the rest is left for the next batches and GC passes).
pub(crate) const BATCH_MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub(crate) struct Compactor {
    /// The segment being compacted and the offset to continue from.
    current: Option<(u32, u64)>,
    /// Segments walked to the end: not picked again (what is left in them is a
    /// body that did not read back whole, which compaction cannot move).
    walked: HashSet<u32>,
}

impl Compactor {
    /// Walks up to about `budget` bytes of candidate segments (moving their
    /// live bodies), going on to the next candidate when one is done. Returns
    /// whether more compaction work is due.
    pub(crate) fn step(&mut self, t: &mut WriteTables<'_>, budget: u64) -> Result<bool> {
        let mut left = budget;
        while left > 0 {
            if self.current.is_none() {
                self.current = self.pick(t).map(|id| (id, 0));
            }
            let Some((id, from)) = self.current else {
                return Ok(false);
            };
            let (found, next) = t
                .bodies
                .walk(id, from, left)
                .ctx("reading a body segment")?;
            let walked: u64 = found.iter().map(|(_, loc)| loc.span()).sum();
            for (hash, loc) in found {
                t.cache_relocate(&hash, &loc)?;
            }
            left = left.saturating_sub(walked.max(1));
            match next {
                Some(pos) => self.current = Some((id, pos)),
                None => {
                    self.current = None;
                    self.walked.insert(id);
                }
            }
        }
        Ok(self.current.is_some() || self.pick(t).is_some())
    }

    /// The candidate with the smallest live share, if any.
    fn pick(&mut self, t: &WriteTables<'_>) -> Option<u32> {
        let active = t.bodies.active();
        let segments = t.bodies.segments();
        self.walked
            .retain(|id| segments.iter().any(|(s, _)| s == id));
        segments
            .into_iter()
            .filter(|(id, _)| Some(*id) != active && !self.walked.contains(id))
            .filter_map(|(id, len)| {
                let live = *t.seg_live.get(&id)?;
                (live.saturating_mul(3) < len.saturating_mul(2)).then_some((id, live, len))
            })
            .min_by(|a, b| {
                (u128::from(a.1) * u128::from(b.2)).cmp(&(u128::from(b.1) * u128::from(a.2)))
            })
            .map(|(id, _, _)| id)
    }
}
