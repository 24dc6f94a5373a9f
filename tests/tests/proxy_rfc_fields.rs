//! HTTP caching details of issue 13, each pinned to its RFC section, end to
//! end through the real binary: `Age` lists, `Connection`-named fields,
//! `Date` on hits, 304 header updates, invalid `CDN-Cache-Control`, `Expires`
//! formats, heuristic freshness, Vary normalisation, `If-Modified-Since`
//! without `Last-Modified`, and `must-understand`.

use std::time::{Duration, SystemTime};

use aside_tests::{fixed_reply_origin, Aside, Origin, Reply};

/// An HTTP-date (IMF-fixdate) `offset_secs` from now.
fn http_date(offset_secs: i64) -> String {
    let now = SystemTime::now();
    let t = if offset_secs >= 0 {
        now + Duration::from_secs(offset_secs.unsigned_abs())
    } else {
        now - Duration::from_secs(offset_secs.unsigned_abs())
    };
    httpdate::fmt_http_date(t)
}

/// The same instant as an IMF-fixdate, in the obsolete rfc850 and asctime
/// formats (RFC 9110 §5.6.7): `Sunday, 06-Nov-94 08:49:37 GMT`,
/// `Sun Nov  6 08:49:37 1994`.
fn obsolete_formats(imf: &str) -> (String, String) {
    // `Tue, 24 Nov 2026 04:06:47 GMT`
    let parts: Vec<&str> = imf.split([' ', ',']).filter(|p| !p.is_empty()).collect();
    let (wd, day, mon, year, time) = (parts[0], parts[1], parts[2], parts[3], parts[4]);
    let long = match wd {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    };
    let rfc850 = format!("{long}, {day}-{mon}-{} {time} GMT", &year[2..]);
    let day: u8 = day.parse().unwrap();
    let asctime = format!("{wd} {mon} {day:>2} {time} {year}");
    (rfc850, asctime)
}

