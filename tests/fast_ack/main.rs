//! The fast-ack layer: the ack does not wait for the handler, the queue is
//! bounded, failures are retried then dead-lettered and replayed, shutdown
//! drains, the journal is written before every 2xx and replayed at start-up.

#[path = "../common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use taskhook::body::BufferedBody;
use taskhook::fast_ack::{
    Appended, Attempt, BoxFuture, DeadLetter, Entry, Failure, FastAckLayer, Journal, JournalError,
    MemoryJournal, Record, RetryPolicy,
};
use taskhook::{PayloadLayer, TaskEvent};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::time::Instant;
use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};

use common::{callback, send, until};

type Handler = tower::util::BoxCloneService<Request<BufferedBody>, Response<String>, BoxError>;

/// A boxed handler from an async closure over the request.
fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<BufferedBody>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<String>, BoxError>> + Send + 'static,
{
    tower::util::BoxCloneService::new(service_fn(f))
}

fn status(code: StatusCode) -> Result<Response<String>, BoxError> {
    let mut response = Response::new(String::new());
    *response.status_mut() = code;
    Ok(response)
}

/// A handler that counts its calls in `calls` and answers `code`.
fn counting(calls: &Arc<AtomicU32>, code: StatusCode) -> Handler {
    let calls = Arc::clone(calls);
    handler(move |_req| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { status(code) }
    })
}

fn task_id(req: &Request<BufferedBody>) -> String {
    req.extensions()
        .get::<TaskEvent>()
        .expect("TaskEvent in the extensions")
        .id()
        .to_owned()
}

/// The stack payload -> fast-ack -> handler, as a cloneable service.
fn stack(
    layer: FastAckLayer,
    handler: Handler,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl http_body::Body<Data = Bytes, Error = impl std::fmt::Debug>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(handler)
}

#[tokio::test]
async fn the_ack_is_answered_before_the_handler_finishes_over_http() {
    let release = Arc::new(Notify::new());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let layer = FastAckLayer::new();
    let handle = layer.handle();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(handler({
            let release = Arc::clone(&release);
            move |req| {
                let (release, done_tx) = (Arc::clone(&release), done_tx.clone());
                async move {
                    release.notified().await;
                    done_tx.send(task_id(&req)).unwrap();
                    status(StatusCode::OK)
                }
            }
        }));
    let app = axum::Router::new().route_service("/callback", service);
    let addr = common::serve_axum(app).await;
    handle.started().await;

    let body = common::fixture("completed-video");
    // The handler is blocked until after the answer: an ack that waited
    // for it would never come (the timeout only turns that hang into a
    // failure).
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        common::post(addr, "/callback", Some("application/json"), &body),
    )
    .await
    .expect("the ack did not wait for the handler");
    assert_eq!(response.status, 202, "{}", response.body);
    let json = response.json();
    assert_eq!(json["status"], "accepted");
    assert_eq!(json["id"], "task_01KBS40K78KGHZ9SDBWQSGSXRK");
    assert!(json["seq"].is_u64());

    // The 2xx is here and the handler is still blocked.
    assert!(done_rx.try_recv().is_err());
    until("the handler runs", || handle.stats().in_flight == 1).await;
    assert_eq!(handle.stats().processed, 0);
    release.notify_one();
    assert_eq!(
        done_rx.recv().await.unwrap(),
        "task_01KBS40K78KGHZ9SDBWQSGSXRK"
    );
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(handle.stats().accepted, 1);
}

