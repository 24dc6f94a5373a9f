//! Every validation error, with its exact message and line.

use aside_policies::parse_config;

/// One upstream (lines 1-3) and a catch-all route (lines 5-6); cases append
/// or prepend to it.
const BASE: &str = r#"[[upstream]]
name = "api"
url = "http://127.0.0.1:8081"

[[route]]
path-prefix = "/"
"#;

fn env(name: &str) -> Option<String> {
    (name == "SET").then(|| "value".to_owned())
}

fn check(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (text, want) in cases {
        match parse_config(text, "t.toml", &env) {
            Ok(_) => failures.push(format!("accepted:\n{text}\nwanted: {want}\n")),
            Err(e) if e.to_string() != *want => {
                failures.push(format!("text:\n{text}\n  got: {e}\n want: {want}\n"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A catch-all route prepended with `route` (so it is route[0], starting at line 1)
fn with_route(route: &str) -> String {
    format!("[[route]]\n{route}\n\n{BASE}")
}

#[test]
fn base_is_valid() {
    let c = parse_config(BASE, "t.toml", &env).unwrap();
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.upstreams[0].name, "api");
}

/// Port 0 asks the kernel for a free port when Aside starts (its `--ready-file`
/// says which): several port-0 listeners on one address are not a clash.
#[test]
fn port_zero_listeners_do_not_clash() {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[server.tls]\nlisten = \"127.0.0.1:0\"\ncert = \"c\"\nkey = \"k\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{BASE}"
    );
    let c = parse_config(&text, "t.toml", &env).unwrap();
    assert_eq!(c.server.listen[0].port(), 0);
    assert_eq!(c.admin.listen.port(), 0);
}

#[test]
fn syntax_and_unknown_keys() {
    check(&[
        ("[server]\nlisten = \n", "t.toml:2: invalid string; expected `\"`, `'`"),
        (
            "[server]\nthreads = 2\nlisten = \"127.0.0.1:8080\"\nlisen = \"x\"\n",
            "t.toml:4: server.lisen: unknown key (expected one of: listen, threads, grace-period, keepalive-timeout, first-request-timeout, header-read-timeout, body-read-timeout, access-log, read-buffer, write-buffer, tls)",
        ),
        (
            "[servr]\nlisten = \"x\"\n",
            "t.toml:1: servr: unknown key (expected one of: server, admin, store, upstream, route, cluster)",
        ),
        (
            &format!("{BASE}ttl-mode = \"x\"\n"),
            "t.toml:7: route[0].ttl-mode: unknown key (expected one of: name, host, path-prefix, methods, upstream, cache, bypass-headers, bypass-cookies, mode, ttl, default-ttl, min-ttl, max-ttl, heuristic-freshness, heuristic-max, stale-while-revalidate, stale-if-error, stale-if-unreachable, refresh-ahead, warm, cacheable-statuses, cache-authorized, set-cookie, tags, max-object-size, status-ttl, key)",
        ),
        (
            &format!("{BASE}key = {{ ignore = [\"a\"] }}\n"),
            "t.toml:7: route[0].key.ignore: unknown key (expected one of: ignore-query, sort-query, headers)",
        ),
        (
            "[server]\nkeepalive-timeout = \"500ms\"\n",
            "t.toml:2: server.keepalive-timeout: must be a whole number of seconds, at least 1s",
        ),
        (
            "[server]\nkeepalive-timeout = \"1500ms\"\n",
            "t.toml:2: server.keepalive-timeout: must be a whole number of seconds, at least 1s",
        ),
        (
            "[server]\nheader-read-timeout = \"0s\"\n",
            "t.toml:2: server.header-read-timeout: must be more than 0s",
        ),
        (
            "[server]\nbody-read-timeout = \"0s\"\n",
            "t.toml:2: server.body-read-timeout: must be more than 0s",
        ),
        (
            "[server]\nfirst-request-timeout = \"soon\"\n",
            "t.toml:2: server.first-request-timeout: \"soon\" is not a duration, e.g. \"10m\"",
        ),
        (
            "[admin]\nmax-connections = 0\n",
            "t.toml:2: admin.max-connections: 0 is not between 1 and 1000000",
        ),
        (
            "[admin]\nidle-timeout = \"0s\"\n",
            "t.toml:2: admin.idle-timeout: must be more than 0s",
        ),
        (
            "[server]\nread-buffer = \"32MiB\"\n",
            "t.toml:2: server.read-buffer: must be at most 16MiB",
        ),
        (
            "[server]\nwrite-buffer = \"17MiB\"\n",
            "t.toml:2: server.write-buffer: must be at most 16MiB",
        ),
        (
            "[server]\nread-buffer = \"0B\"\n",
            "t.toml:2: server.read-buffer: must be more than 0 bytes",
        ),
        (
            "[server]\naccess-log = \"yes\"\n",
            "t.toml:2: server.access-log: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "[server]\nthreads = \"two\"\n",
            "t.toml:2: server.threads: invalid type: string \"two\", expected an integer",
        ),
        (
            "[server]\nlisten = 8080\n",
            "t.toml:2: server.listen: expected an address like \"127.0.0.1:8080\" or an array of them",
        ),
        (
            "[server]\nlisten = [\"127.0.0.1:8080\", 8081]\n",
            "t.toml:2: server.listen: expected an address like \"127.0.0.1:8080\" or an array of them",
        ),
        (
            &format!("{BASE}methods = \"GET\"\n"),
            "t.toml:7: route[0].methods: invalid type: string \"GET\", expected an array",
        ),
        (
            &format!("{BASE}key = \"url\"\n"),
            "t.toml:7: route[0].key: invalid type: string \"url\", expected a table",
        ),
        (
            &format!("{BASE}cache = \"no\"\n"),
            "t.toml:7: route[0].cache: invalid type: string \"no\", expected a boolean",
        ),
    ]);
}

#[test]
fn server_admin_store_errors() {
    check(&[
        (
            &format!("[server]\nlisten = \"localhost:80\"\n{BASE}"),
            "t.toml:2: server.listen: \"localhost:80\" is not a socket address, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"",
        ),
        (
            &format!("[server]\nlisten = []\n{BASE}"),
            "t.toml:2: server.listen: at least one address is required, e.g. \"127.0.0.1:8080\"",
        ),
        (&format!("[server]\nthreads = 0\n{BASE}"), "t.toml:2: server.threads: 0 is not between 1 and 1024"),
        (
            &format!("[server]\n\ngrace-period = \"ten minutes\"\n{BASE}"),
            "t.toml:3: server.grace-period: \"ten minutes\" is not a duration, e.g. \"10m\"",
        ),
        (
            &format!("[server.tls]\ncert = \"c.pem\"\n{BASE}"),
            "t.toml:1: server.tls.key: missing: the PEM key file path, e.g. key = \"/etc/aside/key.pem\"",
        ),
        (
            &format!("[server.tls]\nlisten = \"127.0.0.1:8080\"\ncert = \"c\"\nkey = \"k\"\n{BASE}"),
            "t.toml:2: server.tls.listen: 127.0.0.1:8080 is also a server.listen address",
        ),
        (
            &format!("[admin]\nlisten = \"127.0.0.1:8080\"\n{BASE}"),
            "t.toml:2: admin.listen: 127.0.0.1:8080 is also a server.listen address",
        ),
        (
            &format!("[admin]\ntoken-env = \"T\"\ntoken-file = \"f\"\n{BASE}"),
            "t.toml:3: admin.token-file: token-env and token-file are exclusive: give one (or neither to generate a token)",
        ),
        (
            &format!("[admin]\ntoken-env = \"MY-TOKEN\"\n{BASE}"),
            "t.toml:2: admin.token-env: \"MY-TOKEN\" is not an environment variable name, e.g. \"ASIDE_ADMIN_TOKEN\"",
        ),
        (
            &format!("[admin]\npurge-allow = [\n  \"127.0.0.1/32\",\n  \"10.0.0.0/33\",\n]\n{BASE}"),
            "t.toml:4: admin.purge-allow[1]: \"10.0.0.0/33\": prefix /33 is longer than /32",
        ),
        (
            &format!("[admin]\npurge-allow = [\"localhost\"]\n{BASE}"),
            "t.toml:2: admin.purge-allow[0]: \"localhost\" is not an IP network, e.g. \"127.0.0.1/32\" or \"::1\"",
        ),
        (
            &format!("[store]\nhot-capacity = \"10 megs\"\n{BASE}"),
            "t.toml:2: store.hot-capacity: \"10 megs\" is not a size, e.g. \"256MiB\" or \"512KB\"",
        ),
        (&format!("[store]\ncold-capacity = \"0\"\n{BASE}"), "t.toml:2: store.cold-capacity: must be more than 0 bytes"),
        (&format!("[store]\ncold-cache = \"0\"\n{BASE}"), "t.toml:2: store.cold-cache: must be more than 0 bytes"),
        (
            &format!("[store]\ncold-cache = \"lots\"\n{BASE}"),
            "t.toml:2: store.cold-cache: \"lots\" is not a size, e.g. \"256MiB\" or \"512KB\"",
        ),
        (
            &format!("[store]\npath = \"\"\n{BASE}"),
            "t.toml:2: store.path: must not be empty, e.g. \"data/aside.redb\"",
        ),
        (
            &format!("[store]\nmin-ttl = \"2d\"\nmax-ttl = \"1d\"\n{BASE}"),
            "t.toml:2: store.min-ttl: min-ttl (2days) is more than max-ttl (1day)",
        ),
    ]);
}

#[test]
fn upstream_errors() {
    check(&[
        (
            "[[route]]\npath-prefix = \"/\"\n",
            "t.toml: upstream: at least one [[upstream]] is required, e.g. [[upstream]] name = \"api\" url = \"https://api.example.com\"",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"api\"\nurl = \"http://x\"\n"),
            "t.toml:9: upstream[1].name: duplicate upstream name \"api\" (also upstream[0])",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nurl = \"http://x\"\n"),
            "t.toml:8: upstream[1].name: missing: every upstream needs a name, e.g. name = \"api\"",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"my api\"\nurl = \"http://x\"\n"),
            "t.toml:9: upstream[1].name: \"my api\" is not a name (letters, digits, '-' and '_'), e.g. \"weather-api\"",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"b\"\n"),
            "t.toml:8: upstream[1].url: missing: the origin's URL, e.g. url = \"https://api.example.com\"",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"b\"\nurl = \"ftp://x\"\n"),
            "t.toml:10: upstream[1].url: \"ftp://x\" is not an http:// or https:// URL, e.g. \"https://api.example.com\" or \"http://127.0.0.1:8081/v1\"",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"b\"\nurl = \"http://x\"\nsni = \"x\"\n"),
            "t.toml:11: upstream[1].sni: only applies to https upstreams, and \"x\" is http",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"b\"\nurl = \"http://x:81\"\nverify-cert = false\n"),
            "t.toml:11: upstream[1].verify-cert: only applies to https upstreams, and \"x:81\" is http",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"b\"\nurl = \"https://x\"\nverify-cert = false\nca-file = \"ca.pem\"\n"),
            "t.toml:12: upstream[1].ca-file: has no effect with verify-cert = false; remove one of them",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"b\"\nurl = \"https://x\"\nconnect-timeout = \"0s\"\n"),
            "t.toml:11: upstream[1].connect-timeout: must be more than 0s",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"b\"\nurl = \"https://x\"\nread-timeout = \"soon\"\n"),
            "t.toml:11: upstream[1].read-timeout: \"soon\" is not a duration, e.g. \"10m\"",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"b\"\nurl = \"https://x\"\nheaders = {{ \"X-Key\" = \"${{API_KEY}}\" }}\n"),
            "t.toml:11: upstream[1].headers.X-Key: environment variable API_KEY is not set (write \"${API_KEY:-default}\" to make it optional)",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"b\"\nurl = \"https://x\"\nheaders = {{ \"X Key\" = \"v\" }}\n"),
            "t.toml:11: upstream[1].headers.X Key: \"X Key\" is not a valid header name",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"b\"\nurl = \"https://x\"\nheaders = {{ Host = \"v\" }}\n"),
            "t.toml:11: upstream[1].headers.Host: Host is managed by the proxy and cannot be set (reserved: host, content-length, transfer-encoding, connection, upgrade, te)",
        ),
        (
            &format!("{BASE}\n[[upstream]]\nname = \"b\"\nurl = \"https://x\"\nmax-concurrent = 0\n"),
            "t.toml:11: upstream[1].max-concurrent: 0 is not at least 1",
        ),
    ]);
}

