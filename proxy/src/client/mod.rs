//! The admin API client: `aside kv …`, `aside cache …`, `aside stats`, `aside reload`,
//! `aside warm`.
//!
//! Architecture: [`ClientCommand`] holds the clap definitions, flattened into the
//! binary's subcommands by `cli`; [`run`] resolves the admin address and token
//! ([`target`]), sends requests with the small HTTP/1.1 client in [`http`] on a
//! current-thread runtime, and prints tables ([`table`]) or, with `--json`, the
//! raw `data` of the answer. Every failure is a [`CliError`], whose exit code is
//! 0 ok, 1 not found or failed condition, 2 usage or connection error.

mod cache;
mod error;
mod http;
mod kv;
mod stats;
mod table;
mod target;
mod warm;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

pub use error::CliError;

/// Where the admin API is, how to authenticate, how to print.
#[derive(Debug, Clone, Args)]
pub struct ClientOpts {
    /// Admin API address, HOST:PORT. Default: the config file's [admin] listen, else 127.0.0.1:9080.
    #[arg(long, global = true, env = "ASIDE_ADMIN", value_name = "ADDR")]
    pub admin: Option<String>,
    /// Admin bearer token. Default: as the config file says, or the data directory's admin-token.
    #[arg(
        long,
        global = true,
        env = "ASIDE_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Config file to find the admin address and token in. Default: conf/aside.toml when present.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the API's JSON `data` instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client subcommands of `aside`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// KV items: get, set, del, ls, get-many.
    Kv {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        cmd: kv::KvCmd,
    },
    /// Cached responses: ls, show, purge.
    Cache {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        cmd: cache::CacheCmd,
    },
    /// A one-screen summary of traffic, hit ratio and store (from /metrics and /healthz).
    Stats {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(flatten)]
        args: stats::StatsArgs,
    },
    /// Re-read the server's config file (same as SIGHUP).
    Reload {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Fetch URLs through the proxy into the cache (a background job on the server), with progress.
    Warm {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(flatten)]
        args: warm::WarmArgs,
    },
}

/// Run a client command; `config` is the top-level `--config`, if any.
pub fn run(command: ClientCommand, config: Option<PathBuf>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aside: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aside: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(command: ClientCommand, config: Option<PathBuf>) -> Result<(), CliError> {
    let opts = match &command {
        ClientCommand::Kv { opts, .. }
        | ClientCommand::Cache { opts, .. }
        | ClientCommand::Stats { opts, .. }
        | ClientCommand::Reload { opts }
        | ClientCommand::Warm { opts, .. } => opts.clone(),
    };
    let admin = target::resolve(target::Given {
        admin: opts.admin,
        token: opts.token,
        config: opts.config.or(config),
    })?;
    let json = opts.json;
    match command {
        ClientCommand::Kv { cmd, .. } => kv::run(&admin, cmd, json).await,
        ClientCommand::Cache { cmd, .. } => cache::run(&admin, cmd, json).await,
        ClientCommand::Stats { args, .. } => stats::run(&admin, args, json).await,
        ClientCommand::Reload { .. } => reload(&admin, json).await,
        ClientCommand::Warm { args, .. } => warm::run(&admin, args, json).await,
    }
}

async fn reload(admin: &http::Admin, json: bool) -> Result<(), CliError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Reloaded {
        restart_needed: Vec<String>,
    }
    let answer = admin
        .call(::http::Method::POST, "/admin/reload", None, &[])
        .await?;
    if json {
        println!("{}", answer.data()?);
        return Ok(());
    }
    let reloaded: Reloaded = answer.parse()?;
    println!("reloaded");
    if !reloaded.restart_needed.is_empty() {
        println!(
            "restart needed to apply: {}",
            reloaded.restart_needed.join(", ")
        );
    }
    Ok(())
}
