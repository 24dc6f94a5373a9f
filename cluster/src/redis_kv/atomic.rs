//! `atomic`: checks and mutations over several keys, decided on a snapshot
//! and written by one script.

use std::collections::HashMap;

use aside_store::key::{check_value, stored_key, validate_key, validate_ttl};
use aside_store::{
    increment, AtomicResult, Check, Error, JsonText, Mutation, Result, Version, MAX_ATOMIC_OPS,
};
use redis::Value;

use super::{
    corrupt, parse_u64, ttl_ms, unavailable, Expiry, Planned, RedisKv, ATOMIC_RETRY_BUDGET,
};

impl RedisKv {
    pub(super) async fn op_atomic(
        &self,
        checks: Vec<Check>,
        mutations: Vec<Mutation>,
    ) -> Result<AtomicResult> {
        let limits = &self.limits;
        let count = checks.len() + mutations.len();
        if count > MAX_ATOMIC_OPS {
            return Err(Error::TooManyOperations {
                count,
                max: MAX_ATOMIC_OPS,
            });
        }
        for c in &checks {
            validate_key(&c.key, limits)?;
        }
        for m in &mutations {
            match m {
                Mutation::Set { key, value, ttl } => {
                    validate_key(key, limits)?;
                    validate_ttl(*ttl, limits)?;
                    check_value(value, limits)?;
                }
                Mutation::Delete { key } => validate_key(key, limits)?,
                Mutation::Increment { key, delta, ttl } => {
                    validate_key(key, limits)?;
                    validate_ttl(*ttl, limits)?;
                    if !delta.is_number() {
                        return Err(Error::NotANumber { key: key.clone() });
                    }
                }
            }
        }
        // Contenders back off for a random, growing while (capped at 32 ms),
        // so that one of them wins each round instead of all retrying in step.
        let deadline = std::time::Instant::now() + ATOMIC_RETRY_BUDGET;
        let mut attempt: u32 = 0;
        loop {
            if let Some(result) = self.try_atomic(&checks, &mutations).await? {
                return Ok(result);
            }
            attempt += 1;
            if std::time::Instant::now() >= deadline {
                return Err(Error::Unavailable {
                    reason: format!(
                        "the keys of this atomic call kept changing during {attempt} attempts; retry"
                    ),
                });
            }
            let cap_ms = 1u64 << attempt.min(5);
            let pause = rand::random_range(0..=cap_ms * 1000);
            tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
        }
    }
}

/// What a snapshot read of one key found.
#[derive(Clone)]
struct Seen {
    version: Option<String>,
    value: Option<JsonText>,
    exp: u64,
}

