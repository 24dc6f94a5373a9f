//! Upstream handling end to end: TLS origins, timeouts, errors, header injection,
//! quick mode and config checking.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use aside_tests::{aside_bin, free_port, Aside, Origin, Reply, TOKEN};

#[tokio::test]
async fn host_is_rewritten_and_configured_headers_are_injected() {
    let origin = Origin::start(|_, _| Reply::ok("ok").header("cache-control", "max-age=60")).await;
    let aside = Aside::builder()
        .upstream(&origin.url())
        .upstream_extra("headers = { \"X-Api-Key\" = \"secret-123\" }")
        .start()
        .await;
    let r = aside
        .request("GET", "/h", &[("host", "public.example")])
        .await;
    assert_eq!(r.status, 200);
    let seen = &origin.seen()[0];
    assert_eq!(
        seen.headers.get("host").unwrap().to_str().unwrap(),
        origin.addr().to_string()
    );
    assert_eq!(seen.headers.get("x-api-key").unwrap(), "secret-123");
}

#[tokio::test]
async fn max_concurrent_caps_requests_to_the_origin() {
    let origin =
        Origin::start(|_, n| Reply::ok(format!("{n}")).delay(Duration::from_millis(200))).await;
    let aside = Arc::new(
        Aside::builder()
            .upstream(&origin.url())
            .upstream_extra("max-concurrent = 2")
            .start()
            .await,
    );
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let a = aside.clone();
            tokio::spawn(async move { a.get(&format!("/k{i}")).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(origin.hits(), 6);
    assert_eq!(origin.max_in_flight(), 2);
}

#[tokio::test]
async fn request_bodies_reach_the_origin() {
    let origin = Origin::start(|seen, _| {
        Reply::status(201, "").header(
            "x-got-length",
            seen.headers
                .get("content-length")
                .map_or("none", |v| v.to_str().unwrap()),
        )
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let r = aside
        .client
        .post(aside.url("/upload"))
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-got-length"], "100000");
}

#[tokio::test]
async fn slow_origin_gives_504_and_down_origin_gives_502() {
    let origin = Origin::start(|_, _| Reply::ok("late").delay(Duration::from_secs(5))).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let r = aside.get("/slow").await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(r.text().contains("upstream_timeout"));

    let port = free_port();
    let down = Aside::builder()
        .upstream(&format!("http://127.0.0.1:{port}"))
        .start()
        .await;
    let r = down.get("/x").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("connection"), "close");
    assert_eq!(
        down.get("/x").await.status,
        502,
        "the next request is not reset"
    );
    assert!(r.header("content-type").starts_with("application/json"));
}

#[tokio::test]
async fn garbage_from_the_origin_gives_502() {
    let addr = aside_tests::raw_origin(|mut s| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(b"this is not http\r\n\r\n").await;
    })
    .await;
    let aside = Aside::builder()
        .upstream(&format!("http://{addr}"))
        .start()
        .await;
    assert_eq!(aside.get("/g").await.status, 502);
}

fn tls_material(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["origin.test".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    (Arc::new(config), ca_path)
}

async fn tls_origin(
    config: Arc<rustls::ServerConfig>,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let n = h.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        async move { ([("cache-control", "max-age=60")], format!("secure {n}")) }
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                }
            });
        }
    });
    (addr, hits)
}

#[tokio::test]
async fn https_origin_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (config, ca_path) = tls_material(dir.path());
    let (addr, hits) = tls_origin(config).await;

    let aside = Aside::builder()
        .upstream(&format!("https://{addr}"))
        .upstream_extra(&format!(
            "sni = \"origin.test\"\nca-file = \"{}\"",
            ca_path.display()
        ))
        .start()
        .await;
    let r = aside.get("/tls").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "secure 1"),
        "{}",
        aside.log()
    );
    assert_eq!(aside.get("/tls").await.x_cache(), "HIT");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Without the CA the certificate is rejected: a clean 502, never a plain-text fallback.
    let strict = Aside::builder()
        .upstream(&format!("https://{addr}"))
        .upstream_extra("sni = \"origin.test\"")
        .start()
        .await;
    assert_eq!(strict.get("/tls").await.status, 502);
}

#[tokio::test]
async fn quick_mode_with_to_and_ttl() {
    let origin = Origin::start(|_, n| Reply::ok(format!("{n}"))).await;
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let mut child = Command::new(aside_bin())
        .args(["--to", &origin.url(), "--ttl", "5m"])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--ready-file")
        .arg(&ready)
        .arg("--data")
        .arg(dir.path())
        .args(["--threads", "1"])
        .env("ASIDE_ADMIN_TOKEN", TOKEN)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Port 0: the ready file names the ports the kernel picked.
    let written = aside_tests::eventually(Duration::from_secs(20), || async {
        std::fs::read(&ready).is_ok()
    })
    .await;
    assert!(written, "no ready file");
    let bound: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
    let proxy = bound["proxy"][0].as_str().unwrap().to_owned();
    assert!(!proxy.ends_with(":0"), "{bound}");
    assert!(
        bound["admin"].as_str().is_some_and(|a| !a.ends_with(":0")),
        "{bound}"
    );
    assert_eq!(bound["tls"], serde_json::json!([]));
    let client = reqwest::Client::new();
    let url = format!("http://{proxy}/quick");
    let up = aside_tests::eventually(Duration::from_secs(20), || async {
        client.get(&url).send().await.is_ok()
    })
    .await;
    assert!(up);
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(
        r.headers()["x-cache"],
        "HIT",
        "--ttl caches responses without freshness headers"
    );
    assert!(dir.path().join("aside.redb").exists());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn check_config_accepts_good_and_rejects_bad_files_with_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[upstream]]\nname = \"o\"\nurl = \"http://127.0.0.1:9\"\n\n[[route]]\nupstream = \"o\"\n",
    )
    .unwrap();
    let out = Command::new(aside_bin())
        .arg("--check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[upstream]]\nname = \"o\"\nurl = \"http://127.0.0.1:9\"\n\n[[route]]\nupstream = \"o\"\nttl = \"10 mins\"\n",
    )
    .unwrap();
    let out = Command::new(aside_bin())
        .arg("--check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:7"), "names file and line: {err}");
    assert!(err.contains("ttl"), "names the key: {err}");

    let out = Command::new(aside_bin())
        .arg("--check-config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn version_and_help() {
    let out = Command::new(aside_bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("aside "));
    let out = Command::new(aside_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--check-config",
        "--to",
        "--ttl",
        "--listen",
        "--admin-listen",
        "--data",
        "--threads",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[tokio::test]
async fn a_small_write_buffer_streams_a_trickled_miss_promptly() {
    // The origin sends its header and 8 KiB of a 200,000-byte body, then stalls.
    let addr = aside_tests::raw_origin(|mut s| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 200000\r\ncache-control: max-age=60\r\n\r\n";
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(&[b'a'; 8192]).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = s.write_all(&vec![b'b'; 200_000 - 8192]).await;
    })
    .await;
    let aside = Aside::builder()
        .upstream(&format!("http://{addr}"))
        .server_extra("write-buffer = \"1KiB\"")
        .start()
        .await;
    let mut conn = tokio::net::TcpStream::connect(aside.addr).await.unwrap();
    let got = tokio::time::timeout(Duration::from_millis(1500), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.write_all(b"GET /trickle HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 16384];
        while got.iter().filter(|b| **b == b'a').count() < 8192 {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        got
    })
    .await
    .expect("the header and the first 8 KiB arrive while the origin stalls");
    assert!(got.starts_with(b"HTTP/1.1 200"));
}
