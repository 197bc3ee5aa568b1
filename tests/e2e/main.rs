//! End to end: the provider simulator pushes over real HTTP on loopback to
//! an axum receiver with the recommended stack (payload → dedup → fast-ack
//! → handler), under paused tokio time (the provider's real schedule, run
//! in milliseconds) or scaled time on a multi-threaded runtime. With
//! duplicates, handler failures, slow handlers and a full queue, every task
//! is processed exactly once (or dead-lettered, then replayed, then
//! processed once) and nothing is lost; a 4xx makes the provider give up.
//!
//! The URL rules are tested as tables in `tests/sim`.

use taskhook_test_support as common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post_service;
use axum::Router;
use http::{Request, Response, StatusCode};
use taskhook::body::BufferedBody;
use taskhook::fast_ack::journal::{
    Appended, BoxFuture, Entry, Journal, JournalError, MemoryJournal, Record,
};
use taskhook::fast_ack::{DeadLetter, FastAckLayer, RetryPolicy};
use taskhook::{DedupLayer, FastAckHandle, PayloadLayer, TaskEvent};
use taskhook_sim::{
    AttemptResult, DuplicateKind, Outcome, Report, Schedule, Simulator, Task, UrlPolicy, Workload,
};
use tower::{service_fn, ServiceBuilder};

/// How the handler treats a task, by its id.
#[derive(Clone)]
struct Behaviour {
    /// How many runs of a task fail (`500`) before one succeeds.
    failures: fn(&str) -> u32,
    /// How long a run of a task takes.
    work: fn(&str) -> Duration,
    /// While set, every run fails, whatever `failures` says.
    down: Arc<AtomicBool>,
}

