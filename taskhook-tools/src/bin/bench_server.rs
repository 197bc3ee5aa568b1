//! The server of the HTTP benchmark (`benches/http.sh`): a bare axum
//! handler, or the same app with the full taskhook stack.
//!
//! ```sh
//! cargo run --release -p taskhook-tools --bin bench_server -- bare 127.0.0.1:0
//! cargo run --release -p taskhook-tools --bin bench_server -- stack 127.0.0.1:0
//! cargo run --release -p taskhook-tools --bin bench_server -- body > body.json
//! ```
//!
//! - `bare`: `POST /callback` is an axum handler that reads the body and
//!   answers `200`: the limit of the machine, the baseline.
//! - `stack`: `POST /callback` goes through `PayloadLayer` → `DedupLayer`
//!   (default `CompactStore`) → `FastAckLayer` (`MemoryJournal`, capacity
//!   100,000, 4 workers) → an axum handler that takes the `TaskEvent` and
//!   answers `200`. Answers: `202` for a new task id, `200` for a duplicate.
//! - `body`: prints the 1 KB request body the benchmark sends (1,027 bytes,
//!   `tests/fixtures/completed-extra-fields.json` with more result images,
//!   the `1KB` body of `benches/parse.rs`; its task id is
//!   `task_01KE11111111111111111EXTRA`).
//!
//! The server runs on a current-thread tokio runtime: one thread serves the
//! connections and runs the layers' tasks and fast-ack's workers, so that
//! pinned to one core (`taskset -c 0`) it measures what one core does. It
//! prints `listening on ADDR` on stdout, then serves until killed; on
//! SIGINT or SIGTERM it prints fast-ack's counters on stderr and exits.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::handler::HandlerWithoutStateExt;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use taskhook::fast_ack::journal::MemoryJournal;
use taskhook::fast_ack::FastAckLayer;
use taskhook::{DedupLayer, PayloadLayer, TaskEvent};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use taskhook_test_support::bodies;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let addr: SocketAddr = match args.next().unwrap_or("127.0.0.1:0".into()).parse() {
        Ok(addr) => addr,
        Err(e) => usage(&format!("bad address: {e}")),
    };
    match mode.as_str() {
        "body" => {
            let _ = std::io::stdout().write_all(&body_1kb());
        }
        "bare" | "stack" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(serve(mode == "stack", addr));
        }
        _ => usage("the mode is bare, stack or body"),
    }
}

fn usage(error: &str) -> ! {
    eprintln!("{error}\nusage: bench_server bare|stack [ADDR] | bench_server body");
    std::process::exit(2);
}

async fn serve(stack: bool, addr: SocketAddr) {
    let (fast_ack, handle) = FastAckLayer::builder()
        .journal(MemoryJournal::new())
        .capacity(100_000)
        .concurrency(4)
        .build();
    let app = if stack {
        let service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(DedupLayer::new())
            .layer(fast_ack)
            .service(on_callback.into_service());
        Router::new().route_service("/callback", service)
    } else {
        Router::new().route("/callback", post(bare))
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => usage(&format!("cannot listen on {addr}: {e}")),
    };
    let local = listener.local_addr().expect("bound address");
    println!("listening on {local}");
    let _ = std::io::stdout().flush();
    let server = axum::serve(listener, app).with_graceful_shutdown(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    let _ = server.await;
    if stack {
        let report = handle.shutdown(Duration::from_secs(5)).await;
        eprintln!("fast-ack: {:?}; {report:?}", handle.stats());
    }
}

/// The baseline: read the body, answer `200`.
async fn bare(body: Bytes) -> StatusCode {
    std::hint::black_box(body);
    StatusCode::OK
}

/// The handler behind the stack, run by fast-ack's workers.
async fn on_callback(event: TaskEvent) -> Result<StatusCode, Infallible> {
    std::hint::black_box(event);
    Ok(StatusCode::OK)
}

/// The 1 KB body (1,027 bytes).
fn body_1kb() -> Vec<u8> {
    bodies::grown(1024)
}
