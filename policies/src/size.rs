//! Byte sizes written as `"256MiB"`, `"10GiB"`, `"512KB"` (decimal) or `"4096"`.

/// Parses a byte size: a number (integer or decimal) and an optional unit.
/// Binary units `KiB MiB GiB TiB` are powers of 1024, decimal units
/// `KB MB GB TB` powers of 1000, `B` or no unit means bytes. Units are
/// case-insensitive; a space between number and unit is allowed.
///
/// # Errors
/// A message saying what was expected, for the caller to wrap with a key.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size, e.g. \"256MiB\" or \"512KB\"");
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(bad());
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "tb" | "t" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let int: u64 = int.parse().map_err(|_| bad())?;
    let mut total = int.checked_mul(mult).ok_or_else(bad)?;
    if !frac.is_empty() {
        // Exact decimal fraction: frac / 10^len * mult, rounded down.
        let digits = frac.len().min(12) as u32;
        let frac_val: u64 = frac[..digits as usize].parse().map_err(|_| bad())?;
        let scale = 10u64.pow(digits);
        let part = (u128::from(frac_val) * u128::from(mult)) / u128::from(scale);
        total = total
            .checked_add(u64::try_from(part).map_err(|_| bad())?)
            .ok_or_else(bad)?;
    }
    Ok(total)
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
