//! The file model: what `conf/*.toml` may contain, exactly as written.
//!
//! Every field is optional (`serde(default)`), unknown keys are rejected
//! (`deny_unknown_fields`; `keys::first_unknown` finds them first with the
//! crate's message, so a new table here must be added to its walk) and keys
//! are kebab-case. Values stay as written
//! (durations and sizes as strings) so that `validate` can say which key is
//! wrong and what was expected; `validate` turns this into [`crate::Config`].
//! It also serializes, for [`crate::Config::to_toml`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// `[server]`: the proxy listener.
    pub server: FileServer,
    /// `[admin]`: the admin API listener.
    pub admin: FileAdmin,
    /// `[store]`: the two-tier store.
    pub store: FileStore,
    /// `[[upstream]]`: origins.
    #[serde(rename = "upstream")]
    pub upstreams: Vec<FileUpstream>,
    /// `[[route]]`: ordered routes.
    #[serde(rename = "route")]
    pub routes: Vec<FileRoute>,
    /// `[cluster]`: share KV and purges with other nodes through Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<FileCluster>,
}

/// One address or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `listen = "127.0.0.1:8080"`
    One(String),
    /// `listen = ["127.0.0.1:8080", "[::1]:8080"]`
    Many(Vec<String>),
}

/// Deserialized by hand rather than `#[serde(untagged)]`, whose error
/// ("data did not match any variant…") names neither the key's shape nor
/// what was wrong; every wrong shape gets the one message below.
impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, SeqAccess, Visitor};
        const EXPECTED: &str = "expected an address like \"127.0.0.1:8080\" or an array of them";

        struct Addrs;
        impl<'de> Visitor<'de> for Addrs {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(&EXPECTED["expected ".len()..])
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut all = Vec::new();
                while let Some(addr) = seq
                    .next_element::<String>()
                    .map_err(|_| de::Error::custom(EXPECTED))?
                {
                    all.push(addr);
                }
                Ok(OneOrMany::Many(all))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<OneOrMany, E> {
                Err(E::custom(EXPECTED))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<OneOrMany, E> {
                Err(E::custom(EXPECTED))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<OneOrMany, E> {
                Err(E::custom(EXPECTED))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<OneOrMany, E> {
                Err(E::custom(EXPECTED))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<OneOrMany, A::Error> {
                Err(de::Error::custom(EXPECTED))
            }
        }
        deserializer.deserialize_any(Addrs)
    }
}

impl OneOrMany {
    /// The addresses as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileServer {
    pub listen: Option<OneOrMany>,
    pub threads: Option<i64>,
    pub grace_period: Option<String>,
    pub keepalive_timeout: Option<String>,
    pub first_request_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub access_log: Option<bool>,
    pub read_buffer: Option<String>,
    pub write_buffer: Option<String>,
    pub tls: Option<FileTls>,
}

/// `[server.tls]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileTls {
    pub listen: Option<OneOrMany>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// `[admin]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileAdmin {
    pub listen: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub purge_allow: Option<Vec<String>>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<i64>,
    pub threads: Option<i64>,
}

/// `[cluster]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileCluster {
    pub redis: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub node_id: Option<String>,
    pub key_prefix: Option<String>,
    pub connect_timeout: Option<String>,
    pub command_timeout: Option<String>,
    pub heartbeat_interval: Option<String>,
    pub purge_stream_length: Option<i64>,
    pub shared_cache: Option<bool>,
    pub shared_max_object_size: Option<String>,
    pub shared_timeout: Option<String>,
    pub lease_wait: Option<String>,
}

/// `[store]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileStore {
    pub path: Option<String>,
    pub hot_capacity: Option<String>,
    pub cold_capacity: Option<String>,
    pub cold_cache: Option<String>,
    pub max_key_size: Option<String>,
    pub max_value_size: Option<String>,
    pub min_ttl: Option<String>,
    pub max_ttl: Option<String>,
}

/// `[[upstream]]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileUpstream {
    pub name: Option<String>,
    pub url: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub sni: Option<String>,
    pub verify_cert: Option<bool>,
    pub ca_file: Option<String>,
    pub max_concurrent: Option<i64>,
    pub rate_limit: Option<String>,
    pub burst: Option<i64>,
    pub queue_timeout: Option<String>,
    pub max_retry_after: Option<String>,
    pub breaker_failures: Option<i64>,
    pub breaker_window: Option<String>,
    pub breaker_cooldown: Option<String>,
    pub retry: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// `[[route]]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileRoute {
    pub name: Option<String>,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub methods: Option<Vec<String>>,
    pub upstream: Option<String>,
    pub cache: Option<bool>,
    pub bypass_headers: Option<Vec<String>>,
    pub bypass_cookies: Option<Vec<String>>,
    pub mode: Option<String>,
    pub ttl: Option<String>,
    pub default_ttl: Option<String>,
    pub min_ttl: Option<String>,
    pub max_ttl: Option<String>,
    pub heuristic_freshness: Option<String>,
    pub heuristic_max: Option<String>,
    pub stale_while_revalidate: Option<String>,
    pub stale_if_error: Option<String>,
    pub stale_if_unreachable: Option<String>,
    pub refresh_ahead: Option<String>,
    pub warm: Option<Vec<String>>,
    pub cacheable_statuses: Option<Vec<i64>>,
    pub cache_authorized: Option<bool>,
    pub set_cookie: Option<String>,
    pub tags: Option<Vec<String>>,
    pub max_object_size: Option<String>,
    pub status_ttl: Option<BTreeMap<String, String>>,
    pub key: Option<FileKey>,
}

/// `key = { ... }` of a route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileKey {
    pub ignore_query: Option<Vec<String>>,
    pub sort_query: Option<bool>,
    pub headers: Option<Vec<String>>,
}
