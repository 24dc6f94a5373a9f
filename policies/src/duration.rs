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
///
/// From 30 days on, whole days are written as days: humantime would write a
/// year as `11months 30days 3h 50m 24s` (its month is 30.44 days).
pub fn format_duration(d: Duration) -> String {
    const DAY: u64 = 86_400;
    if d.is_zero() {
        return "0s".to_owned();
    }
    let days = d.as_secs() / DAY;
    if days < 30 {
        return humantime::format_duration(d).to_string();
    }
    let rest = d - Duration::from_secs(days * DAY);
    if rest.is_zero() {
        format!("{days}days")
    } else {
        format!("{days}days {}", humantime::format_duration(rest))
    }
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
            ("45days 1h 2s", Duration::from_secs(45 * 86400 + 3602)),
            ("2days 1h", Duration::from_secs(2 * 86400 + 3600)),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text), Ok(*want), "{text}");
            assert_eq!(parse_duration(&format_duration(*want)), Ok(*want));
        }
        assert_eq!(format_duration(Duration::from_secs(365 * 86400)), "365days");
        assert_eq!(
            format_duration(Duration::from_secs(45 * 86400 + 3602)),
            "45days 1h 2s"
        );
        assert_eq!(
            format_duration(Duration::from_secs(2 * 86400 + 3600)),
            "2days 1h"
        );
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
