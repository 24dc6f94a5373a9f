//! Upstreams: the origins Aside fetches from, and their URL parsing.

use std::path::PathBuf;
use std::time::Duration;

use crate::protect::Protection;

/// The scheme an upstream is reached with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP/1.1, default port 80.
    Http,
    /// HTTP over TLS, default port 443, SNI and certificate verification.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// 80 or 443.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// One origin, validated: where to connect, how long to wait, and the
/// headers to inject (credentials live here, so they are never part of a
/// cache key and never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Name routes refer to (`upstream = "weather"`); unique.
    pub name: String,
    /// Whether TLS is used towards the origin.
    pub scheme: Scheme,
    /// Host name or IP without port; IPv6 literals keep their brackets
    /// (`[::1]`) so `format!("{host}:{port}")` is a valid address.
    pub host: String,
    /// Port, defaulted from the scheme.
    pub port: u16,
    /// `""` or `"/prefix"` taken from the URL path (no trailing slash); it is
    /// prepended to every request path sent upstream.
    pub base_path: String,
    /// `Host` header sent upstream: host, plus `:port` when not the scheme default.
    pub host_header: String,
    /// TLS server name; defaults to the host (brackets removed).
    pub sni: String,
    /// Verify the origin's certificate (https only). Default: true.
    pub verify_cert: bool,
    /// Extra CA bundle (PEM) trusted for this upstream.
    pub ca_file: Option<PathBuf>,
    /// TCP (+TLS) connect timeout. Default: 5s.
    pub connect_timeout: Duration,
    /// Time allowed between reads of the response. Default: 30s.
    pub read_timeout: Duration,
    /// How long an idle keep-alive connection is kept. Default: 60s.
    pub idle_timeout: Duration,
    /// Headers added to every upstream request, `${VAR}` already expanded.
    pub headers: Vec<(String, String)>,
    /// Cap on concurrent requests to this origin. Default: none.
    pub max_concurrent: Option<usize>,
    /// Request budget, pauses, circuit breaker, retries.
    pub protection: Protection,
}

/// Used by [`crate::Config::upstream`] when handed a route whose index is out
/// of range (a route kept from an older config); connecting to it fails with a
/// clean upstream error instead of a panic.
pub(crate) static UNKNOWN_UPSTREAM: Upstream = Upstream {
    name: String::new(),
    scheme: Scheme::Http,
    host: String::new(),
    port: 0,
    base_path: String::new(),
    host_header: String::new(),
    sni: String::new(),
    verify_cert: true,
    ca_file: None,
    connect_timeout: Duration::from_secs(5),
    read_timeout: Duration::from_secs(30),
    idle_timeout: Duration::from_secs(60),
    headers: Vec::new(),
    max_concurrent: None,
    protection: Protection {
        rate_limit: None,
        burst: 1,
        queue_timeout: Duration::from_secs(2),
        max_retry_after: Duration::from_secs(600),
        breaker: None,
        retry: false,
    },
};

/// The parts of an upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedUrl {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    pub base_path: String,
}

impl ParsedUrl {
    pub fn host_header(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `http(s)://host[:port][/path]` with the `url` crate (WHATWG
/// rules: lowercased scheme and host, IDNA, IPv6 literals, port range), then
/// refuses what an upstream URL must not carry.
pub(crate) fn parse_url(text: &str) -> Result<ParsedUrl, String> {
    use url::ParseError;
    let example = "e.g. \"https://api.example.com\" or \"http://127.0.0.1:8081/v1\"";
    let not_http = || format!("{text:?} is not an http:// or https:// URL, {example}");
    // The parser would percent-encode these; in a config file they are a typo.
    if text.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "{text:?}: the URL contains spaces or control characters"
        ));
    }
    let url = url::Url::parse(text).map_err(|e| match e {
        ParseError::RelativeUrlWithoutBase => not_http(),
        ParseError::EmptyHost | ParseError::IdnaError | ParseError::InvalidDomainCharacter => {
            format!("{text:?} has no valid host, {example}")
        }
        ParseError::InvalidPort => format!("{text:?} has an invalid port, {example}"),
        ParseError::InvalidIpv6Address => {
            format!("{text:?} has an invalid IPv6 address, {example}")
        }
        e => format!("{text:?} is not a valid URL ({e}), {example}"),
    })?;
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(not_http()),
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{text:?}: a query or fragment is not allowed in an upstream URL"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{text:?}: credentials in the URL are not allowed; use headers = {{ Authorization = \"${{TOKEN}}\" }}"
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{text:?} has no valid host, {example}"))?;
    let port = match url.port() {
        None => scheme.default_port(),
        Some(0) => return Err(format!("{text:?} has an invalid port 0, {example}")),
        Some(n) => n,
    };
    Ok(ParsedUrl {
        scheme,
        host: host.to_owned(),
        port,
        base_path: url.path().trim_end_matches('/').to_owned(),
    })
}