impl Behaviour {
    fn new(failures: fn(&str) -> u32, work: fn(&str) -> Duration) -> Self {
        Self {
            failures,
            work,
            down: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// A stable bucket `0..100` of a task id (FNV-1a), to pick which tasks
/// fail or are slow.
fn bucket(id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash % 100
}

/// Runs of each task id: (runs, successes).
type Runs = Arc<Mutex<HashMap<String, (u32, u32)>>>;

/// A receiver on loopback and what its handler saw.
struct Receiver {
    base: String,
    handle: FastAckHandle,
    runs: Runs,
}

impl Receiver {
    /// Serves payload → dedup → `fast_ack` → a handler that behaves as
    /// `behaviour` says.
    async fn start(fast_ack: FastAckLayer, behaviour: Behaviour) -> Self {
        let runs = Runs::default();
        let handle = fast_ack.handle();
        let handler = service_fn({
            let runs = Arc::clone(&runs);
            move |req: Request<BufferedBody>| {
                let (runs, behaviour) = (Arc::clone(&runs), behaviour.clone());
                async move {
                    let id = req
                        .extensions()
                        .get::<TaskEvent>()
                        .map(|e| e.id().to_owned())
                        .unwrap_or_default();
                    tokio::time::sleep((behaviour.work)(&id)).await;
                    let mut runs = runs.lock().unwrap();
                    let entry = runs.entry(id.clone()).or_default();
                    entry.0 += 1;
                    let status = if behaviour.down.load(Ordering::SeqCst)
                        || entry.0 <= (behaviour.failures)(&id)
                    {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        entry.1 += 1;
                        StatusCode::OK
                    };
                    let mut response = Response::new(String::new());
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                }
            }
        });
        let stack = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(DedupLayer::new())
            .layer(fast_ack)
            .service(handler);
        let addr = common::serve_axum(Router::new().route("/callback", post_service(stack))).await;
        handle.started().await;
        Self {
            base: format!("http://{addr}"),
            handle,
            runs,
        }
    }

    /// Waits (on tokio time) until everything accepted is processed or
    /// dead-lettered.
    async fn settled(&self) {
        for _ in 0..100_000 {
            let s = self.handle.stats();
            if s.queued + s.in_flight + s.waiting_retry == 0
                && s.accepted == s.processed + s.dead_lettered
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never settled: {:?}", self.handle.stats());
    }

    /// Successful handler runs per task id.
    fn successes(&self) -> HashMap<String, u32> {
        self.runs
            .lock()
            .unwrap()
            .iter()
            .map(|(id, (_, ok))| (id.clone(), *ok))
            .collect()
    }
}

fn simulator(factor: f64) -> Simulator {
    Simulator::new()
        .url_policy(UrlPolicy::new().allow_loopback_for_local_testing())
        .schedule(Schedule::provider().time_factor(factor))
}

/// Answers seen by the provider, by status (`None`: no answer).
fn answers(report: &Report) -> HashMap<Option<u16>, usize> {
    let mut answers = HashMap::new();
    for attempt in report.pushes().flat_map(|p| p.attempts.iter()) {
        *answers
            .entry(attempt.result.status().map(|s| s.as_u16()))
            .or_default() += 1;
    }
    answers
}

/// Every task of `tasks` delivered and processed exactly once.
fn assert_each_processed_once(report: &Report, receiver: &Receiver, tasks: &[Task]) {
    let summary = report.summary();
    assert_eq!(summary.tasks_undelivered, 0, "{summary:?}");
    assert_eq!(summary.rejected, 0, "{summary:?}");
    let successes = receiver.successes();
    for task in tasks {
        assert_eq!(
            successes.get(task.id()).copied(),
            Some(1),
            "task {} (kind {:?})",
            task.id(),
            task.kind()
        );
    }
    assert_eq!(successes.len(), tasks.len());
}

#[tokio::test(start_paused = true)]
async fn duplicates_failures_slow_handlers_and_a_full_queue_lose_nothing() {
    // 20% of tasks fail their first two runs, 10% take 2 s; four workers,
    // room for 60 events: the burst of 240 tasks overflows the queue and
    // the provider's retries (10 s, 30 s, 60 s later) get the rest in.
    let behaviour = Behaviour::new(
        |id| if bucket(id) < 20 { 2 } else { 0 },
        |id| {
            if (20..30).contains(&bucket(id)) {
                Duration::from_secs(2)
            } else {
                Duration::from_millis(10)
            }
        },
    );
    let fast_ack = FastAckLayer::builder()
        .capacity(60)
        .concurrency(4)
        .retry(RetryPolicy::new().attempts(4))
        .build()
        .0;
    let receiver = Receiver::start(fast_ack, behaviour).await;
    let workload = Workload::new(240)
        .seed(11)
        .immediate_duplicates(0.15)
        .concurrent_duplicates(0.15)
        .later_duplicates(0.15, Duration::from_secs(120));
    let tasks = workload.generate();

    let report = simulator(1.0)
        .run_tasks(&receiver.base, tasks.clone())
        .await
        .unwrap();
    receiver.settled().await;

    assert_each_processed_once(&report, &receiver, &tasks);
    let summary = report.summary();
    let answers = answers(&report);
    let stats = receiver.handle.stats();
    // Each fault really happened.
    assert!(stats.rejected_full > 0, "the queue filled up: {stats:?}");
    assert!(summary.retries > 0, "the provider retried: {summary:?}");
    assert!(summary.duplicate_pushes > 30, "{summary:?}");
    assert!(
        answers[&Some(200)] > 0,
        "duplicates were absorbed: {answers:?}"
    );
    assert!(stats.retried > 0 && stats.failed_attempts > 0, "{stats:?}");
    // Accepted once per task: the duplicates and retries of accepted
    // pushes never reached the journal.
    assert_eq!(stats.accepted, tasks.len() as u64);
    assert_eq!(stats.processed, tasks.len() as u64);
    assert_eq!(stats.dead_lettered, 0);
    // Every push ended with a 2xx, after 503s for some.
    assert_eq!(summary.delivered, summary.pushes);
    assert!(
        answers.keys().all(|s| matches!(s, Some(200 | 202 | 503))),
        "{answers:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn dead_letters_are_replayed_and_processed_once() {
    let behaviour = Behaviour::new(|_| 0, |_| Duration::from_millis(5));
    let down = Arc::clone(&behaviour.down);
    let receiver = Receiver::start(
        FastAckLayer::builder()
            .retry(RetryPolicy::new().attempts(3))
            .build()
            .0,
        behaviour,
    )
    .await;
    let tasks = Workload::new(40)
        .seed(3)
        .later_duplicates(0.5, Duration::from_secs(600))
        .generate();

    // The handler is down for the whole run: every event is accepted
    // (202), fails three runs and becomes a dead letter; the later
    // duplicates are absorbed by dedup (the id is done for it).
    down.store(true, Ordering::SeqCst);
    let report = simulator(1.0)
        .run_tasks(&receiver.base, tasks.clone())
        .await
        .unwrap();
    receiver.settled().await;
    let summary = report.summary();
    assert_eq!(summary.tasks_undelivered, 0, "{summary:?}");
    assert!(summary.duplicate_pushes > 0);
    assert_eq!(answers(&report)[&Some(200)], summary.duplicate_pushes);
    assert_eq!(receiver.handle.dead_letters().len(), tasks.len());
    assert!(receiver.successes().values().all(|ok| *ok == 0));

    // Back up: replaying the dead letters processes each task once.
    down.store(false, Ordering::SeqCst);
    assert_eq!(receiver.handle.replay_all().await.unwrap(), tasks.len());
    receiver.settled().await;
    assert!(receiver.handle.dead_letters().is_empty());
    assert_each_processed_once(&report, &receiver, &tasks);
}

#[tokio::test(start_paused = true)]
async fn without_fast_ack_a_5xx_is_retried_by_the_provider_and_processed_once() {
    // payload → dedup → handler: the handler's 500 goes to the provider,
    // dedup releases the id, and the provider's retry runs it again.
    let runs = Runs::default();
    let handler = service_fn({
        let runs = Arc::clone(&runs);
        move |req: Request<BufferedBody>| {
            let runs = Arc::clone(&runs);
            async move {
                let id = req.extensions().get::<TaskEvent>().unwrap().id().to_owned();
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut runs = runs.lock().unwrap();
                let entry = runs.entry(id.clone()).or_default();
                entry.0 += 1;
                // A third of the tasks fail twice (the provider has three
                // retries), the rest succeed at once.
                let status = if bucket(&id) < 33 && entry.0 <= 2 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    entry.1 += 1;
                    StatusCode::OK
                };
                let mut response = Response::new(String::new());
                *response.status_mut() = status;
                Ok::<_, Infallible>(response)
            }
        }
    });
    let stack = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(DedupLayer::new())
        .service(handler);
    let addr = common::serve_axum(Router::new().route("/callback", post_service(stack))).await;
    let tasks = Workload::new(120)
        .seed(8)
        .immediate_duplicates(0.2)
        .concurrent_duplicates(0.2)
        .generate();

    let report = simulator(1.0)
        .run_tasks(&format!("http://{addr}"), tasks.clone())
        .await
        .unwrap();

    let summary = report.summary();
    assert_eq!(summary.tasks_undelivered, 0, "{summary:?}");
    assert!(summary.retries > 0, "{summary:?}");
    let runs = runs.lock().unwrap();
    for task in &tasks {
        let (total, ok) = runs[task.id()];
        assert_eq!(ok, 1, "{}", task.id());
        let want = if bucket(task.id()) < 33 { 3 } else { 1 };
        assert_eq!(total, want, "{}", task.id());
    }
    // A failing task without duplicates: its push is retried 10 s after
    // the first 500 and 30 s after the second, then delivered.
    let failing = tasks
        .iter()
        .find(|t| bucket(t.id()) < 33 && t.duplicates().is_empty())
        .unwrap();
    let push = &report.task(failing.id()).unwrap().pushes[0];
    let results: Vec<_> = push.attempts.iter().map(|a| a.result.clone()).collect();
    assert_eq!(
        results,
        [
            AttemptResult::Status(StatusCode::INTERNAL_SERVER_ERROR),
            AttemptResult::Status(StatusCode::INTERNAL_SERVER_ERROR),
            AttemptResult::Status(StatusCode::OK),
        ]
    );
    assert_eq!(push.attempts[1].offset.as_secs(), 10);
    assert_eq!(push.attempts[2].offset.as_secs(), 40);
}

#[tokio::test(start_paused = true)]
async fn a_4xx_makes_the_provider_give_up_at_once() {
    let receiver = Receiver::start(
        FastAckLayer::new(),
        Behaviour::new(|_| 0, |_| Duration::ZERO),
    )
    .await;
    let good = Workload::new(5).seed(2).generate();
    let mut tasks = vec![
        Task::new("task_malformed", "{\"code\":200,\"data\":{\"id\":")
            .duplicate(DuplicateKind::After(Duration::from_secs(30))),
        Task::new(
            "task_no_id",
            r#"{"code":200,"data":{"status":"completed"}}"#,
        ),
        Task::new("task_not_object", "[1,2,3]"),
        Task::new(
            "task_too_large",
            format!(
                r#"{{"code":200,"data":{{"id":"task_too_large","pad":"{}"}}}}"#,
                "x".repeat(300 * 1024)
            ),
        ),
    ];
    tasks.extend(good.iter().cloned());

    let report = simulator(1.0)
        .run_tasks(&receiver.base, tasks)
        .await
        .unwrap();
    receiver.settled().await;

    for (id, status) in [
        ("task_malformed", StatusCode::BAD_REQUEST),
        ("task_no_id", StatusCode::BAD_REQUEST),
        ("task_not_object", StatusCode::BAD_REQUEST),
        ("task_too_large", StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        for push in &report.task(id).unwrap().pushes {
            assert_eq!(push.outcome, Outcome::Rejected(status), "{id}");
            assert_eq!(push.attempts.len(), 1, "{id}: no retry after a 4xx");
        }
    }
    // The duplicate of a rejected push is rejected again, on its own.
    assert_eq!(report.task("task_malformed").unwrap().pushes.len(), 2);
    let summary = report.summary();
    assert_eq!((summary.rejected, summary.retries), (5, 0), "{summary:?}");
    assert_eq!(summary.tasks_undelivered, 4);
    // Nothing refused reached the journal or the handler; the rest did.
    let stats = receiver.handle.stats();
    assert_eq!(stats.accepted, good.len() as u64);
    assert_each_processed_once_of(&receiver, &good);
}

fn assert_each_processed_once_of(receiver: &Receiver, tasks: &[Task]) {
    let successes = receiver.successes();
    assert_eq!(successes.len(), tasks.len(), "{successes:?}");
    for task in tasks {
        assert_eq!(successes.get(task.id()).copied(), Some(1), "{}", task.id());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_time_on_two_threads_with_concurrent_duplicates() {
    // Real time, scaled by 0.1 (a 1 s timeout, generous for a debug build
    // on a busy machine): the receiver and the
    // simulator share two threads, so concurrent duplicates really race.
    let behaviour = Behaviour::new(
        |id| u32::from(bucket(id) < 10),
        |id| Duration::from_millis(bucket(id) % 3),
    );
    let receiver = Receiver::start(
        FastAckLayer::builder()
            .capacity(10_000)
            .concurrency(16)
            .retry(
                RetryPolicy::new()
                    .attempts(3)
                    .base_delay(Duration::from_millis(5)),
            )
            .build()
            .0,
        behaviour,
    )
    .await;
    let tasks = Workload::new(400)
        .seed(21)
        .concurrent_duplicates(0.5)
        .immediate_duplicates(0.1)
        .later_duplicates(0.1, Duration::from_secs(5))
        .generate();

    let report = simulator(0.1)
        .concurrency(32)
        .run_tasks(&receiver.base, tasks.clone())
        .await
        .unwrap();
    receiver.settled().await;

    assert_each_processed_once(&report, &receiver, &tasks);
    assert_eq!(receiver.handle.stats().accepted, tasks.len() as u64);
    assert!(report.summary().duplicate_pushes > 150);
}

#[tokio::test]
async fn an_outer_body_limit_behind_axum_is_a_413_not_a_503() {
    // tower-http's limit on the whole router: axum wraps its error; the
    // payload layer still answers 413 (never 503: the provider would retry
    // a body that can never fit).
    let receiver_addr: SocketAddr = {
        let stack = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .service(service_fn(|_req: Request<BufferedBody>| async {
                Ok::<_, Infallible>(Response::new(String::new()))
            }));
        let app = Router::new()
            .route("/callback", post_service(stack))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(1024));
        common::serve_axum(app).await
    };
    let big = format!(
        r#"{{"code":200,"data":{{"id":"task_big","pad":"{}"}}}}"#,
        "x".repeat(4096)
    );
    let chunked = common::post_chunked(receiver_addr, "/callback", big.as_bytes(), 512).await;
    assert_eq!(chunked.status, 413, "{}", chunked.body);
    let sized = common::post(
        receiver_addr,
        "/callback",
        Some("application/json"),
        big.as_bytes(),
    )
    .await;
    assert_eq!(sized.status, 413);
    let small = common::post(
        receiver_addr,
        "/callback",
        Some("application/json"),
        br#"{"code":200,"data":{"id":"task_small"}}"#,
    )
    .await;
    assert_eq!(small.status, 200);
}

/// A memory journal whose first append takes 15 s (a disk stall): longer
/// than the provider's 10 s timeout.
#[derive(Clone)]
struct StallingJournal {
    inner: MemoryJournal,
    stalled: Arc<AtomicBool>,
}

impl Journal for StallingJournal {
    fn append(&self, records: Vec<Record>) -> BoxFuture<'_, Result<Vec<Appended>, JournalError>> {
        Box::pin(async move {
            if !self.stalled.swap(true, Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
            self.inner.append(records).await
        })
    }
    fn complete(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.complete(seq)
    }
    fn pending(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        self.inner.pending()
    }
    fn dead_letter(&self, letter: &DeadLetter) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.dead_letter(letter)
    }
    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, JournalError>> {
        self.inner.dead_letters()
    }
    fn remove_dead_letter(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.remove_dead_letter(seq)
    }
}

/// An ack that times out after fast-ack's journal-and-queue step started:
/// hyper drops the request future, but the dedup layer moves the inner call
/// onto a task of its own, so the id is marked done once fast-ack accepted,
/// and the provider's retry is absorbed instead of processed again.
#[tokio::test(start_paused = true)]
async fn an_ack_that_times_out_after_the_event_was_queued_is_not_processed_twice() {
    let journal = StallingJournal {
        inner: MemoryJournal::new(),
        stalled: Arc::new(AtomicBool::new(false)),
    };
    let receiver = Receiver::start(
        FastAckLayer::builder().journal(journal).build().0,
        Behaviour::new(|_| 0, |_| Duration::ZERO),
    )
    .await;
    let tasks = Workload::new(1).seed(4).generate();
    let report = simulator(1.0)
        .run_tasks(&receiver.base, tasks.clone())
        .await
        .unwrap();
    receiver.settled().await;
    let push = &report.tasks()[0].pushes[0];
    assert_eq!(push.attempts[0].result, AttemptResult::TimedOut);
    assert_each_processed_once(&report, &receiver, &tasks);
}
