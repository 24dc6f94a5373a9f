//! `GET /stats/series`, `GET /stats/top` and `GET /admin/config`: what the
//! dashboard shows without Prometheus (see [`crate::stats`]).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::QueryParams;
use super::{AdminState, Data};
use crate::stats::{Series, Top, HITTERS, RECORDER};

/// Most items `GET /stats/top` returns per list.
pub const MAX_TOP: usize = 100;

/// Requests per cache status, origin figures per upstream and the tiers, one
/// point per 10 seconds over the last hour (oldest first; only completed intervals).
#[utoipa::path(
    get,
    path = "/stats/series",
    tag = "ops",
    responses(
        (status = 200, description = "The series", body = Data<Series>),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    )
)]
pub async fn series() -> Json<Data<Series>> {
    Json(Data {
        data: RECORDER.series(),
    })
}

/// `GET /stats/top` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TopParams {
    /// Items per list, 1 to 100. Default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
}

/// The most requested URLs and hosts since start, with their hit ratio
/// (approximate: a bounded space-saving summary; `error` bounds each count's over-estimate).
#[utoipa::path(
    get,
    path = "/stats/top",
    tag = "ops",
    params(TopParams),
    responses(
        (status = 200, description = "Heavy hitters, most requested first", body = Data<Top>),
        (status = 400, description = "Bad `limit`", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    )
)]
pub async fn top(QueryParams(params): QueryParams<TopParams>) -> Result<Json<Data<Top>>, ApiError> {
    let limit = match params.limit {
        None => 20,
        Some(n @ 1..=MAX_TOP) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_TOP}, got {n}"
            )))
        }
    };
    Ok(Json(Data {
        data: HITTERS.top(limit),
    }))
}

/// `GET /admin/config` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunningConfig {
    /// The config file, or null when started with `--to`.
    pub path: Option<String>,
    /// The running configuration as TOML, every value explicit (command-line
    /// overrides applied); upstream header values and Redis passwords are `***`.
    pub text: String,
}

/// The running configuration, secrets masked.
#[utoipa::path(
    get,
    path = "/admin/config",
    tag = "ops",
    responses(
        (status = 200, description = "The configuration in force", body = Data<RunningConfig>),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    )
)]
pub async fn config(State(state): State<AdminState>) -> Json<Data<RunningConfig>> {
    Json(Data {
        data: RunningConfig {
            path: state
                .config_path
                .as_deref()
                .map(|p| p.display().to_string()),
            text: state.config.load().to_toml_masked(),
        },
    })
}
