//! Plain aligned text tables, and the small formatting helpers the commands share.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Query values: everything but unreserved characters is encoded.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One key part (or any path segment), percent-encoded.
pub fn segment(part: &str) -> String {
    utf8_percent_encode(part, QUERY).to_string()
}

/// Print rows under a header, columns separated by two spaces; the last column is not padded.
pub fn print(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `name=value&...` with values percent-encoded; `None` values are left out.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .map(|v| format!("{k}={}", utf8_percent_encode(v, QUERY)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Bytes as `512 B`, `1.5 KiB`, `3.2 MiB`...
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds from now until an RFC 3339 time, as `5m 3s`; `-` when absent, `expired` when past.
pub fn until(rfc3339: Option<&str>, now: time::OffsetDateTime) -> String {
    let Some(text) = rfc3339 else {
        return "-".to_owned();
    };
    let Ok(at) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    else {
        return text.to_owned();
    };
    let secs = (at - now).whole_seconds();
    if secs <= 0 {
        return "expired".to_owned();
    }
    humantime::format_duration(std::time::Duration::from_secs(secs.unsigned_abs())).to_string()
}

/// Cut a cell to `max` characters, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(
            query(&[("prefix", Some("a b/&".into())), ("x", None)]),
            "?prefix=a%20b%2F%26"
        );
        assert_eq!(query(&[("x", None)]), "");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(truncate("abcdef", 4), "abc…");
        let now = time::OffsetDateTime::from_unix_timestamp(0).unwrap();
        assert_eq!(until(Some("1970-01-01T00:01:30Z"), now), "1m 30s");
        assert_eq!(until(Some("1969-12-31T00:00:00Z"), now), "expired");
        assert_eq!(until(None, now), "-");
    }
}
