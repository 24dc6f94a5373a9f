//! `aside cache ls|show|purge`.

use std::io::{BufRead, IsTerminal, Write};

use clap::Subcommand;
use http::Method;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::CliError;
use super::http::Admin;
use super::table;

/// Cache subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCmd {
    /// List cached responses (filters combine with AND).
    Ls {
        /// Normalized URL prefix, e.g. http://api.example.com/v1/
        #[arg(long)]
        prefix: Option<String>,
        /// Host (host[:port]).
        #[arg(long)]
        host: Option<String>,
        /// Tag (from Cache-Tag / Surrogate-Key or the route's policy).
        #[arg(long)]
        tag: Option<String>,
        /// Page size, 1 to 1000 (default 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Continue from a previous page's cursor.
        #[arg(long)]
        cursor: Option<String>,
        /// Follow the cursor through every page.
        #[arg(long)]
        all: bool,
    },
    /// Show what is stored for a URL: every Vary variant with its headers (exit 1 when nothing is).
    Show {
        /// Absolute URL as clients request it through the proxy.
        url: String,
        /// Print the body too.
        #[arg(long)]
        body: bool,
    },
    /// Purge cached responses matching ANY of the given URLs and selectors.
    Purge {
        /// Absolute URLs (all Vary variants of each).
        urls: Vec<String>,
        /// Normalized URL prefix (repeatable).
        #[arg(long = "prefix", value_name = "PREFIX")]
        prefixes: Vec<String>,
        /// Host (repeatable).
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
        /// Tag (repeatable).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Everything: shows the count first and asks for confirmation (see --yes).
        #[arg(long)]
        all: bool,
        /// Mark stale instead of removing (still usable for stale-while-revalidate / -if-error).
        #[arg(long)]
        soft: bool,
        /// Only count what would be purged.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask before purging everything (required with --all when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    url: String,
    status: u16,
    size: u64,
    tier: String,
    stored_at: Option<String>,
    fresh_until: Option<String>,
    stale_until: Option<String>,
    tags: Vec<String>,
    soft_purged: bool,
}

#[derive(Deserialize)]
struct Page {
    entries: Vec<Box<RawValue>>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Variant {
    #[serde(flatten)]
    entry: Entry,
    headers: Vec<Header>,
    body: Option<String>,
    body_encoding: Option<String>,
}

#[derive(Deserialize)]
struct UrlEntries {
    url: String,
    entries: Vec<Variant>,
}

#[derive(Deserialize)]
struct Purged {
    matched: u64,
    purged: u64,
}

/// Run one cache subcommand.
///
/// # Errors
/// See [`CliError`].
pub async fn run(admin: &Admin, cmd: CacheCmd, json: bool) -> Result<(), CliError> {
    match cmd {
        CacheCmd::Ls {
            prefix,
            host,
            tag,
            limit,
            cursor,
            all,
        } => list(admin, [prefix, host, tag], limit, cursor, all, json).await,
        CacheCmd::Show { url, body } => show(admin, &url, body, json).await,
        CacheCmd::Purge {
            urls,
            prefixes,
            hosts,
            tags,
            all,
            soft,
            dry_run,
            yes,
        } => {
            let selected = !(urls.is_empty() && prefixes.is_empty() && hosts.is_empty());
            if !all && !selected && tags.is_empty() {
                return Err(CliError::Usage(
                    "purge what? give URLs, --prefix, --host, --tag or --all".into(),
                ));
            }
            let body = |dry_run: bool| {
                serde_json::json!({
                    "urls": urls, "prefixes": prefixes, "hosts": hosts, "tags": tags,
                    "everything": all, "soft": soft, "dryRun": dry_run,
                })
                .to_string()
            };
            if all && !dry_run {
                let counted = purge(admin, body(true)).await?;
                let counted: Purged = counted.parse()?;
                eprintln!("{} cached entries match", counted.matched);
                if !yes {
                    confirm(counted.matched, soft)?;
                }
            }
            let answer = purge(admin, body(dry_run)).await?;
            if json {
                println!("{}", answer.data()?);
                return Ok(());
            }
            let result: Purged = answer.parse()?;
            if dry_run {
                println!("would purge {} entries", result.matched);
            } else if soft {
                println!(
                    "marked {} entries stale ({} matched)",
                    result.purged, result.matched
                );
            } else {
                println!(
                    "purged {} entries ({} matched)",
                    result.purged, result.matched
                );
            }
            Ok(())
        }
    }
}

async fn purge(admin: &Admin, body: String) -> Result<super::http::Answer, CliError> {
    admin
        .call(Method::POST, "/cache/purge", Some(body), &[])
        .await
}

/// Ask on the terminal before purging everything.
fn confirm(count: u64, soft: bool) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "purge --all asks for confirmation; pass --yes when not on a terminal".into(),
        ));
    }
    let verb = if soft { "Mark stale" } else { "Purge" };
    eprint!("{verb} all {count} cached entries? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("cannot read the answer: {e}")))?;
    if matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(CliError::Failed("not purged".into()))
    }
}

