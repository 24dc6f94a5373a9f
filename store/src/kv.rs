//! The application KV namespace: JSON items under `/`-separated keys. Here are
//! the `Store` methods and the listing cursor; the value types are in `types`,
//! what a write does to the table in `apply_kv`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use crate::clock::to_nanos;
use crate::cold::{self, item_from_raw, Ctx, KvListPlan};
use crate::hot::{HotKey, HotValue, KvRecord};
use crate::key::{check_value, normalize_prefix, validate_key, validate_ttl};
use crate::op::{Op, Prepared};
use crate::{
    AtomicResult, Check, Error, JsonText, KvItem, ListPage, ListQuery, Mutation, Result,
    SetCondition, Store, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
};

/// The opaque listing cursor that continues after `key` (shared by every KV backend).
pub fn encode_cursor(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("k{key}"))
}

/// The key a cursor continues after.
///
/// # Errors
/// `InvalidCursor`.
pub fn decode_cursor(cursor: &str) -> Result<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| Error::InvalidCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::InvalidCursor)?;
    text.strip_prefix('k')
        .map(str::to_string)
        .ok_or(Error::InvalidCursor)
}

impl Store {
    /// The live item under `key`, from the hot tier or else the cold tier (then
    /// promoted).
    ///
    /// # Errors
    /// `Error::InvalidKey`; `Error::Io` when the file cannot be read.
    pub async fn get(&self, key: &str) -> Result<Option<KvItem>> {
        validate_key(key, &self.shared.limits)?;
        let now = self.shared.clock.now();
        let hkey = HotKey::Kv(Arc::from(key));
        if let Some(HotValue::Kv(rec)) = self.shared.hot.get(&hkey).await {
            return Ok(rec.is_live(now).then(|| KvItem {
                key: key.to_string(),
                value: rec.value.clone(),
                version: rec.version,
                expires_at: rec.expires_at,
            }));
        }
        let epoch = self.shared.hot.epoch(&hkey);
        let read = |txn: &redb::ReadTransaction, k: &str| {
            let table = txn.open_table(cold::KV).ctx("opening table kv_parts")?;
            cold::kv_get(&table, k)
        };
        // On this thread when the page cache holds it (see `nowait`).
        let raw = match self.read_inline(|txn| read(txn, key).map(Some)) {
            Some(raw) => raw?,
            None => {
                let k = key.to_string();
                self.read(move |txn| read(txn, &k)).await?
            }
        };
        let Some(raw) = raw.filter(|r| r.is_live(to_nanos(now))) else {
            return Ok(None);
        };
        let item = item_from_raw(key.to_string(), raw)?;
        let rec = KvRecord {
            version: item.version,
            expires_at: item.expires_at,
            value: item.value.clone(),
        };
        self.shared
            .hot
            .promote(hkey, HotValue::Kv(Arc::new(rec)), epoch)
            .await;
        Ok(Some(item))
    }

    /// Writes `value` under `key`, durably (fsync) before returning. The value's
    /// text is stored and returned as given.
    ///
    /// # Errors
    /// `InvalidKey`, `ValueTooLarge`, `InvalidTtl`, `PreconditionFailed` when the
    /// condition does not hold, `Io` when the commit fails.
    pub async fn set(
        &self,
        key: &str,
        value: impl Into<JsonText>,
        ttl: Option<Duration>,
        condition: SetCondition,
    ) -> Result<KvItem> {
        let value = value.into();
        let limits = &self.shared.limits;
        validate_key(key, limits)?;
        validate_ttl(ttl, limits)?;
        check_value(&value, limits)?;
        self.request(|reply| Op::Set {
            key: key.to_string(),
            value,
            ttl,
            condition,
            reply,
        })
        .await
    }

    /// Deletes `key` durably. Returns whether a live item existed.
    ///
    /// # Errors
    /// `InvalidKey`, `Io`.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key, &self.shared.limits)?;
        self.request(|reply| Op::Delete {
            key: key.to_string(),
            reply,
        })
        .await
    }

    /// Lists live items in key order: keys compare as sequences of `/`-separated
    /// parts, each part bytewise, so "a/b" < "a-b" < "ab" (part "a" < "a-b").
    /// `start` (inclusive), `end` (exclusive) and the cursor follow the same
    /// order; `reverse` walks it backwards.
    ///
    /// # Errors
    /// `InvalidCursor`, `Io`.
    pub async fn list(&self, query: ListQuery) -> Result<ListPage> {
        let limit = match query.limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n.min(MAX_LIST_LIMIT),
        };
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let plan = KvListPlan {
            prefix: normalize_prefix(query.prefix.as_deref()),
            start: query.start,
            end: query.end,
            after,
            limit,
            reverse: query.reverse,
        };
        let now = to_nanos(self.shared.clock.now());
        let listed = self
            .read(move |txn| {
                let table = txn.open_table(cold::KV).ctx("opening table kv_parts")?;
                cold::kv_list(&table, &plan, now)
            })
            .await?;
        let cursor = if listed.more {
            listed.items.last().map(|(k, _)| encode_cursor(k))
        } else {
            None
        };
        let items = listed
            .items
            .into_iter()
            .map(|(k, raw)| item_from_raw(k, raw))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListPage {
            items,
            total: listed.total,
            cursor,
        })
    }

    /// Several gets; the answer has the same order, `None` for missing keys.
    ///
    /// # Errors
    /// `InvalidKey` (for any key), `Io`.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<KvItem>>> {
        for k in keys {
            validate_key(k, &self.shared.limits)?;
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get(k).await?);
        }
        Ok(out)
    }

    /// Applies `mutations` if every check holds, all in one durable commit.
    ///
    /// # Errors
    /// `CheckFailed` naming the first failed check (nothing written), `NotANumber` /
    /// `Overflow` from an increment (nothing written), input errors, `Io`.
    pub async fn atomic(
        &self,
        checks: Vec<Check>,
        mutations: Vec<Mutation>,
    ) -> Result<AtomicResult> {
        let limits = &self.shared.limits;
        let count = checks.len() + mutations.len();
        if count > crate::config::MAX_ATOMIC_OPS {
            return Err(Error::TooManyOperations {
                count,
                max: crate::config::MAX_ATOMIC_OPS,
            });
        }
        for c in &checks {
            validate_key(&c.key, limits)?;
        }
        let mut prepared = Vec::with_capacity(mutations.len());
        for m in mutations {
            prepared.push(match m {
                Mutation::Set { key, value, ttl } => {
                    validate_key(&key, limits)?;
                    validate_ttl(ttl, limits)?;
                    check_value(&value, limits)?;
                    Prepared::Set { key, value, ttl }
                }
                Mutation::Delete { key } => {
                    validate_key(&key, limits)?;
                    Prepared::Delete { key }
                }
                Mutation::Increment { key, delta, ttl } => {
                    validate_key(&key, limits)?;
                    validate_ttl(ttl, limits)?;
                    if !delta.is_number() {
                        return Err(Error::NotANumber { key });
                    }
                    Prepared::Increment { key, delta, ttl }
                }
            });
        }
        self.request(|reply| Op::Atomic {
            checks,
            mutations: prepared,
            reply,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = encode_cursor("notes/a");
        assert_eq!(decode_cursor(&c).unwrap(), "notes/a");
        assert!(matches!(decode_cursor("!!"), Err(Error::InvalidCursor)));
        let not_ours = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("x");
        assert!(matches!(
            decode_cursor(&not_ours),
            Err(Error::InvalidCursor)
        ));
    }
}
