//! Route matching: order, wildcards, catch-all, methods; and bypass rules.

use aside_policies::parse_config;

const ROUTES: &str = r#"
[[upstream]]
name = "a"
url = "http://a"

[[route]]
name = "api-v1-get"
host = "api.example.com"
path-prefix = "/v1/"
methods = ["get", "HEAD"]

[[route]]
name = "api"
host = "api.example.com"

[[route]]
name = "wild-static"
host = "*.example.com"
path-prefix = "/static/"

[[route]]
name = "any-host-health"
path-prefix = "/health"

[[route]]
name = "catch-all"
host = "*"
bypass-headers = ["X-Bypass"]
bypass-cookies = ["session"]
"#;

#[test]
fn first_match_wins() {
    let c = parse_config(ROUTES, "t.toml", &|_| None).unwrap();
    let table: &[(&str, &str, &str, &str)] = &[
        ("api.example.com", "/v1/users", "GET", "api-v1-get"),
        ("API.EXAMPLE.COM:8080", "/v1/users", "get", "api-v1-get"),
        ("api.example.com", "/v1/users", "HEAD", "api-v1-get"),
        ("api.example.com", "/v1/users", "POST", "api"),
        ("api.example.com", "/v1", "GET", "api"),
        ("api.example.com", "/static/x.css", "GET", "api"),
        ("cdn.example.com", "/static/x.css", "GET", "wild-static"),
        ("a.b.example.com", "/static/x.css", "DELETE", "wild-static"),
        ("example.com", "/static/x.css", "GET", "catch-all"),
        ("cdn.example.com", "/other", "GET", "catch-all"),
        ("cdn.example.com", "/health", "GET", "any-host-health"),
        ("anything", "/healthz", "GET", "any-host-health"),
        ("", "/", "OPTIONS", "catch-all"),
    ];
    for (host, path, method, want) in table {
        let got = c.route_for(host, path, method).map(|r| r.name.as_str());
        assert_eq!(got, Some(*want), "{method} {host}{path}");
    }
    assert_eq!(
        c.routes[0].methods.as_deref(),
        Some(&["GET".to_owned(), "HEAD".to_owned()][..])
    );
}

#[test]
fn route_for_none_without_catch_all() {
    let mut c = parse_config(ROUTES, "t.toml", &|_| None).unwrap();
    c.routes.pop();
    assert!(c.route_for("x", "/", "GET").is_none());
    // A route handed back from a larger config gets a placeholder, not a panic.
    let mut foreign = c.routes[0].clone();
    foreign.upstream = 7;
    assert_eq!(c.upstream(&foreign).port, 0);
}

#[test]
fn bypass_rules() {
    let c = parse_config(ROUTES, "t.toml", &|_| None).unwrap();
    let catch_all = c.routes.last().unwrap();
    /// (request headers, bypass reason)
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
    let table: &[Case] = &[
        (&[], None),
        (&[("x-bypass", "1")], Some("header x-bypass")),
        (&[("cookie", "a=1; session=abc")], Some("cookie session")),
        (&[("cookie", "sessionid=1; a=2")], None),
        (&[("cookie", "session")], Some("cookie session")),
        (&[("authorization", "Bearer x")], None),
    ];
    for (headers, want) in table {
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(catch_all.bypass(&lookup).as_deref(), *want, "{headers:?}");
    }
    let off = parse_config(
        "[[upstream]]\nname = \"a\"\nurl = \"http://a\"\n[[route]]\ncache = false\n",
        "t.toml",
        &|_| None,
    )
    .unwrap();
    assert_eq!(
        off.routes[0].bypass(&|_| None).as_deref(),
        Some("cache disabled for route")
    );
}

#[test]
fn route_index_ignores_the_port_and_matches_route_for() {
    let c = parse_config(ROUTES, "t.toml", &|_| None).unwrap();
    let table: &[(&str, &str, &str, usize)] = &[
        ("api.example.com:8080", "/v1/users", "GET", 0),
        ("API.example.com", "/v2", "POST", 1),
        ("cdn.example.com:443", "/static/a.css", "GET", 2),
        ("[::1]:8080", "/health", "GET", 3),
        ("[::1]:8080", "/other", "GET", 4),
    ];
    for (host, path, method, want) in table {
        assert_eq!(
            c.route_index_for(host, path, method),
            Some(*want),
            "{host} {path}"
        );
        let by_ref = c.route_for(host, path, method).unwrap();
        assert!(std::ptr::eq(by_ref, &c.routes[*want]));
    }
}