impl RedisKv {
    /// Reads what the call depends on (checked keys, incremented keys) in one
    /// MULTI/EXEC, decides on that snapshot (a failed check or a bad increment is
    /// answered from it, a consistent state), then lets the script write if the
    /// snapshot still holds. `Ok(None)`: a concurrent write moved a key; try again.
    async fn try_atomic(
        &self,
        checks: &[Check],
        mutations: &[Mutation],
    ) -> Result<Option<AtomicResult>> {
        let mut read: Vec<&str> = checks.iter().map(|c| c.key.as_str()).collect();
        for m in mutations {
            if let Mutation::Increment { key, .. } = m {
                read.push(key);
            }
        }
        read.sort_unstable();
        read.dedup();
        let mut seen: HashMap<&str, Seen> = HashMap::with_capacity(read.len());
        if !read.is_empty() {
            let rows = self.fields_of(read.iter().copied()).await?;
            for (k, (v, ver, exp)) in read.iter().zip(rows) {
                let s = match (v, ver) {
                    (Some(v), Some(ver)) => Seen {
                        value: Some(
                            JsonText::from_stored(&v)
                                .map_err(|e| corrupt(format!("kv value of {k:?} in Redis: {e}")))?,
                        ),
                        version: Some(ver),
                        exp: parse_u64(exp.as_deref().unwrap_or("0"), "expiry")?,
                    },
                    _ => Seen {
                        version: None,
                        value: None,
                        exp: 0,
                    },
                };
                seen.insert(k, s);
            }
        }
        // 1. The user's checks, on the snapshot.
        for c in checks {
            let actual = seen
                .get(c.key.as_str())
                .and_then(|s| s.version.as_deref())
                .map(|v| parse_u64(v, "version").map(Version::from_u64))
                .transpose()?;
            if actual != c.version {
                return Err(Error::CheckFailed {
                    key: c.key.clone(),
                    expected: c.version,
                    actual,
                });
            }
        }
        // 2. Plan: later mutations see earlier ones (as in the embedded store).
        #[derive(Clone)]
        enum Over {
            Value(JsonText, Expiry),
            Gone,
        }
        let mut overlay: HashMap<&str, Over> = HashMap::new();
        let mut implied: Vec<(&str, String)> = Vec::new();
        let mut plan = Vec::with_capacity(mutations.len());
        for m in mutations {
            match m {
                Mutation::Set { key, value, ttl } => {
                    let expiry = ttl.map_or(Expiry::None, |t| Expiry::Relative(ttl_ms(t)));
                    overlay.insert(key, Over::Value(value.clone(), expiry));
                    plan.push(Planned::Set {
                        key: key.clone(),
                        value: value.clone(),
                        expiry,
                    });
                }
                Mutation::Delete { key } => {
                    overlay.insert(key, Over::Gone);
                    plan.push(Planned::Delete { key: key.clone() });
                }
                Mutation::Increment { key, delta, ttl } => {
                    let (current, current_expiry) = match overlay.get(key.as_str()) {
                        Some(Over::Value(v, e)) => (Some(v.clone()), *e),
                        Some(Over::Gone) => (None, Expiry::None),
                        None => {
                            let s = seen.get(key.as_str()).cloned().unwrap_or(Seen {
                                version: None,
                                value: None,
                                exp: 0,
                            });
                            if !implied.iter().any(|(k, _)| *k == key.as_str()) {
                                implied.push((key, s.version.clone().unwrap_or_default()));
                            }
                            let e = if s.exp == 0 {
                                Expiry::None
                            } else {
                                Expiry::Absolute(s.exp)
                            };
                            (s.value, e)
                        }
                    };
                    let value = increment(current.as_ref(), delta, key)?;
                    if value.len() > self.limits.max_value_bytes {
                        return Err(Error::ValueTooLarge {
                            size: value.len(),
                            max: self.limits.max_value_bytes,
                        });
                    }
                    let expiry = ttl.map_or(current_expiry, |t| Expiry::Relative(ttl_ms(t)));
                    overlay.insert(key, Over::Value(value.clone(), expiry));
                    plan.push(Planned::Set {
                        key: key.clone(),
                        value,
                        expiry,
                    });
                }
            }
        }
        // 3. The script: the user's checks again, the implied ones, then the writes.
        let mut key_pos: HashMap<String, usize> = HashMap::new();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut pos = |k: &str| -> usize {
            *key_pos.entry(k.to_owned()).or_insert_with(|| {
                keys.push(self.names.item(&stored_key(k)));
                keys.len() + 3
            })
        };
        let mut args: Vec<Vec<u8>> = Vec::new();
        args.push((checks.len() + implied.len()).to_string().into_bytes());
        for c in checks {
            args.push(pos(&c.key).to_string().into_bytes());
            args.push(
                c.version
                    .map(|v| v.as_u64().to_string())
                    .unwrap_or_default()
                    .into_bytes(),
            );
            args.push(b"u".to_vec());
        }
        for (k, ver) in &implied {
            args.push(pos(k).to_string().into_bytes());
            args.push(ver.clone().into_bytes());
            args.push(b"i".to_vec());
        }
        args.push(plan.len().to_string().into_bytes());
        for p in &plan {
            match p {
                Planned::Set { key, value, expiry } => {
                    let (mode, num) = expiry.args();
                    args.push(b"set".to_vec());
                    args.push(pos(key).to_string().into_bytes());
                    args.push(stored_key(key));
                    args.push(value.as_str().as_bytes().to_vec());
                    args.push(mode.as_bytes().to_vec());
                    args.push(num.into_bytes());
                }
                Planned::Delete { key } => {
                    args.push(b"del".to_vec());
                    args.push(pos(key).to_string().into_bytes());
                    args.push(stored_key(key));
                    args.push(Vec::new());
                    args.push(b"n".to_vec());
                    args.push(b"0".to_vec());
                }
            }
        }
        let mut invocation = self.scripts.atomic.prepare_invoke();
        invocation
            .key(&self.names.idx)
            .key(&self.names.exp)
            .key(&self.names.seq);
        for k in &keys {
            invocation.key(k.as_slice());
        }
        for a in &args {
            invocation.arg(a.as_slice());
        }
        let mut conn = self.conn().await?;
        let reply: Vec<Value> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let status: i64 = reply
            .first()
            .map(redis::from_redis_value_ref)
            .transpose()
            .map_err(|e| corrupt(format!("atomic script answer: {e}")))?
            .unwrap_or(-1);
        match status {
            1 => {
                let versions: Vec<String> = reply
                    .get(1)
                    .map(redis::from_redis_value_ref)
                    .transpose()
                    .map_err(|e| corrupt(format!("atomic script answer: {e}")))?
                    .unwrap_or_default();
                let mut out = Vec::with_capacity(plan.len());
                for (p, v) in plan.iter().zip(versions) {
                    let key = match p {
                        Planned::Set { key, .. } | Planned::Delete { key } => key.clone(),
                    };
                    let version = if v.is_empty() {
                        None
                    } else {
                        Some(Version::from_u64(parse_u64(&v, "version")?))
                    };
                    out.push((key, version));
                }
                Ok(Some(AtomicResult { versions: out }))
            }
            0 => {
                // A user check held on the snapshot and failed in the script: a write
                // came in between. Answer with what the script saw.
                let i: usize = reply
                    .get(1)
                    .map(redis::from_redis_value_ref)
                    .transpose()
                    .map_err(|e| corrupt(format!("atomic script answer: {e}")))?
                    .unwrap_or(1);
                let actual: String = reply
                    .get(2)
                    .map(redis::from_redis_value_ref)
                    .transpose()
                    .map_err(|e| corrupt(format!("atomic script answer: {e}")))?
                    .unwrap_or_default();
                let c = checks
                    .get(i.saturating_sub(1))
                    .ok_or_else(|| corrupt("atomic script named no check"))?;
                let actual = if actual.is_empty() {
                    None
                } else {
                    Some(Version::from_u64(parse_u64(&actual, "version")?))
                };
                Err(Error::CheckFailed {
                    key: c.key.clone(),
                    expected: c.version,
                    actual,
                })
            }
            2 => Ok(None),
            other => Err(corrupt(format!("atomic script answered status {other}"))),
        }
    }
}
