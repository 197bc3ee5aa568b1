//! The workers: a panicking handler fails one attempt and the worker goes
//! on, a long queue lets acks through, a burst runs on every worker.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use taskhook::body::BufferedBody;
use taskhook::fast_ack::{Failure, FastAckLayer, RetryPolicy};
use tower::{BoxError, Service};

use crate::common::{send, until};
use crate::support::{handler, stack, status, task_id};

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_is_retried_and_then_dead_lettered() {
    let calls = Arc::new(AtomicU32::new(0));
    let (layer, handle) = FastAckLayer::builder()
        .retry(RetryPolicy::new().attempts(3))
        .build();
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
    let (layer, handle) = FastAckLayer::builder()
        .concurrency(1)
        .retry(RetryPolicy::new().attempts(3))
        .build();
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
    let (layer, handle) = FastAckLayer::builder()
        .concurrency(1)
        .capacity(1000)
        .build();
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
    let (layer, handle) = FastAckLayer::builder().concurrency(WORKERS).build();
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
