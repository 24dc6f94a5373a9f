//! `GET /cluster`: the nodes sharing purges through Redis, as they last reported.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::kv::rfc3339;
use super::{AdminState, Data};

/// One node of the cluster.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// `[cluster] node-id`, or `<hostname>:<proxy port>`.
    pub id: String,
    /// Its proxy listener.
    pub address: String,
    #[schema(format = DateTime)]
    pub last_heartbeat: Option<String>,
    /// Stream ID of the last purge it applied.
    pub last_applied_purge: String,
    /// Purges published that it has not applied yet.
    pub lag: u64,
    /// Heard from within 3 heartbeat intervals.
    pub live: bool,
}

/// `GET /cluster` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// False when this node has no `[cluster]` section (then `nodes` is empty).
    pub enabled: bool,
    /// This node's id.
    pub node: Option<String>,
    /// Sequence number of the latest purge in the stream.
    pub last_purge_seq: u64,
    pub nodes: Vec<NodeInfo>,
}

/// The nodes sharing purges, with their last heartbeat, last applied purge and lag.
#[utoipa::path(
    get,
    path = "/cluster",
    tag = "ops",
    responses(
        (status = 200, description = "Every node that reported to Redis (a stopped node stays listed, `live: false`)", body = Data<ClusterInfo>),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 503, description = "Redis is unreachable", body = ErrorBody),
    )
)]
pub async fn cluster(State(state): State<AdminState>) -> Result<Json<Data<ClusterInfo>>, ApiError> {
    let view = state.purges.cluster().await.map_err(|e| {
        tracing::warn!(error = %e, "GET /cluster: Redis unreachable");
        ApiError::KvUnavailable("cannot reach Redis".to_owned())
    })?;
    let nodes = view
        .nodes
        .into_iter()
        .map(|n| {
            let at = std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::from_millis(n.last_heartbeat_ms);
            Ok(NodeInfo {
                id: n.id,
                address: n.address,
                last_heartbeat: rfc3339(Some(at))?,
                last_applied_purge: n.last_applied,
                lag: n.lag,
                live: n.live,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(Data {
        data: ClusterInfo {
            enabled: state.purges.enabled(),
            node: state.purges.node_id().map(str::to_owned),
            last_purge_seq: view.last_seq,
            nodes,
        },
    }))
}
