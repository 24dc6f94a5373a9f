//! What a batch does to the cache tables: fills, revalidations (`CacheUpdateMeta`),
//! deletes, soft expiries and purges, applied inside the writer's transaction
//! through the index-keeping primitives of `tables` and the selection of
//! `catalog`; the hot-tier changes are collected for the settler.

use std::sync::Arc;
use std::time::SystemTime;

use crate::clock::to_nanos;
use crate::cold::{Ctx, Hash};
use crate::hot::{HotKey, HotValue};
use crate::op::{done, Done, Op};
use crate::settle::HotUpdate;
use crate::tables::{Meta, WriteTables};
use crate::{PurgeMode, Result};

/// Applies one cache request (`CacheFill`, `CacheUpdateMeta`, `CacheDelete`,
/// `CacheExpire` or `CachePurge`; `Writer::apply` sends only these here). `Err`
/// only for storage errors (which abort the batch).
pub(crate) fn apply(
    op: Op,
    t: &mut WriteTables<'_>,
    m: &mut Meta,
    now: SystemTime,
    answers: &mut Vec<Done>,
    hot: &mut Vec<HotUpdate>,
) -> Result<()> {
    let now_n = to_nanos(now);
    match op {
        Op::CacheFill { entry, .. } => {
            t.cache_put(&entry, None, m)?;
            hot.push(HotUpdate::Put(
                HotKey::Cache(entry.hash),
                HotValue::Cache(entry),
            ));
        }
        Op::CacheUpdateMeta {
            hash,
            meta_internal,
            meta_header,
            fresh_until,
            stale_until,
            reply,
        } => {
            let found = t.cache_get(&hash)?.filter(|(e, _)| e.stale_until > now);
            let Some((mut e, loc)) = found else {
                answers.push(done(reply, Ok(false)));
                return Ok(());
            };
            // The hot tier gets the whole entry, so a body in a segment is read
            // back (from the page cache: it was just served).
            if let Some(l) = &loc {
                match t.bodies.read(l).ctx("reading a cache body")? {
                    Some(body) => e.body = body,
                    None => {
                        t.cache_delete(&hash, m)?;
                        hot.push(HotUpdate::Remove(HotKey::Cache(hash)));
                        answers.push(done(reply, Ok(false)));
                        return Ok(());
                    }
                }
            }
            e.meta_internal = meta_internal;
            e.meta_header = meta_header;
            e.fresh_until = fresh_until;
            e.stale_until = stale_until.max(fresh_until);
            e.soft_purged = false;
            t.cache_put(&e, loc, m)?;
            hot.push(HotUpdate::Put(
                HotKey::Cache(hash),
                HotValue::Cache(Arc::new(e)),
            ));
            answers.push(done(reply, Ok(true)));
        }
        Op::CacheDelete {
            hash,
            only_at,
            reply,
        } => {
            if let Some(loc) = only_at {
                let current = t.cache_get(&hash)?.and_then(|(_, at)| at);
                if current != Some(loc) {
                    answers.push(done(reply, Ok(false)));
                    return Ok(());
                }
            }
            let live = t.catalog().is_live(&hash, now_n)?;
            t.cache_delete(&hash, m)?;
            hot.push(HotUpdate::Remove(HotKey::Cache(hash)));
            answers.push(done(reply, Ok(live)));
        }
        Op::CacheExpire { hash, reply } => {
            let r = soft_expire(t, m, &hash, now, hot)?;
            answers.push(done(reply, Ok(r)));
        }
        Op::CachePurge {
            selector,
            mode,
            reply,
        } => {
            let selected = t.catalog().select(&selector)?;
            let mut n = 0u64;
            for h in selected {
                let live = t.catalog().is_live(&h, now_n)?;
                match mode {
                    PurgeMode::Hard => {
                        t.cache_delete(&h, m)?;
                        hot.push(HotUpdate::Remove(HotKey::Cache(h)));
                    }
                    PurgeMode::Soft => {
                        soft_expire(t, m, &h, now, hot)?;
                    }
                }
                n += u64::from(live);
            }
            answers.push(done(reply, Ok(n)));
        }
        _ => unreachable!("Writer::apply sends only cache requests here"),
    }
    Ok(())
}

fn soft_expire(
    t: &mut WriteTables<'_>,
    m: &mut Meta,
    hash: &Hash,
    now: SystemTime,
    hot: &mut Vec<HotUpdate>,
) -> Result<bool> {
    let Some((mut e, loc)) = t.cache_get(hash)?.filter(|(e, _)| e.stale_until > now) else {
        return Ok(false);
    };
    e.fresh_until = e.fresh_until.min(now);
    e.soft_purged = true;
    t.cache_put(&e, loc, m)?;
    // An entry whose body is in a segment leaves the hot tier rather than
    // having its body read back: a soft purge may select many entries.
    hot.push(match loc {
        None => HotUpdate::Put(HotKey::Cache(*hash), HotValue::Cache(Arc::new(e))),
        Some(_) => HotUpdate::Remove(HotKey::Cache(*hash)),
    });
    Ok(true)
}
