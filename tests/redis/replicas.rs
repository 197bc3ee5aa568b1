//! Several replicas on one Redis, driven by the provider simulator through a
//! load balancer that spreads connections at random: one replica dies
//! mid-run and is not restarted; Redis itself dies and comes back mid-run.
//!
//! The replicas run in this process, each with its own connection, journal,
//! layer and HTTP server; "killing" one aborts its server and every open
//! connection at once and stops its workers without draining (running
//! attempts are aborted, its entries stay pending in Redis under its
//! consumer name and nothing sends their heartbeat again).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use taskhook::backend::redis::{RedisConnection, RedisJournal};
use taskhook::body::BufferedBody;
use taskhook::{FastAckHandle, FastAckLayer, PayloadLayer, TaskEvent};
use taskhook_sim::{Report, Schedule, Simulator, Summary, UrlPolicy, Workload};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower::{service_fn, ServiceBuilder};

use super::server::RedisServer;
use super::PATIENCE;

/// Which replica ran which task id, in order.
type Runs = Arc<Mutex<Vec<(usize, String)>>>;

struct Replica {
    addr: SocketAddr,
    server: JoinHandle<()>,
    handle: FastAckHandle,
}

impl Replica {
    async fn start(
        index: usize,
        url: &str,
        runs: Runs,
        claim_idle: Duration,
        work: Duration,
    ) -> Self {
        let redis = RedisConnection::builder(url)
            .timeout(Duration::from_millis(500))
            .connect()
            .await
            .unwrap();
        let journal = RedisJournal::builder(redis)
            .consumer(format!("replica-{index}"))
            .claim_idle(claim_idle)
            .take_over_interval(Duration::from_millis(50))
            .build()
            .await
            .unwrap();
        let (layer, handle) = FastAckLayer::builder()
            .journal(journal)
            .concurrency(4)
            .build();
        let service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(layer)
            .service(service_fn(move |req: Request<BufferedBody>| {
                let runs = Arc::clone(&runs);
                async move {
                    let event = req.extensions().get::<TaskEvent>().expect("payload layer");
                    runs.lock().unwrap().push((index, event.id().to_owned()));
                    // The rest of the work after the side effect: a kill
                    // here is the crash that forces a redelivery.
                    tokio::time::sleep(work).await;
                    Ok::<_, Infallible>(Response::new(String::new()))
                }
            }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // Aborting this task drops the set: every connection ends too.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = TowerToHyperService::new(service.clone());
                connections.spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        handle.started().await;
        Self {
            addr,
            server,
            handle,
        }
    }

    /// Dies: no more connections, running attempts aborted, nothing acked.
    /// Answers how many accepted events it left unfinished.
    async fn kill(&self) -> usize {
        self.server.abort();
        self.handle.shutdown(Duration::ZERO).await.left()
    }
}

/// A TCP load balancer: each connection goes to a backend picked at random
/// (the next one when a backend refuses). It counts the `503` answers it
/// passes back, so that a test can wait for one instead of for a fixed time.
pub(crate) struct Balancer {
    addr: SocketAddr,
    unavailable: Arc<AtomicU64>,
}

impl Balancer {
    pub(crate) async fn start(backends: Vec<SocketAddr>) -> Self {
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
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many `503` answers went back to the provider so far.
    pub(crate) fn unavailable(&self) -> u64 {
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

pub(crate) fn simulator() -> Simulator {
    Simulator::new()
        .url_policy(UrlPolicy::new().allow_loopback_for_local_testing())
        // Retries after 0.5 s, 1.5 s and 3 s; a 500 ms answer timeout.
        .schedule(Schedule::provider().time_factor(0.05))
        .concurrency(16)
}

/// Runs `workload` against the balancer; calls `disrupt` once a third of
/// the tasks are done.
pub(crate) async fn run_with_disruption<F, Fut>(
    base: String,
    workload: Workload,
    disrupt: F,
) -> Report
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
pub(crate) fn task_ids(workload: &Workload) -> HashSet<String> {
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
pub(crate) async fn run_through_a_redis_restart(
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

/// Waits until every task id was run and nothing is pending in Redis.
async fn wait_processed(runs: &Runs, ids: &HashSet<String>, redis: &RedisConnection) {
    let journal = RedisJournal::builder(redis.clone()).build().await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen: HashSet<String> = runs
            .lock()
            .unwrap()
            .iter()
            .map(|(_, id)| id.clone())
            .collect();
        if seen.is_superset(ids) && journal.pending_count().await.unwrap() == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not processed: {:?}; pending: {:?}",
            ids.difference(&seen).take(5).collect::<Vec<_>>(),
            journal.pending_count().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_one_killed_every_task_processed() {
    let server = RedisServer::start();
    let runs: Runs = Arc::default();
    let mut replicas = Vec::new();
    for index in 0..3 {
        // A short idle bound: the survivors take over the dead replica's
        // entries 400 ms after its last heartbeat.
        let idle = Duration::from_millis(400);
        // The victim is slow, so that it dies with work in hand.
        let work = Duration::from_millis(if index == 1 { 100 } else { 5 });
        replicas.push(Replica::start(index, &server.url(), Arc::clone(&runs), idle, work).await);
    }
    let balancer = Balancer::start(replicas.iter().map(|r| r.addr).collect()).await;
    let workload = Workload::new(300)
        .seed(11)
        .immediate_duplicates(0.1)
        .concurrent_duplicates(0.1);
    let ids = task_ids(&workload);

    let victim = &replicas[1];
    let left = Arc::new(AtomicU64::new(0));
    let report = run_with_disruption(balancer.base(), workload, || async {
        left.store(victim.kill().await as u64, Ordering::SeqCst);
    })
    .await;
    let left = left.load(Ordering::SeqCst);
    assert!(left > 0, "the victim died with accepted events in hand");
    let summary = report.summary();
    assert_eq!(summary.tasks_undelivered, 0, "{summary:?}");
    assert_eq!(summary.rejected, 0, "{summary:?}");

    let redis = RedisConnection::connect(&server.url()).await.unwrap();
    wait_processed(&runs, &ids, &redis).await;

    // Each task ran once, except where the kill forced a redelivery: the
    // killed replica ran it (its handler finished) and died before the
    // acknowledgement, and a live replica ran it again after taking it over.
    let runs = runs.lock().unwrap();
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
    for (replica, id) in runs.iter() {
        by_id.entry(id).or_default().push(*replica);
    }
    let mut forced = 0;
    for (id, replicas) in &by_id {
        if replicas.len() > 1 {
            forced += 1;
            assert_eq!(replicas.len(), 2, "{id} ran {replicas:?}");
            assert_eq!(
                replicas[0], 1,
                "{id}: only the killed replica's runs repeat"
            );
        }
    }
    eprintln!(
        "multi-replica: {} tasks, {} pushes ({} duplicates), {} runs, victim left {} events, {} ran twice (forced by the kill)",
        summary.tasks,
        summary.pushes,
        summary.duplicate_pushes,
        runs.len(),
        left,
        forced,
    );
    // A kill can force at most the killed replica's in-flight runs again.
    assert!(forced <= 4, "{forced} redeliveries for 4 workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_mid_run_loses_nothing_acknowledged() {
    let mut server = RedisServer::start();
    let runs: Runs = Arc::default();
    let mut replicas = Vec::new();
    for index in 0..3 {
        // An idle bound longer than the outage: after the restart, each
        // replica's heartbeat reaches its entries before anyone may take
        // them over. (An outage longer than the bound lets a replica take
        // over entries whose handler already ran and whose XACK waits for
        // Redis: at least once.)
        let idle = Duration::from_secs(3);
        let work = Duration::from_millis(5);
        replicas.push(Replica::start(index, &server.url(), Arc::clone(&runs), idle, work).await);
    }
    let balancer = Balancer::start(replicas.iter().map(|r| r.addr).collect()).await;
    let workload = Workload::new(300).seed(12).immediate_duplicates(0.1);
    let ids = task_ids(&workload);

    let (summary, refused) = run_through_a_redis_restart(&mut server, &balancer, workload).await;
    // No 2xx was answered for an event Redis did not keep: each is run.
    let redis = RedisConnection::connect(&server.url()).await.unwrap();
    wait_processed(&runs, &ids, &redis).await;
    let runs = runs.lock().unwrap();
    let distinct: HashSet<&String> = runs.iter().map(|(_, id)| id).collect();
    eprintln!(
        "redis restart: {} tasks, {} attempts answered 503 during the outage, {} retries, {} runs",
        summary.tasks,
        refused,
        summary.retries,
        runs.len()
    );
    assert_eq!(runs.len(), distinct.len(), "no task ran twice");
}
