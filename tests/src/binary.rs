//! Finding the `aside` binary cargo built (refusing a stale one), and learning
//! where a started one listens.
//!
//! The end-to-end tests live in their own package, so cargo's
//! `CARGO_BIN_EXE_aside` (set only for integration tests of the package that
//! owns the binary) is not available here. The harness finds the binary next
//! to the test executable instead, and panics if any source the binary is
//! built from is newer than it: a test must never pass or fail on yesterday's
//! build.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime};

/// The crates and patched dependencies the `aside` binary is built from,
/// relative to the workspace root. Each one's `src/` and `Cargo.toml` count.
const SOURCES: &[&str] = &[
    "proxy",
    "store",
    "policies",
    "cluster",
    "vendor/pingora-core",
    "vendor/pingora-proxy",
];

/// Path of the `aside` binary built by cargo (`target/<profile>/aside`), or
/// `$ASIDE_BIN` when set (taken as is, without the freshness check).
///
/// Panics when the binary is missing or older than a source file.
pub fn aside_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ASIDE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/aside
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir layout");
    let bin = dir.join("aside");
    let built = bin.metadata().and_then(|m| m.modified()).unwrap_or_else(|_| {
        panic!(
            "{} not found: build it first with `cargo build -p aside-proxy --bin aside` (make test does)",
            bin.display()
        )
    });
    if let Some((path, _)) = newest_source(&workspace_root()).filter(|(_, t)| *t > built) {
        panic!(
            "{} is older than {}: rebuild it with `cargo build -p aside-proxy --bin aside` (make test does)",
            bin.display(),
            path.display()
        );
    }
    bin
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package sits in the workspace root")
        .to_path_buf()
}

/// The most recently modified file the binary is built from.
fn newest_source(root: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut consider = |path: PathBuf| {
        if let Ok(t) = path.metadata().and_then(|m| m.modified()) {
            if newest.as_ref().is_none_or(|(_, n)| t > *n) {
                newest = Some((path, t));
            }
        }
    };
    for krate in SOURCES {
        let krate = root.join(krate);
        consider(krate.join("Cargo.toml"));
        let mut dirs = vec![krate.join("src")];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("rs" | "lua")
                ) {
                    consider(path);
                }
            }
        }
    }
    newest
}

/// The addresses a started `aside` wrote to its `--ready-file`.
pub(crate) struct Bound {
    pub(crate) proxy: Vec<SocketAddr>,
    pub(crate) tls: Vec<SocketAddr>,
    pub(crate) admin: SocketAddr,
}

/// Waits (up to 30 s) for `child` to write its ready file at `path`; panics
/// with the log in `dir` if it exits first or never does.
pub(crate) async fn read_ready_file(path: &Path, child: &mut Child, dir: &Path) -> Bound {
    let log = || std::fs::read_to_string(dir.join("aside.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let addr = |v: &serde_json::Value| -> SocketAddr {
                v.as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("{}: not an address: {v}", path.display()))
            };
            let list = |k: &str| -> Vec<SocketAddr> {
                v[k].as_array()
                    .map(|a| a.iter().map(addr).collect())
                    .unwrap_or_default()
            };
            return Bound {
                proxy: list("proxy"),
                tls: list("tls"),
                admin: addr(&v["admin"]),
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "aside exited ({status}) before it was ready; log:\n{}",
                log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "aside wrote no ready file within 30 s; log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_source_is_found_under_the_crates_src_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("store/src/deep");
        std::fs::create_dir_all(&src).unwrap();
        let old = src.join("old.rs");
        std::fs::write(&old, "").unwrap();
        let ignored = src.join("notes.md");
        std::fs::write(&ignored, "").unwrap();
        let past = SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(past)
            .unwrap();
        let new = dir.path().join("cluster/src/lua/x.lua");
        std::fs::create_dir_all(new.parent().unwrap()).unwrap();
        std::fs::write(&new, "").unwrap();
        let (path, _) = newest_source(dir.path()).unwrap();
        assert_eq!(path, new);
        assert!(newest_source(&dir.path().join("nothing")).is_none());
    }
}
