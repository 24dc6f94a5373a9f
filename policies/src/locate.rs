//! Source positions: from a key path (`route[2].ttl`) to a line, and from a
//! byte span (of a serde error) to a key path.
//!
//! The file is parsed a second time with `toml_edit`, which keeps the span of
//! every key and value; the file model itself stays free of span wrappers.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// A parsed document that answers "where is this key?".
pub(crate) struct SourceMap<'a> {
    text: &'a str,
    doc: ImDocument<&'a str>,
}

/// One step of a key path.
#[derive(Debug, PartialEq, Eq)]
enum Seg<'p> {
    Key(&'p str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg<'_>> {
    let mut segs = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            segs.push(Seg::Key(name));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            if let Ok(i) = r[..end].parse() {
                segs.push(Seg::Index(i));
            }
            rest = &r[end + 1..];
        }
    }
    segs
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

enum Node<'d> {
    Table(&'d Table),
    Tables(&'d toml_edit::ArrayOfTables),
    Value(&'d Value),
}

impl<'d> Node<'d> {
    fn of(item: &'d Item) -> Option<Self> {
        match item {
            Item::Table(t) => Some(Node::Table(t)),
            Item::ArrayOfTables(a) => Some(Node::Tables(a)),
            Item::Value(v) => Some(Node::Value(v)),
            Item::None => None,
        }
    }
}

impl<'a> SourceMap<'a> {
    /// Parses `text`.
    ///
    /// # Errors
    /// The TOML syntax error.
    pub fn parse(text: &'a str) -> Result<Self, toml_edit::TomlError> {
        Ok(SourceMap {
            text,
            doc: ImDocument::parse(text)?,
        })
    }

    /// Line of the key path's deepest existing part: the key itself when
    /// present, else the nearest enclosing table or array element.
    pub fn line_for_path(&self, path: &str) -> Option<usize> {
        let mut span: Option<Range<usize>> = None;
        let mut node = Node::Table(self.doc.as_table());
        for seg in split_path(path) {
            let next = match (&node, seg) {
                (Node::Table(t), Seg::Key(k)) => t.get_key_value(k).and_then(|(key, item)| {
                    span = key.span().or_else(|| item.span()).or(span.clone());
                    Node::of(item)
                }),
                (Node::Value(Value::InlineTable(t)), Seg::Key(k)) => {
                    t.get_key_value(k).and_then(|(key, item)| {
                        span = key.span().or_else(|| item.span()).or(span.clone());
                        Node::of(item)
                    })
                }
                (Node::Tables(a), Seg::Index(i)) => a.get(i).map(|t| {
                    span = t.span().or(span.clone());
                    Node::Table(t)
                }),
                (Node::Value(Value::Array(a)), Seg::Index(i)) => a.get(i).map(|v| {
                    span = v.span().or(span.clone());
                    Node::Value(v)
                }),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        span.map(|s| line_of(self.text, s.start))
    }

    /// The key path of the innermost key or value whose span contains `offset`.
    pub fn path_at(&self, offset: usize) -> Option<String> {
        let mut best: Option<String> = None;
        walk_table(self.doc.as_table(), "", offset, &mut best);
        best
    }
}

fn contains(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_table(t: &Table, prefix: &str, offset: usize, best: &mut Option<String>) {
    for (k, item) in t.iter() {
        let path = join(prefix, k);
        if contains(t.key(k).and_then(|key| key.span()), offset) {
            *best = Some(path.clone());
        }
        walk_item(item, &path, offset, best);
    }
}

fn walk_item(item: &Item, path: &str, offset: usize, best: &mut Option<String>) {
    match item {
        Item::Table(t) => walk_table(t, path, offset, best),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                if contains(t.span(), offset) {
                    *best = Some(p.clone());
                }
                walk_table(t, &p, offset, best);
            }
        }
        Item::Value(v) => walk_value(v, path, offset, best),
        Item::None => {}
    }
}

fn walk_value(v: &Value, path: &str, offset: usize, best: &mut Option<String>) {
    if contains(v.span(), offset) {
        *best = Some(path.to_owned());
    }
    match v {
        Value::InlineTable(t) => {
            for (k, inner) in t.iter() {
                let p = join(path, k);
                if contains(t.key(k).and_then(|key| key.span()), offset) {
                    *best = Some(p.clone());
                }
                walk_value(inner, &p, offset, best);
            }
        }
        Value::Array(a) => {
            for (i, inner) in a.iter().enumerate() {
                walk_value(inner, &format!("{path}[{i}]"), offset, best);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[server]\nlisten = \"x\"\n\n[[route]]\nname = \"a\"\n\n[[route]]\nkey = { headers = [\"a\",\n  \"b\"] }\n[route.status-ttl]\n404 = \"1s\"\n";

    #[test]
    fn paths_split() {
        assert_eq!(
            split_path("route[2].key.headers[1]"),
            vec![
                Seg::Key("route"),
                Seg::Index(2),
                Seg::Key("key"),
                Seg::Key("headers"),
                Seg::Index(1)
            ]
        );
    }

    #[test]
    fn lines_for_paths() {
        let m = SourceMap::parse(TEXT).unwrap();
        let table: &[(&str, Option<usize>)] = &[
            ("server.listen", Some(2)),
            ("server.threads", Some(1)),
            ("route[0].name", Some(5)),
            ("route[0].ttl", Some(4)),
            ("route[1]", Some(7)),
            ("route[1].key.headers", Some(8)),
            ("route[1].key.headers[1]", Some(9)),
            ("route[1].status-ttl.404", Some(11)),
            // Out of range: the nearest existing part, the `route` array.
            ("route[5].ttl", Some(4)),
            ("upstream", None),
        ];
        for (path, want) in table {
            assert_eq!(m.line_for_path(path), *want, "{path}");
        }
    }

    #[test]
    fn paths_at_offsets() {
        let m = SourceMap::parse(TEXT).unwrap();
        let at = |needle: &str| m.path_at(TEXT.find(needle).unwrap());
        assert_eq!(at("listen").as_deref(), Some("server.listen"));
        assert_eq!(at("\"a\"").as_deref(), Some("route[0].name"));
        assert_eq!(at("\"b\"").as_deref(), Some("route[1].key.headers[1]"));
        assert_eq!(at("404").as_deref(), Some("route[1].status-ttl.404"));
    }
}
