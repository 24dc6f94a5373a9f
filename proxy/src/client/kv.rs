//! `aside kv get|set|del|ls|get-many`. Values travel as JSON text, byte for byte:
//! what `set` is given is what `get` prints.

use clap::Subcommand;
use http::Method;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::CliError;
use super::http::Admin;
use super::table;

/// KV subcommands.
#[derive(Debug, Subcommand)]
pub enum KvCmd {
    /// Print an item's value (exit 1 when absent).
    Get {
        /// Key, parts separated by '/'.
        key: String,
    },
    /// Set an item to a JSON value (a string needs quotes: '"text"').
    Set {
        key: String,
        /// JSON text, stored exactly as given.
        value: String,
        /// Expire after this long: seconds or a duration such as "10m".
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Option<u64>,
        /// Only if the item still has this version (compare-and-swap; exit 1 otherwise).
        #[arg(long, value_name = "VERSION", conflicts_with = "if_absent")]
        if_version: Option<String>,
        /// Only if the item does not exist (exit 1 otherwise).
        #[arg(long)]
        if_absent: bool,
    },
    /// Delete an item (succeeds whether or not it existed).
    Del { key: String },
    /// List items in key order.
    Ls {
        /// Only keys under this prefix (whole parts).
        #[arg(long)]
        prefix: Option<String>,
        /// Keys from this one (inclusive).
        #[arg(long)]
        start: Option<String>,
        /// Keys before this one (exclusive).
        #[arg(long)]
        end: Option<String>,
        /// Page size, 1 to 1000 (default 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Continue from a previous page's cursor.
        #[arg(long)]
        cursor: Option<String>,
        /// Descending key order.
        #[arg(long)]
        reverse: bool,
        /// Follow the cursor through every page.
        #[arg(long)]
        all: bool,
    },
    /// Print several items at once (absent ones are shown as such).
    GetMany {
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

/// An item with its value kept as text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    key: String,
    value: Box<RawValue>,
    version: String,
    expires_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Written {
    version: String,
    expires_at: Option<String>,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<Box<RawValue>>,
    total: u64,
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct Many {
    items: Vec<Option<Item>>,
}

fn parse_ttl(s: &str) -> Result<u64, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs);
    }
    aside_policies::parse_duration(s)
        .map(|d| d.as_secs())
        .map_err(|_| format!("{s:?} is neither seconds nor a duration such as \"10m\""))
}

fn item_path(key: &str) -> String {
    let parts: Vec<String> = key.split('/').map(table::segment).collect();
    format!("/kv/items/{}", parts.join("/"))
}

/// Run one KV subcommand.
///
/// # Errors
/// See [`CliError`].
pub async fn run(admin: &Admin, cmd: KvCmd, json: bool) -> Result<(), CliError> {
    match cmd {
        KvCmd::Get { key } => {
            let answer = admin.get(&item_path(&key)).await?;
            if json {
                println!("{}", answer.data()?);
            } else {
                let item: Item = answer.parse()?;
                println!("{}", item.value.get());
            }
        }
        KvCmd::Set {
            key,
            value,
            ttl,
            if_version,
            if_absent,
        } => {
            serde_json::from_str::<&RawValue>(&value).map_err(|e| {
                CliError::Usage(format!(
                    "VALUE must be JSON text (a string needs quotes, e.g. '\"text\"'): {e}"
                ))
            })?;
            let ttl = ttl.map_or_else(String::new, |t| format!(",\"ttlSeconds\":{t}"));
            let body = format!("{{\"value\":{value}{ttl}}}");
            let mut headers = Vec::new();
            if let Some(version) = if_version {
                headers.push(("if-match", format!("\"{version}\"")));
            }
            if if_absent {
                headers.push(("if-none-match", "*".to_owned()));
            }
            let answer = admin
                .call(Method::PUT, &item_path(&key), Some(body), &headers)
                .await?;
            if json {
                println!("{}", answer.data()?);
            } else {
                let written: Written = answer.parse()?;
                let expires = written.expires_at.as_deref().unwrap_or("never");
                println!("set {key}  version {}  expires {expires}", written.version);
            }
        }
        KvCmd::Del { key } => {
            admin
                .call(Method::DELETE, &item_path(&key), None, &[])
                .await?;
            if json {
                println!("null");
            } else {
                println!("deleted {key}");
            }
        }
        KvCmd::Ls {
            prefix,
            start,
            end,
            limit,
            cursor,
            reverse,
            all,
        } => {
            let mut cursor = cursor;
            let mut items = Vec::new();
            let (total, next) = loop {
                let query = table::query(&[
                    ("prefix", prefix.clone()),
                    ("start", start.clone()),
                    ("end", end.clone()),
                    ("limit", limit.map(|l| l.to_string())),
                    ("cursor", cursor.clone()),
                    ("reverse", reverse.then(|| "true".to_owned())),
                ]);
                let answer = admin.get(&format!("/kv/items{query}")).await?;
                if json && !all {
                    println!("{}", answer.data()?);
                    return Ok(());
                }
                let page: Page = answer.parse()?;
                items.extend(page.items);
                if !all || page.cursor.is_none() {
                    break (page.total, page.cursor);
                }
                cursor = page.cursor;
            };
            if json {
                let texts: Vec<&str> = items.iter().map(|i| i.get()).collect();
                println!(
                    "{{\"items\":[{}],\"total\":{total},\"cursor\":null}}",
                    texts.join(",")
                );
                return Ok(());
            }
            let mut rows = Vec::new();
            for raw in &items {
                let item: Item = serde_json::from_str(raw.get()).map_err(|e| {
                    CliError::Failed(format!("unexpected answer from the admin API: {e}"))
                })?;
                rows.push(row(&item));
            }
            table::print(&["KEY", "VERSION", "EXPIRES", "VALUE"], &rows);
            println!("({} of {total} items)", items.len());
            if let Some(next) = next {
                println!("next page: --cursor {next}");
            }
        }
        KvCmd::GetMany { keys } => {
            let body = serde_json::json!({ "keys": keys }).to_string();
            let answer = admin
                .call(Method::POST, "/kv/get-many", Some(body), &[])
                .await?;
            if json {
                println!("{}", answer.data()?);
                return Ok(());
            }
            let many: Many = answer.parse()?;
            let rows: Vec<Vec<String>> = keys
                .iter()
                .zip(many.items)
                .map(|(key, item)| match item {
                    Some(item) => row(&item),
                    None => vec![key.clone(), "-".into(), "-".into(), "(absent)".into()],
                })
                .collect();
            table::print(&["KEY", "VERSION", "EXPIRES", "VALUE"], &rows);
        }
    }
    Ok(())
}

fn row(item: &Item) -> Vec<String> {
    vec![
        item.key.clone(),
        item.version.clone(),
        item.expires_at.clone().unwrap_or_else(|| "never".into()),
        table::truncate(item.value.get(), 60),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ttls() {
        assert_eq!(item_path("notes/a b"), "/kv/items/notes/a%20b");
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("10m").unwrap(), 600);
        assert!(parse_ttl("soon").is_err());
    }
}
