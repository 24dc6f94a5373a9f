//! The operator's storage decision per mode, with `now` a parameter.

use std::time::{Duration, SystemTime};

use aside_policies::{parse_config, Freshness, OriginFreshness, Route};

const S: fn(u64) -> Duration = Duration::from_secs;

fn route(body: &str) -> Route {
    let text = format!("[[upstream]]\nname = \"a\"\nurl = \"http://a\"\n[[route]]\n{body}\n");
    parse_config(&text, "t.toml", &|_| None)
        .unwrap()
        .routes
        .remove(0)
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + S(1_700_000_000)
}

fn ok(status: u16, ttl: Option<u64>) -> OriginFreshness {
    OriginFreshness {
        status,
        ttl: ttl.map(S),
        ..OriginFreshness::default()
    }
}

/// `Store` with this TTL and SWR/SIE, or `DoNotStore` with this reason.
#[derive(Debug, PartialEq)]
enum Want {
    Ttl(u64, u64, u64),
    No(&'static str),
}

fn decide(r: &Route, o: &OriginFreshness) -> Want {
    match r.freshness(o, now()) {
        Freshness::Store {
            fresh_until,
            stale_while_revalidate,
            stale_if_error,
            ..
        } => Want::Ttl(
            fresh_until.duration_since(now()).unwrap().as_secs(),
            stale_while_revalidate.as_secs(),
            stale_if_error.as_secs(),
        ),
        Freshness::DoNotStore { reason } => Want::No(reason),
    }
}

fn check(r: &Route, table: &[(OriginFreshness, Want)]) {
    for (o, want) in table {
        assert_eq!(&decide(r, o), want, "{o:?}");
    }
}

#[test]
fn override_mode() {
    let r =
        route("mode = \"override\"\nttl = \"10m\"\nstatus-ttl = { 404 = \"30s\", 500 = \"5s\" }");
    check(
        &r,
        &[
            (ok(200, Some(5)), Want::Ttl(600, 0, 0)),
            (ok(200, None), Want::Ttl(600, 0, 0)),
            (
                OriginFreshness {
                    no_cache: true,
                    ..ok(200, Some(0))
                },
                Want::Ttl(600, 0, 0),
            ),
            (ok(404, Some(3600)), Want::Ttl(30, 0, 0)),
            (ok(500, None), Want::Ttl(5, 0, 0)),
            (ok(502, None), Want::No("status not cacheable")),
            (ok(410, None), Want::Ttl(600, 0, 0)),
            (
                OriginFreshness {
                    no_store: true,
                    ..ok(200, None)
                },
                Want::No("no-store"),
            ),
            (
                OriginFreshness {
                    private: true,
                    ..ok(200, None)
                },
                Want::No("private"),
            ),
            (
                OriginFreshness {
                    stale_while_revalidate: Some(S(7)),
                    stale_if_error: Some(S(9)),
                    ..ok(200, None)
                },
                Want::Ttl(600, 7, 9),
            ),
        ],
    );
    assert_eq!(r.max_fresh_until(now(), 200), Some(now() + S(600)));
    assert_eq!(r.max_fresh_until(now(), 404), Some(now() + S(30)));
}

#[test]
fn respect_origin_mode() {
    let plain = route("");
    check(
        &plain,
        &[
            (ok(200, Some(60)), Want::Ttl(60, 0, 0)),
            (ok(200, None), Want::No("no freshness information")),
            (
                OriginFreshness {
                    no_cache: true,
                    ..ok(200, Some(60))
                },
                Want::Ttl(0, 0, 0),
            ),
            (ok(404, Some(10)), Want::Ttl(10, 0, 0)),
            // RFC 9111 §3: explicit freshness makes any final status storable...
            (ok(500, Some(60)), Want::Ttl(60, 0, 0)),
            (ok(302, Some(60)), Want::Ttl(60, 0, 0)),
            // ...but not a status without it.
            (ok(302, None), Want::No("status not cacheable")),
        ],
    );
    assert_eq!(plain.max_fresh_until(now(), 200), None);

    let r = route("default-ttl = \"1m\"\nstatus-ttl = { 404 = \"30s\" }\nstale-while-revalidate = \"30s\"\nstale-if-error = \"10m\"");
    check(
        &r,
        &[
            (ok(200, None), Want::Ttl(60, 30, 600)),
            (ok(200, Some(5)), Want::Ttl(5, 30, 600)),
            (ok(404, None), Want::Ttl(30, 30, 600)),
            (ok(404, Some(300)), Want::Ttl(300, 30, 600)),
            (
                OriginFreshness {
                    stale_while_revalidate: Some(S(1)),
                    stale_if_error: Some(S(2)),
                    ..ok(200, Some(5))
                },
                Want::Ttl(5, 30, 600),
            ),
        ],
    );
}

#[test]
fn clamp_mode() {
    let r = route("mode = \"clamp\"\nmin-ttl = \"30s\"\nmax-ttl = \"5m\"\ndefault-ttl = \"1m\"");
    check(
        &r,
        &[
            (ok(200, Some(5)), Want::Ttl(30, 0, 0)),
            (ok(200, Some(120)), Want::Ttl(120, 0, 0)),
            (ok(200, Some(86400)), Want::Ttl(300, 0, 0)),
            (ok(200, None), Want::Ttl(60, 0, 0)),
            (
                OriginFreshness {
                    no_cache: true,
                    ..ok(200, None)
                },
                Want::Ttl(30, 0, 0),
            ),
        ],
    );
    assert_eq!(r.max_fresh_until(now(), 200), Some(now() + S(300)));
    let no_default = route("mode = \"clamp\"\nmax-ttl = \"5m\"");
    check(
        &no_default,
        &[
            (ok(200, None), Want::No("no freshness information")),
            (ok(200, Some(900)), Want::Ttl(300, 0, 0)),
        ],
    );
    assert_eq!(
        route("mode = \"clamp\"\nmin-ttl = \"1m\"").max_fresh_until(now(), 200),
        None
    );
}

#[test]
fn negative_caching() {
    let r = route("status-ttl = { 404 = \"30s\", 503 = \"2s\" }");
    assert!(r.policy.cacheable_statuses.contains(&503));
    check(
        &r,
        &[
            (ok(404, None), Want::Ttl(30, 0, 0)),
            (ok(503, None), Want::Ttl(2, 0, 0)),
            (ok(500, None), Want::No("status not cacheable")),
        ],
    );
    let only = route("cacheable-statuses = [200]\nstatus-ttl = { 404 = \"30s\" }");
    assert_eq!(only.policy.cacheable_statuses, vec![200, 404]);
    check(
        &only,
        &[
            (ok(410, Some(60)), Want::No("status not cacheable")),
            (ok(404, None), Want::Ttl(30, 0, 0)),
        ],
    );
}

#[test]
fn authorization_set_cookie_size_and_disabled() {
    let strict = route("default-ttl = \"1m\"\nmax-object-size = \"1KiB\"");
    let auth = OriginFreshness {
        authorized_request: true,
        ..ok(200, Some(60))
    };
    let cookie = OriginFreshness {
        set_cookie: true,
        ..ok(200, Some(60))
    };
    check(
        &strict,
        &[
            (auth.clone(), Want::No("authorization")),
            (
                OriginFreshness {
                    public_or_s_maxage: true,
                    ..auth.clone()
                },
                Want::Ttl(60, 0, 0),
            ),
            (cookie.clone(), Want::No("set-cookie")),
            (
                OriginFreshness {
                    size: Some(1024),
                    ..ok(200, None)
                },
                Want::Ttl(60, 0, 0),
            ),
            (
                OriginFreshness {
                    size: Some(1025),
                    ..ok(200, None)
                },
                Want::No("too large"),
            ),
            (
                OriginFreshness {
                    private: true,
                    authorized_request: true,
                    ..ok(200, None)
                },
                Want::No("private"),
            ),
        ],
    );
    let lenient = route("cache-authorized = true\nset-cookie = \"strip\"");
    check(
        &lenient,
        &[
            (auth, Want::Ttl(60, 0, 0)),
            (cookie.clone(), Want::Ttl(60, 0, 0)),
        ],
    );
    match lenient.freshness(&cookie, now()) {
        Freshness::Store {
            strip_set_cookie, ..
        } => assert!(strip_set_cookie),
        other => panic!("{other:?}"),
    }
    match lenient.freshness(&ok(200, Some(1)), now()) {
        Freshness::Store {
            strip_set_cookie, ..
        } => assert!(!strip_set_cookie),
        other => panic!("{other:?}"),
    }
    let off = route("cache = false");
    check(&off, &[(ok(200, Some(60)), Want::No("cache disabled"))]);
    assert_eq!(off.max_fresh_until(now(), 200), Some(now()));
}

/// Heuristic freshness (RFC 9111 §4.2.2): a share of the time since
/// `Last-Modified`, capped, only without explicit freshness, only for statuses
/// cacheable by default or `public` responses; default-ttl wins over it.
#[test]
fn heuristic_freshness() {
    let lm = |status: u16, days: u64| OriginFreshness {
        since_last_modified: Some(S(days * 86_400)),
        ..ok(status, None)
    };
    let default = route("");
    check(
        &default,
        &[
            // 10 % of 1 day.
            (lm(200, 1), Want::Ttl(8640, 0, 0)),
            // Capped at 1 day.
            (lm(200, 100), Want::Ttl(86_400, 0, 0)),
            // Explicit freshness wins.
            (
                OriginFreshness {
                    ttl: Some(S(5)),
                    ..lm(200, 1)
                },
                Want::Ttl(5, 0, 0),
            ),
            (
                OriginFreshness {
                    no_cache: true,
                    ..lm(200, 1)
                },
                Want::Ttl(0, 0, 0),
            ),
            // Not cacheable by default, not public.
            (lm(302, 1), Want::No("status not cacheable")),
            (lm(206, 1), Want::No("no freshness information")),
            // public makes any final status heuristically cacheable.
            (
                OriginFreshness {
                    public: true,
                    ..lm(302, 1)
                },
                Want::Ttl(8640, 0, 0),
            ),
            // Without Last-Modified: nothing to base it on.
            (ok(200, None), Want::No("no freshness information")),
        ],
    );
    let tuned = route("heuristic-freshness = \"50%\"\nheuristic-max = \"1h\"");
    check(
        &tuned,
        &[
            (lm(200, 1), Want::Ttl(3600, 0, 0)),
            (
                OriginFreshness {
                    since_last_modified: Some(S(600)),
                    ..ok(200, None)
                },
                Want::Ttl(300, 0, 0),
            ),
        ],
    );
    let off = route("heuristic-freshness = \"off\"");
    check(&off, &[(lm(200, 1), Want::No("no freshness information"))]);
    let with_default = route("default-ttl = \"1m\"");
    check(&with_default, &[(lm(200, 1), Want::Ttl(60, 0, 0))]);
    let clamp = route("mode = \"clamp\"\nmin-ttl = \"1h\"\nmax-ttl = \"2h\"");
    check(
        &clamp,
        &[
            (lm(200, 0), Want::Ttl(3600, 0, 0)),
            (lm(200, 1), Want::Ttl(7200, 0, 0)),
        ],
    );
    let over = route("mode = \"override\"\nttl = \"10m\"");
    check(&over, &[(lm(200, 1), Want::Ttl(600, 0, 0))]);
}
