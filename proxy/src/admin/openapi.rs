//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes by
//! registering the routes through `utoipa_axum`: a route cannot be served without being
//! documented, nor documented at another path than the one it is served at.

use std::sync::LazyLock;

use axum::routing::put;
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{cache, kv, ops, AdminState};

/// Axum route of the item endpoints: keys contain `/`, so it is a wildcard, which
/// `utoipa_axum` cannot express; the three handlers are listed in [`ApiDoc`] instead,
/// documented at `/kv/items/{key}`.
pub const ITEM_ROUTE: &str = "/kv/items/{*key}";

/// The document's fixed parts, plus the wildcard item routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aside admin API",
        description = "The application KV API, cache inspection and purge, health, reload and metrics. \
                       Every route but /healthz requires `Authorization: Bearer <token>`. \
                       Success bodies are `{\"data\": ...}`, errors `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(kv::put_item, kv::get_item, kv::delete_item, openapi_json),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "kv", description = "Application key-value items"),
        (name = "cache", description = "Cached HTTP responses"),
        (name = "ops", description = "Health, config reload, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every documented route, with its documentation.
pub fn api() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(kv::list_items))
        .routes(routes!(kv::get_many))
        .routes(routes!(kv::atomic))
        .routes(routes!(cache::list_entries))
        .routes(routes!(
            cache::get_entry,
            cache::put_entry,
            cache::delete_entry
        ))
        .routes(routes!(cache::purge))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::reload))
        .routes(routes!(ops::metrics))
        .route(
            ITEM_ROUTE,
            put(kv::put_item).get(kv::get_item).delete(kv::delete_item),
        )
}

static SPEC: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| api().split_for_parts().1);

/// The OpenAPI document of the admin API.
pub fn spec() -> &'static utoipa::openapi::OpenApi {
    &SPEC
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    responses(
        (status = 200, description = "OpenAPI 3.1 document of the admin API", content_type = "application/json"),
        (status = 401, description = "Missing or wrong token", body = super::error::ErrorBody),
    )
)]
pub async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(spec())
}
