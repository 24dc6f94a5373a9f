//! Command line: `aside [--config FILE | --to URL] [overrides]`,
//! `aside --check-config FILE`, `aside demo-origin`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::settings::{self, Overrides, Source};

/// Exit code for a bad config file or bad flags (EX_USAGE / EX_DATAERR family).
pub const EXIT_CONFIG: u8 = 64;

/// Aside: an edge cache proxy for slow external HTTP APIs.
#[derive(Debug, Parser)]
#[command(name = "aside", version, about, long_about = None)]
pub struct Args {
    /// Config file (TOML). Default: conf/aside.toml when neither --config nor --to is given.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with = "to")]
    pub config: Option<PathBuf>,

    /// Validate a config file and exit (0 = valid, 64 = invalid, with file, line and key).
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<PathBuf>,

    /// Quick start without a config file: proxy everything to this origin URL.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,

    /// With --to: cache every cacheable response for this long (override mode), e.g. "5m".
    #[arg(long, value_name = "DURATION", requires = "to", value_parser = aside_policies::parse_duration)]
    pub ttl: Option<Duration>,

    /// Proxy listen address (overrides the config). Default 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Admin API listen address (overrides the config). Default 127.0.0.1:9080.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,

    /// Data directory for the store and the generated admin token (overrides the config). Default ./data.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Worker threads for the proxy (overrides the config).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// Once every listener is bound, write the bound addresses to this file as
    /// JSON: `{"proxy": [..], "tls": [..], "admin": ".."}`. With port 0 in the
    /// config (or `--listen 127.0.0.1:0`), this is how a supervisor or a test
    /// learns the ports the kernel picked.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a small, deliberately slow demo origin (for the quickstart and tests).
    DemoOrigin {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
    },
    /// Admin API clients: `kv`, `cache`, `stats`, `reload`.
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Client(command)) = args.command {
        return crate::client::run(command, args.config);
    }
    let _log_guard = crate::server::init_tracing();

    if let Some(path) = &args.check_config {
        return match settings::load(&Source::File(path.clone()), &Overrides::default()) {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }

    if let Some(Command::DemoOrigin { listen }) = args.command {
        return match crate::demo_origin::run_blocking(listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo origin: {e:#}");
                ExitCode::FAILURE
            }
        };
    }

    let source = match (&args.to, &args.config) {
        (Some(url), _) => Source::Quick {
            url: url.clone(),
            ttl: args.ttl,
        },
        (None, Some(path)) => Source::File(path.clone()),
        (None, None) => Source::File(PathBuf::from("conf/aside.toml")),
    };
    let overrides = Overrides {
        listen: args.listen,
        admin_listen: args.admin_listen,
        data: args.data,
        threads: args.threads.map(usize::from),
    };
    let loaded = match settings::load(&source, &overrides) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match crate::server::run(source, overrides, loaded, args.ready_file.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aside: {e:#}");
            ExitCode::FAILURE
        }
    }
}
