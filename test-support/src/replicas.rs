//! Replicas behind a load balancer, driven by the provider simulator: the
//! harness of the Redis replica tests (in process, `tests/redis`) and of
//! the receiver processes (`taskhook-tools/tests/replicas.rs`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use taskhook_sim::{Report, Schedule, Simulator, Summary, UrlPolicy, Workload};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::redis::RedisServer;
use crate::PATIENCE;

/// A TCP load balancer: each connection goes to a backend picked at random
/// (the next one when a backend refuses). It counts the `503` answers it
/// passes back, so that a test can wait for one instead of for a fixed time.
#[derive(Debug)]
pub struct Balancer {
    addr: SocketAddr,
    unavailable: Arc<AtomicU64>,
}

impl Balancer {
    /// Starts the balancer on a free loopback port in front of `backends`.
    pub async fn start(backends: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rng = Arc::new(AtomicU64::new(0x9E37_79B9_7F4A_7C15));
        let unavailable = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&unavailable);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let backends = backends.clone();
                let rng = Arc::clone(&rng);
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let start = next_random(&rng) as usize % backends.len();
                    for offset in 0..backends.len() {
                        let backend = backends[(start + offset) % backends.len()];
                        if let Ok(upstream) = TcpStream::connect(backend).await {
                            let _ = relay(client, upstream, &seen).await;
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, unavailable }
    }

    /// The base URL the simulator pushes to.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many `503` answers went back to the provider so far.
    pub fn unavailable(&self) -> u64 {
        self.unavailable.load(Ordering::SeqCst)
    }
}

/// Copies bytes both ways, like `copy_bidirectional`, and counts the
/// HTTP/1.1 status lines `503` in the answers (the simulator speaks HTTP/1.1;
/// a status line split across two reads is found through the kept tail).
async fn relay(
    client: TcpStream,
    upstream: TcpStream,
    unavailable: &AtomicU64,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const STATUS: &[u8] = b"HTTP/1.1 503 ";
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let requests = async {
        tokio::io::copy(&mut client_read, &mut upstream_write).await?;
        upstream_write.shutdown().await
    };
    let answers = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut window: Vec<u8> = Vec::new();
        loop {
            let n = upstream_read.read(&mut buf).await?;
            if n == 0 {
                return client_write.shutdown().await;
            }
            client_write.write_all(&buf[..n]).await?;
            window.extend_from_slice(&buf[..n]);
            let found = window
                .windows(STATUS.len())
                .filter(|w| *w == STATUS)
                .count();
            unavailable.fetch_add(found as u64, Ordering::SeqCst);
            let keep = window.len().min(STATUS.len() - 1);
            window.drain(..window.len() - keep);
        }
    };
    tokio::try_join!(requests, answers).map(|_| ())
}

fn next_random(state: &AtomicU64) -> u64 {
    // xorshift64*, good enough to spread connections.
    let mut x = state.load(Ordering::Relaxed);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    state.store(x, Ordering::Relaxed);
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// The simulator of the replica runs: the provider's schedule at a time
/// factor of 0.05, 16 connections, loopback allowed.
pub fn simulator() -> Simulator {
    Simulator::new()
        .url_policy(UrlPolicy::new().allow_loopback_for_local_testing())
        // Retries after 0.5 s, 1.5 s and 3 s; a 500 ms answer timeout.
        .schedule(Schedule::provider().time_factor(0.05))
        .concurrency(16)
}

/// Runs `workload` against the balancer; calls `disrupt` once a third of
/// the tasks are done.
pub async fn run_with_disruption<F, Fut>(base: String, workload: Workload, disrupt: F) -> Report
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let simulator = simulator();
    let progress = simulator.progress();
    let third = workload.len() as u64 / 3;
    let run = tokio::spawn(async move { simulator.run(&base, &workload).await.unwrap() });
    let deadline = Instant::now() + PATIENCE;
    while progress.tasks_done() < third {
        assert!(Instant::now() < deadline, "the run stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    disrupt().await;
    run.await.unwrap()
}

/// The task ids of `workload`.
pub fn task_ids(workload: &Workload) -> HashSet<String> {
    workload
        .generate()
        .iter()
        .map(|t| t.id().to_owned())
        .collect()
}

/// Runs `workload` against the balancer while Redis is killed (SIGKILL)
/// and restarted, and checks what the provider saw: pushes during the
/// outage were refused `503`, and every task was delivered without a
/// single rejection. Answers the run's summary and the number of attempts
/// refused.
pub async fn run_through_a_redis_restart(
    server: &mut RedisServer,
    balancer: &Balancer,
    workload: Workload,
) -> (Summary, usize) {
    let report = run_with_disruption(balancer.base(), workload, || async {
        // Redis stays down until a push has been refused, not for a fixed
        // time: under a full suite run no push fell inside a 500 ms outage.
        let before = balancer.unavailable();
        let killed = Instant::now();
        server.kill();
        while balancer.unavailable() == before {
            assert!(
                killed.elapsed() < PATIENCE,
                "Redis down for {PATIENCE:?} and no push was answered 503"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        eprintln!(
            "redis restart: the first 503 came {:?} after the kill",
            killed.elapsed()
        );
        server.restart();
    })
    .await;
    let summary = report.summary();
    let refused = report
        .pushes()
        .flat_map(|push| &push.attempts)
        .filter(|attempt| attempt.result.status() == Some(http::StatusCode::SERVICE_UNAVAILABLE))
        .count();
    assert!(refused > 0, "pushes during the outage get 503");
    assert_eq!(summary.tasks_undelivered, 0, "{summary:?}");
    assert_eq!(summary.rejected, 0, "{summary:?}");
    (summary, refused)
}
