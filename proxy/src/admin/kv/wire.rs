//! The KV API's wire shapes: request bodies, query parameters and answers,
//! with their OpenAPI schemas.

use aside_store::JsonText;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::admin::extract::ttl_seconds;

/// One stored item as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemView {
    #[schema(example = "notes/abc-123")]
    pub key: String,
    /// Any JSON value, exactly as it was written: key order, number spelling and string
    /// escapes are kept (whitespace between tokens is not).
    #[schema(value_type = serde_json::Value)]
    pub value: JsonText,
    /// Opaque; changes on every write. Use it in `If-Match` or atomic checks.
    pub version: String,
    /// RFC 3339, or null when the item does not expire.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// The result of a write.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteView {
    pub key: String,
    pub version: String,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// `PUT /kv/items/{key}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PutBody {
    /// Any JSON value (at most 1 MiB without the whitespace between tokens, by default),
    /// stored as written: key order and number spelling come back unchanged.
    #[schema(value_type = serde_json::Value)]
    pub value: JsonText,
    /// Time to live in whole seconds (1 s to 365 days by default); absent or null = no expiry.
    #[serde(default, deserialize_with = "ttl_seconds")]
    #[schema(minimum = 1, maximum = 31_536_000)]
    pub ttl_seconds: Option<u64>,
}

/// A page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListView {
    pub items: Vec<ItemView>,
    /// How many items match the query in total (all pages).
    pub total: u64,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub cursor: Option<String>,
}

/// `GET /kv/items` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only keys under this prefix (whole parts: `notes` matches `notes/a`, not `notesx`).
    pub prefix: Option<String>,
    /// First key (inclusive).
    pub start: Option<String>,
    /// Last key (exclusive).
    pub end: Option<String>,
    /// Page size, 1 to 1000. Default 100. A page ends earlier when its items would make
    /// an answer over 16 MiB; `cursor` then continues after the last item answered.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `cursor` of the previous page.
    pub cursor: Option<String>,
    /// Descending key order. Default false.
    pub reverse: Option<bool>,
}

/// `POST /kv/get-many` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetManyBody {
    /// At most 1000 keys; a key named several times is read once.
    #[schema(max_items = 1000)]
    pub keys: Vec<String>,
}

/// `POST /kv/get-many` answer: the items in the order of the keys, null for missing ones.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetManyView {
    pub items: Vec<Option<ItemView>>,
}

/// `POST /kv/atomic` body: all checks must hold, then all mutations commit together.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AtomicBody {
    #[serde(default)]
    pub checks: Vec<CheckBody>,
    #[serde(default)]
    pub mutations: Vec<MutationBody>,
}

/// The key must currently have `version`; a null (or absent) version means the key must be absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    #[schema(min_length = 1, max_length = 512)]
    pub key: String,
    pub version: Option<String>,
}

/// One mutation of an atomic call.
// Read through `MutationWire`: serde buffers an internally tagged enum, which would
// decode `value` and lose its text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(
    tag = "type",
    rename_all = "lowercase",
    deny_unknown_fields,
    try_from = "MutationWire"
)]
pub enum MutationBody {
    Set {
        #[schema(min_length = 1, max_length = 512)]
        key: String,
        #[schema(value_type = serde_json::Value)]
        value: JsonText,
        #[serde(rename = "ttlSeconds", default, deserialize_with = "ttl_seconds")]
        #[schema(minimum = 1, maximum = 31_536_000)]
        ttl_seconds: Option<u64>,
    },
    Delete {
        #[schema(min_length = 1, max_length = 512)]
        key: String,
    },
    /// Adds `delta` (default 1) to a numeric value; an absent key counts as 0.
    Increment {
        #[schema(min_length = 1, max_length = 512)]
        key: String,
        /// A JSON number: integers add exactly within the signed 64-bit range (an
        /// integer outside it is refused with 409 `integer_out_of_range`), a fraction or
        /// exponent on either side adds as a double.
        #[serde(default = "one")]
        #[schema(value_type = f64)]
        delta: JsonText,
        #[serde(rename = "ttlSeconds", default, deserialize_with = "ttl_seconds")]
        #[schema(minimum = 1, maximum = 31_536_000)]
        ttl_seconds: Option<u64>,
    },
}

fn one() -> JsonText {
    JsonText::from_i64(1)
}

/// The wire form of a [`MutationBody`]: a plain struct (never buffered, so `value` keeps
/// its text), checked for the fields each type allows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutationWire {
    #[serde(rename = "type")]
    kind: MutationKind,
    key: String,
    value: Option<JsonText>,
    #[serde(default, deserialize_with = "number_text")]
    delta: Option<JsonText>,
    #[serde(rename = "ttlSeconds", default, deserialize_with = "ttl_seconds")]
    ttl_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum MutationKind {
    Set,
    Delete,
    Increment,
}

/// A JSON number, kept as text. Called only when the field is present, so an
/// explicit `null` is refused like any other non-number (absent means 1).
fn number_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<JsonText>, D::Error> {
    let text = Some(JsonText::deserialize(d)?);
    match text {
        Some(t) if !t.is_number() => Err(serde::de::Error::custom(format!(
            "invalid type: {t}, expected a JSON number"
        ))),
        other => Ok(other),
    }
}

impl TryFrom<MutationWire> for MutationBody {
    type Error = String;

    fn try_from(w: MutationWire) -> Result<Self, String> {
        let refuse = |field: &str, kind: &str| {
            Err(format!("unknown field `{field}` for a `{kind}` mutation"))
        };
        match w.kind {
            MutationKind::Set => {
                if w.delta.is_some() {
                    return refuse("delta", "set");
                }
                let value = w.value.ok_or("missing field `value`")?;
                Ok(MutationBody::Set {
                    key: w.key,
                    value,
                    ttl_seconds: w.ttl_seconds,
                })
            }
            MutationKind::Delete => {
                if w.value.is_some() {
                    return refuse("value", "delete");
                }
                if w.delta.is_some() {
                    return refuse("delta", "delete");
                }
                if w.ttl_seconds.is_some() {
                    return refuse("ttlSeconds", "delete");
                }
                Ok(MutationBody::Delete { key: w.key })
            }
            MutationKind::Increment => {
                if w.value.is_some() {
                    return refuse("value", "increment");
                }
                Ok(MutationBody::Increment {
                    key: w.key,
                    delta: w.delta.unwrap_or_else(one),
                    ttl_seconds: w.ttl_seconds,
                })
            }
        }
    }
}

/// The new version of each mutated key, in mutation order (null after a delete).
#[derive(Debug, Serialize, ToSchema)]
pub struct AtomicView {
    pub versions: Vec<KeyVersion>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyVersion {
    pub key: String,
    pub version: Option<String>,
}
