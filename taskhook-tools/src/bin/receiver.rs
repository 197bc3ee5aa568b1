//! A callback receiver with the full taskhook stack on `POST /callback`,
//! driven from the command line: `receiver --help` lists the flags, and
//! `taskhook_tools::receiver` states the contract (stdout, the processed
//! log, signals, exit codes).
//!
//! ```sh
//! cargo run --release -p taskhook-tools --bin receiver -- --listen 127.0.0.1:8080 \
//!     --processed-log processed.jsonl --handler-delay-ms 20 --fail-rate 0.1
//! ```

use std::process::ExitCode;

use taskhook_tools::receiver::{run, Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{}", Config::usage());
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("receiver: {error}");
            return ExitCode::from(2);
        }
    };
    taskhook_tools::init_logging();
    match run(config).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("receiver: {error}");
            ExitCode::FAILURE
        }
    }
}
