//! Input validation: keys, value sizes, TTLs, and the part-wise prefix rule.

use std::time::Duration;

use crate::{Error, JsonText, Limits, Result};

/// Checks a KV key against the key rules: non-empty, at most `max_key_bytes`,
/// parts separated by `/` with no empty part (so no leading, trailing or double
/// `/`), no `.` or `..` part, no control characters.
///
/// # Errors
/// `Error::InvalidKey` with the reason.
pub fn validate_key(key: &str, limits: &Limits) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty key".into());
    }
    if key.len() > limits.max_key_bytes {
        return bad(format!(
            "longer than {} bytes ({})",
            limits.max_key_bytes,
            key.len()
        ));
    }
    if key.chars().any(char::is_control) {
        return bad("control character".into());
    }
    if key.starts_with('/') {
        return bad("leading '/'".into());
    }
    if key.ends_with('/') {
        return bad("trailing '/'".into());
    }
    for part in key.split('/') {
        match part {
            "" => return bad("empty part".into()),
            "." | ".." => return bad(format!("'{part}' part")),
            _ => {}
        }
    }
    Ok(())
}

/// Checks the size of a value's text (what is stored and answered).
///
/// # Errors
/// `Error::ValueTooLarge`.
pub fn check_value(value: &JsonText, limits: &Limits) -> Result<()> {
    check_value_size(value.len(), limits)
}

pub(crate) fn check_value_size(size: usize, limits: &Limits) -> Result<()> {
    if size > limits.max_value_bytes {
        return Err(Error::ValueTooLarge {
            size,
            max: limits.max_value_bytes,
        });
    }
    Ok(())
}

/// # Errors
/// `Error::InvalidTtl` when outside `[min_ttl, max_ttl]`.
pub fn validate_ttl(ttl: Option<Duration>, limits: &Limits) -> Result<()> {
    match ttl {
        Some(ttl) if ttl < limits.min_ttl || ttl > limits.max_ttl => Err(Error::InvalidTtl {
            ttl,
            min: limits.min_ttl,
            max: limits.max_ttl,
        }),
        _ => Ok(()),
    }
}

/// Normalized list prefix: `None` or "" means everything; a trailing `/` is ignored.
pub fn normalize_prefix(prefix: Option<&str>) -> Option<String> {
    let p = prefix?.trim_end_matches('/');
    if p.is_empty() {
        None
    } else {
        Some(p.to_string())
    }
}

/// Separator of the stored key form: below every byte a key may contain (keys
/// have no control characters), so the byte order of stored keys is the order of
/// keys compared part by part.
const STORED_SEP: u8 = 0x00;

/// The form a KV key is stored under in the cold tier: `/` becomes 0x00. Byte
/// order of this form = part-by-part order of keys ("a/b" < "a-b" < "ab", since
/// part "a" < "a-b"). Also used on listing bounds (start, end, cursor), which are
/// not validated keys: their own NUL bytes would compare like `/`.
pub fn stored_key(key: &str) -> Vec<u8> {
    key.bytes()
        .map(|b| if b == b'/' { STORED_SEP } else { b })
        .collect()
}

/// The key back from its stored form; `None` when the bytes are not UTF-8.
pub fn key_from_stored(stored: &[u8]) -> Option<String> {
    let bytes = stored
        .iter()
        .map(|&b| if b == STORED_SEP { b'/' } else { b })
        .collect();
    String::from_utf8(bytes).ok()
}

/// First stored key after every key under the stored `prefix` (whole parts):
/// matches are the prefix itself or the prefix + separator + more.
pub fn stored_prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(STORED_SEP + 1);
    end
}

/// Whole-part prefix match on stored forms.
pub fn stored_matches_prefix(stored: &[u8], prefix: &[u8]) -> bool {
    match stored.strip_prefix(prefix) {
        Some(rest) => rest.first().is_none_or(|&b| b == STORED_SEP),
        None => false,
    }
}

