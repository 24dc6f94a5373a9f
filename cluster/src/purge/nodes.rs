//! Reading `P{purge}:nodes` back: the node list of `GET /cluster`, and `wait`
//! (poll until every live node has applied an entry).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::event::StreamId;
use super::{now_ms, Purges};

/// One node as it last reported itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub id: String,
    /// Its proxy address.
    pub address: String,
    /// Unix ms of its last heartbeat.
    pub last_heartbeat_ms: u64,
    /// Stream ID of the last purge it applied (or skipped as its own).
    pub last_applied: String,
    /// Purges published that it has not applied yet.
    pub lag: u64,
    /// Heard from within 3 heartbeat intervals.
    pub live: bool,
}

/// Every node that ever reported, and the stream's latest sequence number.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    pub nodes: Vec<NodeView>,
    pub last_seq: u64,
}

/// Which live nodes applied a purge in time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitOutcome {
    pub confirmed: Vec<String>,
    pub unconfirmed: Vec<String>,
}

#[derive(Default)]
struct Fields {
    id: String,
    seq: u64,
    ts: u64,
    addr: String,
}

impl Purges {
    /// The nodes as recorded in Redis.
    ///
    /// # Errors
    /// Redis unreachable (or standalone: `Ok` with no node).
    pub async fn cluster(&self) -> redis::RedisResult<ClusterView> {
        let Some((mut conn, inner)) = self.query_conn().await else {
            return Ok(ClusterView::default());
        };
        let (all, seq): (BTreeMap<String, String>, Option<u64>) = redis::pipe()
            .cmd("HGETALL")
            .arg(&inner.names.nodes)
            .cmd("GET")
            .arg(&inner.names.seq)
            .query_async(&mut conn)
            .await?;
        let last_seq = seq.unwrap_or(0);
        let mut by_node: BTreeMap<String, Fields> = BTreeMap::new();
        for (field, value) in all {
            let Some((node, what)) = field.rsplit_once(':') else {
                continue;
            };
            let f = by_node.entry(node.to_owned()).or_default();
            match what {
                "id" => f.id = value,
                "seq" => f.seq = value.parse().unwrap_or(0),
                "ts" => f.ts = value.parse().unwrap_or(0),
                "addr" => f.addr = value,
                _ => {}
            }
        }
        let window = 3 * inner.settings.heartbeat_interval.as_millis() as u64;
        let now = now_ms();
        let nodes = by_node
            .into_iter()
            .map(|(id, f)| NodeView {
                id,
                address: f.addr,
                last_heartbeat_ms: f.ts,
                last_applied: f.id,
                lag: last_seq.saturating_sub(f.seq),
                live: now.saturating_sub(f.ts) <= window,
            })
            .collect();
        Ok(ClusterView { nodes, last_seq })
    }

    /// Polls until every live node has applied `id`, or `timeout` passes.
    ///
    /// # Errors
    /// Redis unreachable at every poll.
    pub async fn wait_applied(
        &self,
        id: StreamId,
        timeout: Duration,
    ) -> redis::RedisResult<WaitOutcome> {
        let deadline = Instant::now() + timeout;
        let mut last: Option<redis::RedisResult<WaitOutcome>> = None;
        loop {
            let outcome = self.cluster().await.map(|view| {
                let mut o = WaitOutcome::default();
                for n in view.nodes.into_iter().filter(|n| n.live) {
                    let applied = StreamId::parse(&n.last_applied).is_some_and(|at| at >= id);
                    if applied {
                        o.confirmed.push(n.id);
                    } else {
                        o.unconfirmed.push(n.id);
                    }
                }
                o
            });
            let done = matches!(&outcome, Ok(o) if o.unconfirmed.is_empty());
            // Keep the last good answer if Redis fails at the very end.
            if outcome.is_ok() || last.is_none() {
                last = Some(outcome);
            }
            if done || Instant::now() >= deadline {
                return last.unwrap_or_else(|| Ok(WaitOutcome::default()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
