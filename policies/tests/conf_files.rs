//! The config files shipped in `conf/` parse, and every valid config
//! round-trips through `Config::to_toml` and the validator.

use std::net::SocketAddr;
use std::time::Duration;

use aside_policies::{parse_config, Config, HostMatch, Mode, Scheme, SetCookie, TokenSource};

const FILES: &[(&str, &str)] = &[
    ("conf/aside.toml", include_str!("../../conf/aside.toml")),
    (
        "conf/examples/weather-api.toml",
        include_str!("../../conf/examples/weather-api.toml"),
    ),
    (
        "conf/examples/full.toml",
        include_str!("../../conf/examples/full.toml"),
    ),
];

/// CI runs `aside --check-config` with no environment: so do we.
fn no_env(_: &str) -> Option<String> {
    None
}

fn round_trip(c: &Config) {
    let text = c.to_toml();
    let again = parse_config(&text, "round-trip.toml", &no_env)
        .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(&again, c, "round trip changed the config:\n{text}");
    assert_eq!(again.to_toml(), text);
}

#[test]
fn shipped_files_parse_and_round_trip() {
    for (name, text) in FILES {
        let c = parse_config(text, name, &no_env).unwrap_or_else(|e| panic!("{e}"));
        round_trip(&c);
    }
}

