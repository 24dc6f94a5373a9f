//! Operating Aside: graceful shutdown, access log, metrics, TLS listener, admin reload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aside_tests::{eventually, Aside, Origin, Reply};

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_quickly() {
    let origin = Origin::start(|_, _| Reply::ok("done").delay(Duration::from_millis(700))).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let url = aside.url("/drain");
    let client = aside.client.clone();
    let inflight = tokio::spawn(async move { client.get(url).send().await });
    // The request is in flight once the origin has it.
    assert!(
        eventually(Duration::from_secs(5), || async {
            !origin.seen().is_empty()
        })
        .await
    );

    let started = Instant::now();
    let mut aside = aside;
    let stopper = tokio::task::spawn_blocking(move || {
        aside.stop();
        aside
    });
    let resp = inflight
        .await
        .unwrap()
        .expect("in-flight request completes");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "done");
    let aside = stopper.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(aside.log().contains("aside stopped"), "{}", aside.log());
}

#[tokio::test]
async fn access_log_and_metrics() {
    let origin = Origin::start(|_, _| Reply::ok("m").header("cache-control", "max-age=60")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/m").await;
    aside.get("/m").await;

    let logged = eventually(Duration::from_secs(5), || async {
        let log = aside.log();
        log.contains("aside::access") && log.contains("path=/m") && log.contains("cache=\"hit\"")
    })
    .await;
    assert!(logged, "{}", aside.log());

    let metrics = aside.metrics_text().await;
    for needle in [
        "aside_requests_total{cache_status=\"hit\"} 1",
        "aside_requests_total{cache_status=\"miss\"} 1",
        "aside_upstream_requests_total{upstream=\"origin\"} 1",
        "aside_upstream_latency_seconds_bucket{upstream=\"origin\"",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
}

/// `n` GETs of `path`, all in flight at once; their responses in order.
async fn concurrent_gets(aside: &Arc<Aside>, path: &str, n: usize) -> Vec<aside_tests::Resp> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (a, path) = (aside.clone(), path.to_owned());
            tokio::spawn(async move { a.get(&path).await })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `aside_cache_lock_waits_total` (0 when absent).
async fn coalesced_waits(aside: &Aside) -> f64 {
    aside
        .metrics_text()
        .await
        .lines()
        .find(|l| l.starts_with("aside_cache_lock_waits_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn coalesced_waits_are_counted() {
    let origin = Origin::start(|_, _| {
        Reply::ok("c")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(300))
    })
    .await;
    let aside = Arc::new(Aside::builder().upstream(&origin.url()).start().await);
    for r in concurrent_gets(&aside, "/co", 10).await {
        assert_eq!(r.status, 200);
    }
    assert_eq!(origin.hits(), 1);
    let waits = coalesced_waits(&aside).await;
    assert!(waits >= 1.0, "{waits} coalesced waits");
}

/// A miss storm on one node: one origin request, and every follower answered
/// as a hit of that fill (they wait for it and are then served by the
/// fresh-hit fast path, `cache_storage::fills`), with the stored body, `Age`
/// and `Cache-Status`, each counted as a coalesced wait.
#[tokio::test]
async fn a_miss_storm_is_one_fetch_and_every_follower_a_hit_of_it() {
    let origin = Origin::start(|_, _| {
        Reply::ok("storm body")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(400))
    })
    .await;
    let aside = Arc::new(Aside::builder().upstream(&origin.url()).start().await);
    let mut misses = 0;
    for r in concurrent_gets(&aside, "/storm", 40).await {
        assert_eq!((r.status, r.text().as_str()), (200, "storm body"));
        match r.x_cache() {
            "MISS" => misses += 1,
            "HIT" => {
                assert!(
                    r.header("cache-status").contains("; hit"),
                    "{:?}",
                    r.headers
                );
                assert!(!r.header("age").is_empty(), "{:?}", r.headers);
            }
            other => panic!("X-Cache {other}: {:?}", r.headers),
        }
    }
    assert_eq!((origin.hits(), misses), (1, 1));
    let waits = coalesced_waits(&aside).await;
    assert!(waits >= 30.0, "{waits} coalesced waits for 39 followers");
}

/// Followers of a fill that turns out uncacheable are let go when the
/// response is judged, and each gets the origin's answer (none waits for the
/// cache lock's 30 s timeout).
#[tokio::test]
async fn followers_of_an_uncacheable_response_each_get_an_answer() {
    let origin = Origin::start(|_, _| {
        Reply::ok("private")
            .header("cache-control", "no-store")
            .delay(Duration::from_millis(300))
    })
    .await;
    let aside = Arc::new(Aside::builder().upstream(&origin.url()).start().await);
    let started = Instant::now();
    for r in concurrent_gets(&aside, "/nostore", 20).await {
        assert_eq!((r.status, r.text().as_str()), (200, "private"));
        assert_ne!(r.x_cache(), "HIT");
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        origin.hits() >= 2,
        "uncacheable answers are not shared: {}",
        origin.hits()
    );
}

#[tokio::test]
async fn tls_listener_serves_clients_over_https() {
    use rcgen::{CertificateParams, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();

    let origin =
        Origin::start(|_, n| Reply::ok(format!("{n}")).header("cache-control", "max-age=60")).await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .extra(&format!(
            "[server.tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        ))
        .start()
        .await;
    // Port 0: the ready file says which port the kernel picked.
    let tls_port = aside.tls[0].port();
    assert_ne!(tls_port, 0);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{tls_port}/secure");
    let ok = eventually(Duration::from_secs(10), || async {
        client.get(&url).send().await.is_ok()
    })
    .await;
    assert!(ok, "{}", aside.log());
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    // The https entry is keyed apart from the same path over http.
    assert_eq!(aside.get("/secure").await.x_cache(), "MISS");
}

#[tokio::test]
async fn admin_reload_applies_a_new_route_and_rejects_a_bad_file() {
    let origin = Origin::start(|_, n| Reply::ok(format!("{n}"))).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/r").await;
    assert_eq!(
        aside.get("/r").await.x_cache(),
        "MISS",
        "no freshness info: not cached"
    );

    let good = std::fs::read_to_string(&aside.config_path)
        .unwrap()
        .replace(
            "[[route]]\nupstream = \"origin\"\nmode = \"respect-origin\"",
            "[[route]]\nupstream = \"origin\"\nmode = \"override\"\nttl = \"1h\"",
        );
    std::fs::write(&aside.config_path, &good).unwrap();
    let resp = aside.admin("POST", "/admin/reload").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    aside.get("/r").await;
    assert_eq!(aside.get("/r").await.x_cache(), "HIT");

    std::fs::write(&aside.config_path, "[server]\nthreads = \"many\"\n").unwrap();
    let resp = aside.admin("POST", "/admin/reload").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("threads"),
        "{body}"
    );
    assert_eq!(
        aside.get("/r").await.x_cache(),
        "HIT",
        "old config keeps serving"
    );
}

#[tokio::test]
async fn access_log_switches_on_and_off_by_reload_and_restart_only_settings_are_reported() {
    let origin = Origin::start(|_, _| Reply::ok("a").header("cache-control", "max-age=60")).await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .server_extra("access-log = false")
        .start()
        .await;
    // Edit the file, reload, and check which changed settings wait for a restart.
    let reload = |from: &'static str, to: &'static str, restart_needed: &'static [&'static str]| {
        let text = std::fs::read_to_string(&aside.config_path).unwrap();
        assert!(text.contains(from), "{text}");
        std::fs::write(&aside.config_path, text.replace(from, to)).unwrap();
        let request = aside.admin("POST", "/admin/reload");
        async move {
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(
                body["data"]["restartNeeded"],
                serde_json::json!(restart_needed),
                "{body}"
            );
        }
    };
    assert_eq!(aside.get("/quiet-1").await.status, 200);

    reload("access-log = false", "access-log = true", &[]).await;
    assert_eq!(aside.get("/loud-1").await.status, 200);

    reload("access-log = true", "access-log = false", &[]).await;
    assert_eq!(aside.get("/quiet-2").await.status, 200);

    // The store is opened once: a new capacity is reported, not silently dropped.
    reload(
        "hot-capacity = \"64MiB\"",
        "hot-capacity = \"32MiB\"",
        &["store"],
    )
    .await;

    // Still reported: the running store has the old capacity. Buffers too.
    reload(
        "access-log = false",
        "access-log = true\nwrite-buffer = \"16KiB\"",
        &["server.write-buffer", "store"],
    )
    .await;
    assert_eq!(aside.get("/loud-2").await.status, 200);

    // Lines are written in order: once /loud-2 is there, a /quiet line would be too.
    let logged = eventually(Duration::from_secs(5), || async {
        aside.log().contains("path=/loud-2")
    })
    .await;
    let log = aside.log();
    assert!(logged, "{log}");
    assert!(log.contains("path=/loud-1"), "{log}");
    assert!(!log.contains("path=/quiet"), "{log}");
    assert!(log.contains("take effect at the next restart"), "{log}");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn transparent_huge_pages_are_off_for_the_process() {
    let origin = Origin::start(|_, _| Reply::ok("t")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", aside.pid())).unwrap();
    // The line exists since Linux 5.0 (and reads 0 on kernels built without THP):
    // on such kernels there is nothing to check.
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert!(line.ends_with('0'), "{line}");
    }
}

/// One request on `conn` (HTTP/1.1, keep-alive); the whole response.
async fn exchange(conn: &mut tokio::net::TcpStream, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).ends_with("\r\n\r\nok") {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("response in time")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn idle_client_connections_are_closed_after_the_keepalive_timeout() {
    use tokio::io::AsyncReadExt;
    let origin = Origin::start(|_, _| Reply::ok("ok").header("cache-control", "max-age=60")).await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .server_extra("keepalive-timeout = \"1s\"")
        .start()
        .await;
    let mut conn = tokio::net::TcpStream::connect(aside.addr).await.unwrap();
    assert!(exchange(&mut conn, "/k").await.starts_with("HTTP/1.1 200"));
    // Reused within the timeout.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(exchange(&mut conn, "/k").await.starts_with("HTTP/1.1 200"));
    // Idle past it: the server closes (read returns 0), well before pingora's own
    // unbounded HTTP/1.1 keep-alive would.
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("closed within 10 s")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn unusable_tls_files_stop_the_start_with_an_error() {
    use rcgen::{CertificateParams, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cert_path = write("cert.pem", &cert.pem());
    let other_key = write(
        "other-key.pem",
        &KeyPair::generate().unwrap().serialize_pem(),
    );
    let garbage = write("garbage.pem", "not a certificate\n");
    for (case, cert_file, key_file, expected) in [
        ("garbage", &garbage, &garbage, "no PEM certificate"),
        ("mismatch", &cert_path, &other_key, "KeyMismatch"),
    ] {
        let data = dir.path().join(case);
        std::fs::create_dir_all(&data).unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let text = Aside::builder()
            .upstream("http://127.0.0.1:9")
            .extra(&format!(
                "[server.tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
                cert_file.display(),
                key_file.display()
            ))
            .config_text(any, any, &data);
        let config = data.join("aside.toml");
        std::fs::write(&config, text).unwrap();
        let run = tokio::process::Command::new(aside_tests::aside_bin())
            .arg("--config")
            .arg(&config)
            .env("ASIDE_ADMIN_TOKEN", "test-token-0123456789")
            .output();
        let out = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("aside exits")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        assert!(stderr.contains("server.tls: cert"), "{case}: {stderr}");
        assert!(stderr.contains(expected), "{case}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        assert!(
            !data.join("aside.redb").exists(),
            "{case}: nothing created before the check"
        );
    }
}

#[tokio::test]
async fn the_store_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let origin = Origin::start(|_, _| Reply::ok("ok")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let path = aside.dir.path().join("aside.redb");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}: {mode:o}", path.display());
}

#[tokio::test]
async fn a_store_that_cannot_open_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the store file should be: redb cannot open it.
    let store = dir.path().join("aside.redb");
    std::fs::create_dir(&store).unwrap();
    let config = dir.path().join("aside.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n[[upstream]]\nname = \"o\"\nurl = \"http://127.0.0.1:9\"\n[[route]]\nupstream = \"o\"\n",
            store.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(aside_tests::aside_bin())
        .arg("--config")
        .arg(&config)
        .env("ASIDE_ADMIN_TOKEN", aside_tests::TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("cannot open store").count(),
        1,
        "the reason should be said once: {stderr}"
    );
}

/// A proxy port another program holds stops the start with the address in
/// the message (after Aside's 5 tries, a second apart), before anything is served or
/// a ready file is written.
#[tokio::test]
async fn a_busy_proxy_port_stops_the_start_and_names_it() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = holder.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let run = tokio::process::Command::new(aside_tests::aside_bin())
        .args(["--to", "http://127.0.0.1:9", "--listen", &busy.to_string()])
        .args(["--admin-listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .arg("--data")
        .arg(dir.path())
        .env("ASIDE_ADMIN_TOKEN", aside_tests::TOKEN)
        .output();
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("aside exits")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot bind proxy listener {busy}")),
        "{stderr}"
    );
    assert!(started.elapsed() >= Duration::from_secs(4), "retried first");
    assert!(!ready.exists(), "no ready file without every listener");
    drop(holder);
}
