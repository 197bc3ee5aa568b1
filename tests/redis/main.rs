//! The Redis backend against a real `redis-server` (started by each test on
//! a free port, `taskhook_test_support::redis`): atomic claims, ownership, TTLs, the
//! journal's atomic append and duplicates, takeover of a dead replica's
//! entries, dead letters after too many deliveries, Redis down or frozen
//! (503 within the timeout bound), Redis restarted (nothing acknowledged
//! lost). The same with receiver processes: `taskhook-tools/tests/replicas.rs`.

mod replicas;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use taskhook::backend::redis::{RedisConnection, RedisJournal, RedisStore};
use taskhook::body::BufferedBody;
use taskhook::dedup::{Claim, DedupKey, DedupStore, KeyState, DUPLICATE_HEADER};
use taskhook::fast_ack::journal::{Appended, Journal, Record};
use taskhook::fast_ack::FastAckLayer;
use taskhook::{DedupLayer, PayloadLayer, TaskEvent};
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::{service_fn, ServiceBuilder, ServiceExt};

use taskhook_test_support::redis::RedisServer;
use taskhook_test_support::PATIENCE;

async fn connect(server: &RedisServer) -> RedisConnection {
    RedisConnection::builder(server.url())
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .expect("connects to the test server")
}

fn push(id: &str) -> Request<String> {
    Request::post("/callback")
        .body(format!(
            r#"{{"code":200,"data":{{"id":"{id}","status":"completed"}}}}"#
        ))
        .unwrap()
}

fn record(task: &str) -> Record {
    Record::new(Some(Arc::from(task)), format!("body of {task}").into())
}