/// Whether `name` is a valid HTTP header name (an RFC 9110 token), by the
/// `http` crate the proxy sends it with.
pub(crate) fn is_header_name(name: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

/// Whether `value` can be sent as a header value (no control characters but
/// tab), by the `http` crate the proxy sends it with.
pub(crate) fn is_header_value(value: &str) -> bool {
    http::HeaderValue::from_str(value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_table() {
        let table: &[(&str, Scheme, &str, u16, &str, &str)] = &[
            (
                "http://127.0.0.1:8081",
                Scheme::Http,
                "127.0.0.1",
                8081,
                "",
                "127.0.0.1:8081",
            ),
            (
                "https://API.example.com",
                Scheme::Https,
                "api.example.com",
                443,
                "",
                "api.example.com",
            ),
            (
                "https://api.example.com:443/v1/",
                Scheme::Https,
                "api.example.com",
                443,
                "/v1",
                "api.example.com",
            ),
            (
                "http://example.com:80/a/b",
                Scheme::Http,
                "example.com",
                80,
                "/a/b",
                "example.com",
            ),
            (
                "http://example.com/",
                Scheme::Http,
                "example.com",
                80,
                "",
                "example.com",
            ),
            (
                "http://[::1]:9000",
                Scheme::Http,
                "[::1]",
                9000,
                "",
                "[::1]:9000",
            ),
            (
                "http://B\u{fc}cher.example",
                Scheme::Http,
                "xn--bcher-kva.example",
                80,
                "",
                "xn--bcher-kva.example",
            ),
            (
                "HTTPS://x.io:8443",
                Scheme::Https,
                "x.io",
                8443,
                "",
                "x.io:8443",
            ),
        ];
        for (url, scheme, host, port, base, host_header) in table {
            let p = parse_url(url).unwrap();
            assert_eq!(p.scheme, *scheme, "{url}");
            assert_eq!(p.host, *host, "{url}");
            assert_eq!(p.port, *port, "{url}");
            assert_eq!(p.base_path, *base, "{url}");
            assert_eq!(p.host_header(), *host_header, "{url}");
        }
    }

    #[test]
    fn url_rejects() {
        for url in [
            "ftp://x.com",
            "x.com",
            "http://",
            "http://:80",
            "http://x.com:0",
            "http://x.com:99999",
            "http://x.com?a=1",
            "http://user:pw@x.com",
            "http://[::1",
            "http://x y.com",
            "http://x.com/a b",
            "http://x.com/#top",
            "http://user@x.com",
        ] {
            assert!(parse_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn header_names() {
        assert!(is_header_name("X-Api-Key"));
        assert!(!is_header_name("X Api"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("X:Y"));
        assert!(is_header_name("x-lower_and.dots~"));
        assert!(!is_header_name("X\"Y"));
        assert!(is_header_value("abc def"));
        assert!(is_header_value("tab\tand obs-text \u{e9}"));
        assert!(is_header_value(""));
        assert!(!is_header_value("a\r\nb"));
        assert!(!is_header_value("del\u{7f}"));
    }
}
