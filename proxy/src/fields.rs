//! Response header fields read the way RFC 9110 / 9111 / 9213 ask, where
//! pingora-cache is stricter or looser than they are: `Age` lists, obsolete
//! and wrongly cased HTTP-dates, `Connection`-named fields, a malformed
//! `CDN-Cache-Control`, the header update a 304 makes, and `If-Modified-Since`
//! against a response without `Last-Modified`. Pure functions of headers (and
//! a time), so they are tested here without a socket.

use std::time::{Duration, SystemTime};

use http::{header, HeaderName};
use pingora_cache::cache_control::CacheControl;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::structured_field::{parse_dictionary, Value};

/// The body length a response's (first) `Content-Length` field states, when it
/// is a number.
pub(crate) fn content_length(resp: &ResponseHeader) -> Option<u64> {
    resp.headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `CDN-Cache-Control` (RFC 9213).
pub(crate) const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// Origin `Age` in seconds (RFC 9111 §5.1): the first member of the first
/// field line when it is a list (`Age: 7200, 0` is 7200); 0 when absent or
/// invalid.
pub(crate) fn origin_age(resp: &ResponseHeader) -> Duration {
    age_value(
        resp.headers
            .get(header::AGE)
            .map(http::HeaderValue::as_bytes),
    )
}

/// [`origin_age`] of the first `Age` field line's value.
pub(crate) fn age_value(value: Option<&[u8]>) -> Duration {
    value
        // As `HeaderValue::to_str`: visible ASCII, space and tab only.
        .filter(|v| v.iter().all(|&b| (b >= 32 && b != 127) || b == b'\t'))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs)
}

