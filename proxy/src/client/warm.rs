//! `aside warm URL... [--file F] [--concurrency N]`: start a warming job
//! (`POST /cache/warm`) and follow it (`GET /cache/warm/{id}`), showing progress.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use http::Method;
use serde::Deserialize;

use super::error::CliError;
use super::http::Admin;

/// `aside warm` arguments.
#[derive(Debug, Args)]
pub struct WarmArgs {
    /// Absolute http:// URLs to fetch through the proxy.
    pub urls: Vec<String>,
    /// Also read URLs from this file, one per line (`-` for standard input).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Fetches at once (1..=64). Default: the server's (4).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Start the job and print its id without waiting for it.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Deserialize)]
struct Started {
    id: String,
    total: usize,
}

#[derive(Deserialize)]
struct Outcome {
    url: String,
    result: String,
    status: Option<u16>,
    detail: Option<String>,
}

#[derive(Deserialize)]
struct Job {
    state: String,
    total: usize,
    done: usize,
    ok: usize,
    failed: usize,
    skipped: usize,
    results: Vec<Outcome>,
}

/// How often the job is polled.
const POLL: Duration = Duration::from_millis(250);

pub async fn run(admin: &Admin, args: WarmArgs, json: bool) -> Result<(), CliError> {
    let mut urls = args.urls;
    if let Some(path) = &args.file {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        }
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
        urls.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if urls.is_empty() {
        return Err(CliError::Usage(
            "give the URLs to warm, as arguments or with --file".into(),
        ));
    }
    let mut body = serde_json::json!({ "urls": urls });
    if let Some(n) = args.concurrency {
        body["concurrency"] = n.into();
    }
    let answer = admin
        .call(Method::POST, "/cache/warm", Some(body.to_string()), &[])
        .await?;
    let started: Started = answer.parse()?;
    if args.no_wait {
        if json {
            println!("{}", answer.data()?);
        } else {
            println!(
                "warming job {} started ({} URLs)",
                started.id, started.total
            );
        }
        return Ok(());
    }
    let path = format!("/cache/warm/{}", started.id);
    let tty = std::io::stderr().is_terminal();
    let (job, raw) = loop {
        let answer = admin.get(&path).await?;
        let job: Job = answer.parse()?;
        if !json {
            let line = format!("warming: {}/{} done", job.done, job.total);
            if tty {
                eprint!("\r{line}");
            } else if job.state == "done" {
                eprintln!("{line}");
            }
        }
        if job.state == "done" {
            break (job, answer.data()?.to_owned());
        }
        tokio::time::sleep(POLL).await;
    };
    if tty && !json {
        eprintln!();
    }
    if json {
        println!("{raw}");
    } else {
        let rows: Vec<Vec<String>> = job
            .results
            .iter()
            .map(|r| {
                vec![
                    r.result.clone(),
                    r.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    r.url.clone(),
                    r.detail.clone().unwrap_or_default(),
                ]
            })
            .collect();
        super::table::print(&["RESULT", "STATUS", "URL", "DETAIL"], &rows);
        println!(
            "{} ok, {} failed, {} skipped of {}",
            job.ok, job.failed, job.skipped, job.total
        );
    }
    if job.failed > 0 {
        return Err(CliError::Failed(format!(
            "{} of {} URLs failed",
            job.failed, job.total
        )));
    }
    Ok(())
}
