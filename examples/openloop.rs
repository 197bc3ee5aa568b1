//! An open-loop HTTP load generator for the ack-latency benchmark
//! (`benches/http.sh`): POSTs at a fixed rate, whatever the server's speed,
//! and measures each request's latency from the time it was scheduled.
//!
//! ```sh
//! cargo run --release --example openloop -- URL RATE SECONDS BODY_FILE [CONNECTIONS]
//! ```
//!
//! Request `i` is scheduled at `start + i / RATE`. A dispatcher hands it, at
//! that time, to a shared queue that `CONNECTIONS` (default 32) HTTP/1.1
//! keep-alive connections (hyper's client) take requests from, one at a
//! time each. The latency runs from the scheduled time to the end of the
//! response body, so time spent waiting for a free connection counts (no
//! coordinated omission: a slow server cannot slow the schedule down).
//! Each body is `BODY_FILE` with its task id (`task_01KE11111111111111111EXTRA`)
//! replaced by a unique 31-byte id. It prints one line:
//! `sent=N ok=N other=N rate=R p50_us=.. p99_us=.. p999_us=.. max_us=..`
//! (`ok`: 2xx answers; `other`: other answers and errors).
//!
//! Runs on one thread (a current-thread tokio runtime); the dispatcher
//! sleeps until a millisecond before a request is due and yields in a loop
//! after that, so sends are on time to within a few microseconds when the
//! generator has a core of its own (`taskset -c 1`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};

const FIXTURE_ID: &str = "task_01KE11111111111111111EXTRA";

/// Prints `error` and exits with status 2.
fn fail(error: &str) -> ! {
    eprintln!("openloop: {error}");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: openloop URL RATE SECONDS BODY_FILE [CONNECTIONS]");
        std::process::exit(2);
    }
    let url: hyper::Uri = args[0]
        .parse()
        .unwrap_or_else(|e| fail(&format!("URL: {e}")));
    let rate: f64 = args[1]
        .parse()
        .unwrap_or_else(|e| fail(&format!("RATE: {e}")));
    let seconds: f64 = args[2]
        .parse()
        .unwrap_or_else(|e| fail(&format!("SECONDS: {e}")));
    let body = std::fs::read(&args[3]).unwrap_or_else(|e| fail(&format!("{}: {e}", args[3])));
    let connections: usize = args.get(4).map_or(32, |c| {
        c.parse()
            .unwrap_or_else(|e| fail(&format!("CONNECTIONS: {e}")))
    });
    if !(rate > 0.0 && seconds > 0.0 && connections > 0) {
        fail("RATE, SECONDS and CONNECTIONS must be positive");
    }
    let Some(at) = body
        .windows(FIXTURE_ID.len())
        .position(|w| w == FIXTURE_ID.as_bytes())
    else {
        fail(&format!("the body does not hold the task id {FIXTURE_ID}"))
    };
    let head = Bytes::copy_from_slice(&body[..at]);
    let tail = Bytes::copy_from_slice(&body[at + FIXTURE_ID.len()..]);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let total = (rate * seconds) as u64;
        let (tx, rx) = mpsc::unbounded_channel::<(Instant, u64)>();
        let rx = Arc::new(Mutex::new(rx));
        let Some(authority) = url.authority().cloned() else {
            fail("the URL has no host:port")
        };
        let mut workers = Vec::new();
        for _ in 0..connections {
            let stream = TcpStream::connect(authority.as_str())
                .await
                .unwrap_or_else(|e| fail(&format!("connect to {authority}: {e}")));
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .unwrap_or_else(|e| fail(&format!("handshake: {e}")));
            tokio::spawn(conn);
            let (rx, url, head, tail) = (rx.clone(), url.clone(), head.clone(), tail.clone());
            let host = authority.to_string();
            workers.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut other = 0u64;
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((scheduled, n)) = next else { break };
                    let mut body = Vec::with_capacity(head.len() + 31 + tail.len());
                    body.extend_from_slice(&head);
                    body.extend_from_slice(format!("task_{n:026}").as_bytes());
                    body.extend_from_slice(&tail);
                    let req = Request::post(url.clone())
                        .header("host", &host)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .expect("request");
                    let ok = match sender.send_request(req).await {
                        Ok(response) => {
                            let status = response.status();
                            let read = response.into_body().collect().await.is_ok();
                            read && status.is_success()
                        }
                        Err(_) => false,
                    };
                    let latency = scheduled.elapsed();
                    if ok {
                        latencies.push(latency.as_nanos() as u64);
                    } else {
                        other += 1;
                    }
                    if sender.ready().await.is_err() {
                        break;
                    }
                }
                (latencies, other)
            }));
        }

        let start = Instant::now() + Duration::from_millis(10);
        let interval = 1.0 / rate;
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 * interval);
            loop {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                if due - now > Duration::from_millis(1) {
                    tokio::time::sleep_until((due - Duration::from_millis(1)).into()).await;
                } else {
                    tokio::task::yield_now().await;
                }
            }
            let _ = tx.send((due, i));
        }
        drop(tx);
        let mut latencies = Vec::new();
        let mut other = 0;
        for worker in workers {
            let (l, o) = worker.await.expect("worker");
            latencies.extend(l);
            other += o;
        }
        let elapsed = start.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let pct = |p: f64| -> f64 {
            if latencies.is_empty() {
                return f64::NAN;
            }
            let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies[i] as f64 / 1000.0
        };
        println!(
            "sent={total} ok={} other={other} rate={:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
            latencies.len(),
            total as f64 / elapsed,
            pct(0.50),
            pct(0.99),
            pct(0.999),
            pct(1.0),
        );
    });
}
