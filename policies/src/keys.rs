//! Unknown keys, found before serde sees the file.
//!
//! Every table of the file model is a `#[derive(Deserialize)]` struct with
//! `deny_unknown_fields`; serde's error for an unknown key is text ("unknown
//! field `x`, expected one of ...") that this crate would have to take apart.
//! Instead the document is walked here: each table's keys are compared with
//! the field names its struct accepts, read from the struct itself
//! (`serde_aux::serde_introspect`, in declaration order, kebab-case as
//! written in the file). `deny_unknown_fields` stays as the backstop.

use serde::Deserialize;
use toml::{Table, Value};

use crate::file::{
    FileAdmin, FileCluster, FileConfig, FileKey, FileRoute, FileServer, FileStore, FileTls,
    FileUpstream,
};

/// The first unknown key of `doc` in document order of the tables walked:
/// its path (`route[0].ttl-mode`) and the message. `None` when every key is
/// known (values are not checked here).
pub(crate) fn first_unknown(doc: &Table) -> Option<(String, String)> {
    check::<FileConfig>(doc, "")
        .or_else(|| {
            let server = table(doc, "server")?;
            check::<FileServer>(server, "server")
                .or_else(|| check::<FileTls>(table(server, "tls")?, "server.tls"))
        })
        .or_else(|| check::<FileAdmin>(table(doc, "admin")?, "admin"))
        .or_else(|| check::<FileStore>(table(doc, "store")?, "store"))
        .or_else(|| check::<FileCluster>(table(doc, "cluster")?, "cluster"))
        .or_else(|| {
            tables(doc, "upstream")
                .find_map(|(i, t)| check::<FileUpstream>(t, &format!("upstream[{i}]")))
        })
        .or_else(|| {
            tables(doc, "route").find_map(|(i, t)| {
                let path = format!("route[{i}]");
                check::<FileRoute>(t, &path)
                    .or_else(|| check::<FileKey>(table(t, "key")?, &format!("{path}.key")))
            })
        })
}

/// The keys of `t` that `T` does not take: the first one, with the message.
fn check<'de, T: Deserialize<'de>>(t: &Table, path: &str) -> Option<(String, String)> {
    let fields = serde_aux::serde_introspection::serde_introspect::<T>();
    let unknown = t.keys().find(|k| !fields.contains(&k.as_str()))?;
    let key = if path.is_empty() {
        unknown.clone()
    } else {
        format!("{path}.{unknown}")
    };
    let message = if fields.is_empty() {
        "unknown key (this table takes no keys)".to_owned()
    } else {
        format!("unknown key (expected one of: {})", fields.join(", "))
    };
    Some((key, message))
}

/// `parent.key` when it is a table (anything else is serde's to report).
fn table<'t>(parent: &'t Table, key: &str) -> Option<&'t Table> {
    parent.get(key).and_then(Value::as_table)
}

/// The tables of the array of tables `parent.key`, with their indexes.
fn tables<'t>(parent: &'t Table, key: &str) -> impl Iterator<Item = (usize, &'t Table)> {
    (parent.get(key).and_then(Value::as_array).into_iter())
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v.as_table()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(text: &str) -> Option<(String, String)> {
        first_unknown(&text.parse::<Table>().unwrap())
    }

    #[test]
    fn every_table_of_the_model_is_walked() {
        assert_eq!(unknown("[server]\nlisten = \"127.0.0.1:1\"\n"), None);
        for (text, key) in [
            ("servr = 1", "servr"),
            ("[server]\nx = 1", "server.x"),
            ("[server.tls]\nx = 1", "server.tls.x"),
            ("[admin]\nx = 1", "admin.x"),
            ("[store]\nx = 1", "store.x"),
            ("[cluster]\nx = 1", "cluster.x"),
            (
                "[[upstream]]\nname = \"a\"\n[[upstream]]\nx = 1",
                "upstream[1].x",
            ),
            ("[[route]]\nkey = { x = 1 }", "route[0].key.x"),
        ] {
            assert_eq!(
                unknown(text).map(|(k, _)| k).as_deref(),
                Some(key),
                "{text}"
            );
        }
        // Free-form maps are not the model's keys.
        assert_eq!(
            unknown("[[upstream]]\nheaders = { x-any = \"v\" }\n[[route]]\nstatus-ttl = { 404 = \"1m\" }"),
            None
        );
    }

    #[test]
    fn the_expected_keys_come_from_the_struct_in_declaration_order() {
        let (_, message) = unknown("[[route]]\nkey = { ignore = [] }").unwrap();
        assert_eq!(
            message,
            "unknown key (expected one of: ignore-query, sort-query, headers)"
        );
    }
}
