//! Vary selecting-header values, normalised before they are hashed into the
//! variance (RFC 9111 §4.1: a cache MAY normalise them by semantics the header
//! defines). Requests that mean the same select the same stored variant:
//! - `Accept-Language`: language ranges compare case-insensitively, without
//!   whitespace, ordered by weight (RFC 9110 §12.5.4), so order, case and
//!   spacing do not split the cache;
//! - any other header: field lines joined with `,`, whitespace around commas
//!   removed (RFC 9110 §5.3 list syntax).

/// The normalised value of the selecting header `name` (lowercase) for a
/// request that sent these field lines.
pub(crate) fn normalized<'a>(name: &str, lines: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let members = lines
        .flat_map(|line| line.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|m| !m.is_empty());
    if name == "accept-language" {
        return accept_language(members);
    }
    let mut out = Vec::new();
    for m in members {
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(m);
    }
    out
}

/// `en-US;q=0.8, fr` -> `fr,en-us;q=0.8`: lowercase ranges, highest weight
/// first, equal weights by name; `q=1` is implied and dropped.
fn accept_language<'a>(members: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut ranges: Vec<(u16, Vec<u8>)> = members
        .map(|m| {
            let mut parts = m.split(|b| *b == b';');
            let range: Vec<u8> = parts
                .next()
                .unwrap_or_default()
                .trim_ascii()
                .to_ascii_lowercase();
            let q = parts
                .filter_map(|p| {
                    let p = p.trim_ascii();
                    let (k, v) = p.split_at(p.iter().position(|b| *b == b'=')?);
                    k.trim_ascii()
                        .eq_ignore_ascii_case(b"q")
                        .then(|| qvalue(v[1..].trim_ascii()))
                })
                .next_back()
                .unwrap_or(Some(1000));
            // An unparsable weight keeps the member as it was written.
            (q.unwrap_or(u16::MAX), range)
        })
        .collect();
    ranges.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    ranges.dedup();
    let mut out = Vec::new();
    for (q, range) in ranges {
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(&range);
        if q < 1000 {
            out.extend_from_slice(format!(";q={}", f64::from(q) / 1000.0).as_bytes());
        } else if q == u16::MAX {
            out.extend_from_slice(b";q=?");
        }
    }
    out
}

/// A weight (RFC 9110 §12.4.2) in thousandths.
fn qvalue(v: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(v).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::normalized;

    fn norm(name: &str, lines: &[&str]) -> String {
        String::from_utf8(normalized(name, lines.iter().map(|l| l.as_bytes()))).unwrap()
    }

    #[test]
    fn accept_language_ignores_order_case_and_whitespace() {
        let same = [
            &["en-US, fr;q=0.5"][..],
            &["fr;q=0.5,EN-us"],
            &["  en-us ,  fr ; q=0.50 "],
            &["fr;q=0.5", "en-US"],
            &["en-US;q=1, fr;q=0.500"],
        ];
        let want = norm("accept-language", same[0]);
        assert_eq!(want, "en-us,fr;q=0.5");
        for lines in same {
            assert_eq!(norm("accept-language", lines), want, "{lines:?}");
        }
        // Equal weights: order does not matter either.
        assert_eq!(
            norm("accept-language", &["de, fr"]),
            norm("accept-language", &["FR,de"])
        );
        // Different preferences stay different.
        for other in ["en-US;q=0.5, fr", "en-GB, fr;q=0.5", "en-US"] {
            assert_ne!(norm("accept-language", &[other]), want, "{other}");
        }
    }

    #[test]
    fn other_headers_drop_whitespace_around_commas() {
        assert_eq!(norm("x-thing", &["a , b,c"]), "a,b,c");
        assert_eq!(norm("x-thing", &["a", " b "]), "a,b");
        assert_eq!(norm("x-thing", &["A,b"]), "A,b", "case is kept");
        assert_eq!(norm("x-thing", &[]), "");
    }
}
