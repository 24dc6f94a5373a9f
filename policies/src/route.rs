//! Routes: which requests they take, which upstream serves them, and the
//! operator's caching policy for them.

use std::collections::BTreeMap;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::host::HostMatch;

/// One `[[route]]`, validated. Routes are tried in file order; the first whose
/// host, path prefix and methods all match wins.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `name` from the file, else `route[i]`; used in logs, metrics and errors.
    pub name: String,
    /// Which hosts this route takes.
    pub host: HostMatch,
    /// Plain string prefix of the request path (`"/v1/"`); `"/"` takes all.
    pub path_prefix: String,
    /// Upper-case methods this route takes; `None` takes every method.
    pub methods: Option<Vec<String>>,
    /// Index into [`crate::Config::upstreams`].
    pub upstream: usize,
    /// The caching policy.
    pub policy: Policy,
}

impl Route {
    /// Whether this route takes the request. Hosts compare lowercase without
    /// port; methods compare case-insensitively.
    pub fn matches(&self, host: &str, path: &str, method: &str) -> bool {
        self.host.matches(host)
            && path.starts_with(&self.path_prefix)
            && self
                .methods
                .as_ref()
                .is_none_or(|ms| ms.iter().any(|m| m.eq_ignore_ascii_case(method)))
    }

    /// Whether this route takes every request (any host, path prefix `/`, all methods).
    pub fn is_catch_all(&self) -> bool {
        self.host.is_any() && self.path_prefix == "/" && self.methods.is_none()
    }

    /// `Some(reason)` when this request must bypass the cache: the route has
    /// `cache = false`, a bypass header is present, or a bypass cookie is
    /// present in the `Cookie` header. `header` looks up a request header by
    /// lowercase name.
    pub fn bypass(&self, header: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        let p = &self.policy;
        if !p.cache {
            return Some("cache disabled for route".to_owned());
        }
        if let Some(h) = p.bypass_headers.iter().find(|h| header(h).is_some()) {
            return Some(format!("header {h}"));
        }
        if !p.bypass_cookies.is_empty() {
            if let Some(cookies) = header("cookie") {
                for pair in cookies.split(';') {
                    let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
                    if p.bypass_cookies.iter().any(|c| c == name) {
                        return Some(format!("cookie {name}"));
                    }
                }
            }
        }
        None
    }
}

/// How the stored lifetime of a response is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// The route's `ttl` (or `status-ttl`) wins over origin headers.
    Override,
    /// The origin's Cache-Control/Expires decide; `default-ttl` (or `status-ttl`)
    /// covers responses without freshness information.
    #[default]
    RespectOrigin,
    /// The origin decides within `min-ttl ..= max-ttl`.
    Clamp,
}

impl Mode {
    /// The config spelling: `override`, `respect-origin`, `clamp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Override => "override",
            Mode::RespectOrigin => "respect-origin",
            Mode::Clamp => "clamp",
        }
    }

    /// Parses the config spelling.
    ///
    /// # Errors
    /// A message listing the allowed values.
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "override" => Ok(Mode::Override),
            "respect-origin" => Ok(Mode::RespectOrigin),
            "clamp" => Ok(Mode::Clamp),
            _ => Err(format!(
                "{s:?} is not a mode (expected one of: override, respect-origin, clamp)"
            )),
        }
    }
}

/// What to do with a response that carries `Set-Cookie`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SetCookie {
    /// Do not store it (a cookie is usually per-user).
    #[default]
    DoNotCache,
    /// Remove `Set-Cookie` from the stored copy and cache the rest.
    Strip,
}

impl SetCookie {
    /// The config spelling: `do-not-cache`, `strip`.
    pub fn as_str(self) -> &'static str {
        match self {
            SetCookie::DoNotCache => "do-not-cache",
            SetCookie::Strip => "strip",
        }
    }

    /// Parses the config spelling.
    ///
    /// # Errors
    /// A message listing the allowed values.
    pub fn parse(s: &str) -> Result<SetCookie, String> {
        match s {
            "do-not-cache" => Ok(SetCookie::DoNotCache),
            "strip" => Ok(SetCookie::Strip),
            _ => Err(format!(
                "{s:?} is not a set-cookie rule (expected one of: do-not-cache, strip)"
            )),
        }
    }
}

/// Statuses cacheable by default: RFC 9110's "heuristically cacheable" list.
/// Default `stale-if-unreachable`: long enough to ride out an origin's restart
/// or a short outage of a fronted API, short enough that the disk tier does not
/// keep expired entries long.
pub const DEFAULT_STALE_IF_UNREACHABLE: Duration = Duration::from_secs(300);

pub const DEFAULT_CACHEABLE_STATUSES: [u16; 12] =
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Default `heuristic-freshness`: 10 % of the time since `Last-Modified`.
pub const DEFAULT_HEURISTIC_PERCENT: u8 = 10;

/// Default `heuristic-max`: one day.
pub const DEFAULT_HEURISTIC_MAX: Duration = Duration::from_secs(86_400);

/// Default `max-object-size`: 64 MiB.
pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 64 << 20;

