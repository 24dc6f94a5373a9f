//! The per-node reader: `XREAD BLOCK` on a connection of its own, from the
//! persisted cursor; applies other nodes' events, acknowledges in `P{purge}:nodes`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aside_store::{CacheSelector, PurgeMode};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamRangeReply, StreamReadReply};

use super::event::{Cursor, PurgeEvent, StreamId};
use super::queue::write_atomically;
use super::{now_ms, Inner};

/// Longest server-side block of one `XREAD` (never `BLOCK 0`: it would hang on
/// shutdown and on a half-open connection).
const BLOCK: Duration = Duration::from_secs(1);
/// Entries per read.
const BATCH: usize = 512;
/// Pause after a failed call before the next try.
const RETRY: Duration = Duration::from_millis(250);

const CURSOR_FILE: &str = "cluster-purge-cursor";

fn reader_connection(inner: &Inner) -> Option<ConnectionManager> {
    use redis::IntoConnectionInfo;
    let s = &inner.settings.redis;
    let mut info = s.url.as_str().into_connection_info().ok()?;
    let mut r = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    if let Some(u) = &s.username {
        r = r.set_username(u);
    }
    if let Some(p) = &s.password {
        r = r.set_password(p);
    }
    info = info.set_redis_settings(r);
    let client = redis::Client::open(info).ok()?;
    // The answer to a blocked XREAD comes after BLOCK: the timeout must exceed it.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(s.connect_timeout))
        .set_response_timeout(Some(BLOCK + s.command_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client, config).ok()
}

pub(super) async fn run(inner: Arc<Inner>) {
    let Some(mut conn) = reader_connection(&inner) else {
        tracing::error!(target: "aside::cluster", "purge reader: invalid Redis address");
        return;
    };
    let path = inner.settings.data_dir.join(CURSOR_FILE);
    let mut cursor = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| Cursor::parse(&t));
    if let Some(c) = cursor {
        tracing::info!(target: "aside::cluster", from = %c.id, seq = c.seq, "purge reader resumes");
    }
    let mut last_ack: Option<Instant> = None;
    loop {
        let Some(mut at) = cursor else {
            match tip(&inner, &mut conn).await {
                Ok(c) => {
                    tracing::info!(target: "aside::cluster", from = %c.id, seq = c.seq, "purge reader starts at the stream's end");
                    save(&path, c);
                    cursor = Some(c);
                }
                Err(e) => failed(&inner, &e).await,
            }
            continue;
        };
        let read: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&inner.names.log)
            .arg(at.id.to_string())
            .query_async(&mut conn)
            .await;
        let entries = match read {
            Ok(reply) => {
                inner.stats.up();
                reply
                    .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect::<Vec<_>>())
                    .unwrap_or_default()
            }
            Err(e) => {
                failed(&inner, &e).await;
                continue;
            }
        };
        if !entries.is_empty() {
            let first_seq = entries[0].get::<u64>("seq").unwrap_or(0);
            if first_seq != at.seq + 1 {
                gap(&inner, at, first_seq).await;
            }
            for entry in &entries {
                let Some(id) = StreamId::parse(&entry.id) else {
                    continue;
                };
                let seq = entry.get::<u64>("seq").unwrap_or(at.seq + 1);
                let origin = entry.get::<String>("origin").unwrap_or_default();
                if origin != inner.settings.node_id {
                    apply(&inner, entry.get::<String>("ev"), id).await;
                }
                at = Cursor { id, seq };
            }
            save(&path, at);
            cursor = Some(at);
        }
        let due = last_ack.is_none_or(|t| t.elapsed() >= inner.settings.heartbeat_interval);
        if !entries.is_empty() || due {
            match ack(&inner, &mut conn, at).await {
                Ok(()) => last_ack = Some(Instant::now()),
                Err(e) => failed(&inner, &e).await,
            }
        }
    }
}

async fn failed(inner: &Inner, e: &redis::RedisError) {
    if !inner.stats.redis_down() {
        tracing::warn!(target: "aside::cluster", error = %e, "purge reader: Redis unreachable; retrying");
    }
    inner.stats.down();
    tokio::time::sleep(RETRY).await;
}

