//! RFC 8941 Structured Field Dictionaries, parsed only as far as Aside needs:
//! whether a field value is a valid Dictionary, and which members are
//! Integers. `CDN-Cache-Control` (RFC 9213 §2.1) is defined as a Dictionary,
//! and one that does not parse must be ignored as a whole; pingora's
//! Cache-Control parser is lenient, so the strict check lives here.

/// The kind of a member's value, as far as the callers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    /// An Integer (RFC 8941 §3.3.1).
    Integer(i64),
    /// Any other Bare Item or an Inner List (a bare key is Boolean true).
    Other,
}

/// The members of a Dictionary field value (key, value kind), in order;
/// `None` when the value is not a valid Dictionary (RFC 8941 §4.2.2).
pub(crate) fn parse_dictionary(input: &str) -> Option<Vec<(String, Value)>> {
    let mut p = Parser {
        s: input.as_bytes(),
        i: 0,
    };
    p.skip_sp();
    let mut members = Vec::new();
    while p.i < p.s.len() {
        let key = p.key()?;
        let value = if p.eat(b'=') {
            if p.peek() == Some(b'(') {
                p.inner_list()?;
                Value::Other
            } else {
                p.bare_item()?
            }
        } else {
            Value::Other
        };
        p.parameters()?;
        members.retain(|(k, _)| *k != key);
        members.push((key, value));
        p.skip_ows();
        if p.i == p.s.len() {
            return Some(members);
        }
        if !p.eat(b',') {
            return None;
        }
        p.skip_ows();
        if p.i == p.s.len() {
            // A trailing comma.
            return None;
        }
    }
    Some(members)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`
    fn key(&mut self) -> Option<String> {
        let start = self.i;
        match self.peek() {
            Some(b'a'..=b'z' | b'*') => self.i += 1,
            _ => return None,
        }
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
        ) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .map(str::to_owned)
    }

    /// `*( ";" *SP key [ "=" bare-item ] )`
    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    /// `"(" *SP [ sf-item *( 1*SP sf-item ) *SP ] ")" parameters`
    fn inner_list(&mut self) -> Option<()> {
        if !self.eat(b'(') {
            return None;
        }
        loop {
            self.skip_sp();
            if self.eat(b')') {
                return self.parameters();
            }
            self.bare_item()?;
            self.parameters()?;
            if !matches!(self.peek(), Some(b' ' | b')')) {
                return None;
            }
        }
    }

    fn bare_item(&mut self) -> Option<Value> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string().map(|()| Value::Other),
            b'*' | b'A'..=b'Z' | b'a'..=b'z' => {
                self.token();
                Some(Value::Other)
            }
            b':' => self.byte_sequence().map(|()| Value::Other),
            b'?' => {
                self.i += 1;
                match self.peek() {
                    Some(b'0' | b'1') => {
                        self.i += 1;
                        Some(Value::Other)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Integer (at most 15 digits) or Decimal (at most 12 + 3 digits).
    fn number(&mut self) -> Option<Value> {
        let negative = self.eat(b'-');
        let start = self.i;
        let mut dot = None;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' => self.i += 1,
                b'.' if dot.is_none() => {
                    dot = Some(self.i);
                    self.i += 1;
                }
                _ => break,
            }
        }
        let digits = &self.s[start..self.i];
        match dot {
            None => {
                if digits.is_empty() || digits.len() > 15 {
                    return None;
                }
                let n: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
                Some(Value::Integer(if negative { -n } else { n }))
            }
            Some(d) => {
                let (int, frac) = (d - start, self.i - d - 1);
                ((1..=12).contains(&int) && (1..=3).contains(&frac)).then_some(Value::Other)
            }
        }
    }

    fn string(&mut self) -> Option<()> {
        self.i += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' => self.i += 1,
                        _ => return None,
                    }
                }
                0x20..=0x7e => self.i += 1,
                _ => return None,
            }
        }
    }

    fn token(&mut self) {
        self.i += 1;
        while let Some(c) = self.peek() {
            let tchar = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c);
            if !tchar {
                break;
            }
            self.i += 1;
        }
    }

    fn byte_sequence(&mut self) -> Option<()> {
        self.i += 1;
        loop {
            match self.peek()? {
                b':' => {
                    self.i += 1;
                    return Some(());
                }
                c if c.is_ascii_alphanumeric() || b"+/=".contains(&c) => self.i += 1,
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected members: key and value kind (`None`: the key is absent).
    type Members<'a> = &'a [(&'a str, Option<Value>)];

    #[test]
    fn dictionaries() {
        let int = |n| Some(Value::Integer(n));
        let table: &[(&str, Option<Members>)] = &[
            ("max-age=60", Some(&[("max-age", int(60))])),
            (
                "max-age=60, stale-while-revalidate=30",
                Some(&[("max-age", int(60)), ("stale-while-revalidate", int(30))]),
            ),
            ("no-store", Some(&[("no-store", Some(Value::Other))])),
            (
                "  public ,max-age=5  ",
                Some(&[("public", Some(Value::Other)), ("max-age", int(5))]),
            ),
            (
                "private=\"set-cookie\"",
                Some(&[("private", Some(Value::Other))]),
            ),
            ("a=(1 2);x, b=?1;y=tok, c=:aGk=:, d=1.5", Some(&[])),
            ("max-age=1, max-age=2", Some(&[("max-age", int(2))])),
            ("", Some(&[])),
            // Not dictionaries.
            ("Max-Age=60", None),
            ("max-age=60,", None),
            ("max-age=60,, public", None),
            ("max-age=", None),
            ("max-age=60 public", None),
            ("max-age=1.2345", None),
            ("max-age=1234567890123456", None),
            ("a=\"unterminated", None),
            ("a=(1 2", None),
            ("a=?2", None),
            ("=1", None),
        ];
        for (input, want) in table {
            let got = parse_dictionary(input);
            match want {
                None => assert!(got.is_none(), "{input:?} -> {got:?}"),
                Some(members) => {
                    let got = got.unwrap_or_else(|| panic!("{input:?} must parse"));
                    for (key, value) in members.iter() {
                        let found = got.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
                        assert_eq!(found, *value, "{input:?} member {key}");
                    }
                }
            }
        }
    }
}
