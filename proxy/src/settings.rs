//! Where the configuration comes from (a file, or `--to URL`), plus the
//! command-line overrides applied on top, loaded the same way at start and on
//! every reload.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aside_policies::Config;

/// The origin of the configuration, kept for reloads.
#[derive(Clone, Debug)]
pub enum Source {
    /// A TOML file.
    File(PathBuf),
    /// `aside --to URL [--ttl D]`: one catch-all route.
    Quick {
        /// Origin URL.
        url: String,
        /// Override TTL, or respect the origin when `None`.
        ttl: Option<Duration>,
    },
}

/// Command-line flags that win over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--admin-listen`
    pub admin_listen: Option<SocketAddr>,
    /// `--data`: the store goes to `DIR/aside.redb`.
    pub data: Option<PathBuf>,
    /// `--threads`
    pub threads: Option<usize>,
}

/// Read, validate and apply overrides.
///
/// # Errors
/// The file cannot be read or is invalid; the message names the file, line and key.
pub fn load(source: &Source, overrides: &Overrides) -> Result<Config, String> {
    let mut config = match source {
        Source::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read config file: {e}", path.display()))?;
            let env = |name: &str| std::env::var(name).ok();
            aside_policies::parse_config(&text, &path.display().to_string(), &env)
                .map_err(|e| e.to_string())?
        }
        Source::Quick { url, ttl } => Config::quick(url, *ttl).map_err(|e| e.to_string())?,
    };
    if let Some(addr) = overrides.listen {
        config.server.listen = vec![addr];
    }
    if let Some(addr) = overrides.admin_listen {
        config.admin.listen = addr;
    }
    if let Some(dir) = &overrides.data {
        config.store.path = dir.join("aside.redb");
    }
    if let Some(n) = overrides.threads {
        config.server.threads = n;
    }
    Ok(config)
}

/// The data directory: where the store file lives (and the generated admin token).
pub fn data_dir(config: &Config) -> &Path {
    config
        .store
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}
