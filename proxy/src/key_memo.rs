//! Request target → cache-key hash, remembered for the fresh-hit fast path
//! (issue 17).
//!
//! Deriving a cache key normalizes the URL (percent-encoding, query sorting,
//! ignored parameters) and hashes it with BLAKE2b: about 4,000 instructions,
//! the largest cost of a hot hit after pingora's own request parsing. Under
//! one configuration, the same request target on the same route always gives
//! the same hash, so the fast path remembers it.
//! - Each entry holds the whole target (scheme, host, path and query) and is
//!   compared in full: two targets never share a cache key through a
//!   collision of the memo's own 64-bit hash (a colliding target just
//!   replaces the entry).
//! - One memo lives in each configuration snapshot (`Live`): a reload, which
//!   may change the key rules, starts from an empty one.
//! - Routes that key request headers are not memoized (the headers' values
//!   are part of their key).
//! - Bounded: 16 shards of at most 1,024 entries; a full shard is cleared.
//!   With request targets of a few hundred bytes at most that is a few MiB
//!   at worst, usually far less.

use std::collections::HashMap;
use std::hash::BuildHasher;

use parking_lot::Mutex;

const SHARDS: usize = 16;
const SHARD_CAPACITY: usize = 1024;

struct Entry {
    route: usize,
    scheme: &'static str,
    /// `host` then `path_and_query`, split at `host_len`.
    target: Box<str>,
    host_len: usize,
    hash: [u8; 16],
}

impl Entry {
    fn is(&self, route: usize, scheme: &str, host: &str, path_and_query: &str) -> bool {
        self.route == route
            && self.scheme == scheme
            && self.target.len() == host.len() + path_and_query.len()
            && self.host_len == host.len()
            && self.target.starts_with(host)
            && self.target.ends_with(path_and_query)
    }
}

/// See the module documentation.
pub struct KeyMemo {
    shards: Box<[Mutex<HashMap<u64, Entry>>]>,
    hasher: foldhash::fast::RandomState,
}

impl Default for KeyMemo {
    fn default() -> Self {
        KeyMemo {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl KeyMemo {
    /// The cache-key hash of this request target on `route`: remembered, or
    /// computed by `derive` and remembered.
    pub fn hash(
        &self,
        route: usize,
        scheme: &'static str,
        host: &str,
        path_and_query: &str,
        derive: impl FnOnce() -> [u8; 16],
    ) -> [u8; 16] {
        let h = self.hasher.hash_one((route, scheme, host, path_and_query));
        // The low bits pick the map's bucket; the shard comes from the top.
        let shard = &self.shards[(h >> 60) as usize % SHARDS];
        if let Some(e) = shard.lock().get(&h) {
            if e.is(route, scheme, host, path_and_query) {
                return e.hash;
            }
        }
        let hash = derive();
        let mut target = String::with_capacity(host.len() + path_and_query.len());
        target.push_str(host);
        target.push_str(path_and_query);
        let entry = Entry {
            route,
            scheme,
            target: target.into_boxed_str(),
            host_len: host.len(),
            hash,
        };
        let mut map = shard.lock();
        if map.len() >= SHARD_CAPACITY {
            map.clear();
        }
        map.insert(h, entry);
        hash
    }

    /// Entries held (for tests).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_hash_is_used_only_for_the_same_target() {
        let memo = KeyMemo::default();
        let mut derived = 0;
        let mut get = |route, scheme, host, pq, value: u8| {
            memo.hash(route, scheme, host, pq, || {
                derived += 1;
                [value; 16]
            })
        };
        assert_eq!(get(0, "http", "a.test", "/x?y=1", 1), [1; 16]);
        // Remembered: `derive` is not called again, its value is not used.
        assert_eq!(get(0, "http", "a.test", "/x?y=1", 2), [1; 16]);
        // Anything different derives its own.
        assert_eq!(get(1, "http", "a.test", "/x?y=1", 3), [3; 16]);
        assert_eq!(get(0, "https", "a.test", "/x?y=1", 4), [4; 16]);
        assert_eq!(get(0, "http", "a.test/x", "?y=1", 5), [5; 16]);
        assert_eq!(get(0, "http", "a.test", "/x?y=2", 6), [6; 16]);
        assert_eq!(derived, 5);
    }

    #[test]
    fn a_full_shard_is_cleared_so_the_memo_stays_bounded() {
        let memo = KeyMemo::default();
        for i in 0..(SHARDS * SHARD_CAPACITY * 3) {
            memo.hash(0, "http", "h", &format!("/{i}"), || [0; 16]);
        }
        assert!(memo.len() <= SHARDS * SHARD_CAPACITY);
        assert!(!memo.is_empty());
    }
}
