//! Byte sizes written as `"256MiB"`, `"10GiB"`, `"512KB"` (decimal) or `"4096"`.

/// Parses a byte size with the `bytesize` crate: a number (integer or
/// decimal) and an optional unit. Binary units `KiB MiB GiB TiB` are powers
/// of 1024, decimal units `KB MB GB TB` (or `K M G T`) powers of 1000, `B` or
/// no unit means bytes. Units are case-insensitive; a space between number
/// and unit is allowed.
///
/// # Errors
/// A message saying what was expected, for the caller to wrap with a key.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size, e.g. \"256MiB\" or \"512KB\"");
    let t = text.trim();
    // bytesize reads the number by f64 rules, which take ".5" and "5." too;
    // a config file wants digits on both sides of the point.
    let number = t
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .unwrap_or_default();
    let mut parts = number.split('.');
    if number.is_empty() || parts.any(str::is_empty) || number.matches('.').count() > 1 {
        return Err(bad());
    }
    match t.parse::<bytesize::ByteSize>() {
        // bytesize saturates on overflow: u64::MAX means "too large".
        Ok(size) if size.as_u64() != u64::MAX => Ok(size.as_u64()),
        _ => Err(bad()),
    }
}

/// Formats a byte size so that [`parse_size`] gives it back exactly: the
/// largest binary unit that divides it, else plain bytes.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, n) in UNITS {
        if bytes != 0 && bytes.is_multiple_of(n) {
            return format!("{}{name}", bytes / n);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        let table: &[(&str, u64)] = &[
            ("256MiB", 256 << 20),
            ("10GiB", 10 << 30),
            ("512KB", 512_000),
            ("512kb", 512_000),
            ("4096", 4096),
            ("0", 0),
            ("12B", 12),
            ("1 MiB", 1 << 20),
            ("1.5KiB", 1536),
            ("2TB", 2_000_000_000_000),
            ("64MiB", 64 << 20),
        ];
        for (text, want) in table {
            assert_eq!(parse_size(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn sizes_reject() {
        for text in [
            "",
            "MiB",
            "10 megs",
            "-1",
            "1..5MiB",
            ".5MiB",
            "99999999999999TiB",
            "5.MiB",
        ] {
            assert_eq!(
                parse_size(text),
                Err(format!(
                    "{text:?} is not a size, e.g. \"256MiB\" or \"512KB\""
                )),
                "{text}"
            );
        }
    }

    #[test]
    fn sizes_round_trip() {
        for n in [
            0,
            1,
            1000,
            1024,
            1 << 20,
            3 << 30,
            512_000,
            7 << 40,
            1_234_567,
        ] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
    }
}
