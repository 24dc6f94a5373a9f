//! `[[upstream]]` tables: URL, headers, timeouts, origin protection.

use std::path::PathBuf;
use std::time::Duration;

use crate::env::expand;
use crate::file::FileUpstream;
use crate::upstream::{is_header_name, is_header_value, parse_url, Scheme, Upstream};

use super::{err, positive_duration, Env, Result};

/// Header names an upstream may not set: they describe the connection or
/// the body, which the proxy manages.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
];

pub(super) fn upstream(i: usize, f: &FileUpstream, env: Env<'_>) -> Result<Upstream> {
    let k = |field: &str| format!("upstream[{i}].{field}");
    let name = match f.name.as_deref() {
        None => {
            return Err(err(
                k("name"),
                "missing: every upstream needs a name, e.g. name = \"api\"",
            ))
        }
        Some(n)
            if !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            n.to_owned()
        }
        Some(n) => {
            return Err(err(
                k("name"),
                format!("{n:?} is not a name (letters, digits, '-' and '_'), e.g. \"weather-api\""),
            ))
        }
    };
    let Some(url) = f.url.as_deref() else {
        return Err(err(
            k("url"),
            "missing: the origin's URL, e.g. url = \"https://api.example.com\"",
        ));
    };
    let url = parse_url(url.trim()).map_err(|m| err(k("url"), m))?;
    let https = url.scheme == Scheme::Https;
    let only_https = |field: &str| {
        err(
            k(field),
            format!(
                "only applies to https upstreams, and {:?} is http",
                url.host_header()
            ),
        )
    };
    let sni = match &f.sni {
        Some(_) if !https => return Err(only_https("sni")),
        Some(s) => {
            let s = s.trim().to_ascii_lowercase();
            if s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(err(
                    k("sni"),
                    format!("{s:?} is not a host name, e.g. \"api.example.com\""),
                ));
            }
            s
        }
        None => url
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    };
    let verify_cert = match f.verify_cert {
        Some(_) if !https => return Err(only_https("verify-cert")),
        Some(v) => v,
        None => true,
    };
    let ca_file = match &f.ca_file {
        Some(_) if !https => return Err(only_https("ca-file")),
        Some(_) if !verify_cert => {
            return Err(err(
                k("ca-file"),
                "has no effect with verify-cert = false; remove one of them",
            ))
        }
        Some(p) if p.trim().is_empty() => return Err(err(k("ca-file"), "must not be empty")),
        Some(p) => Some(PathBuf::from(p.trim())),
        None => None,
    };
    let mut headers = Vec::with_capacity(f.headers.len());
    for (name, value) in &f.headers {
        let hk = format!("upstream[{i}].headers.{name}");
        if !is_header_name(name) {
            return Err(err(hk, format!("{name:?} is not a valid header name")));
        }
        if RESERVED_HEADERS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
        {
            return Err(err(
                hk,
                format!(
                    "{name} is managed by the proxy and cannot be set (reserved: {})",
                    RESERVED_HEADERS.join(", ")
                ),
            ));
        }
        let value = expand(value, env).map_err(|m| err(hk.clone(), m))?;
        if !is_header_value(&value) {
            return Err(err(
                hk,
                "the value contains control characters (after ${VAR} expansion)",
            ));
        }
        headers.push((name.clone(), value));
    }
    let max_concurrent = match f.max_concurrent {
        None => None,
        Some(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(n) => return Err(err(k("max-concurrent"), format!("{n} is not at least 1"))),
    };
    Ok(Upstream {
        name,
        host_header: url.host_header(),
        scheme: url.scheme,
        host: url.host,
        port: url.port,
        base_path: url.base_path,
        sni,
        verify_cert,
        ca_file,
        connect_timeout: positive_duration(&k("connect-timeout"), f.connect_timeout.as_ref())?
            .unwrap_or(Duration::from_secs(5)),
        read_timeout: positive_duration(&k("read-timeout"), f.read_timeout.as_ref())?
            .unwrap_or(Duration::from_secs(30)),
        idle_timeout: positive_duration(&k("idle-timeout"), f.idle_timeout.as_ref())?
            .unwrap_or(Duration::from_secs(60)),
        headers,
        max_concurrent,
        protection: protection(&k, f)?,
    })
}

fn protection(k: &dyn Fn(&str) -> String, f: &FileUpstream) -> Result<crate::Protection> {
    use crate::protect::{Breaker, Protection, Rate};
    let d = Protection::default();
    let rate_limit = f
        .rate_limit
        .as_deref()
        .map(|r| Rate::parse(r).map_err(|m| err(k("rate-limit"), m)))
        .transpose()?;
    let burst = match f.burst {
        None => d.burst,
        Some(_) if rate_limit.is_none() => {
            return Err(err(
                k("burst"),
                "only applies with rate-limit; set rate-limit too",
            ))
        }
        Some(n) if (1..=100_000).contains(&n) => u32::try_from(n).unwrap_or(d.burst),
        Some(n) => return Err(err(k("burst"), format!("{n} is not between 1 and 100000"))),
    };
    let failures = match f.breaker_failures {
        None => d.breaker.map_or(0, |b| b.failures),
        Some(n) if (0..=1_000_000).contains(&n) => u32::try_from(n).unwrap_or(0),
        Some(n) => {
            return Err(err(
                k("breaker-failures"),
                format!("{n} is not between 0 (off) and 1000000"),
            ))
        }
    };
    let default_breaker = d.breaker.unwrap_or(Breaker {
        failures: 5,
        window: Duration::from_secs(10),
        cooldown: Duration::from_secs(5),
    });
    let window = positive_duration(&k("breaker-window"), f.breaker_window.as_ref())?
        .unwrap_or(default_breaker.window);
    let cooldown = positive_duration(&k("breaker-cooldown"), f.breaker_cooldown.as_ref())?
        .unwrap_or(default_breaker.cooldown);
    Ok(Protection {
        rate_limit,
        burst,
        queue_timeout: positive_duration(&k("queue-timeout"), f.queue_timeout.as_ref())?
            .unwrap_or(d.queue_timeout),
        max_retry_after: positive_duration(&k("max-retry-after"), f.max_retry_after.as_ref())?
            .unwrap_or(d.max_retry_after),
        breaker: (failures > 0).then_some(Breaker {
            failures,
            window,
            cooldown,
        }),
        retry: f.retry.unwrap_or(d.retry),
    })
}

pub(super) fn header_list(key: &str, list: Option<&Vec<String>>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (j, h) in list.into_iter().flatten().enumerate() {
        if !is_header_name(h) {
            return Err(err(
                format!("{key}[{j}]"),
                format!("{h:?} is not a valid header name"),
            ));
        }
        let h = h.to_ascii_lowercase();
        if !out.contains(&h) {
            out.push(h);
        }
    }
    Ok(out)
}
