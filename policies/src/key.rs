//! Cache keys: a readable normalized URL plus the keyed request headers.
//!
//! Normalization makes equivalent requests share a key and keeps different
//! ones apart:
//! - scheme and host lowercase, the scheme's default port dropped;
//! - percent-encoding canonical: escapes of unreserved characters
//!   (`A-Z a-z 0-9 - . _ ~`) decoded, other escapes upper-case hex, bytes that
//!   may not appear raw (space, controls, non-ASCII, `"<>\^`{|}`) encoded;
//!   reserved characters keep the form they came in (`%2F` is not `/`);
//! - ignored query parameters removed (globs match the decoded name), the rest
//!   sorted by name when configured (stable, so `a=2&a=1` keeps its order);
//!   `?` dropped when the query ends up empty.
//!
//! The URL never contains a newline, so `cache_key` can append each keyed
//! header as `\n{name}={percent-encoded value}` (or `\n{name}` when absent)
//! without two different requests sharing a key.

use crate::route::Route;

impl Route {
    /// Normalized readable URL: `{scheme}://{host}{path}{?query}`. Used as the
    /// store's `url` and for URL purges.
    pub fn normalized_url(
        &self,
        scheme: &str,
        host: &str,
        path: &str,
        query: Option<&str>,
    ) -> String {
        let scheme: std::borrow::Cow<'_, str> = if scheme.bytes().any(|b| b.is_ascii_uppercase()) {
            scheme.to_ascii_lowercase().into()
        } else {
            scheme.into()
        };
        let query_len = query.map_or(0, str::len);
        let mut out =
            String::with_capacity(scheme.len() + host.len() + path.len() + query_len + 16);
        out.push_str(&scheme);
        out.push_str("://");
        push_host(&mut out, host, &scheme);
        if !path.starts_with('/') {
            out.push('/');
        }
        push_component(&mut out, path, Part::Path);
        if let Some(q) = query {
            push_query(&mut out, q, &self.policy.key);
        }
        out
    }

    /// Full primary key: [`Route::normalized_url`] then, for each keyed header
    /// in configuration order, `\n{name}={value}` (value percent-encoded) or
    /// `\n{name}` when the request lacks it. `header` looks a request header up
    /// by lowercase name.
    pub fn cache_key(
        &self,
        scheme: &str,
        host: &str,
        path: &str,
        query: Option<&str>,
        header: &dyn Fn(&str) -> Option<String>,
    ) -> String {
        self.key_from_url(self.normalized_url(scheme, host, path, query), header)
    }

    /// [`Route::cache_key`] from an already [normalized](Route::normalized_url)
    /// URL, so a caller that needs both computes the URL once.
    pub fn key_from_url(&self, url: String, header: &dyn Fn(&str) -> Option<String>) -> String {
        let mut key = url;
        for name in &self.policy.key.headers {
            key.push('\n');
            key.push_str(name);
            if let Some(v) = header(name) {
                key.push('=');
                encode_all(&mut key, v.trim());
            }
        }
        key
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Path,
    Query,
}

fn push_host(out: &mut String, host: &str, scheme: &str) {
    let host = host.trim();
    let default_port = match scheme {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    let host = match default_port {
        Some(p) => host
            .strip_suffix(p)
            .filter(|h| !h.is_empty() && (h.ends_with(']') || !h.contains(':')))
            .unwrap_or(host),
        None => host,
    };
    for b in host.bytes() {
        let b = b.to_ascii_lowercase();
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']') {
            out.push(char::from(b));
        } else {
            push_escape(out, b);
        }
    }
}

fn push_query(out: &mut String, query: &str, rules: &crate::route::KeyRules) {
    // Each kept pair is encoded once into `encoded`; `pairs` holds where its
    // name ends and where it ends, so sorting moves three numbers, not strings.
    let mut encoded = String::with_capacity(query.len());
    let mut pairs: Vec<(usize, usize, usize)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (pair, None),
        };
        if !rules.ignore_query.is_empty() && rules.ignores(&decode_lossy(name)) {
            continue;
        }
        let start = encoded.len();
        push_component(&mut encoded, name, Part::Query);
        let name_end = encoded.len();
        if let Some(v) = value {
            encoded.push('=');
            push_component(&mut encoded, v, Part::Query);
        }
        pairs.push((start, name_end, encoded.len()));
    }
    if rules.sort_query {
        pairs.sort_by(|a, b| encoded[a.0..a.1].cmp(&encoded[b.0..b.1]));
    }
    for (i, &(start, _, end)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&encoded[start..end]);
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes kept raw (besides unreserved and `%XX` escapes): RFC 3986 sub-delims,
/// `:` `@` `/` and, in queries, `?`. `#` is never raw (it would start a fragment),
/// nor `?` in paths.
fn is_raw_ok(b: u8, part: Part) -> bool {
    matches!(
        b,
        b'!' | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b':'
            | b'@'
            | b'/'
    ) || (part == Part::Query && b == b'?')
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_component(out: &mut String, text: &str, part: Part) {
    let bytes = text.as_bytes();
    // Runs of bytes kept as they are are copied in one go (hot path: most URLs
    // need no escaping at all).
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' && (is_unreserved(b) || is_raw_ok(b, part)) {
            i += 1;
            continue;
        }
        // `run..i` holds only ASCII, so both ends are char boundaries (a
        // non-ASCII byte is escaped alone and is never the end of a run).
        if run < i {
            out.push_str(&text[run..i]);
        }
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            ) {
                let d = (h << 4) | l;
                if is_unreserved(d) {
                    out.push(char::from(d));
                } else {
                    push_escape(out, d);
                }
                i += 3;
                run = i;
                continue;
            }
            // A lone `%` is data: escape it so it cannot pair with what follows.
            push_escape(out, b);
        } else {
            push_escape(out, b);
        }
        i += 1;
        run = i;
    }
    out.push_str(&text[run..]);
}

fn encode_all(out: &mut String, text: &str) {
    for b in text.bytes() {
        if is_unreserved(b) || matches!(b, b',' | b';' | b'*' | b'/' | b':' | b'+' | b'(' | b')') {
            out.push(char::from(b));
        } else {
            push_escape(out, b);
        }
    }
}

/// Percent-decodes for glob matching (lossy UTF-8; `+` stays `+`).
fn decode_lossy(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            ) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
