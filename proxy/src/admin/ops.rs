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
    #[schema(example = "ok")]
    pub status: &'static str,
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
    responses((status = 200, description = "The admin API is serving", body = Data<Health>))
)]
pub async fn healthz() -> Json<Data<Health>> {
    Json(Data {
        data: Health { status: "ok" },
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
    let text = crate::metrics::render(&state.store.stats());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
