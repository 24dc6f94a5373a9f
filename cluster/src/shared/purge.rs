//! Keeping the shared copies in step: refreshes after revalidation, and purges.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use aside_store::{CacheEntry, CacheSelector, PurgeMode};

use super::{decode, hex, ms, now_ms, parse_hex, SharedCache, PURGE_BATCH};

impl SharedCache {
    /// After this node revalidated `hash` (a 304): the shared copy takes the new
    /// meta and freshness, so other nodes do not revalidate it again. Errors
    /// are logged and counted; callers do not wait for it.
    pub async fn refresh(
        &self,
        hash: [u8; 16],
        meta_internal: &[u8],
        meta_header: &[u8],
        fresh_until: SystemTime,
        stale_until: SystemTime,
    ) {
        let h = hex(&hash);
        let result: redis::RedisResult<u8> = async {
            let mut conn = self.conn().await?;
            crate::latency::timed(
                self.scripts
                    .refresh
                    .key(format!("{}{h}", self.names.entry))
                    .key(&self.names.expiry)
                    .arg(meta_internal)
                    .arg(meta_header)
                    .arg(ms(fresh_until))
                    .arg(ms(stale_until))
                    .arg(&h)
                    .invoke_async(&mut conn),
            )
            .await
        }
        .await;
        if let Err(e) = result {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "aside::cluster", error = %e, "shared cache tier: refresh after 304 failed");
        }
    }

    /// The live shared copies of every Vary variant of `url` (for `GET /cache/entry`).
    ///
    /// # Errors
    /// Redis unreachable or refusing.
    pub async fn entries_for_url(&self, url: &str) -> redis::RedisResult<Vec<CacheEntry>> {
        let mut conn = self.conn().await?;
        let members: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(&self.names.urls)
            .arg(format!("[{url}\n"))
            .arg(format!("[{url}\n\u{7f}"))
            .arg("LIMIT")
            .arg(0)
            .arg(64)
            .query_async(&mut conn)
            .await?;
        let mut entries = Vec::new();
        for member in members {
            let Some(hash) = member.rsplit_once('\n').and_then(|(_, h)| parse_hex(h)) else {
                continue;
            };
            let fields: std::collections::HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
                .arg(format!("{}{}", self.names.entry, hex(&hash)))
                .query_async(&mut conn)
                .await?;
            if let Some(entry) = decode(hash, fields).filter(|e| ms(e.stale_until) > now_ms()) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// Applies a purge to the shared tier: every entry the selector names (by
    /// URL, prefix, host, tag, hash, or everything), hard or soft.
    ///
    /// # Errors
    /// Redis unreachable or refusing: the purge fan-out keeps the event queued
    /// and calls again.
    pub async fn purge(
        &self,
        selector: &CacheSelector,
        mode: PurgeMode,
    ) -> redis::RedisResult<u64> {
        let soft = u8::from(mode == PurgeMode::Soft);
        let mut conn = self.conn().await?;
        let mut purged = 0;
        let mut ranges: Vec<(String, String)> = Vec::new();
        if selector.everything {
            ranges.push(("-".to_owned(), "+".to_owned()));
        }
        for url in &selector.urls {
            ranges.push((format!("[{url}\n"), format!("[{url}\n\u{7f}")));
        }
        for prefix in &selector.prefixes {
            ranges.push((format!("[{prefix}"), format!("[{prefix}\u{7f}")));
        }
        for (min, max) in ranges {
            let mut from = min;
            loop {
                let (n, last): (u64, String) = crate::latency::timed(
                    self.scripts
                        .purge_range
                        .key(&self.names.urls)
                        .key(&self.names.expiry)
                        .arg(&self.names.entry)
                        .arg(soft)
                        .arg(&from)
                        .arg(&max)
                        .arg(PURGE_BATCH)
                        .invoke_async(&mut conn),
                )
                .await?;
                purged += n;
                if last.is_empty() {
                    break;
                }
                from = format!("({last}");
            }
        }
        let mut hashes: Vec<String> = selector.hashes.iter().map(hex).collect();
        let sets = selector
            .hosts
            .iter()
            .map(|h| format!("{}{}", self.names.host, h.to_ascii_lowercase()))
            .chain(
                selector
                    .tags
                    .iter()
                    .map(|t| format!("{}{t}", self.names.tag)),
            );
        for set in sets {
            let members: Vec<String> = redis::cmd("SMEMBERS")
                .arg(&set)
                .query_async(&mut conn)
                .await?;
            hashes.extend(members);
            if soft == 0 {
                redis::cmd("UNLINK")
                    .arg(&set)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
        }
        for batch in hashes.chunks(PURGE_BATCH) {
            let mut invocation = self.scripts.purge_entries.prepare_invoke();
            invocation
                .key(&self.names.urls)
                .key(&self.names.expiry)
                .arg(&self.names.entry)
                .arg(soft);
            for h in batch {
                invocation.arg(h);
            }
            let n: u64 = crate::latency::timed(invocation.invoke_async(&mut conn)).await?;
            purged += n;
        }
        self.stats.purged.fetch_add(purged, Ordering::Relaxed);
        Ok(purged)
    }
}