#[tokio::test]
async fn a_full_queue_answers_503_and_journals_nothing() {
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let journal = MemoryJournal::new();
    let layer = FastAckLayer::new()
        .journal(journal.clone())
        .capacity(2)
        .concurrency(1)
        .retry_after(Duration::from_secs(7));
    let handle = layer.handle();
    let service = stack(
        layer.clone(),
        handler({
            let (gate, seen) = (Arc::clone(&gate), Arc::clone(&seen));
            move |req| {
                let (gate, seen) = (Arc::clone(&gate), Arc::clone(&seen));
                async move {
                    gate.acquire().await.unwrap().forget();
                    seen.lock().unwrap().push(task_id(&req));
                    status(StatusCode::OK)
                }
            }
        }),
    );
    handle.started().await;

    assert_eq!(send(&service, "task_1").await.status, StatusCode::ACCEPTED);
    assert_eq!(send(&service, "task_2").await.status, StatusCode::ACCEPTED);
    let full = send(&service, "task_3").await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.retry_after.as_deref(), Some("7"));
    assert_eq!(full.json["error"]["code"], "queue_full");

    // The refused event is not in the journal: only the two accepted ones.
    let pending: Vec<String> = journal
        .pending()
        .await
        .unwrap()
        .iter()
        .map(|e| e.task_id().unwrap().to_owned())
        .collect();
    assert_eq!(pending, ["task_1", "task_2"]);
    assert_eq!(handle.stats().rejected_full, 1);

    gate.add_permits(2);
    until("both processed", || handle.stats().processed == 2).await;
    assert_eq!(*seen.lock().unwrap(), ["task_1", "task_2"]);
    assert!(journal.is_empty());

    // The provider retries the 503 and now it is accepted and processed.
    assert_eq!(send(&service, "task_3").await.status, StatusCode::ACCEPTED);
    gate.add_permits(1);
    until("the retry processed", || handle.stats().processed == 3).await;
    assert_eq!(*seen.lock().unwrap(), ["task_1", "task_2", "task_3"]);
    assert_eq!(handle.stats().accepted, 3);
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_then_dead_letter_then_replay_succeeds() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let failing = Arc::new(AtomicBool::new(true));
    let journal = MemoryJournal::new();
    let notified = Arc::new(Mutex::new(Vec::new()));
    let layer = FastAckLayer::new()
        .journal(journal.clone())
        .retry(
            RetryPolicy::new()
                .attempts(4)
                .base_delay(Duration::from_millis(100))
                .max_delay(Duration::from_millis(250))
                .jitter(false),
        )
        .on_dead_letter({
            let notified = Arc::clone(&notified);
            move |letter: &DeadLetter| notified.lock().unwrap().push(letter.seq())
        });
    let handle = layer.handle();
    let mut dead_letters = handle.subscribe_dead_letters();
    let service = stack(
        layer,
        handler({
            let (attempts, failing) = (Arc::clone(&attempts), Arc::clone(&failing));
            move |_req| {
                let (attempts, failing) = (Arc::clone(&attempts), Arc::clone(&failing));
                async move {
                    attempts.lock().unwrap().push(Instant::now());
                    if failing.load(Ordering::SeqCst) {
                        status(StatusCode::BAD_GATEWAY)
                    } else {
                        status(StatusCode::NO_CONTENT)
                    }
                }
            }
        }),
    );
    handle.started().await;

    let ack = send(&service, "task_retry").await;
    assert_eq!(ack.status, StatusCode::ACCEPTED);
    let letter = dead_letters.recv().await.unwrap();

    // Four attempts, 100 ms, 200 ms, then 250 ms (the cap) apart.
    let times = attempts.lock().unwrap().clone();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        [100, 200, 250].map(Duration::from_millis),
        "attempt schedule"
    );
    assert_eq!(letter.seq(), ack.json["seq"].as_u64().unwrap());
    assert_eq!(letter.task_id(), Some("task_retry"));
    assert_eq!(letter.attempts(), 4);
    assert_eq!(
        letter.failure(),
        &Failure::status(StatusCode::BAD_GATEWAY, "")
    );
    assert_eq!(letter.method(), http::Method::POST);
    assert_eq!(letter.uri(), "/callback");
    assert_eq!(letter.headers()["content-type"], "application/json");
    assert!(letter.body().starts_with(b"{\"code\":200"));
    assert_eq!(*notified.lock().unwrap(), [letter.seq()]);
    assert_eq!(handle.dead_letters().len(), 1);
    let stats = handle.stats();
    assert_eq!(
        (stats.failed_attempts, stats.retried, stats.dead_lettered),
        (4, 3, 1)
    );
    // In the journal as a dead letter, no longer pending.
    assert!(journal.is_empty());
    assert_eq!(journal.dead_letter_count(), 1);

    // The handler is fixed: replay it through the journal and the queue.
    failing.store(false, Ordering::SeqCst);
    let new_seq = handle.replay(letter.seq()).await.unwrap();
    assert_ne!(new_seq, letter.seq());
    until("the replay processed", || handle.stats().processed == 1).await;
    assert_eq!(attempts.lock().unwrap().len(), 5);
    assert!(handle.dead_letters().is_empty());
    assert_eq!(journal.dead_letter_count(), 0);
    assert!(journal.is_empty());
    assert_eq!(handle.stats().replayed, 1);
    assert!(matches!(
        handle.replay(letter.seq()).await,
        Err(taskhook::fast_ack::ReplayError::NotFound(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn dead_letters_are_bounded_and_can_be_dismissed_or_all_replayed() {
    let journal = MemoryJournal::new();
    let failing = Arc::new(AtomicBool::new(true));
    let layer = FastAckLayer::new()
        .journal(journal.clone())
        .concurrency(1)
        .dead_letter_capacity(2)
        .retry(RetryPolicy::new().attempts(1));
    let handle = layer.handle();
    let service = stack(
        layer,
        handler({
            let failing = Arc::clone(&failing);
            move |_req| {
                let failing = failing.load(Ordering::SeqCst);
                async move {
                    match failing {
                        true => status(StatusCode::SERVICE_UNAVAILABLE),
                        false => status(StatusCode::OK),
                    }
                }
            }
        }),
    );
    handle.started().await;
    for id in ["task_1", "task_2", "task_3", "task_4"] {
        send(&service, id).await;
    }
    until("all dead", || handle.stats().dead_lettered == 4).await;

    // The oldest two were dropped (and counted), in memory and in the journal.
    let ids = |letters: Vec<DeadLetter>| -> Vec<String> {
        letters
            .iter()
            .map(|l| l.task_id().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(handle.dead_letters()), ["task_3", "task_4"]);
    assert_eq!(handle.stats().dead_letters_dropped, 2);
    assert_eq!(
        ids(journal.dead_letters().await.unwrap()),
        ["task_3", "task_4"]
    );

    let task_3 = handle.dead_letters()[0].seq();
    assert_eq!(handle.dead_letter(task_3).unwrap().attempts(), 1);
    let dismissed = handle.dismiss(task_3).await.unwrap().unwrap();
    assert_eq!(dismissed.task_id(), Some("task_3"));
    assert!(handle.dismiss(task_3).await.unwrap().is_none());
    assert_eq!(journal.dead_letter_count(), 1);

    failing.store(false, Ordering::SeqCst);
    assert_eq!(handle.replay_all().await.unwrap(), 1);
    until("replayed", || handle.stats().processed == 1).await;
    assert!(handle.dead_letters().is_empty());
    assert_eq!(journal.dead_letter_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_under_the_exponential_bound() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let policy = RetryPolicy::new()
        .attempts(6)
        .base_delay(Duration::from_secs(1))
        .max_delay(Duration::from_secs(8));
    let layer = FastAckLayer::new().retry(policy);
    let handle = layer.handle();
    let mut dead_letters = handle.subscribe_dead_letters();
    let service = stack(
        layer,
        handler({
            let attempts = Arc::clone(&attempts);
            move |_req| {
                let attempts = Arc::clone(&attempts);
                async move {
                    attempts.lock().unwrap().push(Instant::now());
                    Err::<Response<String>, BoxError>("database down".into())
                }
            }
        }),
    );
    handle.started().await;
    for i in 0..20 {
        send(&service, &format!("task_{i}")).await;
    }
    for _ in 0..20 {
        let letter = dead_letters.recv().await.unwrap();
        assert_eq!(letter.failure(), &Failure::Error("database down".into()));
    }
    // Per event the gaps are unknown, but the total of 5 delays is bounded
    // by 1 + 2 + 4 + 8 + 8 s, and all 20 events together spread out.
    let times = attempts.lock().unwrap().clone();
    assert_eq!(times.len(), 20 * 6);
    let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    assert!(span <= Duration::from_secs(23), "{span:?}");
    let distinct: HashSet<Instant> = times.iter().copied().collect();
    assert!(distinct.len() > 20, "jitter spreads the retries");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_is_retried_and_then_dead_lettered() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = FastAckLayer::new().retry(RetryPolicy::new().attempts(3));
    let handle = layer.handle();
    let mut dead_letters = handle.subscribe_dead_letters();
    let service = stack(
        layer,
        handler({
            let calls = Arc::clone(&calls);
            move |req| {
                let calls = Arc::clone(&calls);
                async move {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    let id = task_id(&req);
                    if id == "task_always" || n == 0 {
                        panic!("boom in {id}");
                    }
                    status(StatusCode::OK)
                }
            }
        }),
    );
    handle.started().await;

    // The first attempt panics, the second succeeds.
    send(&service, "task_once").await;
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let stats = handle.stats();
    assert_eq!((stats.failed_attempts, stats.retried), (1, 1));

    // Every attempt panics: a dead letter, and the workers are still alive.
    send(&service, "task_always").await;
    let letter = dead_letters.recv().await.unwrap();
    assert_eq!(
        letter.failure(),
        &Failure::Panic("boom in task_always".into())
    );
    assert_eq!(letter.attempts(), 3);
    send(&service, "task_after").await;
    until("processed after the panics", || {
        handle.stats().processed == 2
    })
    .await;
}

/// A service that panics in `poll_ready` on its first readiness check and in
/// `call` on its first call.
#[derive(Clone, Default)]
struct PanicsOnce {
    polls: Arc<AtomicU32>,
    calls: Arc<AtomicU32>,
}

impl Service<Request<BufferedBody>> for PanicsOnce {
    type Response = Response<String>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Response<String>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.polls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("boom in poll_ready");
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<BufferedBody>) -> Self::Future {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("boom in call");
        }
        std::future::ready(status(StatusCode::OK))
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_panicking_in_poll_ready_or_call_fails_an_attempt_and_the_worker_goes_on() {
    let service = PanicsOnce::default();
    let layer = FastAckLayer::new()
        .concurrency(1)
        .retry(RetryPolicy::new().attempts(3));
    let handle = layer.handle();
    let mut dead_letters = handle.subscribe_dead_letters();
    let stack = stack(layer, tower::util::BoxCloneService::new(service.clone()));
    handle.started().await;

    // Attempt 1 panics in `poll_ready`, attempt 2 in `call`, attempt 3 runs.
    send(&stack, "task_panics").await;
    until("processed", || handle.stats().processed == 1).await;
    let stats = handle.stats();
    assert_eq!((stats.failed_attempts, stats.retried), (2, 2));
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);

    // The one worker is still there.
    send(&stack, "task_after").await;
    until("processed after the panics", || {
        handle.stats().processed == 2
    })
    .await;
    assert!(dead_letters.try_recv().is_err());
}

/// A worker runs the attempts in its own task: with a handler that is
/// always ready they never wait, yet they yield now and then, so acks on
/// the same thread are not held up until the whole queue is drained.
#[tokio::test(flavor = "current_thread")]
async fn workers_draining_a_long_queue_let_acks_through() {
    const QUEUED: u64 = 500;
    let layer = FastAckLayer::new().concurrency(1).capacity(1000);
    let handle = layer.handle();
    let service = stack(layer, handler(|_| async { status(StatusCode::OK) }));
    handle.started().await;
    // No await in here waits: the events are queued, the worker has not run.
    for i in 0..QUEUED {
        assert_eq!(
            send(&service, &format!("task_{i}")).await.status,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(handle.stats().processed, 0);

    let ack = tokio::spawn({
        let (service, handle) = (service.clone(), handle.clone());
        async move {
            let answer = send(&service, "task_late").await;
            (answer.status, handle.stats().processed)
        }
    });
    let (status, processed_before_the_ack) = ack.await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(
        processed_before_the_ack < QUEUED,
        "the ack waited for {processed_before_the_ack} jobs"
    );
    until("drained", || handle.stats().processed == QUEUED + 1).await;
}

/// A handler that answers `code` with `body`.
fn answering(calls: &Arc<AtomicU32>, code: StatusCode, body: &'static str) -> Handler {
    let calls = Arc::clone(calls);
    handler(move |_req| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut response = Response::new(body.to_owned());
            *response.status_mut() = code;
            Ok(response)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_4xx_from_the_handler_is_a_dead_letter_never_retried_nor_processed() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = FastAckLayer::new();
    let handle = layer.handle();
    let mut letters = handle.subscribe_dead_letters();
    let service = stack(
        layer,
        answering(
            &calls,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Failed to deserialize the JSON body: missing field `tenant`",
        ),
    );
    handle.started().await;
    assert_eq!(
        send(&service, "task_4xx").await.status,
        StatusCode::ACCEPTED
    );
    let letter = letters.recv().await.unwrap();
    assert_eq!(letter.task_id(), Some("task_4xx"));
    assert_eq!(letter.attempts(), 1);
    assert_eq!(
        letter.failure(),
        &Failure::status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Failed to deserialize the JSON body: missing field `tenant`"
        )
    );
    assert!(letter.failure().is_refusal());
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a refusal is not retried");
    let stats = handle.stats();
    assert_eq!(
        (
            stats.refused,
            stats.processed,
            stats.dead_lettered,
            stats.dead_letters
        ),
        (1, 0, 0, 1),
        "{stats:?}"
    );
    // Replayed once the handler is fixed (here: it still refuses).
    handle.replay(letter.seq()).await.unwrap();
    until("refused again", || handle.stats().refused == 2).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn with_dead_letter_refusals_off_a_4xx_is_done_counted_refused_not_processed() {
    let calls = Arc::new(AtomicU32::new(0));
    let journal = MemoryJournal::new();
    let layer = FastAckLayer::new()
        .journal(journal.clone())
        .dead_letter_refusals(false);
    let handle = layer.handle();
    let service = stack(layer, answering(&calls, StatusCode::BAD_REQUEST, ""));
    handle.started().await;
    send(&service, "task_4xx").await;
    until("refused", || handle.stats().refused == 1).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    let stats = handle.stats();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!((stats.processed, stats.dead_letters), (0, 0), "{stats:?}");
    assert!(journal.is_empty(), "marked done in the journal");
}

#[tokio::test(start_paused = true)]
async fn a_failure_keeps_the_start_of_the_answer_body() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = FastAckLayer::new().retry(RetryPolicy::new().attempts(2));
    let handle = layer.handle();
    let mut letters = handle.subscribe_dead_letters();
    let long: &'static str = "x".repeat(2000).leak();
    let service = stack(layer, answering(&calls, StatusCode::BAD_GATEWAY, long));
    handle.started().await;
    send(&service, "task_long").await;
    let letter = letters.recv().await.unwrap();
    let Failure::Status { status, body } = letter.failure() else {
        panic!("{:?}", letter.failure());
    };
    assert_eq!(*status, StatusCode::BAD_GATEWAY);
    assert_eq!(body.len(), 512 + '…'.len_utf8(), "cut at 512 bytes");
    assert!(body.ends_with('…'));
    assert_eq!(letter.attempts(), 2);
    assert!(letter
        .failure()
        .to_string()
        .starts_with("the handler answered 502 Bad Gateway: xxx"));
}

#[tokio::test(start_paused = true)]
async fn each_attempt_carries_its_number_and_seq() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = FastAckLayer::new().retry(RetryPolicy::new().attempts(3));
    let handle = layer.handle();
    let service = stack(
        layer,
        handler({
            let seen = Arc::clone(&seen);
            move |req| {
                let attempt = req.extensions().get::<Attempt>().cloned().unwrap();
                seen.lock().unwrap().push(attempt.clone());
                async move {
                    status(if attempt.number() < 3 {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    })
                }
            }
        }),
    );
    handle.started().await;
    let answer = send(&service, "task_attempts").await;
    let seq = answer.json["seq"].as_u64().unwrap();
    until("processed", || handle.stats().processed == 1).await;
    let seen = seen.lock().unwrap();
    let numbers: Vec<_> = seen.iter().map(|a| a.number()).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert!(seen
        .iter()
        .all(|a| a.seq() == seq && a.task_id() == Some("task_attempts")));
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_the_queue_then_refuses() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = FastAckLayer::new().concurrency(2);
    let handle = layer.handle();
    let service = stack(
        layer,
        handler({
            let seen = Arc::clone(&seen);
            move |req| {
                let seen = Arc::clone(&seen);
                async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    seen.lock().unwrap().push(task_id(&req));
                    status(StatusCode::OK)
                }
            }
        }),
    );
    handle.started().await;
    for i in 0..10 {
        assert_eq!(
            send(&service, &format!("task_{i}")).await.status,
            StatusCode::ACCEPTED
        );
    }
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert!(report.drained);
    assert_eq!(report.left(), 0);
    assert_eq!(seen.lock().unwrap().len(), 10);
    assert_eq!(handle.stats().processed, 10);

    let refused = send(&service, "task_late").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.json["error"]["code"], "shutting_down");
    assert!(refused.retry_after.is_some());
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_what_the_deadline_left_and_the_journal_keeps_it() {
    let journal = MemoryJournal::new();
    let layer = FastAckLayer::new()
        .journal(journal.clone())
        .concurrency(1)
        .retry(
            RetryPolicy::new()
                .base_delay(Duration::from_secs(100))
                .jitter(false),
        );
    let handle = layer.handle();
    let service = stack(
        layer,
        handler(|req| async move {
            match task_id(&req).as_str() {
                "task_fails" => status(StatusCode::INTERNAL_SERVER_ERROR),
                _ => std::future::pending().await,
            }
        }),
    );
    handle.started().await;
    let fails = send(&service, "task_fails").await.json["seq"]
        .as_u64()
        .unwrap();
    until("the failure waits for its retry", || {
        handle.stats().waiting_retry == 1
    })
    .await;
    let stuck = send(&service, "task_stuck").await.json["seq"]
        .as_u64()
        .unwrap();
    let queued = send(&service, "task_queued").await.json["seq"]
        .as_u64()
        .unwrap();
    until("the stuck one runs", || handle.stats().in_flight == 1).await;

    let started_at = Instant::now();
    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(started_at.elapsed(), Duration::from_secs(5));
    assert!(!report.drained);
    assert_eq!(report.in_flight, [stuck]);
    assert_eq!(report.queued, [queued]);
    assert_eq!(report.waiting_retry, [fails]);
    assert_eq!(report.left(), 3);

    // All three stay pending in the journal, for the next start.
    let pending: Vec<u64> = journal
        .pending()
        .await
        .unwrap()
        .iter()
        .map(Entry::seq)
        .collect();
    assert_eq!(pending, [fails, stuck, queued]);
    // The retry timer was cancelled with the workers.
    tokio::time::sleep(Duration::from_secs(1000)).await;
    assert_eq!(handle.stats().failed_attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn pending_entries_are_replayed_in_order_before_new_intake() {
    let journal = MemoryJournal::new();

    // A first process accepts five events and dies before processing them.
    let first = FastAckLayer::new().journal(journal.clone()).concurrency(1);
    let first_handle = first.handle();
    let stuck = stack(first, handler(|_| std::future::pending()));
    first_handle.started().await;
    for i in 1..=5 {
        send(&stuck, &format!("task_{i}")).await;
    }
    first_handle.shutdown(Duration::ZERO).await;
    assert_eq!(journal.len(), 5);

    // The next process runs them, in order, before anything new.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let second = FastAckLayer::new().journal(journal.clone()).concurrency(1);
    let handle = second.handle();
    let service = stack(
        second,
        handler({
            let seen = Arc::clone(&seen);
            move |req| {
                seen.lock().unwrap().push(task_id(&req));
                async { status(StatusCode::OK) }
            }
        }),
    );
    let early = send(&service, "task_early").await;
    assert_eq!(early.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(early.json["error"]["code"], "starting");

    handle.started().await;
    assert_eq!(send(&service, "task_6").await.status, StatusCode::ACCEPTED);
    until("all processed", || handle.stats().processed == 6).await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["task_1", "task_2", "task_3", "task_4", "task_5", "task_6"]
    );
    assert_eq!(handle.stats().recovered, 5);
    assert!(journal.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_during_the_start_up_replay_still_drains_it() {
    let journal = MemoryJournal::new();
    let first = FastAckLayer::new().journal(journal.clone()).concurrency(1);
    let first_handle = first.handle();
    let stuck = stack(first, handler(|_| std::future::pending()));
    first_handle.started().await;
    for i in 1..=3 {
        send(&stuck, &format!("task_{i}")).await;
    }
    first_handle.shutdown(Duration::ZERO).await;

    let calls = Arc::new(AtomicU32::new(0));
    let second = FastAckLayer::new().journal(journal.clone());
    let handle = second.handle();
    let _service = stack(second, counting(&calls, StatusCode::OK));
    // No `started().await`: the shutdown comes while the replay starts.
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert!(report.drained);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(handle.stats().recovered, 3);
    assert!(journal.is_empty());
}

/// A journal whose appends fail on demand, and that knows some task ids
/// already (as a journal that deduplicates would).
#[derive(Debug, Clone, Default)]
struct FlakyJournal {
    inner: MemoryJournal,
    fail_appends: Arc<AtomicBool>,
    known: Arc<Mutex<HashSet<String>>>,
    /// Appends take 5 s (tokio time), a disk stall.
    stall_appends: Arc<AtomicBool>,
    /// Appends panic.
    panic_appends: Arc<AtomicBool>,
    /// Appends begun.
    appends: Arc<AtomicU32>,
    /// Appends answer two outcomes per record (both appended), a journal bug.
    double_appends: Arc<AtomicBool>,
}

impl Journal for FlakyJournal {
    fn append(&self, records: Vec<Record>) -> BoxFuture<'_, Result<Vec<Appended>, JournalError>> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        if self.panic_appends.load(Ordering::SeqCst) {
            panic!("journal bug");
        }
        if self.stall_appends.load(Ordering::SeqCst) {
            return Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                self.inner.append(records).await
            });
        }
        if self.fail_appends.load(Ordering::SeqCst) {
            let error = std::io::Error::other("disk full");
            return Box::pin(async move { Err(JournalError::Io(error)) });
        }
        let known = self.known.lock().unwrap();
        if records.iter().all(|r| known.contains(r.task_id().unwrap())) {
            let duplicates = vec![Appended::Duplicate; records.len()];
            return Box::pin(async move { Ok(duplicates) });
        }
        drop(known);
        if self.double_appends.load(Ordering::SeqCst) {
            return Box::pin(async move {
                let mut outcomes = self.inner.append(records.clone()).await?;
                outcomes.extend(self.inner.append(records).await?);
                Ok(outcomes)
            });
        }
        self.inner.append(records)
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

#[tokio::test]
async fn a_failed_append_is_503_and_the_handler_never_runs() {
    let journal = FlakyJournal::default();
    journal.fail_appends.store(true, Ordering::SeqCst);
    let calls = Arc::new(AtomicU32::new(0));
    let layer = FastAckLayer::new().journal(journal.clone()).capacity(1);
    let handle = layer.handle();
    let service = stack(layer, counting(&calls, StatusCode::OK));
    handle.started().await;
    for _ in 0..3 {
        let answer = send(&service, "task_disk").await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.json["error"]["code"], "journal_unavailable");
        assert_eq!(answer.retry_after.as_deref(), Some("10"));
    }
    let stats = handle.stats();
    assert_eq!((stats.accepted, stats.rejected_unavailable), (0, 3));

    // The slot of each failed append was given back (capacity is 1).
    journal.fail_appends.store(false, Ordering::SeqCst);
    assert_eq!(
        send(&service, "task_disk").await.status,
        StatusCode::ACCEPTED
    );
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A journal that answers a wrong number of outcomes for the one record of
/// a request: what it appended is withdrawn, and the provider is told to
/// retry (`503`), as for any failed append; nothing runs.
#[tokio::test]
async fn an_append_with_a_wrong_number_of_outcomes_is_withdrawn_and_503() {
    let journal = FlakyJournal::default();
    journal.double_appends.store(true, Ordering::SeqCst);
    let calls = Arc::new(AtomicU32::new(0));
    let layer = FastAckLayer::new().journal(journal.clone());
    let handle = layer.handle();
    let service = stack(layer, counting(&calls, StatusCode::OK));
    handle.started().await;
    let answer = send(&service, "task_twice").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json["error"]["code"], "journal_unavailable");
    assert_eq!(answer.retry_after.as_deref(), Some("10"));
    assert_eq!(journal.appends.load(Ordering::SeqCst), 1);
    assert!(journal.inner.is_empty(), "both appended entries withdrawn");
    assert_eq!(handle.stats().accepted, 0);

    journal.double_appends.store(false, Ordering::SeqCst);
    assert_eq!(
        send(&service, "task_twice").await.status,
        StatusCode::ACCEPTED
    );
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// The client goes away (a timeout layer outside drops the response future)
/// while the journal append is stalled: the append and the enqueue still
/// finish, so the event is journaled, queued and processed, not left
/// journaled and never run.
#[tokio::test(start_paused = true)]
async fn an_accept_whose_client_left_mid_append_is_still_queued_and_processed() {
    let journal = FlakyJournal::default();
    journal.stall_appends.store(true, Ordering::SeqCst);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = FastAckLayer::new().journal(journal.clone());
    let handle = layer.handle();
    let service = stack(
        layer,
        handler({
            let seen = Arc::clone(&seen);
            move |req| {
                seen.lock().unwrap().push(task_id(&req));
                async { status(StatusCode::OK) }
            }
        }),
    );
    handle.started().await;
    let outer = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .service(service.clone());
    let Err(error) = outer.oneshot(callback("task_gone")).await else {
        panic!("answered although the append stalls");
    };
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
    assert_eq!(journal.appends.load(Ordering::SeqCst), 1);
    assert_eq!(handle.stats().accepted, 0, "the append is still stalled");

    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(*seen.lock().unwrap(), ["task_gone"]);
    assert_eq!(handle.stats().accepted, 1);
    assert!(journal.inner.is_empty(), "completed in the journal");
}

/// The runtime shuts down while an accept waits for a stalled append: the
/// request's task is dropped, the accept's hand-over to a task of its own
/// ends with the runtime, and nothing hangs.
#[test]
fn a_runtime_shutting_down_mid_append_drops_the_accept_cleanly() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let journal = FlakyJournal::default();
    journal.stall_appends.store(true, Ordering::SeqCst);
    let layer = FastAckLayer::new().journal(journal.clone());
    let handle = layer.handle();
    let service = rt.block_on(async {
        let service = stack(layer, handler(|_| async { status(StatusCode::OK) }));
        handle.started().await;
        service
    });
    let request = rt.spawn(async move { send(&service, "task_stalled").await.status });
    rt.block_on(until("the append began", || {
        journal.appends.load(Ordering::SeqCst) == 1
    }));
    drop(rt);
    assert!(request.is_finished());
    assert_eq!(handle.stats().accepted, 0);
}

/// A journal that panics in `append` fails that one accept with a `503`
/// (the provider retries); the slot is given back and the layer goes on.
#[tokio::test]
async fn a_panicking_journal_append_is_503_and_frees_its_slot() {
    let journal = FlakyJournal::default();
    journal.panic_appends.store(true, Ordering::SeqCst);
    let layer = FastAckLayer::new().journal(journal.clone()).capacity(1);
    let handle = layer.handle();
    let service = stack(layer, handler(|_| async { status(StatusCode::OK) }));
    handle.started().await;
    for _ in 0..2 {
        let answer = send(&service, "task_bug").await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.json["error"]["code"], "accept_failed");
        assert_eq!(answer.retry_after.as_deref(), Some("10"));
    }
    journal.panic_appends.store(false, Ordering::SeqCst);
    assert_eq!(
        send(&service, "task_bug").await.status,
        StatusCode::ACCEPTED
    );
    until("processed", || handle.stats().processed == 1).await;
}

#[tokio::test]
async fn a_journal_that_knows_the_task_answers_200_duplicate_and_queues_nothing() {
    let journal = FlakyJournal::default();
    journal.known.lock().unwrap().insert("task_seen".to_owned());
    let calls = Arc::new(AtomicU32::new(0));
    let layer = FastAckLayer::new().journal(journal.clone()).capacity(1);
    let handle = layer.handle();
    let service = stack(layer, counting(&calls, StatusCode::OK));
    handle.started().await;
    for _ in 0..2 {
        let answer = send(&service, "task_seen").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json["status"], "duplicate");
        assert_eq!(answer.json["id"], "task_seen");
    }
    let stats = handle.stats();
    assert_eq!((stats.accepted, stats.duplicates, stats.queued), (0, 2, 0));
    // The reserved slot was given back: a new task is accepted.
    assert_eq!(
        send(&service, "task_new").await.status,
        StatusCode::ACCEPTED
    );
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(journal.inner.is_empty());
}

#[tokio::test(start_paused = true)]
async fn thousands_of_events_with_random_failures_are_all_accounted_for() {
    const EVENTS: usize = 3000;
    let journal = MemoryJournal::new();
    let successes = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let layer = FastAckLayer::new()
        .journal(journal.clone())
        .capacity(256)
        .concurrency(8)
        .dead_letter_capacity(EVENTS)
        .retry(
            RetryPolicy::new()
                .attempts(3)
                .base_delay(Duration::from_millis(20)),
        );
    let handle = layer.handle();
    let service = stack(
        layer,
        handler({
            let successes = Arc::clone(&successes);
            move |req| {
                let successes = Arc::clone(&successes);
                async move {
                    let id = task_id(&req);
                    // A cheap random draw per attempt.
                    let roll = fastish_random() % 100;
                    tokio::time::sleep(Duration::from_millis(roll % 7)).await;
                    match roll {
                        0..=19 => status(StatusCode::SERVICE_UNAVAILABLE),
                        20..=29 => Err("handler error".into()),
                        30..=34 => panic!("handler panic"),
                        _ => {
                            *successes.lock().unwrap().entry(id).or_default() += 1;
                            status(StatusCode::OK)
                        }
                    }
                }
            }
        }),
    );
    handle.started().await;

    // Send everything as the provider would, retrying each 503.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..EVENTS {
        let service = service.clone();
        tasks.spawn(async move {
            let id = format!("task_{i:05}");
            let mut refused = 0u32;
            loop {
                let answer = send(&service, &id).await;
                match answer.status {
                    StatusCode::ACCEPTED => return (id, refused),
                    StatusCode::SERVICE_UNAVAILABLE => {
                        assert_eq!(answer.json["error"]["code"], "queue_full");
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => panic!("unexpected {other}"),
                }
            }
        });
    }
    let mut refused = 0u64;
    let mut accepted = HashSet::new();
    while let Some(done) = tasks.join_next().await {
        let (id, r) = done.unwrap();
        refused += u64::from(r);
        assert!(accepted.insert(id));
    }
    let report = handle.shutdown(Duration::from_secs(3600)).await;
    assert!(report.drained);

    let stats = handle.stats();
    let successes = successes.lock().unwrap();
    let dead: HashSet<String> = handle
        .dead_letters()
        .iter()
        .map(|l| l.task_id().unwrap().to_owned())
        .collect();
    // Every event processed exactly once, or dead-lettered, never both.
    assert!(successes.values().all(|&n| n == 1));
    assert!(successes.keys().all(|id| !dead.contains(id)));
    assert_eq!(successes.len() + dead.len(), EVENTS);
    assert_eq!(accepted.len(), EVENTS);
    assert_eq!(stats.accepted, EVENTS as u64);
    assert_eq!(stats.processed, successes.len() as u64);
    assert_eq!(stats.dead_lettered, dead.len() as u64);
    assert_eq!(stats.rejected_full, refused);
    assert!(refused > 0, "the queue filled up at least once");
    assert!(!dead.is_empty(), "some events failed three times");
    assert_eq!(
        stats.failed_attempts,
        stats.retried + stats.dead_lettered,
        "every failure was retried or dead-lettered"
    );
    assert_eq!(
        (stats.queued, stats.in_flight, stats.waiting_retry),
        (0, 0, 0)
    );
    // The journal agrees: nothing pending, every dead letter kept.
    assert!(journal.is_empty());
    assert_eq!(journal.dead_letter_count(), dead.len());
}

/// xorshift on a thread-local seed: enough for a test's coin flips.
fn fastish_random() -> u64 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0x2545_F491_4F6C_DD1D) });
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

/// A stand-in for the dedup layer, in front of fast-ack: a task id whose
/// request got a 2xx is "done", and a later push of it is answered 200
/// without reaching fast-ack.
#[derive(Clone)]
struct MiniDedup<S> {
    inner: S,
    done: Arc<Mutex<HashSet<String>>>,
}

impl<S, B> Service<Request<BufferedBody>> for MiniDedup<S>
where
    S: Service<Request<BufferedBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Option<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<BufferedBody>) -> Self::Future {
        let id = task_id(&req);
        let done = Arc::clone(&self.done);
        if done.lock().unwrap().contains(&id) {
            return Box::pin(async { Ok(Response::new(None)) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = fut.await?;
            if response.status().is_success() {
                done.lock().unwrap().insert(id);
            }
            Ok(response.map(Some))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn behind_dedup_a_background_failure_is_recovered_by_replay_or_by_the_next_push() {
    let journal = MemoryJournal::new();
    let done = Arc::new(Mutex::new(HashSet::new()));
    let processed = Arc::new(Mutex::new(Vec::new()));
    let failing = Arc::new(AtomicBool::new(true));
    let layer = FastAckLayer::new()
        .journal(journal.clone())
        .retry(RetryPolicy::new().attempts(2))
        // The hook releases the id for task_b only, to show both recoveries.
        .on_dead_letter({
            let done = Arc::clone(&done);
            move |letter: &DeadLetter| {
                if letter.task_id() == Some("task_b") {
                    done.lock().unwrap().remove("task_b");
                }
            }
        });
    let handle = layer.handle();
    let mut dead_letters = handle.subscribe_dead_letters();
    let inner = ServiceBuilder::new().layer(layer).service(handler({
        let (processed, failing) = (Arc::clone(&processed), Arc::clone(&failing));
        move |req| {
            let (processed, failing) = (Arc::clone(&processed), Arc::clone(&failing));
            async move {
                if failing.load(Ordering::SeqCst) {
                    return status(StatusCode::INTERNAL_SERVER_ERROR);
                }
                processed.lock().unwrap().push(task_id(&req));
                status(StatusCode::OK)
            }
        }
    }));
    handle.started().await;
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .service(MiniDedup {
            inner,
            done: Arc::clone(&done),
        });
    let push = |id: &'static str| {
        let service = service.clone();
        async move {
            let response = service.oneshot(callback(id)).await.unwrap();
            response.status()
        }
    };

    // Both accepted (dedup records them done), both fail in the background.
    assert_eq!(push("task_a").await, StatusCode::ACCEPTED);
    assert_eq!(push("task_b").await, StatusCode::ACCEPTED);
    let first = dead_letters.recv().await.unwrap();
    let second = dead_letters.recv().await.unwrap();
    let letter_a = if first.task_id() == Some("task_a") {
        first
    } else {
        second
    };
    failing.store(false, Ordering::SeqCst);

    // task_a: the provider's duplicate push is absorbed by dedup, not
    // journaled again; the dead letter is how it gets processed.
    let journaled = handle.stats().accepted;
    assert_eq!(push("task_a").await, StatusCode::OK);
    assert_eq!(handle.stats().accepted, journaled);
    handle.replay(letter_a.seq()).await.unwrap();

    // task_b: the hook released the id, so the next push goes through.
    assert_eq!(push("task_b").await, StatusCode::ACCEPTED);

    until("both processed", || processed.lock().unwrap().len() == 2).await;
    let mut seen = processed.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["task_a", "task_b"]);
    assert!(journal.is_empty());
}

/// A span's name and its parent's name.
type Named = (String, Option<String>);

/// Records each new span's name with its parent's name.
#[derive(Clone, Default)]
struct SpanTree(Arc<Mutex<Vec<Named>>>);

impl<S> tracing_subscriber::Layer<S> for SpanTree
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = ctx.span(id).unwrap();
        let parent = span.parent().map(|p| p.name().to_owned());
        self.0
            .lock()
            .unwrap()
            .push((span.name().to_owned(), parent));
    }
}

