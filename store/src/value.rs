//! [`JsonText`]: a KV value kept as the JSON text it was written in.
//!
//! Decoding a value into `serde_json::Value` and encoding it again loses what users
//! see: object keys come back sorted, `1.0` becomes `1`, integers beyond 2^53 or u64
//! become floats. So a value is validated once, when it enters, and from then on
//! moved as text: the same bytes are stored, returned and embedded in answers
//! (through [`serde_json::value::RawValue`]). Whitespace between tokens is removed
//! on the way in (never inside strings), so sizes match what a serializer would
//! produce and the stored file holds no padding; everything else — key order, number
//! spelling, string escapes — is the sender's.
//!
//! This module imports nothing of the crate, so every other module (and the
//! `aside-cluster` backend) can use it.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A valid JSON value as text, compact, cheap to clone.
#[derive(Clone)]
pub struct JsonText(Arc<RawValue>);

/// What a JSON text holds, as far as `increment` cares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Numeric {
    /// An integer literal (no fraction, no exponent) within i64.
    Int(i64),
    /// An integer literal outside i64: kept exactly as text, but no arithmetic.
    BigInt,
    /// A number with a fraction or an exponent.
    Float(f64),
    /// Not a number at all (string, object, ...).
    NotANumber,
}

impl JsonText {
    /// Validates `text` as one JSON value and drops the whitespace between tokens.
    ///
    /// # Errors
    /// The parser's error when `text` is not exactly one JSON value.
    pub fn parse(text: &str) -> Result<JsonText, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(text)?;
        Ok(JsonText::from_raw(raw))
    }

    /// A value already validated by serde (a `RawValue` field of a request body).
    pub fn from_raw(raw: &RawValue) -> JsonText {
        JsonText::from_valid(compact(raw.get()))
    }

    /// `text` must be valid JSON; it is checked again (cheaply) by `RawValue`.
    fn from_valid(text: String) -> JsonText {
        match RawValue::from_string(text) {
            Ok(raw) => JsonText(Arc::from(raw)),
            // Unreachable for text that came out of a RawValue; never panic anyway.
            Err(_) => JsonText::null(),
        }
    }

    /// Reads a value from the store file. Entries written before values were kept as
    /// text hold `serde_json::to_vec` of the decoded value: compact JSON as well, so
    /// they read unchanged (with the key order and number spelling they were stored
    /// with).
    ///
    /// # Errors
    /// A description when `bytes` are not UTF-8 JSON.
    pub fn from_stored(bytes: &[u8]) -> Result<JsonText, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        JsonText::parse(text).map_err(|e| e.to_string())
    }

    /// JSON `null`.
    pub fn null() -> JsonText {
        JsonText(Arc::from(RawValue::NULL.to_owned()))
    }

    /// An integer, as `increment` writes it.
    pub fn from_i64(n: i64) -> JsonText {
        JsonText::from_valid(n.to_string())
    }

    /// A finite float, in serde_json's shortest round-trip spelling (`3.5`, `2.0`).
    pub fn from_f64(n: f64) -> Option<JsonText> {
        serde_json::Number::from_f64(n).map(|n| JsonText::from_valid(n.to_string()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// As a `RawValue`, to embed in a serialized answer unchanged.
    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }

    /// Length of the text in bytes (what the value-size limit counts).
    pub fn len(&self) -> usize {
        self.as_str().len()
    }

    /// Never true (the shortest JSON value is one character); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }

    /// Decoded into a `serde_json::Value`: lossy (key order, big numbers), for tests
    /// and comparisons only.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.as_str()).unwrap_or(serde_json::Value::Null)
    }

    /// Whether the text is a JSON number.
    pub fn is_number(&self) -> bool {
        matches!(self.as_str().as_bytes().first(), Some(b'-' | b'0'..=b'9'))
    }

    /// Classifies the value for arithmetic, reading the number from its text (so an
    /// integer is never routed through a float).
    pub fn numeric(&self) -> Numeric {
        if !self.is_number() {
            return Numeric::NotANumber;
        }
        let text = self.as_str();
        if text.bytes().all(|b| b == b'-' || b.is_ascii_digit()) {
            return match text.parse::<i64>() {
                Ok(n) => Numeric::Int(n),
                Err(_) => Numeric::BigInt,
            };
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Numeric::Float(f),
            // `1e400`: valid JSON, not a finite double.
            _ => Numeric::BigInt,
        }
    }
}

/// Why [`JsonText::add`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddError {
    /// The current value (`delta: false`) or the delta is not a JSON number.
    NotANumber { delta: bool },
    /// An integer literal outside i64 (the value or the delta).
    OutOfRange { delta: bool },
    /// The sum overflows i64, or is not a finite double.
    Overflow,
}

impl JsonText {
    /// `self + delta`: exact i64 arithmetic when both are integer literals, f64 when
    /// either has a fraction or an exponent. Integer literals outside i64 are refused
    /// rather than rounded through a double.
    ///
    /// # Errors
    /// [`AddError`].
    pub fn add(&self, delta: &JsonText) -> Result<JsonText, AddError> {
        let classify = |v: &JsonText, is_delta: bool| match v.numeric() {
            Numeric::NotANumber => Err(AddError::NotANumber { delta: is_delta }),
            Numeric::BigInt => Err(AddError::OutOfRange { delta: is_delta }),
            n => Ok(n),
        };
        match (classify(self, false)?, classify(delta, true)?) {
            (Numeric::Int(a), Numeric::Int(b)) => a
                .checked_add(b)
                .map(JsonText::from_i64)
                .ok_or(AddError::Overflow),
            (a, b) => JsonText::from_f64(as_f64(a) + as_f64(b)).ok_or(AddError::Overflow),
        }
    }
}

