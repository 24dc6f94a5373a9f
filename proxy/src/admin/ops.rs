//! Operational endpoints: `/healthz`, `/admin/reload`, `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::{AdminState, Data};

/// `GET /healthz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` in cluster mode while Redis is unreachable or purges
    /// wait to be sent (the node keeps serving from its own tiers).
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Cluster mode only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterHealth>,
}

/// The cluster part of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHealth {
    /// `up` or `down` (as of the last Redis call of the purge fan-out).
    pub redis: &'static str,
    /// Purges applied here and kept on disk until Redis answers.
    pub queued_purges: u64,
}

/// `POST /admin/reload` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reloaded {
    pub reloaded: bool,
    /// Settings that changed in the file but only take effect at the next
    /// restart (listeners, threads, connection buffers, the admin token, the store).
    #[schema(example = json!(["store"]))]
    pub restart_needed: Vec<String>,
}

/// Liveness probe; the only route that needs no token.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    security(()),
    responses((status = 200, description = "The admin API is serving (also when `degraded`)", body = Data<Health>))
)]
pub async fn healthz(State(state): State<AdminState>) -> Json<Data<Health>> {
    let cluster = state.purges.stats().map(|s| ClusterHealth {
        redis: if s.redis_down() { "down" } else { "up" },
        queued_purges: s.queued.load(std::sync::atomic::Ordering::Relaxed),
    });
    let degraded = cluster
        .as_ref()
        .is_some_and(|c| c.redis == "down" || c.queued_purges > 0);
    Json(Data {
        data: Health {
            status: if degraded { "degraded" } else { "ok" },
            cluster,
        },
    })
}

/// Re-read the config file (same as SIGHUP). A bad file is rejected and the old config keeps serving;
/// `restartNeeded` names changed settings that only a restart applies.
#[utoipa::path(
    post,
    path = "/admin/reload",
    tag = "ops",
    responses(
        (status = 200, description = "The new config is live", body = Data<Reloaded>),
        (status = 400, description = "The file is invalid (the message names file, line and key); nothing changed", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    )
)]
pub async fn reload(State(state): State<AdminState>) -> Result<Json<Data<Reloaded>>, ApiError> {
    // Reloading reads a file: keep it off the async workers.
    let reload = state.reload.clone();
    let outcome = tokio::task::spawn_blocking(move || reload())
        .await
        .map_err(|e| ApiError::Internal(format!("reload task failed: {e}")))?;
    match outcome {
        Ok(restart_needed) => Ok(Json(Data {
            data: Reloaded {
                reloaded: true,
                restart_needed,
            },
        })),
        Err(message) => Err(ApiError::BadRequest {
            code: "invalid_config",
            message,
        }),
    }
}

/// Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    )
)]
pub async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut text = crate::metrics::render(&state.store.stats());
    crate::metrics::render_breakers(&mut text, &(state.breakers)());
    if let Some(stats) = state.purges.stats() {
        crate::metrics::render_cluster(&mut text, stats);
    }
    if let Some(shared) = state.purges.shared() {
        crate::metrics::render_shared(&mut text, shared.stats());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