async fn list(
    admin: &Admin,
    [prefix, host, tag]: [Option<String>; 3],
    limit: Option<usize>,
    mut cursor: Option<String>,
    all: bool,
    json: bool,
) -> Result<(), CliError> {
    let mut entries = Vec::new();
    let next = loop {
        let query = table::query(&[
            ("prefix", prefix.clone()),
            ("host", host.clone()),
            ("tag", tag.clone()),
            ("limit", limit.map(|l| l.to_string())),
            ("cursor", cursor.clone()),
        ]);
        let answer = admin.get(&format!("/cache/entries{query}")).await?;
        if json && !all {
            println!("{}", answer.data()?);
            return Ok(());
        }
        let page: Page = answer.parse()?;
        entries.extend(page.entries);
        if !all || page.cursor.is_none() {
            break page.cursor;
        }
        cursor = page.cursor;
    };
    if json {
        let texts: Vec<&str> = entries.iter().map(|e| e.get()).collect();
        println!("{{\"entries\":[{}],\"cursor\":null}}", texts.join(","));
        return Ok(());
    }
    let now = time::OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    for raw in &entries {
        let e: Entry = serde_json::from_str(raw.get())
            .map_err(|e| CliError::Failed(format!("unexpected answer from the admin API: {e}")))?;
        let fresh = if e.soft_purged {
            "stale (purged)".to_owned()
        } else {
            table::until(e.fresh_until.as_deref(), now)
        };
        rows.push(vec![
            e.status.to_string(),
            table::bytes(e.size),
            e.tier,
            fresh,
            table::until(e.stale_until.as_deref(), now),
            e.tags.join(","),
            e.url,
        ]);
    }
    table::print(
        &[
            "STATUS",
            "SIZE",
            "TIER",
            "FRESH FOR",
            "STALE FOR",
            "TAGS",
            "URL",
        ],
        &rows,
    );
    println!("({} entries)", entries.len());
    if let Some(next) = next {
        println!("next page: --cursor {next}");
    }
    Ok(())
}

async fn show(admin: &Admin, url: &str, body: bool, json: bool) -> Result<(), CliError> {
    let query = table::query(&[
        ("url", Some(url.to_owned())),
        ("body", body.then(|| "true".to_owned())),
    ]);
    let answer = admin.get(&format!("/cache/entry{query}")).await?;
    if json {
        println!("{}", answer.data()?);
        return Ok(());
    }
    let found: UrlEntries = answer.parse()?;
    let now = time::OffsetDateTime::now_utc();
    println!("{}", found.url);
    for (i, v) in found.entries.iter().enumerate() {
        let e = &v.entry;
        println!();
        println!(
            "variant {}: status {}  size {}  tier {}{}",
            i + 1,
            e.status,
            table::bytes(e.size),
            e.tier,
            if e.soft_purged { "  (soft-purged)" } else { "" }
        );
        println!(
            "  stored {}  fresh for {}  stale for {}",
            e.stored_at.as_deref().unwrap_or("-"),
            table::until(e.fresh_until.as_deref(), now),
            table::until(e.stale_until.as_deref(), now)
        );
        if !e.tags.is_empty() {
            println!("  tags {}", e.tags.join(", "));
        }
        for h in &v.headers {
            println!("  {}: {}", h.name, h.value);
        }
        if let Some(text) = &v.body {
            let encoding = v.body_encoding.as_deref().unwrap_or("utf8");
            println!("  body ({encoding}):");
            println!("{text}");
        }
    }
    Ok(())
}
