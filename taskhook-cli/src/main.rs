//! `taskhook`: the callback stack as a binary.
//!
//! - `taskhook relay --upstream URL`: receives the provider's callbacks,
//!   answers in milliseconds once each is durably journaled, and forwards
//!   each task once to the app at `URL`, retrying while the app is down
//!   (see `relay.rs`; the admin listener in `admin.rs`);
//! - `taskhook send --url URL`: pushes realistic callbacks, with duplicates
//!   and the provider's retries, to a receiver, and prints what the
//!   provider saw.
//!
//! `taskhook help relay` lists the flags; each is also an environment
//! variable `TASKHOOK_<FLAG>` and a key of the `--config` TOML file.

mod admin;
mod config;
mod relay;
mod send;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{LogFormat, RelayArgs};
use crate::send::SendArgs;

/// Receive webhook callbacks from asynchronous task APIs: ack fast, lose
/// nothing, run each task once.
#[derive(Debug, Parser)]
#[command(name = "taskhook", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive callbacks and forward each task, once, to your app.
    Relay(Box<RelayArgs>),
    /// Push realistic callbacks to a receiver and show what the provider saw.
    Send(SendArgs),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("taskhook: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Relay(args) => {
            let sub = matches
                .subcommand_matches("relay")
                .expect("clap parsed the relay subcommand");
            let relay = match args.resolve(sub) {
                Ok(relay) => relay,
                Err(error) => {
                    eprintln!("taskhook relay: {error}");
                    return ExitCode::from(2);
                }
            };
            init_logging(relay.log_format);
            match runtime.block_on(relay::run(relay)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "relay stopped");
                    eprintln!("taskhook relay: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Send(args) => {
            init_logging(LogFormat::Text);
            match runtime.block_on(send::run(args)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => {
                    eprintln!("taskhook send: FAILED: a task never got a 2xx");
                    ExitCode::FAILURE
                }
                Err(error) => {
                    eprintln!("taskhook send: {error}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Logs on stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
