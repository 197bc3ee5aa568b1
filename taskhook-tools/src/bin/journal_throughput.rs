//! Acks per second through the real `FastAckLayer` with the redb journal:
//! one disk sync per request against group commit, in the same run, at
//! several numbers of concurrent requests. The figures in `BENCHMARKS.md`
//! ("Journal") come from it.
//!
//! ```sh
//! cargo run --release -p taskhook-tools --bin journal_throughput
//! cargo run --release -p taskhook-tools --bin journal_throughput -- \
//!     --requests 4000 --concurrency 1,16,64,256 --dir /var/tmp
//! ```
//!
//! Each run: payload layer -> fast-ack layer -> a handler that answers
//! `200` at once, driven in process by `--concurrency` tasks that each send
//! requests one after the other until `--requests` were answered. The
//! journal file is new for each run, in `--dir` (default: the system's
//! temporary directory; put it on the disk you want to measure).
//!
//! Then the file size: `--rounds` rounds of `--requests` events appended
//! and processed through the layer on one journal, the file's size printed
//! after rounds 1, 10, .. (processed entries are deleted and redb reuses
//! their pages, so it must level off).

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use taskhook::backend::redb::RedbJournal;
use taskhook::body::BufferedBody;
use taskhook::fast_ack::journal::MemoryJournal;
use taskhook::fast_ack::FastAckLayer;
use taskhook::PayloadLayer;
use tower::{service_fn, ServiceBuilder, ServiceExt};

#[derive(Clone, Copy)]
enum Mode {
    Memory,
    SyncEach,
    Group,
    GroupNoDedup,
    GroupWindow,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Memory => "memory (no disk)",
            Mode::SyncEach => "redb, one sync per request",
            Mode::Group => "redb, group commit",
            Mode::GroupNoDedup => "redb, group commit, no task-id dedup",
            Mode::GroupWindow => "redb, group commit + 1 ms window",
        }
    }
}

struct Run {
    acks_per_sec: f64,
    syncs: u64,
    p50: Duration,
    p99: Duration,
}

fn body(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"code":200,"msg":"success","data":{{"id":"task_bench_{i:08}","status":"completed","model":"video-1","output":{{"video_url":"https://cdn.example.com/v/{i}.mp4","expires_at":"2030-01-01T00:00:00Z"}}}}}}"#
    ))
}

async fn run(mode: Mode, concurrency: usize, requests: usize, dir: &Path) -> Run {
    let path = dir.join(format!(
        "taskhook-bench-{}-{concurrency}-{}.redb",
        std::process::id(),
        mode as u8
    ));
    let _ = std::fs::remove_file(&path);
    let journal = match mode {
        Mode::Memory => None,
        Mode::SyncEach => Some(RedbJournal::builder().max_batch(1).open(&path)),
        Mode::Group => Some(RedbJournal::open(&path)),
        Mode::GroupNoDedup => Some(RedbJournal::builder().dedup_by_task_id(false).open(&path)),
        Mode::GroupWindow => Some(
            RedbJournal::builder()
                .commit_window(Duration::from_millis(1))
                .open(&path),
        ),
    }
    .transpose()
    .expect("journal opens");
    let settings = FastAckLayer::builder()
        .capacity(requests.max(1024))
        .concurrency(8);
    let (layer, handle) = match &journal {
        Some(journal) => settings.journal(journal.clone()),
        None => settings.journal(MemoryJournal::new()),
    }
    .build();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(service_fn(|_req: Request<BufferedBody>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    handle.started().await;

    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (service, next) = (service.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= requests {
                        return latencies;
                    }
                    let req = Request::post("/callback")
                        .header("content-type", "application/json")
                        .body(Full::new(body(i)))
                        .expect("request");
                    let sent = Instant::now();
                    let response = service.clone().oneshot(req).await.expect("infallible");
                    assert_eq!(response.status(), StatusCode::ACCEPTED);
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests);
    for task in tasks {
        latencies.extend(task.await.expect("sender"));
    }
    let elapsed = started.elapsed();
    let syncs = journal
        .as_ref()
        .map_or(0, |journal| journal.stats().durable_commits);
    while handle.stats().processed < requests as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.shutdown(Duration::from_secs(10)).await;
    drop(service);
    drop(journal);
    let _ = std::fs::remove_file(&path);
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Run {
        acks_per_sec: requests as f64 / elapsed.as_secs_f64(),
        syncs,
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// Sends `requests` events with `concurrency` senders through `service`
/// and waits until `handle` processed them all.
async fn round<S, B>(service: &S, handle: &taskhook::FastAckHandle, requests: usize, offset: usize)
where
    B: Send + 'static,
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let before = handle.stats().processed;
    let tasks: Vec<_> = (0..64)
        .map(|k| {
            let service = service.clone();
            tokio::spawn(async move {
                for i in (k..requests).step_by(64) {
                    let req = Request::post("/callback")
                        .header("content-type", "application/json")
                        .body(Full::new(body(offset + i)))
                        .expect("request");
                    let response = service.clone().oneshot(req).await.expect("infallible");
                    assert_eq!(response.status(), StatusCode::ACCEPTED);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sender");
    }
    while handle.stats().processed < before + requests as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn file_size(requests: usize, rounds: usize, dir: &Path) {
    let path = dir.join(format!("taskhook-bench-size-{}.redb", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let journal = RedbJournal::open(&path).expect("journal opens");
    let (layer, handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .capacity(requests.max(1024))
        .concurrency(8)
        .build();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(service_fn(|_req: Request<BufferedBody>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    handle.started().await;
    println!();
    println!("| events through the journal | file size |");
    println!("|---:|---:|");
    for r in 1..=rounds {
        round(&service, &handle, requests, r * requests).await;
        journal.sync().await.expect("sync");
        if r == 1 || r % 10 == 0 || r == rounds {
            let size = journal.file_size().expect("file size");
            println!(
                "| {} | {:.2} MiB |",
                r * requests,
                size as f64 / (1 << 20) as f64
            );
        }
    }
    handle.shutdown(Duration::from_secs(10)).await;
    drop(service);
    drop(journal);
    let _ = std::fs::remove_file(&path);
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests: usize = arg(&args, "--requests")
        .map(|v| v.parse().expect("--requests N"))
        .unwrap_or(3000);
    let concurrency: Vec<usize> = arg(&args, "--concurrency")
        .unwrap_or_else(|| "1,16,64,256".into())
        .split(',')
        .map(|v| v.parse().expect("--concurrency N,N,.."))
        .collect();
    let dir = arg(&args, "--dir")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    println!(
        "{requests} requests per run, journal files in {}",
        dir.display()
    );
    println!();
    println!("| concurrent requests | journal | acks/s | disk syncs | acks per sync | ack p50 | ack p99 |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let rounds: usize = arg(&args, "--rounds")
        .map(|v| v.parse().expect("--rounds N"))
        .unwrap_or(30);
    for &c in &concurrency {
        for mode in [
            Mode::Memory,
            Mode::SyncEach,
            Mode::Group,
            Mode::GroupNoDedup,
            Mode::GroupWindow,
        ] {
            let r = run(mode, c, requests, &dir).await;
            let per_sync = if r.syncs == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}", requests as f64 / r.syncs as f64)
            };
            println!(
                "| {c} | {} | {:.0} | {} | {per_sync} | {:.2} ms | {:.2} ms |",
                mode.name(),
                r.acks_per_sec,
                r.syncs,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
            );
        }
    }
    if rounds > 0 {
        file_size(requests, rounds, &dir).await;
    }
}
