//! The one error type of the crate.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::Version;

/// Result alias used by every fallible call of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store, each variant with enough context
/// (key, path, operation) for the caller to build a precise message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key breaks one of the key rules (see [`crate::key`]).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },

    /// The value, serialized as JSON, is larger than `Limits::max_value_bytes`.
    #[error(
        "Value size ({} KB) exceeds the maximum allowed size of {} ({} KB)",
        size_kb_text(*size, *max),
        mb_text(*max),
        kb_text(*max)
    )]
    ValueTooLarge { size: usize, max: usize },

    /// The TTL is outside `[Limits::min_ttl, Limits::max_ttl]`.
    #[error("invalid TTL {ttl:?}: must be between {}s and {}s", min.as_secs(), max.as_secs())]
    InvalidTtl {
        ttl: Duration,
        min: Duration,
        max: Duration,
    },

    /// A conditional `set` (`IfVersion` / `IfAbsent`) found another state.
    #[error("precondition failed for key {key:?}")]
    PreconditionFailed { key: String },

    /// An atomic check failed; nothing was written.
    #[error(
        "check failed for key {key:?}: expected {}, found {}",
        ver_text(expected),
        ver_text(actual)
    )]
    CheckFailed {
        key: String,
        expected: Option<Version>,
        actual: Option<Version>,
    },

    /// `increment` on a value (or with a delta) that is not a number.
    #[error("value of key {key:?} is not a number")]
    NotANumber { key: String },

    /// `increment` of (or by) an integer written outside the signed 64-bit range:
    /// such integers are stored exactly, but not added (rounding would change them).
    #[error(
        "cannot increment key {key:?}: {} is an integer outside the 64-bit range \
         (-9223372036854775808 to 9223372036854775807); such integers are stored \
         exactly but cannot be incremented",
        if *delta { "the delta" } else { "its value" }
    )]
    IntegerOutOfRange { key: String, delta: bool },

    /// `increment` would overflow an i64 or produce a non-finite float.
    #[error("increment of key {key:?} overflows")]
    Overflow { key: String },

    /// A version string that is not one of ours.
    #[error("invalid version {version:?}")]
    InvalidVersion { version: String },

    /// The cursor could not be decoded (forged, truncated, or from another listing).
    #[error("invalid cursor")]
    InvalidCursor,

    /// Too many operations in one request (see `Limits::max_atomic_ops`).
    #[error("too many operations: {count} (max {max})")]
    TooManyOperations { count: usize, max: usize },

    /// The data file could not be opened: corrupt, not a redb file, locked by
    /// another process or another `Store` of this process, or unreadable.
    #[error("cannot open store {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },

    /// A storage operation failed (I/O error, commit failure, disk full).
    #[error("storage error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// A record in the file could not be decoded.
    #[error("corrupt record {what}")]
    Corrupt { what: String },

    /// The store has shut down (its writer thread is gone).
    #[error("store is closed")]
    Closed,

    /// A KV backend outside this process (the shared store of a cluster) cannot
    /// be reached or did not answer in time. For writes the outcome is unknown.
    #[error("the shared KV store is unavailable: {reason}")]
    Unavailable { reason: String },
}

impl Error {
    /// Wraps a redb (or any) error with what the store was doing.
    pub(crate) fn io(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Io {
            context: context.into(),
            source: Box::new(source),
        }
    }
}

fn ver_text(v: &Option<Version>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "absent".to_string(),
    }
}

/// "1 MB", "1.50 MB": whole numbers without decimals, as users write limits.
fn mb_text(max: usize) -> String {
    let mb = max as f64 / (1024.0 * 1024.0);
    if mb.fract() == 0.0 {
        format!("{} MB", mb as u64)
    } else {
        format!("{mb:.2} MB")
    }
}

/// `size` in KB with two decimals, rounded to nearest, but always above the limit as
/// [`kb_text`] shows it: 1 MiB + 1 byte reads 1024.01 KB, not 1024.00 KB.
fn size_kb_text(size: usize, max: usize) -> String {
    let hundredths = |bytes: usize| (bytes as u128 * 100 + 512) / 1024;
    let mut shown = hundredths(size);
    if size > max {
        shown = shown.max(hundredths(max) + 1);
    }
    format!("{}.{:02}", shown / 100, shown % 100)
}

fn kb_text(max: usize) -> String {
    let kb = max as f64 / 1024.0;
    if kb.fract() == 0.0 {
        format!("{}", kb as u64)
    } else {
        format!("{kb:.2}")
    }
}

// Here rather than in `version.rs`, so that `version` stays a leaf under `error`.
impl FromStr for Version {
    type Err = Error;

    /// # Errors
    /// `Error::InvalidVersion` when the text is not 16 hex digits.
    fn from_str(s: &str) -> Result<Version, Error> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidVersion {
                version: s.to_string(),
            });
        }
        u64::from_str_radix(s, 16)
            .map(Version::from_u64)
            .map_err(|_| Error::InvalidVersion {
                version: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_too_large_message_is_exact() {
        let e = Error::ValueTooLarge {
            size: 1_264_189,
            max: 1024 * 1024,
        };
        assert_eq!(
            e.to_string(),
            "Value size (1234.56 KB) exceeds the maximum allowed size of 1 MB (1024 KB)"
        );
    }

    #[test]
    fn value_size_never_reads_as_the_limit() {
        let e = Error::ValueTooLarge {
            size: 1024 * 1024 + 1,
            max: 1024 * 1024,
        };
        assert_eq!(
            e.to_string(),
            "Value size (1024.01 KB) exceeds the maximum allowed size of 1 MB (1024 KB)"
        );
        // A limit that is not whole KB: the size still reads above it.
        let e = Error::ValueTooLarge {
            size: 1001,
            max: 1000,
        };
        assert_eq!(
            e.to_string(),
            "Value size (0.99 KB) exceeds the maximum allowed size of 0.00 MB (0.98 KB)"
        );
    }

    #[test]
    fn ttl_message_keeps_integers() {
        let e = Error::InvalidTtl {
            ttl: Duration::from_secs(u64::MAX),
            min: Duration::from_secs(1),
            max: Duration::from_secs(365 * 24 * 3600),
        };
        assert_eq!(
            e.to_string(),
            "invalid TTL 18446744073709551615s: must be between 1s and 31536000s"
        );
    }

    #[test]
    fn invalid_key_message_names_key() {
        let e = Error::InvalidKey {
            key: "a//b".into(),
            reason: "empty part".into(),
        };
        assert_eq!(e.to_string(), "invalid key \"a//b\": empty part");
    }
}
