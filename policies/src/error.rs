//! The one error type of this crate: a config problem, located in the file.

use std::fmt;

/// A configuration problem with its location: the file, the line (when known)
/// and the key path (`route[2].ttl`, `upstream[0].url`, `server.listen`).
///
/// Displayed as `{file}:{line}: {key}: {message}`, for example
/// `conf/aside.toml:14: route[2].ttl: "10 mins" is not a duration, e.g. "10m"`.
/// The line is omitted when unknown, the key when the problem is not tied to
/// one (a TOML syntax error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file name as given to [`crate::parse_config`]; only used in messages.
    pub file: String,
    /// 1-based line of the offending key or value, when it can be located.
    pub line: Option<usize>,
    /// Dotted key path, `route[2].ttl`; empty for syntax errors.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// A new error without file or line; [`crate::parse_config`] fills them in.
    /// The binary can use it for problems outside the text (an unreadable file).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: String::new(),
            line: None,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_formats() {
        let mut e = ConfigError::new(
            "route[2].ttl",
            "\"10 mins\" is not a duration, e.g. \"10m\"",
        );
        e.file = "conf/aside.toml".into();
        e.line = Some(14);
        assert_eq!(
            e.to_string(),
            "conf/aside.toml:14: route[2].ttl: \"10 mins\" is not a duration, e.g. \"10m\""
        );
        e.line = None;
        assert_eq!(
            e.to_string(),
            "conf/aside.toml: route[2].ttl: \"10 mins\" is not a duration, e.g. \"10m\""
        );
        e.key.clear();
        e.line = Some(3);
        assert_eq!(
            e.to_string(),
            "conf/aside.toml:3: \"10 mins\" is not a duration, e.g. \"10m\""
        );
    }
}
