//! Where the admin API is and which token it wants, so that on the host that runs
//! Aside the client works with no setup. In order of precedence:
//! flags (`--admin`, `--token`), the environment (`ASIDE_ADMIN`, `ASIDE_ADMIN_TOKEN`),
//! then the config file (`--config`, else `conf/aside.toml` when present): its
//! `[admin] listen` and `token-env` / `token-file`, or the token Aside generated in
//! the data directory (`admin-token`). Nothing is ever written.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use aside_policies::TokenSource;

use super::error::CliError;
use super::http::Admin;
use crate::settings::{self, Overrides, Source};

/// The default config file, used when present and no `--config` is given.
const DEFAULT_CONFIG: &str = "conf/aside.toml";
/// Aside's default admin address, used when nothing else names one.
const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9080);

/// What the command line and the environment say.
#[derive(Debug, Default)]
pub struct Given {
    pub admin: Option<String>,
    pub token: Option<String>,
    pub config: Option<PathBuf>,
}

/// Resolve the admin address and token.
///
/// # Errors
/// An address that does not parse, or an explicitly given config file that cannot be loaded.
pub fn resolve(given: Given) -> Result<Admin, CliError> {
    let explicit_config = given.config.is_some();
    let config_path = given
        .config
        .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.is_file()));
    // The file is only needed for what flags and environment leave open.
    let config = if given.admin.is_some() && given.token.is_some() {
        None
    } else if let Some(path) = &config_path {
        match settings::load(&Source::File(path.clone()), &Overrides::default()) {
            Ok(config) => Some(config),
            Err(e) if explicit_config => return Err(CliError::Usage(e)),
            // A broken default file must not stop a client whose flags say enough.
            Err(_) => None,
        }
    } else {
        None
    };

    let addr = match &given.admin {
        Some(text) => parse_addr(text)?,
        None => match &config {
            // The server picked the port at start; the file cannot say which.
            Some(c) if c.admin.listen.port() == 0 => {
                return Err(CliError::Usage(format!(
                    "admin.listen is {} in the config (a port picked at start): give --admin ADDR (the server's --ready-file names it)",
                    c.admin.listen
                )))
            }
            Some(c) => connectable(c.admin.listen),
            None => DEFAULT_ADMIN,
        },
    };
    let token = match given.token {
        Some(token) => Some(token),
        None => config
            .as_ref()
            .and_then(|c| token_from(&c.admin.token, settings::data_dir(c))),
    };
    Ok(Admin { addr, token })
}

/// `host:port`, `:port`, a bare port, or an `http://host:port` URL.
fn parse_addr(text: &str) -> Result<SocketAddr, CliError> {
    let bare = text
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let with_host = if let Some(port) = bare.strip_prefix(':') {
        format!("127.0.0.1:{port}")
    } else if bare.parse::<u16>().is_ok() {
        format!("127.0.0.1:{bare}")
    } else {
        bare.to_owned()
    };
    with_host
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(connectable)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "admin address {text:?} is not HOST:PORT (e.g. 127.0.0.1:9080)"
            ))
        })
}

/// A wildcard listen address (`0.0.0.0`, `::`) is reached on loopback.
fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// The token the server uses, read the way `admin::auth::resolve_token` reads it,
/// except that a missing generated token is not created. Relative paths in the
/// config are relative to the server's working directory, which is assumed to be ours.
fn token_from(source: &TokenSource, data_dir: &Path) -> Option<String> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .map(|t| t.trim().to_owned())
    };
    let token = match source {
        TokenSource::Env(name) => std::env::var(name).ok().map(|t| t.trim().to_owned()),
        TokenSource::File(path) => read(path),
        TokenSource::Generate => read(&data_dir.join(crate::admin::auth::TOKEN_FILE)),
    };
    token.filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_forms() {
        let want: SocketAddr = "127.0.0.1:9081".parse().unwrap();
        for text in [
            "127.0.0.1:9081",
            ":9081",
            "9081",
            "http://127.0.0.1:9081/",
            "0.0.0.0:9081",
        ] {
            assert_eq!(parse_addr(text).unwrap(), want, "{text}");
        }
        assert!(matches!(parse_addr("nope"), Err(CliError::Usage(_))));
    }

    #[test]
    fn flags_win_and_no_config_means_defaults() {
        let admin = resolve(Given {
            admin: Some("127.0.0.1:1".into()),
            token: Some("t".into()),
            config: None,
        })
        .unwrap();
        assert_eq!(admin.addr.port(), 1);
        assert_eq!(admin.token.as_deref(), Some("t"));
        let missing = resolve(Given {
            config: Some("/surely/not/here.toml".into()),
            ..Given::default()
        });
        assert!(matches!(missing, Err(CliError::Usage(_))));
    }
}