#[test]
fn default_file_values() {
    let c = parse_config(FILES[0].1, FILES[0].0, &no_env).unwrap();
    assert_eq!(
        c.server.listen,
        vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(
        c.admin.listen,
        "127.0.0.1:9080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.admin.token, TokenSource::Generate);
    assert_eq!(c.store.path.to_str(), Some("data/aside.redb"));
    assert_eq!(c.store.hot_capacity, 256 << 20);
    assert_eq!(c.store.cold_capacity, 10 << 30);
    assert_eq!(c.store.cold_cache, 4 << 20);
    let demo = &c.upstreams[0];
    assert_eq!(
        (
            demo.name.as_str(),
            demo.scheme,
            demo.host.as_str(),
            demo.port
        ),
        ("demo", Scheme::Http, "127.0.0.1", 8081)
    );
    assert_eq!(demo.host_header, "127.0.0.1:8081");
    let r = c.route_for("127.0.0.1:8080", "/weather", "GET").unwrap();
    assert_eq!(r.name, "weather");
    assert_eq!(r.policy.mode, Mode::RespectOrigin);
    assert_eq!(
        r.policy.stale_while_revalidate,
        Some(Duration::from_secs(30))
    );
    assert_eq!(r.policy.stale_if_error, Some(Duration::from_secs(600)));
    assert_eq!(
        c.route_for("localhost", "/slow", "POST").unwrap().name,
        "default"
    );
    assert!(c.routes.last().unwrap().is_catch_all());
}

#[test]
fn weather_example_values() {
    let (name, text) = FILES[1];
    let c = parse_config(text, name, &no_env).unwrap();
    let up = &c.upstreams[0];
    assert_eq!(up.scheme, Scheme::Https);
    assert_eq!(up.port, 443);
    assert_eq!(up.sni, "api.weather.example");
    assert!(up.verify_cert);
    assert_eq!(
        up.headers,
        vec![("X-Api-Key".to_owned(), "demo-key".to_owned())]
    );
    assert_eq!(c.admin.token, TokenSource::Env("ASIDE_ADMIN_TOKEN".into()));
    let with_key = parse_config(text, name, &|n| {
        (n == "WEATHER_API_KEY").then(|| "k-123".to_owned())
    })
    .unwrap();
    assert_eq!(with_key.upstreams[0].headers[0].1, "k-123");
    let r = c.route_for("weather.local", "/v1/forecast", "GET").unwrap();
    assert_eq!(
        (r.name.as_str(), r.policy.mode, r.policy.ttl),
        ("forecast", Mode::Override, Some(Duration::from_secs(600)))
    );
    assert_eq!(
        c.route_for("weather.local", "/v1/forecast", "POST")
            .unwrap()
            .name,
        "default"
    );
    assert_eq!(
        c.route_for("other", "/v1/current", "GET").unwrap().name,
        "default"
    );
}

#[test]
fn full_example_values() {
    let (name, text) = FILES[2];
    let c = parse_config(text, name, &no_env).unwrap();
    assert_eq!(c.server.listen.len(), 2);
    assert!(c.server.tls.is_some());
    assert_eq!(c.upstreams[0].base_path, "/api");
    assert_eq!(c.upstreams[0].host_header, "crm.example.com:8443");
    assert_eq!(
        c.upstreams[0].headers[0],
        ("Authorization".to_owned(), "Bearer dev-token".to_owned())
    );
    let r = &c.routes[0];
    assert_eq!(r.host, HostMatch::Suffix("crm.local".into()));
    assert_eq!(r.policy.set_cookie, SetCookie::Strip);
    assert_eq!(r.policy.key.headers, vec!["accept-language", "accept"]);
    assert_eq!(r.policy.max_object_size, 8 << 20);
    assert_eq!(
        c.route_for("a.crm.local", "/contacts/1", "DELETE")
            .unwrap()
            .name,
        "writes"
    );
}

#[test]
fn quick_configs() {
    let c = Config::quick("https://api.example.com/v2", Some(Duration::from_secs(60))).unwrap();
    let r = c.route_for("anything", "/x", "GET").unwrap();
    assert_eq!(r.policy.mode, Mode::Override);
    assert_eq!(r.policy.ttl, Some(Duration::from_secs(60)));
    assert_eq!(c.upstream(r).base_path, "/v2");
    assert_eq!(c.upstream(r).name, "origin");
    round_trip(&c);

    let c = Config::quick("http://127.0.0.1:8081", None).unwrap();
    assert_eq!(c.routes[0].policy.mode, Mode::RespectOrigin);
    round_trip(&c);

    let e = Config::quick("api.example.com", None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--to: upstream[0].url: \"api.example.com\" is not an http:// or https:// URL, e.g. \"https://api.example.com\" or \"http://127.0.0.1:8081/v1\""
    );
    let e = Config::quick("http://x", Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.to_string(), "--to: route[0].ttl: must be more than 0s");
}

#[test]
fn header_values_with_dollar_round_trip() {
    let text = "[[upstream]]\nname = \"a\"\nurl = \"http://a\"\nheaders = { X-A = \"$${literal} ${V}\" }\n[[route]]\n";
    let c = parse_config(text, "t.toml", &|_| Some("${x}".to_owned())).unwrap();
    assert_eq!(c.upstreams[0].headers[0].1, "${literal} ${x}");
    round_trip(&c);
}

#[test]
fn config_reference_example_parses() {
    let doc = include_str!("../CONFIG.md");
    let start = doc.find("```toml\n").expect("CONFIG.md has a toml example") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("closed code block");
    let env = |n: &str| (n == "WEATHER_API_KEY").then(|| "k".to_owned());
    let c = parse_config(&doc[start..end], "CONFIG.md", &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.route_for("weather.local", "/v1/x", "GET")
            .unwrap()
            .policy
            .ttl,
        Some(Duration::from_secs(600))
    );
    let e = parse_config(&doc[start..end], "CONFIG.md", &no_env).unwrap_err();
    assert!(e.message.contains("WEATHER_API_KEY"), "{e}");
    round_trip(&c);
}

#[test]
fn access_log_buffers_and_cold_cache_are_read_and_round_trip() {
    let text = "[server]\nkeepalive-timeout = \"5s\"\naccess-log = false\nread-buffer = \"1KiB\"\nwrite-buffer = \"1MiB\"\n[store]\ncold-cache = \"1MiB\"\n[[upstream]]\nname = \"a\"\nurl = \"http://a\"\n[[route]]\n";
    let c = parse_config(text, "t.toml", &no_env).unwrap();
    assert!(!c.server.access_log);
    assert_eq!(c.server.keepalive_timeout, Duration::from_secs(5));
    assert_eq!(
        (c.server.read_buffer, c.server.write_buffer),
        (1 << 10, 1 << 20)
    );
    assert_eq!(c.store.cold_cache, 1 << 20);
    round_trip(&c);

    let c = parse_config(
        "[[upstream]]\nname = \"a\"\nurl = \"http://a\"\n[[route]]\n",
        "t.toml",
        &no_env,
    )
    .unwrap();
    assert!(c.server.access_log);
    assert_eq!(c.server.keepalive_timeout, Duration::from_secs(60));
    assert_eq!(
        (c.server.read_buffer, c.server.write_buffer),
        (4 << 10, 80 << 10)
    );
    assert_eq!(c.store.cold_cache, 4 << 20);
}
