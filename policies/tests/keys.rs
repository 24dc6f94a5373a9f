//! Cache keys: normalization tables and a property test that different
//! requests never share a key.

use aside_policies::{parse_config, Route};
use proptest::prelude::*;

fn route(key: &str) -> Route {
    let text =
        format!("[[upstream]]\nname = \"a\"\nurl = \"http://a\"\n[[route]]\nkey = {{ {key} }}\n");
    parse_config(&text, "t.toml", &|_| None)
        .unwrap()
        .routes
        .remove(0)
}

fn no_headers(_: &str) -> Option<String> {
    None
}

#[test]
fn normalized_urls() {
    let sorted = route("ignore-query = [\"utm_*\", \"fbclid\"]");
    let unsorted = route("sort-query = false");
    /// (route, scheme, host, path, query, normalized URL)
    type Case<'a> = (
        &'a Route,
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a str,
    );
    let table: &[Case] = &[
        (
            &sorted,
            "http",
            "Example.COM",
            "/a",
            None,
            "http://example.com/a",
        ),
        (
            &sorted,
            "HTTPS",
            "example.com:443",
            "/a",
            Some(""),
            "https://example.com/a",
        ),
        (
            &sorted,
            "http",
            "example.com:80",
            "/a",
            None,
            "http://example.com/a",
        ),
        (
            &sorted,
            "http",
            "example.com:8080",
            "/a",
            None,
            "http://example.com:8080/a",
        ),
        (&sorted, "http", "[::1]:80", "/", None, "http://[::1]/"),
        (&sorted, "http", "h", "", None, "http://h/"),
        (
            &sorted,
            "http",
            "h",
            "/a",
            Some("b=2&a=1"),
            "http://h/a?a=1&b=2",
        ),
        (
            &sorted,
            "http",
            "h",
            "/a",
            Some("a=2&b=0&a=1"),
            "http://h/a?a=2&a=1&b=0",
        ),
        (
            &sorted,
            "http",
            "h",
            "/a",
            Some("utm_source=x&q=1&fbclid=z"),
            "http://h/a?q=1",
        ),
        (
            &sorted,
            "http",
            "h",
            "/a",
            Some("utm_source=x&utm_medium=y"),
            "http://h/a",
        ),
        (
            &sorted,
            "http",
            "h",
            "/a",
            Some("utm%5Fsource=x&q=1"),
            "http://h/a?q=1",
        ),
        (&sorted, "http", "h", "/a", Some("&&q=1&"), "http://h/a?q=1"),
        (
            &sorted,
            "http",
            "h",
            "/a",
            Some("flag&flag="),
            "http://h/a?flag&flag=",
        ),
        (
            &sorted,
            "http",
            "h",
            "/%7euser/%41b%2f",
            Some("q=%61%2b%2B+"),
            "http://h/~user/Ab%2F?q=a%2B%2B+",
        ),
        (
            &sorted,
            "http",
            "h",
            "/a b/é",
            Some("q=a b"),
            "http://h/a%20b/%C3%A9?q=a%20b",
        ),
        (
            &sorted,
            "http",
            "h",
            "/50%",
            Some("p=100%&x=%zz"),
            "http://h/50%25?p=100%25&x=%25zz",
        ),
        (&sorted, "http", "h", "/a?b", None, "http://h/a%3Fb"),
        (&sorted, "http", "h/x", "/y", None, "http://h%2Fx/y"),
        (
            &unsorted,
            "http",
            "h",
            "/a",
            Some("b=2&a=1"),
            "http://h/a?b=2&a=1",
        ),
    ];
    for (r, scheme, host, path, query, want) in table {
        assert_eq!(
            r.normalized_url(scheme, host, path, *query),
            *want,
            "{scheme} {host} {path} {query:?}"
        );
        assert_eq!(r.cache_key(scheme, host, path, *query, &no_headers), *want);
    }
}

#[test]
fn keyed_headers() {
    let r = route("headers = [\"Accept-Language\", \"X-Tenant\"]");
    let key = |al: Option<&str>, t: Option<&str>| {
        r.cache_key("http", "h", "/a", Some("q=1"), &|name| match name {
            "accept-language" => al.map(str::to_owned),
            "x-tenant" => t.map(str::to_owned),
            _ => None,
        })
    };
    let table: &[(Option<&str>, Option<&str>, &str)] = &[
        (None, None, "http://h/a?q=1\naccept-language\nx-tenant"),
        (Some(""), None, "http://h/a?q=1\naccept-language=\nx-tenant"),
        (
            Some("en-US,en;q=0.9"),
            None,
            "http://h/a?q=1\naccept-language=en-US,en;q%3D0.9\nx-tenant",
        ),
        (
            Some("fr"),
            Some("a\nx-tenant=b"),
            "http://h/a?q=1\naccept-language=fr\nx-tenant=a%0Ax-tenant%3Db",
        ),
        (
            Some(" fr "),
            Some("t1"),
            "http://h/a?q=1\naccept-language=fr\nx-tenant=t1",
        ),
    ];
    for (al, t, want) in table {
        assert_eq!(key(*al, *t), *want);
    }
    // The readable URL does not carry the headers.
    assert_eq!(
        r.normalized_url("http", "h", "/a", Some("q=1")),
        "http://h/a?q=1"
    );
}

