//! `[[route]]` tables: matching, caching policy, cache key.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::duration::{format_duration, parse_duration};
use crate::file::{FileKey, FileRoute};
use crate::host::HostMatch;
use crate::route::{
    KeyRules, Mode, Policy, Route, SetCookie, DEFAULT_CACHEABLE_STATUSES, DEFAULT_HEURISTIC_MAX,
    DEFAULT_HEURISTIC_PERCENT, DEFAULT_MAX_OBJECT_SIZE,
};
use crate::upstream::{is_header_name, Upstream};

use super::upstream::header_list;
use super::{
    duration, err, heuristic_percent, positive_duration, size, status, Result, MAX_WARM_URLS,
};

pub(super) fn route(i: usize, f: &FileRoute, upstreams: &[Upstream]) -> Result<Route> {
    let k = |field: &str| format!("route[{i}].{field}");
    let name = match f.name.as_deref() {
        None => format!("route[{i}]"),
        Some(n) if !n.trim().is_empty() && n.bytes().all(|b| b.is_ascii_graphic()) => n.to_owned(),
        Some(n) => {
            return Err(err(
                k("name"),
                format!("{n:?} is not a name (no spaces), e.g. \"weather\""),
            ))
        }
    };
    let host = match &f.host {
        None => HostMatch::Any,
        Some(h) => HostMatch::parse(h).map_err(|m| err(k("host"), m))?,
    };
    let path_prefix = match &f.path_prefix {
        None => "/".to_owned(),
        Some(p) if p.starts_with('/') && !p.contains(['?', '#', ' ']) => p.clone(),
        Some(p) => {
            return Err(err(
                k("path-prefix"),
                format!("{p:?} is not a path prefix, e.g. \"/v1/\""),
            ))
        }
    };
    let methods = match &f.methods {
        None => None,
        Some(ms) if ms.is_empty() => {
            return Err(err(
                k("methods"),
                "must not be empty; remove it to take every method",
            ))
        }
        Some(ms) => {
            let mut out: Vec<String> = Vec::new();
            for (j, m) in ms.iter().enumerate() {
                if !is_header_name(m) {
                    return Err(err(
                        format!("{}[{j}]", k("methods")),
                        format!("{m:?} is not an HTTP method, e.g. \"GET\""),
                    ));
                }
                let m = m.to_ascii_uppercase();
                if !out.contains(&m) {
                    out.push(m);
                }
            }
            Some(out)
        }
    };
    let known = || {
        upstreams
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let upstream = match &f.upstream {
        None if upstreams.len() == 1 => 0,
        None => {
            return Err(err(
                k("upstream"),
                format!(
                    "missing: which upstream serves this route (known: {})",
                    known()
                ),
            ))
        }
        Some(u) => upstreams.iter().position(|x| &x.name == u).ok_or_else(|| {
            err(
                k("upstream"),
                format!("unknown upstream {u:?} (known: {})", known()),
            )
        })?,
    };
    let policy = policy(i, f)?;
    Ok(Route {
        name,
        host,
        path_prefix,
        methods,
        upstream,
        policy,
    })
}

fn policy(i: usize, f: &FileRoute) -> Result<Policy> {
    let k = |field: &str| format!("route[{i}].{field}");
    let d = Policy::default();
    let mode = match &f.mode {
        None => Mode::RespectOrigin,
        Some(m) => Mode::parse(m).map_err(|msg| err(k("mode"), msg))?,
    };
    let ttl = duration(&k("ttl"), f.ttl.as_ref())?;
    let default_ttl = duration(&k("default-ttl"), f.default_ttl.as_ref())?;
    let min_ttl = duration(&k("min-ttl"), f.min_ttl.as_ref())?;
    let max_ttl = duration(&k("max-ttl"), f.max_ttl.as_ref())?;
    let mode_str = mode.as_str();
    match mode {
        Mode::Override => {
            match ttl {
                None => {
                    return Err(err(
                        k("ttl"),
                        "missing: mode = \"override\" requires ttl, e.g. ttl = \"10m\"",
                    ))
                }
                Some(t) if t.is_zero() => return Err(err(k("ttl"), "must be more than 0s")),
                Some(_) => {}
            }
            if default_ttl.is_some() {
                return Err(err(
                    k("default-ttl"),
                    "does not apply to mode = \"override\" (ttl is used for every response); remove it",
                ));
            }
        }
        Mode::RespectOrigin | Mode::Clamp => {
            if ttl.is_some() {
                return Err(err(
                    k("ttl"),
                    format!(
                        "only applies to mode = \"override\" (this route is {mode_str:?}); use default-ttl for responses without freshness information"
                    ),
                ));
            }
        }
    }
    let heuristic_max = positive_duration(&k("heuristic-max"), f.heuristic_max.as_ref())?;
    let heuristic_freshness = match &f.heuristic_freshness {
        None => Some(DEFAULT_HEURISTIC_PERCENT),
        Some(v) => heuristic_percent(&k("heuristic-freshness"), v)?,
    };
    if mode == Mode::Override {
        for (field, set) in [
            ("heuristic-freshness", f.heuristic_freshness.is_some()),
            ("heuristic-max", heuristic_max.is_some()),
        ] {
            if set {
                return Err(err(
                    k(field),
                    "does not apply to mode = \"override\" (ttl is used for every response); remove it",
                ));
            }
        }
    } else if heuristic_freshness.is_none() && heuristic_max.is_some() {
        return Err(err(
            k("heuristic-max"),
            "has no effect with heuristic-freshness = \"off\"; remove one of them",
        ));
    }
    // Override stores every response for `ttl`: nothing is heuristic there.
    let heuristic_freshness = heuristic_freshness.filter(|_| mode != Mode::Override);
    if mode != Mode::Clamp {
        for (field, v) in [("min-ttl", min_ttl), ("max-ttl", max_ttl)] {
            if v.is_some() {
                return Err(err(
                    k(field),
                    format!("only applies to mode = \"clamp\" (this route is {mode_str:?})"),
                ));
            }
        }
    } else {
        if min_ttl.is_none() && max_ttl.is_none() {
            return Err(err(
                k("mode"),
                "mode = \"clamp\" requires min-ttl or max-ttl, e.g. max-ttl = \"1h\"",
            ));
        }
        if let (Some(lo), Some(hi)) = (min_ttl, max_ttl) {
            if lo > hi {
                return Err(err(
                    k("min-ttl"),
                    format!(
                        "min-ttl ({}) is more than max-ttl ({})",
                        format_duration(lo),
                        format_duration(hi)
                    ),
                ));
            }
        }
    }
    let mut status_ttl = BTreeMap::new();
    for (code, v) in f.status_ttl.iter().flatten() {
        let key = format!("route[{i}].status-ttl.{code}");
        let s = code
            .trim()
            .parse::<i64>()
            .map_err(|_| {
                err(
                    key.clone(),
                    format!("{code:?} is not an HTTP status (expected 100..=599)"),
                )
            })
            .and_then(|n| status(&key, n))?;
        let ttl = parse_duration(v).map_err(|m| err(key.clone(), m))?;
        status_ttl.insert(s, ttl);
    }
    let mut cacheable: BTreeSet<u16> = BTreeSet::new();
    match &f.cacheable_statuses {
        None => cacheable.extend(DEFAULT_CACHEABLE_STATUSES),
        Some(list) => {
            for (j, n) in list.iter().enumerate() {
                cacheable.insert(status(&format!("route[{i}].cacheable-statuses[{j}]"), *n)?);
            }
        }
    }
    cacheable.extend(status_ttl.keys().copied());
    let mut bypass_cookies = Vec::new();
    for (j, c) in f.bypass_cookies.iter().flatten().enumerate() {
        if c.is_empty()
            || !c
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"=;,\"".contains(&b))
        {
            return Err(err(
                format!("route[{i}].bypass-cookies[{j}]"),
                format!("{c:?} is not a cookie name, e.g. \"session\""),
            ));
        }
        if !bypass_cookies.contains(c) {
            bypass_cookies.push(c.clone());
        }
    }
    let key = key_rules(i, f.key.as_ref())?;
    let set_cookie = match &f.set_cookie {
        None => SetCookie::DoNotCache,
        Some(s) => SetCookie::parse(s).map_err(|m| err(k("set-cookie"), m))?,
    };
    let mut tags: Vec<String> = Vec::new();
    for (j, t) in f.tags.iter().flatten().enumerate() {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(err(
                format!("route[{i}].tags[{j}]"),
                format!("{t:?} is not a tag (no spaces or commas), e.g. \"weather\""),
            ));
        }
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    let mut warm: Vec<String> = Vec::new();
    for (j, url) in f.warm.iter().flatten().enumerate() {
        let rest = url.strip_prefix("http://").unwrap_or_default();
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.is_empty() || url.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(err(
                format!("route[{i}].warm[{j}]"),
                format!(
                    "{url:?} is not an absolute http:// URL (the URL clients request through \
                     Aside, e.g. \"http://api.example.com/v1/cities\")"
                ),
            ));
        }
        if !warm.contains(url) {
            warm.push(url.clone());
        }
    }
    if warm.len() > MAX_WARM_URLS {
        return Err(err(
            k("warm"),
            format!("at most {MAX_WARM_URLS} URLs, got {}", warm.len()),
        ));
    }
    Ok(Policy {
        cache: f.cache.unwrap_or(d.cache),
        bypass_headers: header_list(&k("bypass-headers"), f.bypass_headers.as_ref())?,
        bypass_cookies,
        mode,
        ttl,
        default_ttl,
        min_ttl: min_ttl.unwrap_or(Duration::ZERO),
        max_ttl,
        heuristic_freshness,
        heuristic_max: heuristic_max.unwrap_or(DEFAULT_HEURISTIC_MAX),
        stale_while_revalidate: duration(
            &k("stale-while-revalidate"),
            f.stale_while_revalidate.as_ref(),
        )?,
        stale_if_error: duration(&k("stale-if-error"), f.stale_if_error.as_ref())?,
        stale_if_unreachable: duration(
            &k("stale-if-unreachable"),
            f.stale_if_unreachable.as_ref(),
        )?
        .unwrap_or(d.stale_if_unreachable),
        refresh_ahead: match &f.refresh_ahead {
            None => d.refresh_ahead,
            Some(v) => match heuristic_percent(&k("refresh-ahead"), v)? {
                Some(100) => {
                    return Err(err(
                        k("refresh-ahead"),
                        "\"100%\" would refresh on every hit; use at most \"99%\"",
                    ))
                }
                n => n,
            },
        },
        warm,
        status_ttl,
        cacheable_statuses: cacheable.into_iter().collect(),
        any_status_with_explicit_freshness: f.cacheable_statuses.is_none(),
        key,
        cache_authorized: f.cache_authorized.unwrap_or(false),
        set_cookie,
        tags,
        max_object_size: size(&k("max-object-size"), f.max_object_size.as_ref())?
            .unwrap_or(DEFAULT_MAX_OBJECT_SIZE),
    })
}

fn key_rules(i: usize, f: Option<&FileKey>) -> Result<KeyRules> {
    let Some(f) = f else {
        return Ok(KeyRules::default());
    };
    let ignore = f.ignore_query.clone().unwrap_or_default();
    for (j, g) in ignore.iter().enumerate() {
        if g.is_empty() {
            return Err(err(
                format!("route[{i}].key.ignore-query[{j}]"),
                "must not be empty, e.g. \"utm_*\"",
            ));
        }
        KeyRules::new(vec![g.clone()], true, Vec::new())
            .map_err(|m| err(format!("route[{i}].key.ignore-query[{j}]"), m))?;
    }
    let headers = header_list(&format!("route[{i}].key.headers"), f.headers.as_ref())?;
    KeyRules::new(ignore, f.sort_query.unwrap_or(true), headers)
        .map_err(|m| err(format!("route[{i}].key.ignore-query"), m))
}
