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
use taskhook_sim::Workload;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower::{service_fn, ServiceBuilder};

use taskhook_test_support::redis::RedisServer;
use taskhook_test_support::replicas::{
    run_through_a_redis_restart, run_with_disruption, task_ids, Balancer,
};
use taskhook_test_support::PATIENCE;

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