#[test]
fn route_errors() {
    let two_upstreams = "[[upstream]]\nname = \"a\"\nurl = \"http://a\"\n[[upstream]]\nname = \"b\"\nurl = \"http://b\"\n";
    check(&[
        (
            "[[upstream]]\nname = \"api\"\nurl = \"http://x\"\n",
            "t.toml: route: no catch-all route: the last [[route]] must take every request (no host or host = \"*\", path-prefix = \"/\", no methods)",
        ),
        (
            &format!("{BASE}\n[[route]]\npath-prefix = \"/v1/\"\n"),
            "t.toml:8: route[1]: unreachable: route[0] before it takes every request; move the catch-all route last",
        ),
        (
            &format!("{BASE}methods = [\"GET\"]\n"),
            "t.toml:5: route[0]: no catch-all route: the last [[route]] must take every request (no host or host = \"*\", path-prefix = \"/\", no methods)",
        ),
        (
            &format!("{two_upstreams}[[route]]\nupstream = \"c\"\n"),
            "t.toml:8: route[0].upstream: unknown upstream \"c\" (known: a, b)",
        ),
        (
            &format!("{two_upstreams}[[route]]\npath-prefix = \"/\"\n"),
            "t.toml:7: route[0].upstream: missing: which upstream serves this route (known: a, b)",
        ),
        (
            &with_route("name = \"x\"\nmode = \"override\""),
            "t.toml:1: route[0].ttl: missing: mode = \"override\" requires ttl, e.g. ttl = \"10m\"",
        ),
        (
            &with_route("mode = \"override\"\nttl = \"0s\""),
            "t.toml:3: route[0].ttl: must be more than 0s",
        ),
        (
            &with_route("mode = \"forever\""),
            "t.toml:2: route[0].mode: \"forever\" is not a mode (expected one of: override, respect-origin, clamp)",
        ),
        (
            &with_route("mode = \"override\"\nttl = \"10 minuets\""),
            "t.toml:3: route[0].ttl: \"10 minuets\" is not a duration, e.g. \"10m\"",
        ),
        (
            &with_route("ttl = \"10m\""),
            "t.toml:2: route[0].ttl: only applies to mode = \"override\" (this route is \"respect-origin\"); use default-ttl for responses without freshness information",
        ),
        (
            &with_route("mode = \"override\"\nttl = \"1m\"\ndefault-ttl = \"1m\""),
            "t.toml:4: route[0].default-ttl: does not apply to mode = \"override\" (ttl is used for every response); remove it",
        ),
        (
            &with_route("max-ttl = \"1m\""),
            "t.toml:2: route[0].max-ttl: only applies to mode = \"clamp\" (this route is \"respect-origin\")",
        ),
        (
            &with_route("mode = \"clamp\""),
            "t.toml:2: route[0].mode: mode = \"clamp\" requires min-ttl or max-ttl, e.g. max-ttl = \"1h\"",
        ),
        (
            &with_route("mode = \"clamp\"\nmin-ttl = \"1h\"\nmax-ttl = \"10m\""),
            "t.toml:3: route[0].min-ttl: min-ttl (1h) is more than max-ttl (10m)",
        ),
        (
            &with_route("heuristic-freshness = \"10\""),
            "t.toml:2: route[0].heuristic-freshness: \"10\" is not a percentage from \"1%\" to \"100%\" or \"off\", e.g. \"10%\"",
        ),
        (
            &with_route("heuristic-freshness = \"0%\""),
            "t.toml:2: route[0].heuristic-freshness: \"0%\" is not a percentage from \"1%\" to \"100%\" or \"off\", e.g. \"10%\"",
        ),
        (
            &with_route("heuristic-freshness = \"150%\""),
            "t.toml:2: route[0].heuristic-freshness: \"150%\" is not a percentage from \"1%\" to \"100%\" or \"off\", e.g. \"10%\"",
        ),
        (
            &with_route("heuristic-max = \"0s\""),
            "t.toml:2: route[0].heuristic-max: must be more than 0s",
        ),
        (
            &with_route("heuristic-freshness = \"off\"\nheuristic-max = \"1h\""),
            "t.toml:3: route[0].heuristic-max: has no effect with heuristic-freshness = \"off\"; remove one of them",
        ),
        (
            &with_route("mode = \"override\"\nttl = \"1m\"\nheuristic-freshness = \"10%\""),
            "t.toml:4: route[0].heuristic-freshness: does not apply to mode = \"override\" (ttl is used for every response); remove it",
        ),
        (
            &with_route("status-ttl = { 404 = \"30s\", 700 = \"1m\" }"),
            "t.toml:2: route[0].status-ttl.700: 700 is not an HTTP status (expected 100..=599)",
        ),
        (
            &with_route("status-ttl = { nope = \"30s\" }"),
            "t.toml:2: route[0].status-ttl.nope: \"nope\" is not an HTTP status (expected 100..=599)",
        ),
        (
            &with_route("[route.status-ttl]\n404 = \"30s\"\n410 = \"a while\""),
            "t.toml:4: route[0].status-ttl.410: \"a while\" is not a duration, e.g. \"10m\"",
        ),
        (
            &with_route("cacheable-statuses = [200, 99]"),
            "t.toml:2: route[0].cacheable-statuses[1]: 99 is not an HTTP status (expected 100..=599)",
        ),
        (
            &with_route("host = \"a.*.com\""),
            "t.toml:2: route[0].host: \"a.*.com\" is not a host pattern, e.g. \"api.example.com\", \"*.example.com\" or \"*\"",
        ),
        (
            &with_route("path-prefix = \"v1\""),
            "t.toml:2: route[0].path-prefix: \"v1\" is not a path prefix, e.g. \"/v1/\"",
        ),
        (
            &with_route("methods = []"),
            "t.toml:2: route[0].methods: must not be empty; remove it to take every method",
        ),
        (
            &with_route("methods = [\"GET\", \"GE T\"]"),
            "t.toml:2: route[0].methods[1]: \"GE T\" is not an HTTP method, e.g. \"GET\"",
        ),
        (
            &with_route("bypass-headers = [\"X:Y\"]"),
            "t.toml:2: route[0].bypass-headers[0]: \"X:Y\" is not a valid header name",
        ),
        (
            &with_route("bypass-cookies = [\"a=b\"]"),
            "t.toml:2: route[0].bypass-cookies[0]: \"a=b\" is not a cookie name, e.g. \"session\"",
        ),
        (
            &with_route("key = { headers = [\"Accept Language\"] }"),
            "t.toml:2: route[0].key.headers[0]: \"Accept Language\" is not a valid header name",
        ),
        (
            &with_route("key = { ignore-query = [\"utm_[\"] }"),
            "t.toml:2: route[0].key.ignore-query[0]: \"utm_[\" is not a glob: unclosed character class; missing ']'",
        ),
        (
            &with_route("set-cookie = \"keep\""),
            "t.toml:2: route[0].set-cookie: \"keep\" is not a set-cookie rule (expected one of: do-not-cache, strip)",
        ),
        (
            &with_route("tags = [\"a b\"]"),
            "t.toml:2: route[0].tags[0]: \"a b\" is not a tag (no spaces or commas), e.g. \"weather\"",
        ),
        (
            &with_route("max-object-size = \"huge\""),
            "t.toml:2: route[0].max-object-size: \"huge\" is not a size, e.g. \"256MiB\" or \"512KB\"",
        ),
        (
            &with_route("name = \"default\"\npath-prefix = \"/v1\"\n\n[[route]]\nname = \"default\""),
            "t.toml:6: route[1].name: duplicate route name \"default\" (also route[0])",
        ),
    ]);
}

