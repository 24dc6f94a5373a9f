//! `${NAME}` and `${NAME:-default}` expansion in upstream header values.

/// Expands `${NAME}` (the variable must be set) and `${NAME:-default}` (the
/// default when unset or empty). A `$` not followed by `{` is literal; `$${`
/// writes a literal `${`.
///
/// # Errors
/// An unset variable without default (the message names it), or an unclosed
/// or empty `${`.
pub fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(format!("unclosed \"${{\" in {text:?}"));
        };
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        let name_ok = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !name_ok {
            return Err(format!(
                "\"${{{body}}}\" is not a variable reference, e.g. \"${{API_KEY}}\" or \"${{API_KEY:-default}}\""
            ));
        }
        match (env(name).filter(|v| !v.is_empty() || default.is_none()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write \"${{{name}:-default}}\" to make it optional)"
                ))
            }
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_table() {
        let table: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("${KEY}", Ok("s3cret")),
            ("Bearer ${KEY}!", Ok("Bearer s3cret!")),
            ("${MISSING:-demo-key}", Ok("demo-key")),
            ("${MISSING:-}", Ok("")),
            ("${KEY:-other}", Ok("s3cret")),
            ("${EMPTY:-fallback}", Ok("fallback")),
            ("${EMPTY}", Ok("")),
            ("cost $5", Ok("cost $5")),
            ("$${KEY}", Ok("${KEY}")),
            ("${MISSING}", Err("environment variable MISSING is not set (write \"${MISSING:-default}\" to make it optional)")),
            ("${KEY", Err("unclosed \"${\" in \"${KEY\"")),
            ("${}", Err("\"${}\" is not a variable reference, e.g. \"${API_KEY}\" or \"${API_KEY:-default}\"")),
            ("${1X}", Err("\"${1X}\" is not a variable reference, e.g. \"${API_KEY}\" or \"${API_KEY:-default}\"")),
        ];
        for (input, want) in table {
            let got = expand(input, &env);
            let want = want.map(str::to_owned).map_err(str::to_owned);
            assert_eq!(got, want, "{input}");
        }
    }
}