/// The last entry of the stream (first start of a node: nothing older concerns it).
async fn tip(inner: &Inner, conn: &mut ConnectionManager) -> redis::RedisResult<Cursor> {
    let last: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&inner.names.log)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    if let Some(e) = last.ids.first() {
        if let Some(id) = StreamId::parse(&e.id) {
            return Ok(Cursor {
                id,
                seq: e.get("seq").unwrap_or(0),
            });
        }
    }
    let seq: Option<u64> = redis::cmd("GET")
        .arg(&inner.names.seq)
        .query_async(conn)
        .await?;
    Ok(Cursor {
        id: StreamId::default(),
        seq: seq.unwrap_or(0),
    })
}

/// Entries between the cursor and the first one read are gone (trimmed, or the
/// stream was reset): soft-purge everything rather than keep what they removed.
async fn gap(inner: &Inner, at: Cursor, first_seq: u64) {
    tracing::warn!(
        target: "aside::cluster",
        last_applied = %at.id, last_seq = at.seq, next_seq = first_seq,
        "purges were trimmed from the stream before this node applied them (or the stream was reset): soft-purging everything held here"
    );
    inner.stats.gaps.fetch_add(1, Ordering::Relaxed);
    let all = CacheSelector {
        everything: true,
        ..CacheSelector::default()
    };
    if let Err(e) = inner.store.cache_purge(&all, PurgeMode::Soft, false).await {
        tracing::error!(target: "aside::cluster", error = %e, "full soft purge failed");
    }
}

async fn apply(inner: &Inner, ev: Option<String>, id: StreamId) {
    let Some(event) = ev.and_then(|t| serde_json::from_str::<PurgeEvent>(&t).ok()) else {
        tracing::warn!(target: "aside::cluster", %id, "unreadable purge event skipped");
        return;
    };
    let (selector, mode) = event.selector();
    match inner.store.cache_purge(&selector, mode, false).await {
        Ok(n) => {
            inner.stats.applied.fetch_add(1, Ordering::Relaxed);
            inner
                .stats
                .lag_ms
                .store(now_ms().saturating_sub(id.ms), Ordering::Relaxed);
            tracing::debug!(target: "aside::cluster", %id, origin = %event.origin, purged = n, "purge applied");
        }
        Err(e) => {
            tracing::error!(target: "aside::cluster", %id, error = %e, "purge from another node failed here")
        }
    }
}

fn save(path: &std::path::Path, c: Cursor) {
    if let Err(e) = write_atomically(path, c.to_text().as_bytes()) {
        tracing::warn!(target: "aside::cluster", path = %path.display(), error = %e, "cannot save the purge cursor");
    }
}

/// Heartbeat plus the last applied entry.
async fn ack(inner: &Inner, conn: &mut ConnectionManager, at: Cursor) -> redis::RedisResult<()> {
    let node = &inner.settings.node_id;
    let now = now_ms();
    // The same round trip reads every node's heartbeat: the live count is what a
    // shared request budget falls back to dividing when Redis becomes unreachable.
    let ((), all): ((), std::collections::BTreeMap<String, String>) = redis::pipe()
        .cmd("HSET")
        .arg(&inner.names.nodes)
        .arg(format!("{node}:id"))
        .arg(at.id.to_string())
        .arg(format!("{node}:seq"))
        .arg(at.seq)
        .arg(format!("{node}:ts"))
        .arg(now)
        .arg(format!("{node}:addr"))
        .arg(&inner.settings.address)
        .cmd("HGETALL")
        .arg(&inner.names.nodes)
        .query_async(conn)
        .await?;
    let window = 3 * inner.settings.heartbeat_interval.as_millis() as u64;
    let live = all
        .iter()
        .filter(|(field, ts)| {
            field.ends_with(":ts")
                && ts
                    .parse::<u64>()
                    .is_ok_and(|ts| now.saturating_sub(ts) <= window)
        })
        .count() as u64;
    inner
        .stats
        .live_nodes
        .store(live.max(1), std::sync::atomic::Ordering::Relaxed);
    Ok(())
}
