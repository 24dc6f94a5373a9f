//! The single-key operations and the listing.

use std::time::Duration;

use aside_store::key::{
    check_value, key_from_stored, normalize_prefix, stored_key, stored_prefix_end, validate_key,
    validate_ttl,
};
use aside_store::{
    decode_cursor, encode_cursor, Error, JsonText, KvItem, ListPage, ListQuery, Result,
    SetCondition, Version, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
};

/// The KV operations, untimed; the trait impl counts each in `REDIS_LATENCY`.
use super::{bound, corrupt, expiry, item, item_from_fields, ttl_ms, unavailable, Fields, RedisKv};

impl RedisKv {
    pub(super) async fn op_get(&self, key: &str) -> Result<Option<KvItem>> {
        validate_key(key, &self.limits)?;
        let mut conn = self.conn().await?;
        let fields: Fields = redis::cmd("HMGET")
            .arg(self.names.item(&stored_key(key)))
            .arg("v")
            .arg("ver")
            .arg("exp")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        item_from_fields(key, fields)
    }

    pub(super) async fn op_set(
        &self,
        key: &str,
        value: JsonText,
        ttl: Option<Duration>,
        condition: SetCondition,
    ) -> Result<KvItem> {
        validate_key(key, &self.limits)?;
        validate_ttl(ttl, &self.limits)?;
        check_value(&value, &self.limits)?;
        let member = stored_key(key);
        let (mode, expected) = match &condition {
            SetCondition::Always => ("any", String::new()),
            SetCondition::IfAbsent => ("absent", String::new()),
            SetCondition::IfVersion(v) => ("ver", v.as_u64().to_string()),
        };
        let mut conn = self.conn().await?;
        let reply: Vec<u64> = self
            .scripts
            .set
            .key(self.names.item(&member))
            .key(&self.names.idx)
            .key(&self.names.exp)
            .key(&self.names.seq)
            .arg(&member)
            .arg(value.as_str())
            .arg(ttl.map_or(0, ttl_ms).to_string())
            .arg(mode)
            .arg(expected)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match reply.as_slice() {
            [1, version, at] => Ok(KvItem {
                key: key.to_owned(),
                value,
                version: Version::from_u64(*version),
                expires_at: expiry(*at),
            }),
            [0] => Err(Error::PreconditionFailed {
                key: key.to_owned(),
            }),
            other => Err(corrupt(format!("set script answered {other:?}"))),
        }
    }

    pub(super) async fn op_delete(&self, key: &str) -> Result<bool> {
        validate_key(key, &self.limits)?;
        let member = stored_key(key);
        let mut conn = self.conn().await?;
        let n: u64 = self
            .scripts
            .delete
            .key(self.names.item(&member))
            .key(&self.names.idx)
            .key(&self.names.exp)
            .arg(&member)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }

    pub(super) async fn op_list(&self, query: ListQuery) -> Result<ListPage> {
        let limit = match query.limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n.min(MAX_LIST_LIMIT),
        };
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        // The window [lo, hi) and the page inside it: the same bounds as the
        // embedded store's listing, in ZRANGE BYLEX notation.
        let prefix = normalize_prefix(query.prefix.as_deref()).map(|p| stored_key(&p));
        let mut lo = prefix.clone();
        let mut hi = prefix.as_deref().map(stored_prefix_end);
        if let Some(s) = query.start.as_deref().map(stored_key) {
            if lo.as_ref().is_none_or(|l| &s > l) {
                lo = Some(s);
            }
        }
        if let Some(e) = query.end.as_deref().map(stored_key) {
            if hi.as_ref().is_none_or(|h| &e < h) {
                hi = Some(e);
            }
        }
        let empty = ListPage {
            items: Vec::new(),
            total: 0,
            cursor: None,
        };
        if let (Some(l), Some(h)) = (&lo, &hi) {
            if l >= h {
                return Ok(empty);
            }
        }
        let win_lo = lo.as_deref().map_or(b"-".to_vec(), |l| bound(b'[', l));
        let win_hi = hi.as_deref().map_or(b"+".to_vec(), |h| bound(b'(', h));
        let (mut page_lo, mut page_hi) = (win_lo.clone(), win_hi.clone());
        let after = after.as_deref().map(stored_key);
        if let Some(after) = after.as_deref() {
            if query.reverse {
                if hi.as_deref().is_none_or(|h| after < h) {
                    page_hi = bound(b'(', after);
                }
            } else if lo.as_deref().is_none_or(|l| after >= l) {
                page_lo = bound(b'(', after);
            }
        }
        type Row = (Vec<u8>, Vec<u8>, String, String);
        let mut conn = self.conn().await?;
        let (rows, more, total): (Vec<Row>, u64, u64) = self
            .scripts
            .list
            .key(&self.names.idx)
            .key(&self.names.exp)
            .arg(&self.names.item)
            .arg(win_lo)
            .arg(win_hi)
            .arg(page_lo)
            .arg(page_hi)
            .arg(limit)
            .arg(if query.reverse { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut items = Vec::with_capacity(rows.len());
        for (member, value, version, exp) in rows {
            let key =
                key_from_stored(&member).ok_or_else(|| corrupt("kv key in Redis (not UTF-8)"))?;
            items.push(item(key, &value, &version, &exp)?);
        }
        let cursor = (more == 1)
            .then(|| items.last().map(|i| encode_cursor(&i.key)))
            .flatten();
        Ok(ListPage {
            items,
            total,
            cursor,
        })
    }

    pub(super) async fn op_get_many(&self, keys: &[String]) -> Result<Vec<Option<KvItem>>> {
        for k in keys {
            validate_key(k, &self.limits)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.fields_of(keys.iter().map(String::as_str)).await?;
        keys.iter()
            .zip(rows)
            .map(|(k, f)| item_from_fields(k, f))
            .collect()
    }
}