/// RFC 9111 §5.1: an `Age` holding a list uses its first member. `Age:
/// 7200, 0` with `max-age=3600` is already stale; with a day of lifetime the
/// hit's `Age` starts at 7200.
#[tokio::test]
async fn age_list_uses_its_first_value_rfc9111_5_1() {
    let origin = Origin::start(|seen, n| {
        let max_age = if seen.uri == "/stale" { 3600 } else { 86_400 };
        Reply::ok(format!("{n}"))
            .header("cache-control", &format!("max-age={max_age}"))
            .header("age", "7200, 0")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/stale").await;
    let again = aside.get("/stale").await;
    assert_ne!(again.x_cache(), "HIT", "7200 s old with 3600 s of lifetime");
    assert_eq!(origin.hits(), 2);

    aside.get("/fresh").await;
    let hit = aside.get("/fresh").await;
    assert_eq!(hit.x_cache(), "HIT");
    let age: u64 = hit.header("age").parse().unwrap();
    assert!((7200..7300).contains(&age), "Age {age}");
}

/// RFC 9110 §7.6.1, RFC 9111 §3.1: the fields an origin's `Connection` names
/// are hop-by-hop: not forwarded on the miss, not stored for the hit.
#[tokio::test]
async fn connection_named_fields_are_neither_forwarded_nor_stored_rfc9110_7_6_1() {
    let addr = fixed_reply_origin(
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncache-control: max-age=60\r\n\
                connection: X-Secret, X-Other\r\nx-secret: s\r\nx-other: o\r\nx-kept: k\r\n\r\nx",
    )
    .await;
    let aside = Aside::builder()
        .upstream(&format!("http://{addr}"))
        .start()
        .await;
    for expected in ["MISS", "HIT"] {
        let r = aside.get("/conn").await;
        assert_eq!(r.x_cache(), expected);
        assert_eq!(r.header("x-kept"), "k", "{:?}", r.headers);
        assert_eq!(r.header("x-secret"), "", "{expected}: {:?}", r.headers);
        assert_eq!(r.header("x-other"), "", "{expected}: {:?}", r.headers);
    }
}

/// RFC 9111 §4, §5.1: a hit keeps the stored `Date`; `Age` says how old it is.
/// pingora-core inserts its own `Date` into every response: fixed by the
/// patch in `vendor/pingora-core` (vendor/PATCHES.md).
#[tokio::test]
async fn hit_keeps_the_stored_date_rfc9111_4() {
    let date = http_date(-30);
    let origin_date = date.clone();
    let origin = Origin::start(move |_, n| {
        Reply::ok(format!("{n}"))
            .header("cache-control", "max-age=600")
            .header("date", &origin_date)
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/date").await;
    let hit = aside.get("/date").await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.header("date"), date);
}

/// RFC 9111 §3.2, §4.3.4: a 304 updates every stored field it carries,
/// extension fields included (`X-Foo`, `Content-Foo`), except
/// `Content-Length`; the revalidated response and the hits after it carry the
/// new values.
#[tokio::test]
async fn a_304_updates_every_stored_field_rfc9111_3_2() {
    let origin = Origin::start(|seen, _| {
        if seen.headers.contains_key("if-none-match") {
            Reply::status(304, "")
                .header("etag", "\"v\"")
                .header("cache-control", "max-age=600")
                .header("x-foo", "new")
                .header("content-foo", "new")
                .header("x-added", "yes")
        } else {
            Reply::ok("body")
                .header("etag", "\"v\"")
                .header("cache-control", "max-age=0")
                .header("x-foo", "old")
                .header("content-foo", "old")
                .header("x-untouched", "same")
        }
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let miss = aside.get("/r").await;
    assert_eq!((miss.x_cache(), miss.header("x-foo")), ("MISS", "old"));
    for expected in ["REVALIDATED", "HIT"] {
        let r = aside.get("/r").await;
        assert_eq!(r.x_cache(), expected);
        assert_eq!(r.text(), "body");
        assert_eq!(r.header("content-length"), "4");
        for (name, value) in [
            ("x-foo", "new"),
            ("content-foo", "new"),
            ("x-added", "yes"),
            ("x-untouched", "same"),
            ("cache-control", "max-age=600"),
        ] {
            assert_eq!(r.header(name), value, "{expected} {name}: {:?}", r.headers);
        }
    }
    assert_eq!(origin.hits(), 2);
}

/// RFC 9213 §2.1: a `CDN-Cache-Control` that is not a Structured Fields
/// Dictionary (RFC 8941), or whose `max-age` is not an Integer, is ignored as
/// a whole, and `Cache-Control` decides.
#[tokio::test]
async fn invalid_cdn_cache_control_is_ignored_rfc9213_2_1() {
    let origin = Origin::start(|seen, n| {
        let cdn = match seen.uri.as_str() {
            "/decimal" => "max-age=1.5",
            "/string" => "max-age=\"600\"",
            "/not-a-dictionary" => "no-store,, private",
            _ => "no-store",
        };
        Reply::ok(format!("{n}"))
            .header("cache-control", "max-age=60")
            .header("cdn-cache-control", cdn)
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    for path in ["/decimal", "/string", "/not-a-dictionary"] {
        aside.get(path).await;
        assert_eq!(aside.get(path).await.x_cache(), "HIT", "{path}");
    }
    // A valid one still wins over Cache-Control.
    aside.get("/valid").await;
    assert_eq!(aside.get("/valid").await.x_cache(), "MISS");
}

/// RFC 9110 §5.6.7, RFC 9111 §5.3: `Expires` in the obsolete rfc850 and
/// asctime formats, and with weekday, month or `GMT` in the wrong case, is
/// understood; an invalid one means "already expired".
#[tokio::test]
async fn expires_in_obsolete_formats_and_any_case_rfc9110_5_6_7() {
    let origin = Origin::start(|seen, n| {
        let imf = http_date(3600);
        let (rfc850, asctime) = obsolete_formats(&imf);
        let expires = match seen.uri.as_str() {
            "/imf-lower" => imf.to_lowercase(),
            "/rfc850-upper" => rfc850.to_uppercase(),
            "/asctime-lower" => asctime.to_lowercase(),
            "/rfc850" => rfc850,
            "/asctime" => asctime,
            _ => "soon".to_owned(),
        };
        Reply::ok(format!("{n}"))
            .header("date", &http_date(0))
            .header("expires", &expires)
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    for path in [
        "/imf-lower",
        "/rfc850-upper",
        "/asctime-lower",
        "/rfc850",
        "/asctime",
    ] {
        aside.get(path).await;
        let hit = aside.get(path).await;
        assert_eq!(hit.x_cache(), "HIT", "{path}");
        let status = hit.header("cache-status");
        let ttl: u64 = status
            .split("ttl=")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("{path}: {status}"));
        assert!((3500..=3600).contains(&ttl), "{path}: {status}");
    }
    aside.get("/invalid").await;
    assert_ne!(aside.get("/invalid").await.x_cache(), "HIT");
    assert_eq!(origin.hits(), 7);
}

/// RFC 9111 §4.2.2: heuristic freshness, a share of the time since
/// `Last-Modified` (route `heuristic-freshness`, default 10 %, capped by
/// `heuristic-max`, default 1 day), for responses without explicit freshness.
#[tokio::test]
async fn heuristic_freshness_from_last_modified_rfc9111_4_2_2() {
    let origin = Origin::start(|seen, n| {
        let reply = Reply::ok(format!("{n}")).header("date", &http_date(0));
        match seen.uri.as_str() {
            "/none" | "/off/x" => reply,
            // 403 is not cacheable by default (RFC 9110 §15.1).
            "/forbidden" => Reply::status(403, "f")
                .header("date", &http_date(0))
                .header("last-modified", &http_date(-100_000)),
            "/public-forbidden" => Reply::status(403, "f")
                .header("date", &http_date(0))
                .header("cache-control", "public")
                .header("last-modified", &http_date(-10_000)),
            // 10 % of 10 000 s is 1000 s.
            "/lm" => reply.header("last-modified", &http_date(-10_000)),
            _ => reply.header("last-modified", &http_date(-100 * 86_400)),
        }
    })
    .await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .route("path-prefix = \"/off/\"\nheuristic-freshness = \"off\"")
        .route("path-prefix = \"/capped/\"\nheuristic-max = \"1m\"")
        .start()
        .await;
    let ttl = |r: &aside_tests::Resp| -> u64 {
        let status = r.header("cache-status").to_owned();
        status
            .split("ttl=")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("{status}"))
    };
    for (path, low, high) in [
        ("/lm", 990, 1000),
        ("/old", 86_390, 86_400),
        ("/capped/x", 50, 60),
        ("/public-forbidden", 990, 1000),
    ] {
        aside.get(path).await;
        let hit = aside.get(path).await;
        assert_eq!(hit.x_cache(), "HIT", "{path}");
        let t = ttl(&hit);
        assert!((low..=high).contains(&t), "{path}: ttl {t}");
    }
    // Off on the route; no Last-Modified; a status not cacheable by default.
    for path in ["/off/x", "/none", "/forbidden"] {
        aside.get(path).await;
        assert_eq!(aside.get(path).await.x_cache(), "MISS", "{path}");
    }
}

/// RFC 9111 §4.1: selecting header values are normalised. `Accept-Language`
/// differing only in order, case or whitespace selects the same variant; other
/// headers compare without whitespace around commas.
#[tokio::test]
async fn vary_values_are_normalised_rfc9111_4_1() {
    let origin = Origin::start(|seen, n| {
        let vary = if seen.uri == "/lang" {
            "Accept-Language"
        } else {
            "X-Thing"
        };
        Reply::ok(format!("{n}"))
            .header("cache-control", "max-age=60")
            .header("vary", vary)
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let lang = |v: &'static str| [("accept-language", v)];
    let first = aside
        .request("GET", "/lang", &lang("en-US, fr;q=0.5"))
        .await;
    assert_eq!(first.x_cache(), "MISS");
    for same in [
        "fr;q=0.5,EN-us",
        "en-us ,fr ; q=0.50",
        "EN-US;q=1,  FR;q=0.5",
    ] {
        let r = aside.request("GET", "/lang", &lang(same)).await;
        assert_eq!((r.x_cache(), r.text()), ("HIT", first.text()), "{same}");
    }
    let other = aside
        .request("GET", "/lang", &lang("fr, en-US;q=0.5"))
        .await;
    assert_eq!(
        other.x_cache(),
        "MISS",
        "another preference is another variant"
    );

    let thing = |v: &'static str| [("x-thing", v)];
    aside.request("GET", "/thing", &thing("a , b")).await;
    let r = aside.request("GET", "/thing", &thing("a,b")).await;
    assert_eq!(r.x_cache(), "HIT");
    let r = aside.request("GET", "/thing", &thing("A,b")).await;
    assert_eq!(
        r.x_cache(),
        "MISS",
        "values of unknown headers keep their case"
    );
}

/// RFC 9110 §13.1.3, RFC 9111 §4.3.2: `If-Modified-Since` against a fresh
/// stored response without `Last-Modified` compares with its `Date`.
#[tokio::test]
async fn if_modified_since_uses_the_stored_date_without_last_modified_rfc9110_13_1_3() {
    let date = http_date(-60);
    let origin_date = date.clone();
    let origin = Origin::start(move |_, n| {
        Reply::ok(format!("{n}"))
            .header("cache-control", "max-age=600")
            .header("date", &origin_date)
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/ims").await;
    let not_modified = aside
        .request("GET", "/ims", &[("if-modified-since", date.as_str())])
        .await;
    assert_eq!(not_modified.status, 304, "{:?}", not_modified.headers);
    let earlier = http_date(-3600);
    let modified = aside
        .request("GET", "/ims", &[("if-modified-since", earlier.as_str())])
        .await;
    assert_eq!((modified.status, modified.text().as_str()), (200, "1"));
    assert_eq!(origin.hits(), 1);
}

/// RFC 9111 §5.2.2.3: `must-understand` overrides `no-store` for a status code
/// Aside understands; an unknown status stays unstored.
#[tokio::test]
async fn must_understand_overrides_no_store_rfc9111_5_2_2_3() {
    let origin = Origin::start(|seen, n| {
        let status = if seen.uri == "/teapot" { 418 } else { 200 };
        let cc = if seen.uri == "/plain" {
            "no-store, max-age=60"
        } else {
            "no-store, must-understand, max-age=60"
        };
        Reply::status(status, format!("{n}")).header("cache-control", cc)
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/mu").await;
    assert_eq!(aside.get("/mu").await.x_cache(), "HIT");
    aside.get("/teapot").await;
    assert_eq!(aside.get("/teapot").await.x_cache(), "MISS");
    // Without must-understand, no-store still means no-store.
    aside.get("/plain").await;
    assert_eq!(aside.get("/plain").await.x_cache(), "MISS");
    assert_eq!(origin.hits(), 5);
}