/// The spans that three filters let through, recorded by one global
/// subscriber for the whole test binary: a scoped one (`set_default`) races
/// with tests on other threads that register the same callsites first, and
/// then never sees the spans.
struct Trees {
    all: SpanTree,
    info: SpanTree,
    info_and_attempts: SpanTree,
}

fn trees() -> &'static Trees {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{EnvFilter, Layer};

    static TREES: std::sync::OnceLock<Trees> = std::sync::OnceLock::new();
    TREES.get_or_init(|| {
        let trees = Trees {
            all: SpanTree::default(),
            info: SpanTree::default(),
            info_and_attempts: SpanTree::default(),
        };
        let subscriber = tracing_subscriber::registry()
            .with(trees.all.clone())
            .with(trees.info.clone().with_filter(EnvFilter::new("info")))
            .with(
                trees
                    .info_and_attempts
                    .clone()
                    .with_filter(EnvFilter::new("info,taskhook::fast_ack::attempt=debug")),
            );
        tracing::subscriber::set_global_default(subscriber)
            .expect("the only global subscriber of this test binary");
        trees
    })
}

fn has(tree: &SpanTree, span: &Named) -> bool {
    tree.0.lock().unwrap().contains(span)
}

#[tokio::test]
async fn each_attempt_runs_in_a_debug_span_under_the_request_span() {
    use tracing::Instrument;

    let trees = trees();
    let layer = FastAckLayer::new();
    let handle = layer.handle();
    let service = stack(layer, handler(|_| async { status(StatusCode::OK) }));
    handle.started().await;
    send(&service, "task_traced")
        .instrument(tracing::info_span!("request"))
        .await;
    until("processed", || handle.stats().processed == 1).await;

    let attempt = ("fast_ack.attempt".to_owned(), Some("request".to_owned()));
    assert!(
        has(&trees.all, &attempt),
        "{:?}",
        trees.all.0.lock().unwrap()
    );
    assert!(has(&trees.info_and_attempts, &attempt));
    // A subscriber at INFO makes no span per event (it would cost every
    // event 0.5 to 0.9 µs with `tracing_subscriber::fmt`).
    assert!(has(&trees.info, &("request".to_owned(), None)));
    assert!(
        !trees
            .info
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|(name, _)| name == "fast_ack.attempt"),
        "{:?}",
        trees.info.0.lock().unwrap()
    );
}

