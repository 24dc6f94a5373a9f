//! The process's listening sockets, bound by Aside itself before any service
//! starts.
//!
//! pingora would bind the proxy's listeners inside its services, after start:
//! a busy port then surfaces late, and port 0 (the kernel picks) cannot work,
//! because nothing learns which port was picked. So every proxy listener is
//! bound here and handed to pingora through its listen-fd table, under the
//! bound address (the key pingora looks up before binding); the admin listener
//! is a plain std listener. The bound addresses, not the configured ones, are
//! what the node id, warm-ups, the start log line and the `--ready-file` use.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::IntoRawFd;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use pingora_core::server::ListenFds;

/// A busy port is tried this often, a second apart: the previous process may
/// still be closing it during a restart. (pingora tries 30 times; a port
/// another program holds should not take half a minute to report.)
const BUSY_TRIES: u32 = 5;
const BUSY_STEP: Duration = Duration::from_secs(1);

/// Every address this process listens on, as bound.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bound {
    /// Plain HTTP proxy listeners (`[server] listen`).
    pub proxy: Vec<SocketAddr>,
    /// TLS proxy listeners (`[server.tls] listen`).
    pub tls: Vec<SocketAddr>,
    /// The admin API.
    pub admin: SocketAddr,
}

/// Binds a proxy listener for pingora; returns the bound address, under which
/// pingora must be told to listen (`ListenerConfig::tcp(bound.to_string())`).
///
/// # Errors
/// The address stays busy for `BUSY_TRIES` seconds, or cannot be bound at all.
pub fn bind_proxy(addr: SocketAddr, fds: &ListenFds) -> anyhow::Result<SocketAddr> {
    let listener =
        bind_retrying(addr).with_context(|| format!("cannot bind proxy listener {addr}"))?;
    let bound = listener.local_addr()?;
    // pingora takes the socket over as it is (and calls listen() again with its
    // backlog): tokio needs it non-blocking, or an accept blocks a worker.
    listener.set_nonblocking(true)?;
    fds.lock().add(bound.to_string(), listener.into_raw_fd());
    Ok(bound)
}

/// Binds the admin API's listener (non-blocking, for tokio).
///
/// # Errors
/// As [`bind_proxy`].
pub fn bind_admin(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener =
        bind_retrying(addr).with_context(|| format!("cannot bind admin listener {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn bind_retrying(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut tries = 1;
    loop {
        // std sets SO_REUSEADDR on Unix, as pingora does.
        match TcpListener::bind(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < BUSY_TRIES => {
                tracing::warn!(%addr, "address in use, trying again in 1 s");
                tries += 1;
                std::thread::sleep(BUSY_STEP);
            }
            other => return other,
        }
    }
}

/// Writes `bound` as JSON to `path` (through a temporary file and a rename, so
/// a reader never sees half of it): `{"proxy": [..], "tls": [..], "admin": ".."}`.
/// Written once every listener is bound, before the services start; a client
/// connecting then waits in the listen backlog until the proxy accepts.
///
/// # Errors
/// The file cannot be written.
pub fn write_ready_file(path: &Path, bound: &Bound) -> anyhow::Result<()> {
    let text = serde_json::to_vec(bound)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write the ready file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_binds_a_real_port_and_hands_it_to_pingora() {
        let fds: ListenFds =
            std::sync::Arc::new(parking_lot::Mutex::new(pingora_core::server::Fds::new()));
        let a = bind_proxy("127.0.0.1:0".parse().unwrap(), &fds).unwrap();
        let b = bind_proxy("127.0.0.1:0".parse().unwrap(), &fds).unwrap();
        assert_ne!(a.port(), 0);
        assert_ne!(a, b);
        let fds = fds.lock();
        assert!(fds.get(&a.to_string()).is_some());
        assert!(fds.get(&b.to_string()).is_some());
        assert!(fds.get("127.0.0.1:0").is_none());
        // The socket is listening already, and non-blocking for tokio.
        std::net::TcpStream::connect(a).unwrap();
        let fd = *fds.get(&a.to_string()).unwrap();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        const O_NONBLOCK: u32 = 0o4000;
        assert_ne!(flags & O_NONBLOCK, 0, "{info}");
    }

    #[test]
    fn the_ready_file_holds_every_bound_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        let bound = Bound {
            proxy: vec!["127.0.0.1:8080".parse().unwrap()],
            tls: vec![],
            admin: "127.0.0.1:9080".parse().unwrap(),
        };
        write_ready_file(&path, &bound).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"proxy": ["127.0.0.1:8080"], "tls": [], "admin": "127.0.0.1:9080"})
        );
        assert!(!dir.path().join("ready.json.tmp").exists());
    }
}
