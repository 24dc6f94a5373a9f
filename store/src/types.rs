//! The store's value types: KV items and the requests that change or list them,
//! cached responses and the filters and selectors over them. Plain data, plus
//! `increment`, the arithmetic every KV backend shares; the API that takes and
//! returns them is in `kv` and `cache`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::{AddError, Error, JsonText, Result, Version};

/// A cache entry's key hash (pingora's 16-byte combined cache key).
pub(crate) type Hash = [u8; 16];

/// Default and maximum page sizes of [`Store::list`](crate::Store::list).
pub const DEFAULT_LIST_LIMIT: usize = 100;
pub const MAX_LIST_LIMIT: usize = 1000;

/// One KV item as returned to callers.
#[derive(Clone, Debug, PartialEq)]
pub struct KvItem {
    pub key: String,
    /// The value's JSON text as it was written (see [`JsonText`]).
    pub value: JsonText,
    pub version: Version,
    pub expires_at: Option<SystemTime>,
}

/// Condition of a [`Store::set`](crate::Store::set).
#[derive(Clone, Debug)]
pub enum SetCondition {
    Always,
    /// Compare-and-swap: the key must currently have this version.
    IfVersion(Version),
    /// The key must be absent (or expired).
    IfAbsent,
}

/// A listing request. `limit` 0 means [`DEFAULT_LIST_LIMIT`]; larger than
/// [`MAX_LIST_LIMIT`] is clamped.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub prefix: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
    pub reverse: bool,
}

#[derive(Clone, Debug)]
pub struct ListPage {
    pub items: Vec<KvItem>,
    /// All live matches of prefix/start/end, ignoring cursor and limit.
    pub total: u64,
    /// Present when more items follow; pass it back as `ListQuery::cursor`.
    pub cursor: Option<String>,
}

/// An atomic check: the key has `version`, or is absent when `None`.
#[derive(Clone, Debug)]
pub struct Check {
    pub key: String,
    pub version: Option<Version>,
}

#[derive(Clone, Debug)]
pub enum Mutation {
    Set {
        key: String,
        value: JsonText,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
    },
    /// Adds `delta` to a number (an absent key counts as 0): i64 arithmetic when both
    /// are integer literals (overflow is an error), f64 when either has a fraction or
    /// an exponent; an integer literal outside i64 is refused (`IntegerOutOfRange`),
    /// never rounded. `delta` must be a JSON number. `ttl: None` keeps the item's
    /// current expiry. See [`increment`].
    Increment {
        key: String,
        delta: JsonText,
        ttl: Option<Duration>,
    },
}

#[derive(Clone, Debug)]
pub struct AtomicResult {
    /// Per mutation, in order: the key and its new version (`None` after a delete).
    pub versions: Vec<(String, Option<Version>)>,
}

/// The value an increment writes: `current` (absent = 0) plus `delta` (see
/// [`JsonText::add`]). Shared by every KV backend, so that they compute alike.
///
/// # Errors
/// `NotANumber`, `IntegerOutOfRange`, `Overflow`, each naming `key`.
pub fn increment(current: Option<&JsonText>, delta: &JsonText, key: &str) -> Result<JsonText> {
    let zero = JsonText::from_i64(0);
    current.unwrap_or(&zero).add(delta).map_err(|e| match e {
        AddError::NotANumber { .. } => Error::NotANumber {
            key: key.to_string(),
        },
        AddError::OutOfRange { delta } => Error::IntegerOutOfRange {
            key: key.to_string(),
            delta,
        },
        AddError::Overflow => Error::Overflow {
            key: key.to_string(),
        },
    })
}

/// One cached response, as stored.
#[derive(Clone, Debug)]
pub struct CacheEntry {
    /// pingora's combined (primary + Vary variance) hash.
    pub hash: [u8; 16],
    /// Readable normalized URL; several hashes may share one url (Vary variants).
    pub url: String,
    /// Lowercase host[:port], for host purges.
    pub host: String,
    pub tags: Vec<String>,
    pub status: u16,
    /// Opaque pingora CacheMeta blobs, stored as given.
    pub meta_internal: Bytes,
    pub meta_header: Bytes,
    pub body: Bytes,
    pub stored_at: SystemTime,
    pub fresh_until: SystemTime,
    /// >= fresh_until; never returned after this, GC deletes it.
    pub stale_until: SystemTime,
    pub soft_purged: bool,
}

/// A lookup's answer to serve (see [`Store::cache_hit`](crate::Store::cache_hit)).
#[derive(Debug)]
pub struct CacheHit {
    /// The entry; its `body` is empty when `stream` is set.
    pub entry: Arc<CacheEntry>,
    pub tier: Tier,
    /// A large disk-tier body, to read in chunks.
    pub stream: Option<crate::ColdBody>,
}

impl CacheEntry {
    pub(crate) fn is_live(&self, now: SystemTime) -> bool {
        self.stale_until > now
    }
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Hot,
    Cold,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Cold => "cold",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeMode {
    /// Delete the entries.
    Hard,
    /// Mark them stale (`fresh_until = now`), keep them for SWR / SIE / revalidation.
    Soft,
}

/// Listing filter: the AND of its fields; `prefix` is a plain url prefix.
#[derive(Clone, Debug, Default)]
pub struct CacheFilter {
    pub prefix: Option<String>,
    pub host: Option<String>,
    pub tag: Option<String>,
}

/// Purge selector: the UNION of its lists.
#[derive(Clone, Debug, Default)]
pub struct CacheSelector {
    pub urls: Vec<String>,
    pub prefixes: Vec<String>,
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    pub hashes: Vec<[u8; 16]>,
    pub everything: bool,
}

#[derive(Clone, Debug)]
pub struct CacheSummary {
    pub hash: [u8; 16],
    pub url: String,
    pub host: String,
    pub tags: Vec<String>,
    pub status: u16,
    /// Body bytes.
    pub size: u64,
    pub tier: Tier,
    pub stored_at: SystemTime,
    pub fresh_until: SystemTime,
    pub stale_until: SystemTime,
    pub soft_purged: bool,
}

#[derive(Clone, Debug)]
pub struct CachePage {
    pub entries: Vec<CacheSummary>,
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_names() {
        assert_eq!(Tier::Hot.as_str(), "hot");
        assert_eq!(Tier::Cold.as_str(), "cold");
    }
}