#[test]
fn env_defaults_expand() {
    let text = format!(
        "{BASE}upstream = \"api\"\n\n[[upstream]]\nname = \"b\"\nurl = \"https://x\"\nheaders = {{ \"X-A\" = \"${{SET}}\", \"X-B\" = \"${{UNSET:-fallback}}\" }}\n"
    );
    let c = parse_config(&text, "t.toml", &env).unwrap();
    assert_eq!(
        c.upstreams[1].headers,
        vec![
            ("X-A".to_owned(), "value".to_owned()),
            ("X-B".to_owned(), "fallback".to_owned())
        ]
    );
}

/// `[cluster]` (issue 14): errors name the file, the line and the key.
#[test]
fn cluster_section() {
    let text = format!("[cluster]\nredis = \"redis://h\"\nkey-prefix = \"a{{b}}\"\n\n{BASE}");
    let e = parse_config(&text, "t.toml", &env).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml:3: cluster.key-prefix: \"a{b}\" contains '{' or '}': Aside adds its own hash tags after the prefix"
    );
    let text = format!("[cluster]\nredis = \"${{UNSET_REDIS}}\"\n\n{BASE}");
    let e = parse_config(&text, "t.toml", &env).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("t.toml:2: cluster.redis: environment variable UNSET_REDIS is not set"),
        "{e}"
    );
    let text = format!("[cluster]\nredis = \"rediss://:${{SET}}@h:6380/0\"\n\n{BASE}");
    let c = parse_config(&text, "t.toml", &env).unwrap();
    let cluster = c.cluster.clone().unwrap();
    assert_eq!(cluster.redis, "rediss://:value@h:6380/0");
    assert_eq!(cluster.key_prefix, "aside:");
    // Round trip through to_toml.
    assert_eq!(parse_config(&c.to_toml(), "r.toml", &env).unwrap(), c);
    assert!(parse_config(BASE, "t.toml", &env)
        .unwrap()
        .cluster
        .is_none());
}
