//! An open-loop HTTP load generator for the ack-latency benchmark
//! (`benches/http.sh`): POSTs at a fixed rate, whatever the server's speed,
//! and measures each request's latency from the time it was scheduled.
//!
//! ```sh
//! cargo run --release -p taskhook-tools --bin openloop -- URL RATE SECONDS BODY_FILE [CONNECTIONS]
//! ```
//!
//! Request `i` is scheduled at `start + i / RATE`. A dispatcher hands it, at
//! that time, to a shared queue that `CONNECTIONS` (default 32) HTTP/1.1
//! keep-alive connections take requests from, one at a time each. The
//! client is a plain `TcpStream` writing prepared request bytes and reading
//! the response with `httparse`: little CPU per request, so that one core
//! can offer half of what the bare server handles. The latency runs from the scheduled time to the end of the
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
//!
//! ```sh
//! cargo run --release -p taskhook-tools --bin openloop -- --stalls SECONDS
//! ```
//!
//! measures the machine instead: for `SECONDS` it reads the clock in a
//! loop and counts the gaps between two readings longer than 100 µs, the
//! times the thread did not run (the kernel or, on a virtual machine, the
//! host took its core). Run on a core (`taskset -c 0`) with nothing else
//! on it, it prints
//! `stalls: seconds=S count=N stalled=P% p50_us=.. max_us=..`: no server
//! can answer within a millisecond through a stall longer than that, so
//! these figures bound the latency percentiles any server gets there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::Write;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    if args.first().map(String::as_str) == Some("--stalls") {
        let seconds: f64 = args
            .get(1)
            .and_then(|s| s.parse().ok())
            .filter(|s: &f64| *s > 0.0)
            .unwrap_or_else(|| fail("usage: openloop --stalls SECONDS"));
        stalls(Duration::from_secs_f64(seconds));
        return;
    }
    if args.len() < 4 {
        eprintln!("usage: openloop URL RATE SECONDS BODY_FILE [CONNECTIONS]");
        std::process::exit(2);
    }
    let url: http::Uri = args[0]
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

    let Some(authority) = url.authority().cloned() else {
        fail("the URL has no host:port")
    };
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    // The request head is the same for every request: the ids have one
    // length, so the body has one length.
    let request_head = format!(
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        head.len() + FIXTURE_ID.len() + tail.len()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let total = (rate * seconds) as u64;
        let (tx, rx) = mpsc::unbounded_channel::<(Instant, u64)>();
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for _ in 0..connections {
            let mut stream = TcpStream::connect(authority.as_str())
                .await
                .unwrap_or_else(|e| fail(&format!("connect to {authority}: {e}")));
            let _ = stream.set_nodelay(true);
            let (rx, head, tail) = (rx.clone(), head.clone(), tail.clone());
            let request_head = request_head.clone();
            workers.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut other = 0u64;
                let mut request = Vec::with_capacity(request_head.len() + head.len() + 31 + tail.len());
                let mut response = Vec::with_capacity(4096);
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((scheduled, n)) = next else { break };
                    request.clear();
                    request.extend_from_slice(request_head.as_bytes());
                    request.extend_from_slice(&head);
                    let _ = write!(request, "task_{n:026}");
                    request.extend_from_slice(&tail);
                    if let Err(e) = stream.write_all(&request).await {
                        fail(&format!("write: {e}"));
                    }
                    let status = read_response(&mut stream, &mut response)
                        .await
                        .unwrap_or_else(|e| fail(&format!("read: {e}")));
                    let latency = scheduled.elapsed();
                    if (200..300).contains(&status) {
                        latencies.push(latency.as_nanos() as u64);
                    } else {
                        other += 1;
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

/// Reads the clock in a loop for `duration` and prints the gaps longer
/// than 100 µs between two readings: the times this thread's core was taken
/// from it.
fn stalls(duration: Duration) {
    const GAP: Duration = Duration::from_micros(100);
    let start = Instant::now();
    let mut gaps = Vec::new();
    let mut last = start;
    while last - start < duration {
        let now = Instant::now();
        if now - last > GAP {
            gaps.push(now - last);
        }
        last = now;
    }
    gaps.sort_unstable();
    let total: Duration = gaps.iter().sum();
    let us = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e6);
    println!(
        "stalls: seconds={:.1} count={} stalled={:.2}% p50_us={:.0} max_us={:.0}",
        (last - start).as_secs_f64(),
        gaps.len(),
        total.as_secs_f64() * 100.0 / (last - start).as_secs_f64(),
        us(gaps.get(gaps.len() / 2)),
        us(gaps.last()),
    );
}

/// Reads one HTTP/1.1 response from `stream` (headers parsed by `httparse`,
/// the body by its `Content-Length`) and returns its status code. `buf` is
/// reused between responses; one request is in flight per connection, so
/// nothing follows a response.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = parsed.code.unwrap_or(0);
                let length = parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| std::io::Error::other("a response without Content-Length"))?;
                while buf.len() < head_len + length {
                    read_more(stream, buf).await?;
                }
                return Ok(status);
            }
            Ok(httparse::Status::Partial) => read_more(stream, buf).await?,
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}