/// The operator's caching rules for one route.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Cache at all. Default: true.
    pub cache: bool,
    /// Lowercase request header names whose presence bypasses the cache.
    pub bypass_headers: Vec<String>,
    /// Cookie names whose presence in `Cookie` bypasses the cache.
    pub bypass_cookies: Vec<String>,
    /// How the TTL is decided. Default: respect-origin.
    pub mode: Mode,
    /// Override mode's TTL (required there, rejected elsewhere).
    pub ttl: Option<Duration>,
    /// respect-origin/clamp: TTL for responses without freshness info. Default:
    /// none, such responses are not stored.
    pub default_ttl: Option<Duration>,
    /// Clamp: lower bound. Default: 0.
    pub min_ttl: Duration,
    /// Clamp: upper bound. Default: none.
    pub max_ttl: Option<Duration>,
    /// respect-origin/clamp: the percentage of the time since `Last-Modified`
    /// a response without explicit freshness stays fresh (RFC 9111 §4.2.2);
    /// `None` is off. Default: 10.
    pub heuristic_freshness: Option<u8>,
    /// Upper bound of a heuristic TTL. Default: 1 day.
    pub heuristic_max: Duration,
    /// Serve stale while revalidating for this long; else the origin's value.
    pub stale_while_revalidate: Option<Duration>,
    /// Serve stale when the origin fails, for this long; else the origin's value.
    pub stale_if_error: Option<Duration>,
    /// Serve stale for this long past expiry when the origin cannot be
    /// reached (connect error, timeout, kept back by origin protection), when
    /// neither `stale-if-error` nor the origin gives a window (RFC 9111
    /// §4.2.4). Not for 5xx answers: those need an explicit `stale-if-error`.
    /// `0s` turns it off. Default: 5m.
    pub stale_if_unreachable: Duration,
    /// A hit in the last `n` % of an entry's freshness starts one background
    /// refresh (coalesced, inside the upstream's budget), so popular keys never
    /// expire in a client's face. `None` is off. Default: off.
    pub refresh_ahead: Option<u8>,
    /// `http://` URLs fetched through the node when it starts (a warming job),
    /// so the first clients find them cached. Default: none.
    pub warm: Vec<String>,
    /// Per-status TTL (negative caching: 404 -> 30s).
    pub status_ttl: BTreeMap<u16, Duration>,
    /// Statuses that may be stored, sorted; always includes every `status_ttl` key.
    pub cacheable_statuses: Vec<u16>,
    /// True when the operator did not list `cacheable-statuses`: then, in
    /// respect-origin and clamp modes, a response whose origin gave explicit
    /// freshness (max-age, s-maxage, Expires, no-cache) may be stored whatever
    /// its final status, as RFC 9111 §3 allows. The list still bounds what
    /// override, `default-ttl` and `status-ttl` store.
    pub any_status_with_explicit_freshness: bool,
    /// What makes up the cache key.
    pub key: KeyRules,
    /// Cache responses to requests with `Authorization`. Default: false.
    pub cache_authorized: bool,
    /// `Set-Cookie` handling. Default: do not cache.
    pub set_cookie: SetCookie,
    /// Tags added to every entry of this route (for purge by tag).
    pub tags: Vec<String>,
    /// Larger responses are not stored. Default: 64 MiB.
    pub max_object_size: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            cache: true,
            bypass_headers: Vec::new(),
            bypass_cookies: Vec::new(),
            mode: Mode::RespectOrigin,
            ttl: None,
            default_ttl: None,
            min_ttl: Duration::ZERO,
            max_ttl: None,
            heuristic_freshness: Some(DEFAULT_HEURISTIC_PERCENT),
            heuristic_max: DEFAULT_HEURISTIC_MAX,
            stale_while_revalidate: None,
            stale_if_error: None,
            stale_if_unreachable: DEFAULT_STALE_IF_UNREACHABLE,
            refresh_ahead: None,
            warm: Vec::new(),
            status_ttl: BTreeMap::new(),
            cacheable_statuses: DEFAULT_CACHEABLE_STATUSES.to_vec(),
            any_status_with_explicit_freshness: true,
            key: KeyRules::default(),
            cache_authorized: false,
            set_cookie: SetCookie::DoNotCache,
            tags: Vec::new(),
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
        }
    }
}

/// Cache-key rules of a route.
#[derive(Debug, Clone)]
pub struct KeyRules {
    /// Query parameter name globs left out of the key (`utm_*`).
    pub ignore_query: Vec<String>,
    /// Sort query parameters by name (stable: repeated names keep their order).
    /// Default: true.
    pub sort_query: bool,
    /// Lowercase request header names whose values are part of the key.
    pub headers: Vec<String>,
    /// `ignore_query`, compiled.
    ignore: GlobSet,
}

impl KeyRules {
    /// Builds the rules, compiling the globs; header names are lowercased.
    ///
    /// # Errors
    /// The first glob that does not compile, with the reason.
    pub fn new(
        ignore_query: Vec<String>,
        sort_query: bool,
        headers: Vec<String>,
    ) -> Result<Self, String> {
        let mut b = GlobSetBuilder::new();
        for g in &ignore_query {
            let glob = Glob::new(g).map_err(|e| format!("{g:?} is not a glob: {}", e.kind()))?;
            b.add(glob);
        }
        let ignore = b.build().map_err(|e| e.to_string())?;
        Ok(KeyRules {
            ignore_query,
            sort_query,
            headers: headers
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            ignore,
        })
    }

    /// Whether the (decoded) query parameter name is left out of the key.
    pub fn ignores(&self, name: &str) -> bool {
        !self.ignore_query.is_empty() && self.ignore.is_match(name)
    }
}

impl Default for KeyRules {
    fn default() -> Self {
        KeyRules {
            ignore_query: Vec::new(),
            sort_query: true,
            headers: Vec::new(),
            ignore: GlobSet::empty(),
        }
    }
}

impl PartialEq for KeyRules {
    fn eq(&self, other: &Self) -> bool {
        // `ignore` is compiled from `ignore_query`.
        self.ignore_query == other.ignore_query
            && self.sort_query == other.sort_query
            && self.headers == other.headers
    }
}
