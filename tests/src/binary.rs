//! Finding the `aside` binary cargo built, and refusing a stale one.
//!
//! The end-to-end tests live in their own package, so cargo's
//! `CARGO_BIN_EXE_aside` (set only for integration tests of the package that
//! owns the binary) is not available here. The harness finds the binary next
//! to the test executable instead, and panics if any source the binary is
//! built from is newer than it: a test must never pass or fail on yesterday's
//! build.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