/// One request's keyed components, decoded.
#[derive(Debug, Clone)]
struct Req {
    https: bool,
    host: String,
    path: Vec<String>,
    query: Vec<(String, Option<String>)>,
    header: Option<String>,
}

/// Text with the characters that matter for framing.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            'a', 'B', '0', '-', '.', '~', '_', '%', '&', '=', '?', '#', '/', '+', ' ', '\n', ';',
            'é', ':',
        ]),
        0..5,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn req() -> impl Strategy<Value = Req> {
    (
        any::<bool>(),
        prop::sample::select(vec!["a.com", "b.com", "a.co", "a.com:8080"]),
        prop::collection::vec(text(), 1..3),
        prop::collection::vec(("[a-c]{1,2}|utm_x", prop::option::of(text())), 0..4),
        prop::option::of(text()),
    )
        .prop_map(|(https, host, path, query, header)| Req {
            https,
            host: host.to_owned(),
            path,
            query,
            header,
        })
}

/// Percent-encodes everything but unreserved characters; `upper` and
/// `encode_unreserved` vary the spelling without changing the meaning.
fn enc(s: &str, upper: bool, encode_unreserved: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        if unreserved && !encode_unreserved {
            out.push(char::from(b));
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn key_of(r: &Route, q: &Req, upper: bool, enc_unreserved: bool) -> String {
    let path: String = q
        .path
        .iter()
        .map(|seg| format!("/{}", enc(seg, upper, enc_unreserved)))
        .collect();
    let query: Vec<String> = q
        .query
        .iter()
        .map(|(n, v)| match v {
            Some(v) => format!(
                "{}={}",
                enc(n, upper, enc_unreserved),
                enc(v, upper, enc_unreserved)
            ),
            None => enc(n, upper, enc_unreserved),
        })
        .collect();
    let query = query.join("&");
    let header = q.header.clone();
    r.cache_key(
        if q.https { "https" } else { "http" },
        &q.host,
        &path,
        (!q.query.is_empty()).then_some(query.as_str()),
        &move |name| {
            if name == "accept-language" {
                header.clone()
            } else {
                None
            }
        },
    )
}

/// (https, host, path segments, query pairs, header value)
type Identity = (
    bool,
    String,
    Vec<String>,
    Vec<(String, Option<String>)>,
    Option<String>,
);

/// What the key must distinguish: everything but ignored parameters and the
/// order of different parameter names.
fn identity(q: &Req) -> Identity {
    let mut query: Vec<_> = q
        .query
        .iter()
        .filter(|(n, _)| !n.starts_with("utm_"))
        .cloned()
        .collect();
    query.sort_by(|a, b| a.0.cmp(&b.0));
    // Empty names with no value vanish (`&&`), like in the key.
    query.retain(|(n, v)| !(n.is_empty() && v.is_none()));
    (
        q.https,
        q.host.clone(),
        q.path.clone(),
        query,
        q.header.clone().map(|h| h.trim().to_owned()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn different_requests_never_share_a_key(a in req(), b in req()) {
        let r = route("ignore-query = [\"utm_*\"], headers = [\"Accept-Language\"]");
        let (ka, kb) = (key_of(&r, &a, true, false), key_of(&r, &b, true, false));
        if identity(&a) != identity(&b) {
            prop_assert_ne!(ka, kb);
        } else {
            prop_assert_eq!(ka, kb);
        }
    }

    #[test]
    fn spelling_does_not_change_the_key(a in req(), upper in any::<bool>(), enc_unreserved in any::<bool>()) {
        let r = route("ignore-query = [\"utm_*\"], headers = [\"Accept-Language\"]");
        prop_assert_eq!(key_of(&r, &a, true, false), key_of(&r, &a, upper, enc_unreserved));
    }

    #[test]
    fn keys_are_single_line_urls(a in req()) {
        let r = route("");
        let k = key_of(&r, &a, true, false);
        prop_assert!(!k.contains('\n'));
        prop_assert!(k.starts_with("http"));
    }
}
