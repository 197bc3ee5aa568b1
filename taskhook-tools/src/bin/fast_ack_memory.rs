//! Measures the memory an event takes while fast-ack holds it (queued,
//! running or waiting for a retry), against an axum handler that keeps the
//! bodies it receives.
//!
//! ```sh
//! cargo run --release -p taskhook-tools --bin fast_ack_memory            # 50,000 events
//! cargo run --release -p taskhook-tools --bin fast_ack_memory -- 10000   # another count
//! ```
//!
//! Linux only (it reads `VmRSS` from `/proc/self/status`). Each mode runs in
//! a fresh child process (this program started again with a mode): it
//! serves an axum app on loopback, sends it N callbacks with the 1 KB body
//! of the benchmarks (1,027 bytes, a unique task id each) over 32
//! keep-alive connections from the same process, and reports (RSS after
//! the N answers - RSS before the first) / N, read while every event is
//! still held:
//!
//! - `fast_ack`: `PayloadLayer` + `DedupLayer` + `FastAckLayer`
//!   (`MemoryJournal`, capacity N, one worker) over a handler that never
//!   finishes, so every event stays held: what a stuck handler costs per
//!   event, up to the layer's capacity;
//! - `hold_bytes`: a bare axum handler that keeps each body as the `Bytes`
//!   axum gives it (a slice of hyper's read buffer) and answers `200`;
//! - `hold_copies`: the same handler keeping a copy of each body: what the
//!   bodies alone take.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::handler::HandlerWithoutStateExt;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use taskhook::fast_ack::journal::MemoryJournal;
use taskhook::fast_ack::FastAckLayer;
use taskhook::{DedupLayer, PayloadLayer, TaskEvent};
use tower::ServiceBuilder;

use taskhook_test_support::bodies;
use taskhook_tools::memory::{self as modes, rss_bytes};

const MODES: [&str; 3] = ["fast_ack", "hold_bytes", "hold_copies"];

/// The task id in the benchmark body, replaced by a unique one per event.
const FIXTURE_ID: &str = "task_01KE11111111111111111EXTRA";

const CONNECTIONS: u64 = 32;

fn main() {
    modes::run(
        &MODES,
        50_000,
        |n| format!("{n} events of 1,027 bytes held, bytes = RSS growth / events"),
        |mode, n| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(measure(mode, n));
        },
    );
}

/// The app of `mode`, and what it holds (for `hold_*`).
fn app(mode: &str, n: u64) -> (Router, Arc<Mutex<Vec<Bytes>>>) {
    let held = Arc::new(Mutex::new(Vec::new()));
    let app = match mode {
        "fast_ack" => {
            async fn stuck(_event: TaskEvent) -> StatusCode {
                std::future::pending::<StatusCode>().await
            }
            let fast_ack = FastAckLayer::builder()
                .journal(MemoryJournal::new())
                .capacity(usize::try_from(n).unwrap_or(usize::MAX))
                .concurrency(1)
                .build()
                .0;
            let stack = ServiceBuilder::new()
                .layer(PayloadLayer::new())
                .layer(DedupLayer::new())
                .layer(fast_ack)
                .service(stuck.into_service());
            Router::new().route_service("/callback", stack)
        }
        _ => {
            let copy = mode == "hold_copies";
            let keep = Arc::clone(&held);
            Router::new().route(
                "/callback",
                post(move |body: Bytes| async move {
                    let body = if copy {
                        Bytes::copy_from_slice(&body)
                    } else {
                        body
                    };
                    keep.lock().unwrap().push(body);
                    StatusCode::OK
                }),
            )
        }
    };
    (app, held)
}

async fn measure(mode: &str, n: u64) {
    let (app, held) = app(mode, n);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/callback", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let body = bodies::grown(1024);
    let at = body
        .windows(FIXTURE_ID.len())
        .position(|w| w == FIXTURE_ID.as_bytes())
        .expect("the body holds the fixture's id");
    let (head, tail) = (
        Bytes::copy_from_slice(&body[..at]),
        Bytes::copy_from_slice(&body[at + FIXTURE_ID.len()..]),
    );
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    let before = rss_bytes();
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let (client, url, head, tail) = (client.clone(), url.clone(), head.clone(), tail.clone());
        senders.spawn(async move {
            let mut accepted = 0u64;
            for i in (c..n).step_by(CONNECTIONS as usize) {
                let mut body = Vec::with_capacity(head.len() + FIXTURE_ID.len() + tail.len());
                body.extend_from_slice(&head);
                body.extend_from_slice(format!("task_{i:026}").as_bytes());
                body.extend_from_slice(&tail);
                let request = http::Request::post(url.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                let response = client.request(request).await.expect("an answer");
                let ok = response.status().is_success();
                let _ = response.into_body().collect().await;
                accepted += u64::from(ok);
            }
            accepted
        });
    }
    let mut accepted = 0;
    while let Some(sent) = senders.join_next().await {
        accepted += sent.expect("sender");
    }
    assert_eq!(accepted, n, "every event must be accepted");
    let grown = rss_bytes().saturating_sub(before);
    let kept = held.lock().unwrap().len();
    println!(
        "{mode:>11}: {n} events held, {:.1} MiB, {} bytes/event, sent in {:.2?}{}",
        grown as f64 / (1024.0 * 1024.0),
        grown / n.max(1),
        started.elapsed(),
        if mode == "fast_ack" {
            String::new()
        } else {
            format!(" ({kept} bodies kept)")
        },
    );
}
