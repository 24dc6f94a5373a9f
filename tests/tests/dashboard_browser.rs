//! The dashboard (issue 19) in a real headless Chromium, driven by
//! `tests/ui/dashboard.mjs` (puppeteer-core, installed with Debian's chromium
//! by `scripts/prereqs.sh`).

use std::path::PathBuf;
use std::process::Command;

use aside_tests::{Aside, Origin, Reply, TOKEN};

/// Where `tests/ui/` is (beside this crate).
fn ui_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ui")
}

/// The whole console in headless Chromium: login, charts moving, cache browser
/// purge, KV compare-and-swap conflict, wrong token, screenshots of every page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let ui = ui_dir();
    assert!(
        ui.join("node_modules/puppeteer-core").exists(),
        "puppeteer-core is not installed: run `scripts/prereqs.sh` (npm ci in {})",
        ui.display()
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} missing: run `scripts/prereqs.sh` (installs Debian's chromium)"
    );
    let origin = Origin::start(|seen, _| {
        Reply::ok(format!("{{\"path\":\"{}\"}}", seen.uri))
            .header("cache-control", "max-age=300")
            .header("content-type", "application/json")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    let screenshots = std::env::temp_dir().join(format!("aside-ui-{}", std::process::id()));
    std::fs::create_dir_all(&screenshots).unwrap();
    let admin = aside.admin_url("");
    let proxy = aside.url("");
    let mut cmd = Command::new("node");
    cmd.arg(ui.join("dashboard.mjs"))
        .current_dir(&ui)
        .env("ASIDE_ADMIN", admin.trim_end_matches('/'))
        .env("ASIDE_PROXY", proxy.trim_end_matches('/'))
        .env("ASIDE_TOKEN", TOKEN)
        .env("SCREENSHOTS", &screenshots)
        .env("CHROMIUM", &chromium);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run node"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}\nscreenshots: {}", screenshots.display());
    assert!(
        out.status.success(),
        "browser scenario failed:\n{stdout}\n{stderr}\nAside log:\n{}",
        aside.log()
    );
    for page in ["login", "overview", "cache", "kv", "config"] {
        let png = screenshots.join(format!("{page}.png"));
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "{} missing or empty", png.display());
    }
    assert!(origin.hits() > 0);
}