fn as_f64(n: Numeric) -> f64 {
    match n {
        Numeric::Int(i) => i as f64,
        Numeric::Float(f) => f,
        Numeric::BigInt | Numeric::NotANumber => f64::NAN,
    }
}

/// Drops whitespace outside strings. `text` is valid JSON, so a `"` that is not
/// escaped always opens or closes a string.
fn compact(text: &str) -> String {
    let bytes = text.as_bytes();
    if !bytes
        .iter()
        .any(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
    {
        return text.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
    // Only ASCII whitespace was removed between tokens: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JsonText {}

/// Compares the decoded values (so `{"a":1,"b":2}` equals `json!({"b":2,"a":1})`):
/// handy in tests; exact text comparisons use `as_str`.
impl PartialEq<serde_json::Value> for JsonText {
    fn eq(&self, other: &serde_json::Value) -> bool {
        self.to_value() == *other
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// From a decoded value (tests, benches, and callers that build values in code);
/// keys come out in `serde_json::Map` order.
impl From<serde_json::Value> for JsonText {
    fn from(value: serde_json::Value) -> JsonText {
        JsonText::from_valid(value.to_string())
    }
}

impl From<&serde_json::Value> for JsonText {
    fn from(value: &serde_json::Value) -> JsonText {
        JsonText::from_valid(value.to_string())
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Works only in self-describing formats that support `RawValue` (serde_json), and
/// not inside internally tagged or untagged enums, which buffer their content.
impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonText, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(JsonText::from_raw(&raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_numbers_and_escapes() {
        let text = r#"{"theme": "dark", "n": 1.0, "big": 18446744073709551617,
            "dec": 0.10000000000000000000001, "s": "a \"q\" \u00e9 \n", "a": [ 1 , 2 ]}"#;
        let v = JsonText::parse(text).unwrap();
        assert_eq!(
            v.as_str(),
            r#"{"theme":"dark","n":1.0,"big":18446744073709551617,"dec":0.10000000000000000000001,"s":"a \"q\" \u00e9 \n","a":[1,2]}"#
        );
        assert_eq!(serde_json::to_string(&v).unwrap(), v.as_str());
        let s = JsonText::parse(r#" [ " spaces \" inside \\" , 1 ] "#).unwrap();
        assert_eq!(s.as_str(), r#"[" spaces \" inside \\",1]"#);
    }

    #[test]
    fn refuses_invalid_json() {
        for bad in ["", "{", "tru", "1 2", "{'a':1}", "\"\u{1}\"", "01"] {
            assert!(JsonText::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn old_store_encoding_reads() {
        let old = serde_json::to_vec(&serde_json::json!({"b": 1, "a": [true, null]})).unwrap();
        let v = JsonText::from_stored(&old).unwrap();
        assert_eq!(v.as_str(), r#"{"a":[true,null],"b":1}"#);
        assert!(JsonText::from_stored(b"\xff").is_err());
    }

    #[test]
    fn numeric_classes() {
        let n = |s: &str| JsonText::parse(s).unwrap().numeric();
        assert_eq!(n("42"), Numeric::Int(42));
        assert_eq!(n("-9223372036854775808"), Numeric::Int(i64::MIN));
        assert_eq!(n("9223372036854775808"), Numeric::BigInt);
        assert_eq!(n("1.5"), Numeric::Float(1.5));
        assert_eq!(n("1e2"), Numeric::Float(100.0));
        assert_eq!(n("1e400"), Numeric::BigInt);
        assert_eq!(n("\"1\""), Numeric::NotANumber);
        assert_eq!(n("null"), Numeric::NotANumber);
        assert_eq!(JsonText::from_f64(2.0).unwrap().as_str(), "2.0");
        assert_eq!(JsonText::from_i64(-3).as_str(), "-3");
    }

    #[test]
    fn addition() {
        let t = |s: &str| JsonText::parse(s).unwrap();
        let add = |a: &str, b: &str| t(a).add(&t(b)).map(|v| v.as_str().to_owned());
        assert_eq!(add("1", "2").unwrap(), "3");
        assert_eq!(add("1.5", "2").unwrap(), "3.5");
        assert_eq!(add("1.0", "1").unwrap(), "2.0");
        assert_eq!(
            add("9223372036854775806", "1").unwrap(),
            "9223372036854775807"
        );
        assert_eq!(add("9223372036854775807", "1"), Err(AddError::Overflow));
        assert_eq!(
            add("9223372036854775808", "1"),
            Err(AddError::OutOfRange { delta: false })
        );
        assert_eq!(
            add("1", "-9223372036854775809"),
            Err(AddError::OutOfRange { delta: true })
        );
        assert_eq!(
            add("\"x\"", "1"),
            Err(AddError::NotANumber { delta: false })
        );
        assert_eq!(add("1", "[1]"), Err(AddError::NotANumber { delta: true }));
        assert_eq!(add("1e308", "1e308"), Err(AddError::Overflow));
    }
}
