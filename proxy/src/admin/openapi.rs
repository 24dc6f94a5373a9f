//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes by
//! registering the routes through `utoipa_axum`: a route cannot be served without being
//! documented, nor documented at another path than the one it is served at.

use std::sync::LazyLock;

use axum::routing::put;
use axum::Json;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{cache, cluster, kv, ops, stats, warm, AdminState};

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
        .routes(routes!(cluster::cluster))
        .routes(routes!(warm::start))
        .routes(routes!(warm::status))
        .routes(routes!(stats::series))
        .routes(routes!(stats::top))
        .routes(routes!(stats::config))
        .route(
            ITEM_ROUTE,
            put(kv::put_item).get(kv::get_item).delete(kv::delete_item),
        )
}

static SPEC: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| api().split_for_parts().1);

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(spec()).unwrap_or_default();
    add_key_patterns(&mut doc);
    doc
});

/// The OpenAPI document of the admin API, as generated from the attributes.
pub fn spec() -> &'static utoipa::openapi::OpenApi {
    &SPEC
}

/// The document as served: [`spec`] plus the key patterns (utoipa takes only literal
/// patterns, and these are built from one part's expression).
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// Control characters (Unicode Cc), which the store refuses in keys.
const CC: &str = r"\x00-\x1f\x7f-\x9f";

/// One key part: no `/`, no control character, not `.` or `..` (no look-ahead: the
/// expression must mean the same in ECMA 262 and in the generators of API testers).
fn part_re() -> String {
    format!(r"(?:[^/.{CC}][^/{CC}]*|\.[^/.{CC}][^/{CC}]*|\.\.[^/{CC}]+)")
}

/// A whole key: parts separated by `/`.
pub fn key_pattern() -> String {
    let part = part_re();
    format!("^{part}(?:/{part})*$")
}

/// The `{key}` path parameter: OpenAPI percent-encodes a `/` in a parameter value, and
/// the server refuses `%2F`, so as a parameter a key is one part.
pub fn path_key_pattern() -> String {
    format!("^{}$", part_re())
}

/// Sets the key patterns: on the `key` path parameters, on every `key` property of a
/// request body and on the items of `keys`.
fn add_key_patterns(doc: &mut Value) {
    let key = key_pattern();
    let path_key = path_key_pattern();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut() {
                let params = op.get_mut("parameters").and_then(Value::as_array_mut);
                for param in params.into_iter().flatten() {
                    if param["in"] == "path" && param["name"] == "key" {
                        param["schema"]["pattern"] = Value::String(path_key.clone());
                    }
                }
            }
        }
    }
    let schemas = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut);
    for (name, schema) in schemas.into_iter().flatten() {
        if name.ends_with("Body") {
            set_key_patterns(schema, &key);
        }
        // `deny_unknown_fields` holds for each variant of the tagged mutation too.
        if name == "MutationBody" {
            let variants = schema.get_mut("oneOf").and_then(Value::as_array_mut);
            for variant in variants.into_iter().flatten() {
                variant["additionalProperties"] = Value::Bool(false);
            }
        }
    }
}

fn set_key_patterns(schema: &mut Value, key: &str) {
    match schema {
        Value::Object(map) => {
            if let Some(props) = map.get_mut("properties").and_then(Value::as_object_mut) {
                if let Some(k) = props.get_mut("key") {
                    k["pattern"] = Value::String(key.to_owned());
                }
                if let Some(items) = props.get_mut("keys").and_then(|k| k.get_mut("items")) {
                    items["pattern"] = Value::String(key.to_owned());
                    items["minLength"] = Value::from(1);
                    items["maxLength"] = Value::from(512);
                }
            }
            for v in map.values_mut() {
                set_key_patterns(v, key);
            }
        }
        Value::Array(list) => list.iter_mut().for_each(|v| set_key_patterns(v, key)),
        _ => {}
    }
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
pub async fn openapi_json() -> Json<&'static Value> {
    Json(document())
}
