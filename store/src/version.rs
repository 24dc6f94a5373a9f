//! Versions: a store-wide counter, persisted in the meta table, so a version is
//! never reused, even across restarts. Outside the store it is an opaque string.
//! A leaf module: parsing one from text, which answers with the crate's
//! `Error`, is in `error.rs`.

use std::fmt;

/// The version of one write. Displayed as 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(u64);

impl Version {
    /// A version from its number; for KV backends outside this crate that keep
    /// their own counter (`aside-cluster`), so versions look alike everywhere.
    pub fn from_u64(n: u64) -> Version {
        Version(n)
    }

    /// The number behind the version.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let v = Version::from_u64(0x1f);
        assert_eq!(v.to_string(), "000000000000001f");
        assert_eq!("000000000000001f".parse::<Version>().unwrap(), v);
        assert!("xyz".parse::<Version>().is_err());
        assert!("000000000000001g".parse::<Version>().is_err());
    }
}
