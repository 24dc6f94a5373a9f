//! Garbage collection, run by the writer thread every `gc_interval` (and on
//! demand): expired KV items and cache entries past `stale_until` are found
//! through the expiry index (ordered by deadline, so a pass reads only what is
//! due), then, if the cold tier is over its byte budget, the least recently used
//! cache entries go ([`evict`], which the writer also runs at the end of every
//! batch that leaves the tier over budget). KV items are application data and
//! are never evicted for space, only when they expire.
//!
//! Each pass is bounded (`MAX_PER_PASS`) so that a large backlog cannot hold the
//! write transaction for long; the writer runs another pass soon when one was cut.

use redb::ReadableTable;

use crate::clock::{secs_floor, to_nanos};
use crate::cold::{self, Ctx, Hash};
use crate::hot::HotKey;
use crate::tables::{Meta, WriteTables};
use crate::Result;

pub(crate) const MAX_PER_PASS: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct GcReport {
    pub(crate) expired: u64,
    pub(crate) evicted: u64,
    /// Keys the hot tier must drop.
    pub(crate) removed: Vec<HotKey>,
    /// The pass stopped at `MAX_PER_PASS`; more work is due.
    pub(crate) more: bool,
}

pub(crate) fn collect(
    t: &mut WriteTables<'_>,
    m: &mut Meta,
    now: std::time::SystemTime,
    cold_capacity: u64,
) -> Result<GcReport> {
    let mut report = GcReport::default();
    let now_nanos = to_nanos(now);
    let now_secs = secs_floor(now);

    // 1. Expired entries, oldest deadline first. Bucket `s` holds deadlines in
    //    (s-1, s] seconds, so every bucket <= now_secs is due.
    let mut due: Vec<(u64, u8, Vec<u8>)> = Vec::new();
    for row in t
        .expiry
        .range::<(u64, u8, &[u8])>(..(now_secs + 1, 0u8, &[][..]))
        .ctx("reading the expiry index")?
    {
        let (k, _) = row.ctx("reading the expiry index")?;
        let (secs, kind, key) = k.value();
        if secs > now_secs {
            break;
        }
        due.push((secs, kind, key.to_vec()));
        if due.len() >= MAX_PER_PASS {
            report.more = true;
            break;
        }
    }
    for (secs, kind, key) in due {
        match kind {
            cold::KIND_KV => {
                // The row holds the stored form of the key.
                let Some(k) = crate::key::key_from_stored(&key) else {
                    t.expiry.remove((secs, kind, key.as_slice())).ctx("gc")?;
                    continue;
                };
                let k = k.as_str();
                let expired = t.kv_get(k)?.is_some_and(|r| !r.is_live(now_nanos));
                if expired {
                    t.kv_delete(k, m)?;
                    report.expired += 1;
                    report.removed.push(HotKey::Kv(k.into()));
                } else {
                    // A stale index row (should not happen): drop it alone.
                    t.expiry.remove((secs, kind, key.as_slice())).ctx("gc")?;
                }
            }
            _ => {
                let Ok(hash) = Hash::try_from(key.as_slice()) else {
                    t.expiry.remove((secs, kind, key.as_slice())).ctx("gc")?;
                    continue;
                };
                let expired = match t.cache.get(&hash).ctx("gc")? {
                    Some(g) => cold::cache_stale_until(g.value())? <= now_nanos,
                    None => false,
                };
                if expired {
                    t.cache_delete(&hash, m)?;
                    report.expired += 1;
                    report.removed.push(HotKey::Cache(hash));
                } else {
                    t.expiry.remove((secs, kind, key.as_slice())).ctx("gc")?;
                }
            }
        }
    }

    // 2. Over budget: least recently used cache entries.
    evict(t, m, cold_capacity, &mut report)?;
    Ok(report)
}

/// Evicts least recently used cache entries while the cold tier is over
/// `cold_capacity` (at most `MAX_PER_PASS`; `report.more` when cut short).
/// Also run by the writer at the end of any batch that leaves the tier over its
/// budget, so the budget holds between passes too.
pub(crate) fn evict(
    t: &mut WriteTables<'_>,
    m: &mut Meta,
    cold_capacity: u64,
    report: &mut GcReport,
) -> Result<()> {
    let mut budget = MAX_PER_PASS;
    while m.cold_bytes() > cold_capacity && budget > 0 {
        budget -= 1;
        let first = t
            .lru
            .first()
            .ctx("reading the lru index")?
            .map(|(k, _)| *k.value().1);
        let Some(hash) = first else {
            break;
        };
        if !t.cache_delete(&hash, m)? {
            // Orphan LRU row (should not happen): remove it so the loop progresses.
            let first_key = t.lru.first().ctx("gc")?.map(|(k, _)| k.value().0);
            if let Some(s) = first_key {
                t.lru.remove((s, &hash)).ctx("gc")?;
            }
            continue;
        }
        report.evicted += 1;
        report.removed.push(HotKey::Cache(hash));
    }
    if budget == 0 {
        report.more = true;
    }
    Ok(())
}
