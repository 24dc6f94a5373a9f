//! What a batch does to the KV table: the `Set`, `Delete` and `Atomic` requests,
//! applied inside the writer's transaction. A request's conditions are checked
//! before it changes anything, so a failed one is only an answer; the hot-tier
//! changes are collected for the settler.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::clock::{from_nanos, to_nanos};
use crate::hot::{HotKey, HotValue, KvRecord};
use crate::op::{done, Done, Op, Prepared};
use crate::settle::HotUpdate;
use crate::tables::{deadline, Meta, WriteTables};
use crate::{
    increment, AtomicResult, Check, Error, JsonText, KvItem, Result, SetCondition, Version,
};

/// Applies one KV request (`Set`, `Delete` or `Atomic`; `Writer::apply` sends
/// only these here). `Err` only for storage errors (which abort the batch); a
/// failed condition is an answer, recorded in `answers`.
pub(crate) fn apply(
    op: Op,
    t: &mut WriteTables<'_>,
    m: &mut Meta,
    now: SystemTime,
    answers: &mut Vec<Done>,
    hot: &mut Vec<HotUpdate>,
    max_value_bytes: usize,
) -> Result<()> {
    let now_n = to_nanos(now);
    match op {
        Op::Set {
            key,
            value,
            ttl,
            condition,
            reply,
        } => {
            // Only a condition needs the current version (a read of the tree
            // the write then walks again).
            let current = || -> Result<Option<Version>> {
                Ok(t.kv_get(&key)?
                    .filter(|r| r.is_live(now_n))
                    .map(|r| r.version()))
            };
            let ok = match &condition {
                SetCondition::Always => true,
                SetCondition::IfVersion(v) => current()?.as_ref() == Some(v),
                SetCondition::IfAbsent => current()?.is_none(),
            };
            if !ok {
                answers.push(done(reply, Err(Error::PreconditionFailed { key })));
                return Ok(());
            }
            let version = m.take_version();
            let expires = ttl.map(|d| deadline(now, d)).unwrap_or(0);
            t.kv_put(&key, version, expires, value.as_str().as_bytes(), m)?;
            let item = KvItem {
                key: key.clone(),
                value: value.clone(),
                version: Version::from_u64(version),
                expires_at: (expires != 0).then(|| from_nanos(expires)),
            };
            hot.push(kv_hot(key, value, version, expires));
            answers.push(done(reply, Ok(item)));
        }
        Op::Delete { key, reply } => {
            let old = t.kv_delete(&key, m)?;
            let existed = old.is_some_and(|r| r.is_live(now_n));
            hot.push(HotUpdate::Remove(HotKey::Kv(key.into())));
            answers.push(done(reply, Ok(existed)));
        }
        Op::Atomic {
            checks,
            mutations,
            reply,
        } => {
            let r = atomic(t, m, now, checks, mutations, hot, max_value_bytes)?;
            answers.push(done(reply, r));
        }
        _ => unreachable!("Writer::apply sends only KV requests here"),
    }
    Ok(())
}

/// Checks, then plans every mutation against the current state (reads only),
/// then writes: a failed check or increment leaves nothing written.
fn atomic(
    t: &mut WriteTables<'_>,
    m: &mut Meta,
    now: SystemTime,
    checks: Vec<Check>,
    mutations: Vec<Prepared>,
    hot: &mut Vec<HotUpdate>,
    max_value_bytes: usize,
) -> Result<Result<AtomicResult>> {
    let now_n = to_nanos(now);
    for c in checks {
        let actual = t
            .kv_get(&c.key)?
            .filter(|r| r.is_live(now_n))
            .map(|r| r.version());
        if actual != c.version {
            return Ok(Err(Error::CheckFailed {
                key: c.key,
                expected: c.version,
                actual,
            }));
        }
    }
    // key -> planned state (None = deleted): later mutations see earlier ones.
    struct Planned {
        value: JsonText,
        expires: u64,
    }
    let mut overlay: HashMap<String, Option<Arc<Planned>>> = HashMap::new();
    let mut plan: Vec<(String, Option<Arc<Planned>>)> = Vec::with_capacity(mutations.len());
    for mutation in mutations {
        let (key, state) = match mutation {
            Prepared::Set { key, value, ttl } => {
                let expires = ttl.map(|d| deadline(now, d)).unwrap_or(0);
                (key, Some(Arc::new(Planned { value, expires })))
            }
            Prepared::Delete { key } => (key, None),
            Prepared::Increment { key, delta, ttl } => {
                let current: Option<(JsonText, u64)> = match overlay.get(&key) {
                    Some(Some(p)) => Some((p.value.clone(), p.expires)),
                    Some(None) => None,
                    None => match t.kv_get(&key)?.filter(|r| r.is_live(now_n)) {
                        Some(raw) => {
                            let exp = raw.expires_at;
                            let item = crate::cold::item_from_raw(key.clone(), raw)?;
                            Some((item.value, exp))
                        }
                        None => None,
                    },
                };
                let cur_exp = current.as_ref().map_or(0, |c| c.1);
                let value = match increment(current.as_ref().map(|c| &c.0), &delta, &key) {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                };
                if value.len() > max_value_bytes {
                    return Ok(Err(Error::ValueTooLarge {
                        size: value.len(),
                        max: max_value_bytes,
                    }));
                }
                let expires = ttl.map(|d| deadline(now, d)).unwrap_or(cur_exp);
                (key, Some(Arc::new(Planned { value, expires })))
            }
        };
        overlay.insert(key.clone(), state.clone());
        plan.push((key, state));
    }
    let mut versions = Vec::with_capacity(plan.len());
    for (key, state) in plan {
        match state {
            Some(p) => {
                let version = m.take_version();
                t.kv_put(&key, version, p.expires, p.value.as_str().as_bytes(), m)?;
                hot.push(kv_hot(key.clone(), p.value.clone(), version, p.expires));
                versions.push((key, Some(Version::from_u64(version))));
            }
            None => {
                t.kv_delete(&key, m)?;
                hot.push(HotUpdate::Remove(HotKey::Kv(key.as_str().into())));
                versions.push((key, None));
            }
        }
    }
    Ok(Ok(AtomicResult { versions }))
}

fn kv_hot(key: String, value: JsonText, version: u64, expires: u64) -> HotUpdate {
    HotUpdate::Put(
        HotKey::Kv(key.into()),
        HotValue::Kv(Arc::new(KvRecord {
            version: Version::from_u64(version),
            expires_at: (expires != 0).then(|| from_nanos(expires)),
            value,
        })),
    )
}
