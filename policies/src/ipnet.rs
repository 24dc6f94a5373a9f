//! IP networks for the PURGE allow-list: `"10.0.0.0/8"`, `"::1"`. A thin
//! newtype over the `ipnet` crate that adds the config file's error messages,
//! bare addresses as single-host networks, and IPv4-mapped peers.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: an address and a prefix length. A bare address is a
/// single-host network (`/32` or `/128`). Host bits are cleared on parse, so
/// `10.1.2.3/8` equals `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet(ipnet::IpNet);

impl IpNet {
    /// `127.0.0.0/8`.
    pub const LOOPBACK_V4: IpNet = IpNet(ipnet::IpNet::V4(
        match ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(127, 0, 0, 0), 8) {
            Ok(net) => net,
            Err(_) => panic!("8 is a valid IPv4 prefix"),
        },
    ));
    /// `::1/128`.
    pub const LOOPBACK_V6: IpNet = IpNet(ipnet::IpNet::V6(
        match ipnet::Ipv6Net::new(std::net::Ipv6Addr::LOCALHOST, 128) {
            Ok(net) => net,
            Err(_) => panic!("128 is a valid IPv6 prefix"),
        },
    ));

    /// A network from an address and a prefix length.
    ///
    /// # Errors
    /// When the prefix is longer than the address (32 for IPv4, 128 for IPv6).
    pub fn try_new(addr: IpAddr, prefix: u8) -> Result<Self, String> {
        ipnet::IpNet::new(addr, prefix)
            .map(|net| IpNet(net.trunc()))
            .map_err(|_| format!("prefix /{prefix} is longer than /{}", max_prefix(addr)))
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.0.addr()
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses
    /// (`::ffff:127.0.0.1`) are compared as IPv4, since dual-stack sockets report
    /// IPv4 peers that way.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IP network, e.g. \"127.0.0.1/32\" or \"::1\"");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max_prefix(addr),
        };
        IpNet::try_new(addr, prefix).map_err(|e| format!("{s:?}: {e}"))
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_table() {
        let table: &[(&str, &str, bool)] = &[
            ("127.0.0.0/8", "127.0.0.1", true),
            ("127.0.0.0/8", "127.255.1.1", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("127.0.0.1/32", "127.0.0.1", true),
            ("127.0.0.1/32", "127.0.0.2", false),
            ("::1", "::1", true),
            ("::1", "::2", false),
            ("::1", "127.0.0.1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("10.1.2.3/8", "10.9.9.9", true),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
        ];
        for (net, ip, want) in table {
            let net: IpNet = net.parse().unwrap();
            assert_eq!(net.contains(ip.parse().unwrap()), *want, "{net} {ip}");
        }
    }

    #[test]
    fn parse_errors_and_display() {
        assert_eq!(
            "10.0.0.0/33".parse::<IpNet>(),
            Err("\"10.0.0.0/33\": prefix /33 is longer than /32".into())
        );
        assert_eq!(
            "localhost".parse::<IpNet>(),
            Err("\"localhost\" is not an IP network, e.g. \"127.0.0.1/32\" or \"::1\"".into())
        );
        assert_eq!("::1".parse::<IpNet>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "10.1.2.3/8".parse::<IpNet>().unwrap().to_string(),
            "10.0.0.0/8"
        );
    }
}