#[tokio::test]
async fn without_the_payload_layer_the_answer_is_500() {
    let layer = FastAckLayer::new();
    let handle = layer.handle();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(handler(|_| async { status(StatusCode::OK) }));
    handle.started().await;
    let response = service.oneshot(callback("task_x")).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "payload_layer_missing");
    assert_eq!(handle.stats().accepted, 0);
}

#[tokio::test]
async fn a_layer_drives_one_service_and_a_second_one_answers_500() {
    let layer = FastAckLayer::new();
    let first = stack(layer.clone(), handler(|_| async { status(StatusCode::OK) }));
    let second = stack(layer.clone(), handler(|_| async { status(StatusCode::OK) }));
    layer.handle().started().await;
    assert_eq!(send(&first, "task_1").await.status, StatusCode::ACCEPTED);
    let answer = send(&second, "task_2").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json["error"]["code"], "fast_ack_layer_reused");
}

#[tokio::test]
async fn inner_service_type_is_unconstrained_by_infallible_errors() {
    // A plain `service_fn` with `Infallible` errors works behind the layer.
    let layer = FastAckLayer::new();
    let handle = layer.handle();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(service_fn(|_req: Request<BufferedBody>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    handle.started().await;
    let response = service.oneshot(callback("task_plain")).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    until("processed", || handle.stats().processed == 1).await;
}

/// Workers are woken one at a time (each wakes the next when it leaves jobs
/// behind), so a burst of events whose handler waits still runs on every
/// worker at once, on one thread and on several.
#[tokio::test]
async fn a_burst_runs_on_every_worker_when_the_handler_waits() {
    burst_on_every_worker().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_runs_on_every_worker_when_the_handler_waits_two_threads() {
    burst_on_every_worker().await;
}

async fn burst_on_every_worker() {
    const WORKERS: usize = 4;
    let layer = FastAckLayer::new().concurrency(WORKERS);
    let handle = layer.handle();
    // Every handler waits until all four run at the same time.
    let barrier = Arc::new(tokio::sync::Barrier::new(WORKERS));
    let service = stack(
        layer,
        handler({
            let barrier = Arc::clone(&barrier);
            move |_req| {
                let barrier = Arc::clone(&barrier);
                async move {
                    barrier.wait().await;
                    status(StatusCode::OK)
                }
            }
        }),
    );
    handle.started().await;
    for round in 0..3 {
        for n in 0..WORKERS {
            let answer = send(&service, &format!("task_{round}_{n}")).await;
            assert_eq!(answer.status, StatusCode::ACCEPTED);
        }
        let expected = ((round + 1) * WORKERS) as u64;
        tokio::time::timeout(Duration::from_secs(10), async {
            while handle.stats().processed < expected {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "round {round}: the burst did not run on {WORKERS} workers at once: {:?}",
                handle.stats()
            )
        });
    }
}

#[tokio::test(start_paused = true)]
async fn stats_dead_letters_and_the_shutdown_report_serialize_to_json() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = FastAckLayer::new();
    let handle = layer.handle();
    let service = stack(
        layer,
        answering(&calls, StatusCode::BAD_REQUEST, "no tenant"),
    );
    handle.started().await;
    send(&service, "task_json").await;
    until("refused", || handle.stats().refused == 1).await;

    let stats = serde_json::to_value(handle.stats()).unwrap();
    assert_eq!(stats["accepted"], 1);
    assert_eq!(stats["refused"], 1);
    assert_eq!(stats["processed"], 0);
    assert_eq!(stats["dead_letters"], 1);

    let letter = serde_json::to_value(&handle.dead_letters()[0]).unwrap();
    assert_eq!(letter["task_id"], "task_json");
    assert_eq!(letter["attempts"], 1);
    assert_eq!(
        letter["failure"],
        serde_json::json!({"kind": "status", "status": 400, "body": "no tenant"})
    );
    assert_eq!(letter["method"], "POST");
    assert_eq!(letter["uri"], "/callback");
    assert_eq!(letter["payload"]["data"]["id"], "task_json");
    assert!(letter["failed_at_ms"].as_u64().unwrap() > 1_700_000_000_000);
    assert!(letter.get("headers").is_none(), "headers may carry secrets");

    let report = serde_json::to_value(handle.shutdown(Duration::from_secs(1)).await).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"drained": true, "queued": [], "in_flight": [], "waiting_retry": []})
    );
}
