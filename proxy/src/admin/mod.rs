//! The admin REST API, served on its own listener (loopback by default).
//!
//! Architecture: [`router`] assembles the routes of [`kv`] (the application KV API),
//! [`cache`] (inspect / inject / purge cached responses) and [`ops`] (health, reload,
//! metrics), documented by their `#[utoipa::path]` attributes, from which [`openapi`]
//! builds `/openapi.json`. Layers, outermost first: admin request metrics, the body size
//! limit, bearer authentication ([`auth`]). Every failure is an [`error::ApiError`], the
//! one mapping to a status and a `{"error": {"code", "message"}}` body; extractors in
//! [`extract`] turn malformed input into such errors.

pub mod auth;
pub mod cache;
pub mod cluster;
pub mod error;
pub mod extract;
pub mod kv;
pub mod listener;
pub mod openapi;
pub mod ops;
pub mod stats;
pub mod ui;
pub mod warm;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;

pub use auth::resolve_token;
pub use error::ApiError;

/// Smallest request body limit; raised to fit the store's value limit when that is larger.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Everything the handlers need: one `Arc`, so the clones axum makes per
/// request cost one reference count (fields read through `Deref`).
#[derive(Clone)]
pub struct AdminState(Arc<AdminParts>);

impl AdminState {
    /// Shares `parts` with every handler.
    pub fn new(parts: AdminParts) -> AdminState {
        AdminState(Arc::new(parts))
    }
}

impl std::ops::Deref for AdminState {
    type Target = AdminParts;

    fn deref(&self) -> &AdminParts {
        &self.0
    }
}

/// The fields of [`AdminState`].
pub struct AdminParts {
    /// The engine behind the cached responses (and the KV API when standalone).
    pub store: aside_store::Store,
    /// Where the KV API reads and writes: the store above when standalone, Redis
    /// with `[cluster]` (then a Redis outage is a 503, never divergent local data).
    pub kv: aside_cluster::SharedKv,
    /// Purge fan-out to the other nodes (`Purges::default()` when standalone).
    pub purges: aside_cluster::Purges,
    /// The live config (swapped on reload): the cache endpoints map URLs through its routes.
    pub config: Arc<arc_swap::ArcSwap<aside_policies::Config>>,
    /// The bearer token every request but `/healthz` must present (already resolved).
    pub token: Arc<str>,
    /// Re-reads the config file; `Ok` lists changed settings that only a restart
    /// applies, `Err` carries the validation message for the client.
    pub reload: Arc<crate::reload::ReloadFn>,
    /// The config file (`None` when started with `--to`), for `GET /admin/config`.
    pub config_path: Option<Arc<std::path::Path>>,
    /// Each upstream's circuit breaker state (`closed`, `half-open`, `open`), for `/metrics`.
    pub breakers: Arc<BreakersFn>,
    /// The first plain HTTP proxy listener as bound (a configured port 0
    /// resolved), which warm-ups send their requests to; `None` without one.
    pub proxy: Option<std::net::SocketAddr>,
}

/// Reads every upstream's circuit breaker state: `(upstream, state)`.
pub type BreakersFn = dyn Fn() -> Vec<(String, &'static str)> + Send + Sync;

/// The success envelope: `{"data": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Data<T> {
    pub data: T,
}

/// The whole admin API router (auth applied to everything but `/healthz`).
pub fn router(state: AdminState) -> Router {
    let body_limit = MAX_BODY_BYTES.max(state.store.limits().max_value_bytes + 64 * 1024);
    let (api, _spec) = openapi::api().split_for_parts();
    api.route("/openapi.json", get(openapi::openapi_json))
        .route(ui::PREFIX, get(ui::redirect))
        .route("/ui/", get(ui::index))
        .route("/ui/{*path}", get(ui::file))
        // After every route: applies to all of them. Axum adds `Allow`.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(extract::BodyLimit(body_limit)))
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

pub use listener::{serve, AdminLimits};

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound {
        code: "no_route",
        message: format!("no route for {method} {}", uri.path()),
    }
}

async fn count_requests(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    crate::metrics::record_admin_request(response.status().as_u16());
    response
}