/// A record as the fast-ack layer writes it (an encoded request), taken
/// from an in-memory journal.
async fn encoded_record(task: &str) -> Record {
    let journal = taskhook::fast_ack::journal::MemoryJournal::new();
    let (layer, handle) = FastAckLayer::builder().journal(journal.clone()).build();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(service_fn(|_req: Request<BufferedBody>| async {
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    handle.started().await;
    let response = service.oneshot(push(task)).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let pending = journal.pending().await.unwrap();
    pending[0].record().clone()
}

/// Polls `check` until it holds, at most `PATIENCE`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs one command with `redis-cli` (installed with `redis-server`).
async fn raw(server: &RedisServer, args: &[&str]) -> String {
    let output = std::process::Command::new("redis-cli")
        .arg("-u")
        .arg(server.url())
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_are_atomic_across_64_concurrent_callers() {
    let server = RedisServer::start();
    let redis = connect(&server).await;
    // Separate stores (as on separate replicas), one key.
    let mut claims = Vec::new();
    for _ in 0..64 {
        let store = RedisStore::new(redis.clone());
        claims.push(tokio::spawn(async move {
            store.claim(&DedupKey::new("task_atomic")).await.unwrap()
        }));
    }
    let mut acquired = 0;
    for claim in claims {
        match claim.await.unwrap() {
            Claim::Acquired(_) => acquired += 1,
            Claim::InFlight => {}
            Claim::Done => panic!("nothing completed the key"),
        }
    }
    assert_eq!(acquired, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_handler_runs_once_for_64_concurrent_identical_pushes() {
    let server = RedisServer::start();
    let redis = connect(&server).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let mut answers = Vec::new();
    for _ in 0..64 {
        // One stack per push: as many replicas as requests, one Redis.
        let runs = Arc::clone(&runs);
        let service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(DedupLayer::with_store(RedisStore::new(redis.clone())))
            .service(service_fn(move |_req: Request<BufferedBody>| {
                let runs = Arc::clone(&runs);
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, Infallible>(Response::new(String::new()))
                }
            }));
        answers.push(tokio::spawn(service.oneshot(push("task_64"))));
    }
    let mut duplicates = 0;
    for answer in answers {
        let response = answer.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        if response.headers().get(&DUPLICATE_HEADER).is_some() {
            duplicates += 1;
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(duplicates, 63);
}

#[tokio::test]
async fn complete_and_release_only_touch_their_own_claim() {
    let server = RedisServer::start();
    let redis = connect(&server).await;
    let store = RedisStore::new(redis.clone());
    let key = DedupKey::new("task_owned");
    let Claim::Acquired(stale) = store.claim(&key).await.unwrap() else {
        panic!("first claim");
    };
    // The claim expires (as after its timeout) and another caller claims.
    assert_eq!(
        raw(&server, &["DEL", "taskhook:dedup:task_owned"]).await,
        "1"
    );
    let Claim::Acquired(current) = store.claim(&key).await.unwrap() else {
        panic!("claim after expiry");
    };
    assert_ne!(stale, current);

    store.release(&key, &stale).await.unwrap();
    assert_eq!(store.claim(&key).await.unwrap(), Claim::InFlight);
    store.complete(&key, &stale).await.unwrap();
    assert_eq!(store.claim(&key).await.unwrap(), Claim::InFlight);

    store.release(&key, &current).await.unwrap();
    let Claim::Acquired(third) = store.claim(&key).await.unwrap() else {
        panic!("released by its owner");
    };
    store.complete(&key, &third).await.unwrap();
    assert_eq!(store.claim(&key).await.unwrap(), Claim::Done);

    // `forget` deletes a done key, and never a live claim.
    store.forget(&key).await.unwrap();
    let Claim::Acquired(fourth) = store.claim(&key).await.unwrap() else {
        panic!("forgotten");
    };
    store.forget(&key).await.unwrap();
    assert_eq!(store.claim(&key).await.unwrap(), Claim::InFlight);
    store.release(&key, &fourth).await.unwrap();
}

#[tokio::test]
async fn peek_reads_a_key_without_changing_it() {
    let server = RedisServer::start();
    let redis = connect(&server).await;
    let store = RedisStore::new(redis.clone());
    let key = DedupKey::new("task_peek");
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::Unknown);
    let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
        panic!("a peeked key is still new");
    };
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::InFlight);
    store.release(&key, &token).await.unwrap();
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::Unknown);
    let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
        panic!("released");
    };
    store.complete(&key, &token).await.unwrap();
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::Done);
    assert_eq!(store.claim(&key).await.unwrap(), Claim::Done);
    // Redis down: an error, never a guess.
    drop(server);
    assert!(store.peek(&key).await.is_err());
}

#[tokio::test]
async fn done_keys_live_for_the_ttl_and_claims_expire() {
    let server = RedisServer::start();
    let redis = connect(&server).await;
    let store = RedisStore::builder(redis.clone())
        .time_to_live(Duration::from_millis(300))
        .claim_timeout(Duration::from_millis(200))
        .build();

    let done = DedupKey::new("task_ttl");
    let Claim::Acquired(token) = store.claim(&done).await.unwrap() else {
        panic!("first claim");
    };
    store.complete(&done, &token).await.unwrap();
    assert_eq!(store.claim(&done).await.unwrap(), Claim::Done);
    let ttl: i64 = raw(&server, &["PTTL", "taskhook:dedup:task_ttl"])
        .await
        .parse()
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 300,
        "done key expires with the TTL: {ttl}"
    );

    let stuck = DedupKey::new("task_stuck");
    assert!(matches!(
        store.claim(&stuck).await.unwrap(),
        Claim::Acquired(_)
    ));
    assert_eq!(store.claim(&stuck).await.unwrap(), Claim::InFlight);
    let ttl: i64 = raw(&server, &["PTTL", "taskhook:dedup:task_stuck"])
        .await
        .parse()
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 200,
        "a claim expires with the claim timeout: {ttl}"
    );

    // Redis expires both on its own: the keys can be claimed again.
    eventually("the claim expires", || async {
        matches!(store.claim(&stuck).await.unwrap(), Claim::Acquired(_))
    })
    .await;
    eventually("the done key expires", || async {
        matches!(store.claim(&done).await.unwrap(), Claim::Acquired(_))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_journal_claims_and_appends_in_one_step() {
    let server = RedisServer::start();
    let redis = connect(&server).await;
    let mut appends = Vec::new();
    for _ in 0..64 {
        let journal = RedisJournal::builder(redis.clone()).build().await.unwrap();
        appends.push(tokio::spawn(async move {
            journal.append(vec![record("task_j")]).await.unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for append in appends {
        match append.await.unwrap()[..] {
            [Appended::Seq(seq)] => seqs.push(seq),
            [Appended::Duplicate] => {}
            ref other => panic!("{other:?}"),
        }
    }
    assert_eq!(seqs.len(), 1, "one task id is appended once");
    assert_eq!(raw(&server, &["XLEN", "taskhook:journal"]).await, "1");

    let journal = RedisJournal::builder(redis.clone()).build().await.unwrap();
    assert_eq!(journal.pending_count().await.unwrap(), 1);
    journal.complete(seqs[0]).await.unwrap();
    assert_eq!(journal.pending_count().await.unwrap(), 0);
    assert_eq!(raw(&server, &["XLEN", "taskhook:journal"]).await, "0");
    // Done: a later push of the task is a duplicate.
    assert_eq!(
        journal.append(vec![record("task_j")]).await.unwrap(),
        [Appended::Duplicate]
    );

    // Withdrawn (appended, answered 503): the retry is appended again.
    let [Appended::Seq(first)] = journal.append(vec![record("task_w")]).await.unwrap()[..] else {
        panic!("appended");
    };
    journal.withdraw(first).await.unwrap();
    let [Appended::Seq(second)] = journal.append(vec![record("task_w")]).await.unwrap()[..] else {
        panic!("appended again after a withdrawal");
    };
    assert!(second > first);

    // Records without a task id are never duplicates.
    let anonymous = || Record::new(None, "no id".into());
    let appended = journal
        .append(vec![anonymous(), anonymous()])
        .await
        .unwrap();
    assert!(matches!(appended[..], [Appended::Seq(_), Appended::Seq(_)]));
}

#[tokio::test]
async fn a_dead_replicas_entries_are_taken_over() {
    let server = RedisServer::start();
    let redis = connect(&server).await;
    let idle = Duration::from_millis(100);
    let dead = RedisJournal::builder(redis.clone())
        .consumer("dead")
        .claim_idle(idle)
        .build()
        .await
        .unwrap();
    let mut appended = Vec::new();
    for task in ["task_a", "task_b", "task_c"] {
        let [Appended::Seq(seq)] = dead.append(vec![record(task)]).await.unwrap()[..] else {
            panic!("appended");
        };
        appended.push(seq);
    }
    let live = RedisJournal::builder(redis.clone())
        .consumer("live")
        .claim_idle(idle)
        .build()
        .await
        .unwrap();
    // Held by a live replica that sends its heartbeat: not taken.
    dead.take_over(0).await.unwrap();
    assert!(live.take_over(10).await.unwrap().is_empty());

    // `dead` stops sending its heartbeat.
    let mut taken = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while taken.len() < 3 {
        assert!(Instant::now() < deadline, "the entries are taken over");
        taken.extend(live.take_over(10).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seqs: Vec<u64> = taken.iter().map(|e| e.seq()).collect();
    assert_eq!(seqs, appended);
    assert_eq!(taken[0].task_id(), Some("task_a"));
    assert_eq!(&taken[0].bytes()[..], b"body of task_a");
    assert_eq!(live.held(), 3);

    // Taken once: the live replica's heartbeat keeps them.
    tokio::time::sleep(idle * 2).await;
    live.take_over(0).await.unwrap();
    let other = RedisJournal::builder(redis.clone())
        .claim_idle(idle)
        .build()
        .await
        .unwrap();
    assert!(other.take_over(10).await.unwrap().is_empty());

    for seq in seqs {
        live.complete(seq).await.unwrap();
    }
    assert_eq!(live.pending_count().await.unwrap(), 0);
    // Still done for the TTL: a duplicate is absorbed.
    assert_eq!(
        other.append(vec![record("task_b")]).await.unwrap(),
        [Appended::Duplicate]
    );
}

#[tokio::test]
async fn entries_delivered_too_often_become_dead_letters() {
    let server = RedisServer::start();
    let redis = connect(&server).await;
    let replica = |name: &'static str| {
        RedisJournal::builder(redis.clone())
            .consumer(name)
            .claim_idle(Duration::from_millis(50))
            .max_deliveries(2)
            .build()
    };
    let first = replica("first").await.unwrap();
    let poison = encoded_record("task_poison").await;
    let [Appended::Seq(seq)] = first.append(vec![poison.clone()]).await.unwrap()[..] else {
        panic!("appended");
    };
    // Delivery 2: a second replica takes it over, then dies too.
    let second = replica("second").await.unwrap();
    eventually("the second replica takes it over", || async {
        !second.take_over(10).await.unwrap().is_empty()
    })
    .await;
    // Delivery 3 would exceed the bound: dead-lettered instead.
    let third = replica("third").await.unwrap();
    eventually("the entry is dead-lettered", || async {
        assert!(third.take_over(10).await.unwrap().is_empty());
        !third.dead_letters().await.unwrap().is_empty()
    })
    .await;
    let letters = third.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].seq(), seq);
    assert_eq!(letters[0].task_id(), Some("task_poison"));
    assert_eq!(letters[0].entry().bytes(), poison.bytes());
    assert_eq!(letters[0].attempts(), 3);
    assert!(letters[0]
        .failure()
        .to_string()
        .contains("delivered 3 times"));
    assert_eq!(third.pending_count().await.unwrap(), 0);
    assert_eq!(raw(&server, &["XLEN", "taskhook:journal:dead"]).await, "1");

    // Its task id is forgotten: a replay (or the provider's next push) runs.
    assert!(matches!(
        third.append(vec![record("task_poison")]).await.unwrap()[..],
        [Appended::Seq(_)]
    ));
    third.remove_dead_letter(seq).await.unwrap();
    assert!(third.dead_letters().await.unwrap().is_empty());
}

type Stack = tower::util::BoxCloneService<Request<String>, Response<()>, Infallible>;

/// A fast-ack stack on a Redis journal whose handler records the task ids
/// and waits for `gate` before answering.
fn fast_ack_stack(
    journal: RedisJournal,
    seen: Arc<Mutex<Vec<String>>>,
    gate: Arc<Notify>,
    open: Arc<std::sync::atomic::AtomicBool>,
) -> (Stack, taskhook::FastAckHandle) {
    let (layer, handle) = FastAckLayer::builder().journal(journal).build();
    let service = ServiceBuilder::new()
        .map_response(|response: Response<_>| response.map(|_| ()))
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(service_fn(move |req: Request<BufferedBody>| {
            let seen = Arc::clone(&seen);
            let gate = Arc::clone(&gate);
            let open = Arc::clone(&open);
            async move {
                while !open.load(Ordering::SeqCst) {
                    let notified = gate.notified();
                    if open.load(Ordering::SeqCst) {
                        break;
                    }
                    notified.await;
                }
                let event = req.extensions().get::<TaskEvent>().expect("payload layer");
                seen.lock().unwrap().push(event.id().to_owned());
                Ok::<_, Infallible>(Response::new(String::new()))
            }
        }));
    (Stack::new(service), handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_or_frozen_is_503_with_retry_after_within_the_timeout() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let redis = RedisConnection::builder(server.url())
        .timeout(timeout)
        .connect()
        .await
        .unwrap();
    let dedup = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(DedupLayer::with_store(RedisStore::new(redis.clone())))
        .service(service_fn(|_req: Request<BufferedBody>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let journal = RedisJournal::builder(redis.clone()).build().await.unwrap();
    let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (fast_ack, handle) = fast_ack_stack(
        journal,
        Arc::default(),
        Arc::new(Notify::new()),
        Arc::clone(&open),
    );
    handle.started().await;
    assert_eq!(
        dedup
            .clone()
            .oneshot(push("task_up"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Frozen: connections stay open and nothing answers; the timeout bounds
    // every call.
    server.freeze();
    for (n, stack) in ["dedup", "fast-ack"].into_iter().enumerate() {
        let started = Instant::now();
        let response = match n {
            0 => dedup
                .clone()
                .oneshot(push("task_frozen"))
                .await
                .unwrap()
                .map(|_| ()),
            _ => fast_ack.clone().oneshot(push("task_frozen")).await.unwrap(),
        };
        let elapsed = started.elapsed();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{stack}"
        );
        assert!(
            response.headers().contains_key(http::header::RETRY_AFTER),
            "{stack}"
        );
        // One bounded call or two (the journal re-creates a lost group);
        // far below the provider's 10 s.
        assert!(elapsed < timeout * 4, "{stack} answered after {elapsed:?}");
    }
    server.thaw();

    // Down: refused connections, the same answer.
    server.kill();
    for stack in ["dedup", "fast-ack"] {
        let started = Instant::now();
        let response = match stack {
            "dedup" => dedup
                .clone()
                .oneshot(push("task_down"))
                .await
                .unwrap()
                .map(|_| ()),
            _ => fast_ack.clone().oneshot(push("task_down")).await.unwrap(),
        };
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{stack}"
        );
        assert!(
            response.headers().contains_key(http::header::RETRY_AFTER),
            "{stack}"
        );
        assert!(started.elapsed() < timeout * 4, "{stack}");
    }

    // Back: the connection heals on its own.
    server.restart();
    eventually("dedup recovers", || async {
        dedup
            .clone()
            .oneshot(push("task_back"))
            .await
            .unwrap()
            .status()
            == StatusCode::OK
    })
    .await;
    eventually("fast-ack recovers", || async {
        fast_ack
            .clone()
            .oneshot(push("task_back"))
            .await
            .unwrap()
            .status()
            == StatusCode::ACCEPTED
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing_acknowledged() {
    let mut server = RedisServer::start();
    let redis = connect(&server).await;
    let journal = RedisJournal::builder(redis.clone()).build().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Notify::new());
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (service, handle) = fast_ack_stack(
        journal.clone(),
        Arc::clone(&seen),
        Arc::clone(&gate),
        Arc::clone(&open),
    );
    handle.started().await;

    // Accepted while the handler is held back: queued, not processed.
    let mut accepted = HashSet::new();
    for n in 0..5 {
        let id = format!("task_{n}");
        let response = service.clone().oneshot(push(&id)).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        accepted.insert(id);
    }
    assert_eq!(journal.pending_count().await.unwrap(), 5);

    // Redis dies (SIGKILL) and comes back from its append-only file.
    server.kill();
    let during = service.clone().oneshot(push("task_during")).await.unwrap();
    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    server.restart();

    // The provider's retry of the refused push succeeds once Redis is back.
    eventually("a push is accepted again", || async {
        service
            .clone()
            .oneshot(push("task_during"))
            .await
            .unwrap()
            .status()
            == StatusCode::ACCEPTED
    })
    .await;
    accepted.insert("task_during".to_owned());
    assert_eq!(journal.pending_count().await.unwrap(), 6, "nothing lost");

    open.store(true, Ordering::SeqCst);
    gate.notify_waiters();
    eventually("every accepted event is processed", || async {
        seen.lock().unwrap().len() >= accepted.len() && journal.pending_count().await.unwrap() == 0
    })
    .await;
    let seen: HashSet<String> = seen.lock().unwrap().iter().cloned().collect();
    assert_eq!(seen, accepted);

    // And each is remembered as done.
    let duplicate = service.clone().oneshot(push("task_3")).await.unwrap();
    assert_eq!(duplicate.status(), StatusCode::OK);
    assert_eq!(duplicate.headers()[&DUPLICATE_HEADER], "journaled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_under_its_name_runs_its_own_pending_entries_at_once() {
    let server = RedisServer::start();
    let redis = connect(&server).await;
    let journal = || {
        RedisJournal::builder(redis.clone())
            .consumer("receiver-0")
            // Far beyond the test: only the consumer name can bring the
            // entries back.
            .claim_idle(Duration::from_secs(3600))
            .build()
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (service, handle) = fast_ack_stack(
        journal().await.unwrap(),
        Arc::clone(&seen),
        Arc::new(Notify::new()),
        Arc::clone(&open),
    );
    handle.started().await;
    for id in ["task_r1", "task_r2"] {
        let response = service.clone().oneshot(push(id)).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    // Stops without finishing them (a deploy with too short a grace time).
    let report = handle.shutdown(Duration::ZERO).await;
    assert_eq!(report.left(), 2);
    assert!(seen.lock().unwrap().is_empty());

    let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let restarted = journal().await.unwrap();
    let (_service, handle) = fast_ack_stack(
        restarted.clone(),
        Arc::clone(&seen),
        Arc::new(Notify::new()),
        open,
    );
    handle.started().await;
    eventually("the pending entries run after the restart", || async {
        seen.lock().unwrap().len() == 2 && restarted.pending_count().await.unwrap() == 0
    })
    .await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["task_r1", "task_r2"]);
}

/// Figures for BENCHMARKS.md ("Redis"), not an assertion: requests per
/// second through payload → dedup → an empty handler, with the moka store
/// and with the Redis store on loopback, same run. Run it with
/// `cargo test --release --features redis --test redis -- --ignored --nocapture dedup_throughput`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; run by hand in release mode"]
async fn dedup_throughput() {
    const REQUESTS: usize = 20_000;
    const CONCURRENCY: usize = 64;

    type Stack = tower::util::BoxCloneService<Request<String>, Response<()>, Infallible>;

    /// Pushes `REQUESTS` ids `<prefix>-<n>` from `CONCURRENCY` tasks.
    async fn run(service: &Stack, prefix: &str, duplicates: bool) -> Duration {
        let next = Arc::new(AtomicUsize::new(0));
        let started = std::time::Instant::now();
        let mut workers = Vec::new();
        for _ in 0..CONCURRENCY {
            let service = service.clone();
            let next = Arc::clone(&next);
            let prefix = prefix.to_owned();
            workers.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= REQUESTS {
                        break;
                    }
                    let response = service
                        .clone()
                        .oneshot(push(&format!("{prefix}-{n}")))
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    assert_eq!(
                        response.headers().get(&DUPLICATE_HEADER).is_some(),
                        duplicates
                    );
                }
            }));
        }
        for worker in workers {
            worker.await.unwrap();
        }
        started.elapsed()
    }

    async fn measure<St: DedupStore + Clone>(name: &str, store: St) {
        let service = Stack::new(
            ServiceBuilder::new()
                .map_response(|response: Response<_>| response.map(|_| ()))
                .layer(PayloadLayer::new())
                .layer(DedupLayer::with_store(store))
                .service(service_fn(|_req: Request<BufferedBody>| async {
                    Ok::<_, Infallible>(Response::new(String::new()))
                })),
        );
        let new = run(&service, name, false).await;
        let duplicates = run(&service, name, true).await;
        let rate = |elapsed: Duration| REQUESTS as f64 / elapsed.as_secs_f64();
        println!(
            "{name:>24}: new ids {:>7.0} req/s ({new:.2?}), duplicates {:>7.0} req/s ({duplicates:.2?})",
            rate(new),
            rate(duplicates),
        );
    }

    measure("moka", taskhook::backend::MokaStore::new()).await;
    let server = RedisServer::start();
    let redis = connect(&server).await;
    measure("redis appendfsync always", RedisStore::new(redis)).await;
    let server = RedisServer::start_with(&["--appendfsync", "everysec"]);
    let redis = connect(&server).await;
    measure("redis appendfsync everysec", RedisStore::new(redis)).await;
}
