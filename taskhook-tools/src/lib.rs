//! The demo and benchmark tools of taskhook (not published): the programs
//! in `src/bin/` and what they share.
//!
//! - `receiver`: the full stack on `POST /callback`, driven from the command
//!   line ([`receiver`]); the contract the load generators, the simulator
//!   and the tests run against;
//! - `demo`: the provider simulator against that receiver, in one process
//!   (README, "Demo");
//! - `bench_server` and `openloop`: the server and the open-loop load
//!   generator of the HTTP benchmark (`benches/http.sh`);
//! - `journal_throughput`, `dedup_memory`, `fast_ack_memory`: the journal
//!   and memory measures of BENCHMARKS.md ([`memory`] runs each measure in
//!   a fresh process).
//!
//! Each program prints its flags with `--help`.

pub mod cli;
pub mod memory;
pub mod receiver;
mod rng;

pub use rng::Rng;

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default
/// `warn`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}