/// An HTTP-date in any of the three formats recipients must accept (RFC 9110
/// §5.6.7: IMF-fixdate, rfc850, asctime), with weekday, month and `GMT` in any
/// case.
pub(crate) fn parse_http_date(value: &str) -> Option<SystemTime> {
    let value = value.trim();
    if !value.is_ascii() || value.len() > 64 {
        return None;
    }
    // Canonical case for every run of letters: `Tue`, `Nov`, `Tuesday`, `GMT`.
    let mut canonical = String::with_capacity(value.len());
    let mut word_start = true;
    for c in value.chars() {
        if c.is_ascii_alphabetic() {
            canonical.push(if word_start {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            word_start = false;
        } else {
            canonical.push(c);
            word_start = true;
        }
    }
    let canonical = canonical.replace("Gmt", "GMT");
    httpdate::parse_http_date(&canonical).ok()
}

/// `Expires` as a time (RFC 9111 §5.3): `None` when absent; a value that is
/// not one valid HTTP-date (including a repeated field) is a time in the past.
pub(crate) fn expires_time(resp: &ResponseHeader) -> Option<SystemTime> {
    let mut values = resp.headers.get_all(header::EXPIRES).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(SystemTime::UNIX_EPOCH);
    }
    Some(
        first
            .to_str()
            .ok()
            .and_then(parse_http_date)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    )
}

/// The response's `Date`, when valid.
pub(crate) fn date(resp: &ResponseHeader) -> Option<SystemTime> {
    resp.headers
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
}

/// Hop-by-hop fields that are never stored (RFC 9111 §3.1, RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// Fields that frame the message on this hop: pingora needs them to relay the
/// body, so a `Connection` option naming them is ignored when forwarding.
fn frames_body(name: &HeaderName) -> bool {
    *name == header::CONTENT_LENGTH || *name == header::TRANSFER_ENCODING
}

/// The field names listed in `Connection` (RFC 9110 §7.6.1), lowercase.
fn connection_options(resp: &ResponseHeader) -> Vec<HeaderName> {
    resp.headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

/// Remove what a forwarded response must not carry past this hop: the fields
/// its `Connection` names (RFC 9110 §7.6.1), `Keep-Alive` and
/// `Proxy-Connection`. pingora's server writes its own `Connection`.
pub(crate) fn strip_connection_fields(resp: &mut ResponseHeader) {
    if resp.headers.contains_key(header::CONNECTION) {
        for name in connection_options(resp) {
            if !frames_body(&name) {
                resp.remove_header(&name);
            }
        }
    }
    resp.remove_header("keep-alive");
    resp.remove_header("proxy-connection");
}

/// Remove what a stored response must not keep (RFC 9111 §3.1): the fields
/// `Connection` names and the hop-by-hop fields.
pub(crate) fn strip_unstorable(resp: &mut ResponseHeader) {
    for name in connection_options(resp) {
        resp.remove_header(&name);
    }
    for name in HOP_BY_HOP {
        resp.remove_header(name);
    }
}

/// The Cache-Control that governs a response: `CDN-Cache-Control` when it is
/// present and valid, else `Cache-Control` (RFC 9213 §2.1). A
/// `CDN-Cache-Control` that is not a Structured Fields Dictionary, or whose
/// `max-age` is not a non-negative Integer, is ignored as a whole.
pub(crate) fn governing_cache_control(resp: &ResponseHeader) -> Option<CacheControl> {
    if cdn_cache_control_valid(resp) {
        if let Some(cc) = CacheControl::from_resp_headers_named(CDN_CACHE_CONTROL, resp) {
            return Some(cc);
        }
    }
    CacheControl::from_resp_headers(resp)
}

/// Whether the response has a `CDN-Cache-Control` Aside should obey.
fn cdn_cache_control_valid(resp: &ResponseHeader) -> bool {
    let mut joined = String::new();
    for v in resp.headers.get_all(CDN_CACHE_CONTROL) {
        let Ok(v) = v.to_str() else { return false };
        if !joined.is_empty() {
            joined.push_str(", ");
        }
        joined.push_str(v);
    }
    if joined.is_empty() {
        return false;
    }
    parse_dictionary(&joined).is_some_and(|members| {
        members.iter().all(|(k, v)| match k.as_str() {
            "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error" => {
                matches!(v, Value::Integer(n) if *n >= 0)
            }
            _ => true,
        })
    })
}

/// The stored header updated by a 304 (RFC 9111 §3.2, §4.3.4): every field of
/// the 304 replaces the stored field of that name, except `Content-Length`,
/// the hop-by-hop fields (§3.1) and `Vary` (the stored variant keeps the
/// variance it was filed under). The stored `Age` goes: the 304's own `Age`, if
/// any, is how old the validated response is now.
pub(crate) fn merge_not_modified(
    stored: &ResponseHeader,
    not_modified: &ResponseHeader,
) -> ResponseHeader {
    let mut merged = stored.clone();
    let mut skip: Vec<HeaderName> = connection_options(not_modified);
    skip.extend(HOP_BY_HOP.iter().map(|n| HeaderName::from_static(n)));
    skip.push(header::CONTENT_LENGTH);
    skip.push(header::VARY);
    merged.remove_header(&header::AGE);
    let mut replaced: Vec<&HeaderName> = Vec::new();
    for (name, value) in &not_modified.headers {
        if skip.contains(name) {
            continue;
        }
        // `insert` for the first line of a name, `append` for the next ones,
        // so a repeated field replaces all of the stored lines.
        let result = if replaced.contains(&name) {
            merged
                .append_header(name.clone(), value.clone())
                .map(|_| ())
        } else {
            replaced.push(name);
            merged.insert_header(name.clone(), value.clone())
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, field = %name, "304 field not merged");
        }
    }
    merged
}

/// `If-Modified-Since` against a stored 200 that has no `Last-Modified`: its
/// `Date`, else the time it was stored, stands in (RFC 9110 §13.1.3, RFC 9111
/// §4.3.2). `Some(true)`: answer 304; `None`: pingora's rules apply (a
/// `Last-Modified`, an `If-None-Match`, no usable `If-Modified-Since`).
pub(crate) fn not_modified_by_date(
    req: &RequestHeader,
    resp: &ResponseHeader,
    stored_at: Option<SystemTime>,
) -> Option<bool> {
    if resp.status != http::StatusCode::OK
        || resp.headers.contains_key(header::LAST_MODIFIED)
        || req.headers.contains_key(header::IF_NONE_MATCH)
        || !matches!(req.method, http::Method::GET | http::Method::HEAD)
    {
        return None;
    }
    let since = req
        .headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)?;
    let modified = date(resp).or(stored_at)?;
    Some(modified <= since)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn age_uses_the_first_member() {
        for (value, secs) in [
            ("7200, 0", 7200),
            ("30", 30),
            (" 5 ,6", 5),
            ("x, 3", 0),
            ("", 0),
        ] {
            assert_eq!(
                origin_age(&resp(&[("age", value)])).as_secs(),
                secs,
                "{value:?}"
            );
        }
        assert_eq!(origin_age(&resp(&[])).as_secs(), 0);
    }

    #[test]
    fn http_dates() {
        let t = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "sun, 06 nov 1994 08:49:37 gmt",
            "SUNDAY, 06-NOV-94 08:49:37 GMT",
            "SUN NOV  6 08:49:37 1994",
            " Sun, 06 Nov 1994 08:49:37 GMT ",
        ] {
            assert_eq!(parse_http_date(v), Some(t), "{v:?}");
        }
        for v in ["0", "-1", "yesterday", "Sun, 06 Nov 1994 08:49:37", ""] {
            assert_eq!(parse_http_date(v), None, "{v:?}");
        }
    }

    #[test]
    fn expires() {
        let past = Some(SystemTime::UNIX_EPOCH);
        assert_eq!(expires_time(&resp(&[])), None);
        assert_eq!(expires_time(&resp(&[("expires", "0")])), past);
        assert_eq!(
            expires_time(&resp(&[("expires", "a"), ("expires", "b")])),
            past
        );
        assert!(expires_time(&resp(&[("expires", "sun, 06 nov 1994 08:49:37 gmt")])) > past);
    }

    #[test]
    fn connection_fields() {
        let mut r = resp(&[
            ("connection", "X-Secret, keep-alive"),
            ("connection", "content-length"),
            ("x-secret", "1"),
            ("x-kept", "1"),
            ("keep-alive", "timeout=5"),
            ("content-length", "3"),
        ]);
        strip_connection_fields(&mut r);
        assert!(!r.headers.contains_key("x-secret"));
        assert!(!r.headers.contains_key("keep-alive"));
        assert!(r.headers.contains_key("x-kept"));
        assert!(r.headers.contains_key("content-length"));
        let mut r = resp(&[
            ("connection", "x-secret"),
            ("x-secret", "1"),
            ("upgrade", "h2c"),
            ("x-kept", "1"),
        ]);
        strip_unstorable(&mut r);
        let names: Vec<_> = r.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn cdn_cache_control_is_ignored_when_invalid() {
        let table = [
            ("max-age=60", Some(60)),
            ("max-age=60, public", Some(60)),
            ("max-age=1.5", Some(3600)),
            ("max-age=\"60\"", Some(3600)),
            ("max-age=-1", Some(3600)),
            ("max-age=60,,", Some(3600)),
            ("Max-Age=60", Some(3600)),
            ("max-age=60;;", Some(3600)),
        ];
        for (cdn, want) in table {
            let r = resp(&[
                ("cache-control", "max-age=3600"),
                ("cdn-cache-control", cdn),
            ]);
            let cc = governing_cache_control(&r).unwrap();
            assert_eq!(cc.max_age().unwrap(), want, "{cdn:?}");
        }
    }

    #[test]
    fn not_modified_merges_every_field_but_the_excluded() {
        let stored = resp(&[
            ("content-length", "10"),
            ("x-foo", "old"),
            ("content-foo", "old"),
            ("vary", "accept"),
            ("age", "50"),
            ("etag", "\"a\""),
            ("x-same", "kept"),
        ]);
        let mut nm = ResponseHeader::build(304, None).unwrap();
        for (k, v) in [
            ("content-length", "0"),
            ("x-foo", "new1"),
            ("x-foo", "new2"),
            ("content-foo", "new"),
            ("vary", "*"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=1"),
            ("etag", "\"a\""),
        ] {
            nm.append_header(k.to_string(), v).unwrap();
        }
        let m = merge_not_modified(&stored, &nm);
        let all = |n: &str| -> Vec<&str> {
            m.headers
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(m.status, 200);
        assert_eq!(all("content-length"), ["10"]);
        assert_eq!(all("x-foo"), ["new1", "new2"]);
        assert_eq!(all("content-foo"), ["new"]);
        assert_eq!(all("vary"), ["accept"]);
        assert_eq!(all("x-same"), ["kept"]);
        assert!(all("age").is_empty());
        assert!(all("x-hop").is_empty() && all("keep-alive").is_empty());
    }

    #[test]
    fn if_modified_since_falls_back_to_date() {
        let req = |ims: &str| {
            let mut r = RequestHeader::build("GET", b"/", None).unwrap();
            r.insert_header("if-modified-since", ims).unwrap();
            r
        };
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let stored = resp(&[("date", date)]);
        let table = [
            (date, Some(true)),
            ("Sun, 06 Nov 1994 08:49:38 GMT", Some(true)),
            ("Sun, 06 Nov 1994 08:49:36 GMT", Some(false)),
            ("garbage", None),
        ];
        for (ims, want) in table {
            assert_eq!(
                not_modified_by_date(&req(ims), &stored, None),
                want,
                "{ims}"
            );
        }
        // With Last-Modified, pingora's rules apply.
        let with_lm = resp(&[("date", date), ("last-modified", date)]);
        assert_eq!(not_modified_by_date(&req(date), &with_lm, None), None);
        // Without Date, the time it was stored.
        let stored_at = httpdate::parse_http_date(date).ok();
        assert_eq!(
            not_modified_by_date(&req(date), &resp(&[]), stored_at),
            Some(true)
        );
    }
}
