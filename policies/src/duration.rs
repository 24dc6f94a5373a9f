//! Durations written as humantime strings: `"30s"`, `"5m"`, `"1h 30m"`.

use std::time::Duration;

/// Parses a humantime duration.
///
/// # Errors
/// `"10 mins" is not a duration, e.g. "10m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|_| format!("{text:?} is not a duration, e.g. \"10m\""))
}

/// Formats a duration so that [`parse_duration`] gives it back exactly.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_round_trip() {
        let table: &[(&str, Duration)] = &[
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h 30m", Duration::from_secs(5400)),
            ("250ms", Duration::from_millis(250)),
            ("0s", Duration::ZERO),
            ("365days", Duration::from_secs(365 * 86400)),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text), Ok(*want), "{text}");
            assert_eq!(parse_duration(&format_duration(*want)), Ok(*want));
        }
    }

    #[test]
    fn durations_reject() {
        for text in ["", "10", "ten minutes", "10 parsecs", "-5s"] {
            assert_eq!(
                parse_duration(text),
                Err(format!("{text:?} is not a duration, e.g. \"10m\"")),
                "{text}"
            );
        }
    }
}
