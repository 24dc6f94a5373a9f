//! The cache API's wire shapes: listed entries, details, parameters and
//! purge answers, with their OpenAPI schemas.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One cached response as listed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryView {
    /// Normalized URL (several entries share it when the origin varies on request headers).
    pub url: String,
    /// The entry's key (hex), distinguishing Vary variants.
    pub hash: String,
    pub host: String,
    pub status: u16,
    /// Body size in bytes.
    pub size: u64,
    /// `hot` or `cold` (this node), or `shared` (only in the cluster's shared
    /// tier, `GET /cache/entry` with `[cluster] shared-cache`).
    pub tier: &'static str,
    #[schema(format = DateTime)]
    pub stored_at: Option<String>,
    #[schema(format = DateTime)]
    pub fresh_until: Option<String>,
    #[schema(format = DateTime)]
    pub stale_until: Option<String>,
    pub tags: Vec<String>,
    /// Marked stale by a soft purge.
    pub soft_purged: bool,
}

/// A page of cached responses.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntriesView {
    pub entries: Vec<EntryView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub cursor: Option<String>,
}

/// One response header.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeaderView {
    pub name: String,
    pub value: String,
}

/// One stored variant of a URL, with its headers (and body when asked).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryDetail {
    #[serde(flatten)]
    pub entry: EntryView,
    pub headers: Vec<HeaderView>,
    /// The body: text when it is UTF-8, else base64 (see `bodyEncoding`). Only with `body=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `utf8` or `base64`. Only with `body=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<&'static str>,
}

/// Everything stored for one URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct UrlEntries {
    pub url: String,
    /// One per Vary variant.
    pub entries: Vec<EntryDetail>,
}

/// `GET /cache/entries` parameters (all combined with AND).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Normalized URL prefix, e.g. `http://api.example.com/v1/`.
    pub prefix: Option<String>,
    /// Host (`host[:port]`, case-insensitive).
    pub host: Option<String>,
    pub tag: Option<String>,
    /// Page size, 1 to 1000. Default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// `GET` / `DELETE /cache/entry` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EntryParams {
    /// Absolute URL as clients request it through the proxy, e.g. `http://api.example.com/v1/x?a=1`.
    pub url: String,
    /// Include the body (GET only). Default false.
    pub body: Option<bool>,
}

/// `PUT /cache/entry` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct InjectParams {
    /// Absolute URL as clients request it through the proxy.
    pub url: String,
    /// How long the response stays fresh, 1 s to 365 days (by default).
    #[param(minimum = 1, maximum = 31_536_000)]
    pub ttl_seconds: u64,
    /// Status of the stored response, 200 to 599. Default 200.
    #[param(minimum = 200, maximum = 599)]
    pub status: Option<u16>,
}

/// `PUT /cache/entry` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Injected {
    /// The normalized URL the entry is stored under.
    pub url: String,
}

/// `POST /cache/purge` body: entries matching ANY selector are purged.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PurgeBody {
    /// Absolute URLs (all Vary variants of each).
    pub urls: Vec<String>,
    /// Normalized URL prefixes.
    pub prefixes: Vec<String>,
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    /// Purge everything; must be explicit.
    pub everything: bool,
    /// Mark stale instead of removing: still usable for stale-while-revalidate,
    /// stale-if-error and revalidation.
    pub soft: bool,
    /// Only count.
    pub dry_run: bool,
    /// Cluster mode: wait up to this long (e.g. `"2s"`, at most 30s) until every live
    /// node has applied the purge; the answer says which did.
    #[schema(example = "2s")]
    pub wait: Option<String>,
}

/// How many entries a purge matched and removed (or marked stale).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeResult {
    pub matched: u64,
    /// 0 on a dry run.
    pub purged: u64,
    /// Cluster mode: the purge's entry in the shared purge stream; null when
    /// standalone, on a dry run, or while Redis is unreachable (then `queued`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_id: Option<String>,
    /// Cluster mode: Redis is unreachable; the purge is applied here and kept on
    /// disk until it can be sent to the other nodes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub queued: bool,
    /// With `wait`: the live nodes that applied the purge in time (this one included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<Vec<String>>,
    /// With `wait`: the live nodes that had not applied it when the wait ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unconfirmed: Option<Vec<String>>,
}
