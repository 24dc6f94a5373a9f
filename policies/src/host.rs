//! Host matchers of routes: any host, one exact host, or `*.example.com`.

use std::fmt;

/// Which request hosts a route applies to. Hosts are compared lowercase with
/// the port (and a trailing dot) ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Every host (`host` absent or `"*"`).
    Any,
    /// One host, lowercase, e.g. `api.example.com`.
    Exact(String),
    /// `"*.example.com"`, stored as `example.com`: matches `a.example.com` and
    /// `a.b.example.com`, not `example.com` itself.
    Suffix(String),
}

impl HostMatch {
    /// Parses `"*"`, `"api.example.com"` or `"*.example.com"`.
    ///
    /// # Errors
    /// When the pattern is empty, has a wildcard elsewhere than a leading `*.`,
    /// or contains characters that cannot be in a host name.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let p = pattern.trim().to_ascii_lowercase();
        if p == "*" {
            return Ok(HostMatch::Any);
        }
        let (suffix, name) = match p.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, p.as_str()),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let valid = !name.is_empty()
            && name.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']')
            })
            && !name.starts_with('.')
            && !name.contains("..");
        if !valid {
            return Err(format!(
                "{pattern:?} is not a host pattern, e.g. \"api.example.com\", \"*.example.com\" or \"*\""
            ));
        }
        Ok(if suffix {
            HostMatch::Suffix(name.to_owned())
        } else {
            HostMatch::Exact(name.to_owned())
        })
    }

    /// Whether a request's `Host` (or URI authority) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(want) => bare_host(host).eq_ignore_ascii_case(want),
            HostMatch::Suffix(suffix) => {
                let h = bare_host(host);
                h.len() > suffix.len() + 1
                    && h.as_bytes()[h.len() - suffix.len() - 1] == b'.'
                    && h[h.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }

    /// Whether this matcher matches every host.
    pub fn is_any(&self) -> bool {
        matches!(self, HostMatch::Any)
    }
}

/// The host without port and trailing dot: `Example.com.:8080` -> `Example.com`,
/// `[::1]:8080` -> `[::1]`.
pub(crate) fn bare_host(host: &str) -> &str {
    let host = host.trim();
    let no_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => host,
        }
    };
    no_port.strip_suffix('.').unwrap_or(no_port)
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Any => f.write_str("*"),
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Suffix(s) => write!(f, "*.{s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_table() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "anything.example", true),
            ("*", "", true),
            ("api.example.com", "api.example.com", true),
            ("api.example.com", "API.Example.COM", true),
            ("api.example.com", "api.example.com:8080", true),
            ("api.example.com", "api.example.com.", true),
            ("api.example.com", "www.example.com", false),
            ("api.example.com", "xapi.example.com", false),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("*.example.com", "A.EXAMPLE.com:443", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "badexample.com", false),
            ("*.example.com", ".example.com", false),
            ("127.0.0.1", "127.0.0.1:8080", true),
            ("[::1]", "[::1]:8080", true),
        ];
        for (pattern, host, want) in table {
            let m = HostMatch::parse(pattern).unwrap();
            assert_eq!(m.matches(host), *want, "{pattern} vs {host}");
        }
    }

    #[test]
    fn parse_table() {
        assert_eq!(HostMatch::parse("*"), Ok(HostMatch::Any));
        assert_eq!(
            HostMatch::parse("API.example.com"),
            Ok(HostMatch::Exact("api.example.com".into()))
        );
        assert_eq!(
            HostMatch::parse("*.Example.com"),
            Ok(HostMatch::Suffix("example.com".into()))
        );
        for bad in ["", "a.*.com", "exa mple.com", "*.", "a..b", "http://x.com"] {
            assert!(HostMatch::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            HostMatch::parse("*.example.com").unwrap().to_string(),
            "*.example.com"
        );
    }
}