/// Whole-part prefix match: "notes" matches "notes" and "notes/a", not "notesx".
/// (The store matches stored forms, see [`stored_matches_prefix`]; this is the
/// reference its tests compare with.)
#[cfg(test)]
pub(crate) fn matches_prefix(key: &str, prefix: &str) -> bool {
    match key.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules() {
        let l = Limits::default();
        for ok in ["a", "notes/abc-123", "a.b/c..d", "ünï/cødé"] {
            assert!(validate_key(ok, &l).is_ok(), "{ok}");
        }
        let cases = [
            ("", "empty key"),
            ("a//b", "empty part"),
            ("/a", "leading '/'"),
            ("a/", "trailing '/'"),
            ("a/./b", "'.' part"),
            ("..", "'..' part"),
            ("a\nb", "control character"),
        ];
        for (key, reason) in cases {
            match validate_key(key, &l) {
                Err(Error::InvalidKey { reason: r, .. }) => assert_eq!(r, reason, "{key:?}"),
                other => panic!("{key:?}: {other:?}"),
            }
        }
        let long = "k".repeat(513);
        assert!(validate_key(&long, &l).is_err());
        assert!(validate_key(&"k".repeat(512), &l).is_ok());
    }

    #[test]
    fn value_size_limit() {
        let l = Limits {
            max_value_bytes: 10,
            ..Limits::default()
        };
        assert!(check_value(&serde_json::json!("12345678").into(), &l).is_ok());
        assert!(matches!(
            check_value(&serde_json::json!("123456789").into(), &l),
            Err(Error::ValueTooLarge { size: 11, max: 10 })
        ));
    }

    #[test]
    fn ttl_bounds() {
        let l = Limits::default();
        assert!(validate_ttl(None, &l).is_ok());
        assert!(validate_ttl(Some(Duration::from_secs(1)), &l).is_ok());
        assert!(validate_ttl(Some(Duration::from_millis(999)), &l).is_err());
        assert!(validate_ttl(Some(Duration::from_secs(365 * 86400 + 1)), &l).is_err());
    }

    /// The order listings follow: parts compared bytewise, shorter part first.
    fn part_order(a: &str, b: &str) -> std::cmp::Ordering {
        a.split('/').cmp(b.split('/'))
    }

    #[test]
    fn stored_form_orders_part_by_part() {
        let keys = [
            "a", "a/b", "a/b/c", "a-b", "a-b/c", "a/b-c", "ab", "b", "b/a", "a/c", "ü", "a/ü", "z",
            "a.b", "a/b/c/d",
        ];
        for a in keys {
            assert_eq!(key_from_stored(&stored_key(a)).as_deref(), Some(a));
            for b in keys {
                assert_eq!(
                    stored_key(a).cmp(&stored_key(b)),
                    part_order(a, b),
                    "{a:?} vs {b:?}"
                );
            }
            for p in ["a", "a/b", "ab", "a-b"] {
                let (s, sp) = (stored_key(a), stored_key(p));
                assert_eq!(stored_matches_prefix(&s, &sp), matches_prefix(a, p));
                let in_range = s >= sp && s < stored_prefix_end(&sp);
                assert_eq!(in_range, matches_prefix(a, p), "{a:?} under {p:?}");
            }
        }
        // The example of ARCHITECTURE.md ("The store's threads").
        assert!(stored_key("a/b") < stored_key("a-b"));
        assert!("a/b" > "a-b");
    }

    #[test]
    fn prefix_matches_whole_parts() {
        assert!(matches_prefix("notes", "notes"));
        assert!(matches_prefix("notes/a", "notes"));
        assert!(!matches_prefix("notesx", "notes"));
        assert!(!matches_prefix("note", "notes"));
        assert_eq!(normalize_prefix(Some("notes/")), Some("notes".into()));
        assert_eq!(normalize_prefix(Some("")), None);
    }
}
