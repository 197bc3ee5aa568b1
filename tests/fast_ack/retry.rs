//! Failed attempts are retried on a bounded, jittered back-off; each attempt
//! knows its number; a failure keeps the start of the handler's answer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Response, StatusCode};
use taskhook::fast_ack::journal::MemoryJournal;
use taskhook::fast_ack::{Attempt, DeadLetter, Failure, FastAckLayer, RetryPolicy};
use tokio::time::Instant;
use tower::BoxError;

use crate::common::{send, until};
use crate::support::{answering, handler, stack, status};

#[tokio::test(start_paused = true)]
async fn retries_back_off_then_dead_letter_then_replay_succeeds() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let failing = Arc::new(AtomicBool::new(true));
    let journal = MemoryJournal::new();
    let notified = Arc::new(Mutex::new(Vec::new()));
    let (layer, handle) = FastAckLayer::builder()
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
        })
        .build();
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
async fn jittered_delays_stay_under_the_exponential_bound() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let policy = RetryPolicy::new()
        .attempts(6)
        .base_delay(Duration::from_secs(1))
        .max_delay(Duration::from_secs(8));
    let (layer, handle) = FastAckLayer::builder().retry(policy).build();
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
async fn each_attempt_carries_its_number_and_seq() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (layer, handle) = FastAckLayer::builder()
        .retry(RetryPolicy::new().attempts(3))
        .build();
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
async fn a_failure_keeps_the_start_of_the_answer_body() {
    let calls = Arc::new(AtomicU32::new(0));
    let (layer, handle) = FastAckLayer::builder()
        .retry(RetryPolicy::new().attempts(2))
        .build();
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
async fn a_failed_answers_retry_after_holds_the_next_attempt_back_capped() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let policy = RetryPolicy::new()
        .attempts(5)
        .base_delay(Duration::from_millis(100))
        .jitter(false)
        .max_retry_after(Duration::from_secs(60));
    let (layer, handle) = FastAckLayer::builder().retry(policy).build();
    let service = stack(
        layer,
        handler({
            let attempts = Arc::clone(&attempts);
            move |_req| {
                let attempts = Arc::clone(&attempts);
                async move {
                    let n = {
                        let mut attempts = attempts.lock().unwrap();
                        attempts.push(Instant::now());
                        attempts.len()
                    };
                    // 7 s, then an hour (capped at 60 s), then a wait
                    // shorter than the backoff (400 ms), then done.
                    let (code, after) = match n {
                        1 => (StatusCode::SERVICE_UNAVAILABLE, "7"),
                        2 => (StatusCode::INTERNAL_SERVER_ERROR, "3600"),
                        3 => (StatusCode::BAD_GATEWAY, "0"),
                        _ => return status(StatusCode::OK),
                    };
                    Ok(Response::builder()
                        .status(code)
                        .header("retry-after", after)
                        .body(String::new())
                        .unwrap())
                }
            }
        }),
    );
    handle.started().await;
    assert_eq!(
        send(&service, "task_later").await.status,
        StatusCode::ACCEPTED
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(handle.stats().processed, 1);

    let times = attempts.lock().unwrap().clone();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        [
            Duration::from_secs(7),
            Duration::from_secs(60),
            Duration::from_millis(400)
        ],
        "Retry-After over the backoff, capped; the backoff over a shorter one"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refusals_retry_after_is_not_a_retry() {
    let calls = Arc::new(AtomicU32::new(0));
    let (layer, handle) = FastAckLayer::builder().build();
    let service = stack(
        layer,
        handler({
            let calls = Arc::clone(&calls);
            move |_req| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    Ok(Response::builder()
                        .status(StatusCode::UNPROCESSABLE_ENTITY)
                        .header("retry-after", "1")
                        .body(String::new())
                        .unwrap())
                }
            }
        }),
    );
    handle.started().await;
    send(&service, "task_refused").await;
    until("refused", || handle.stats().refused == 1).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(handle.stats().retried, 0);
}

#[tokio::test]
async fn every_attempt_sees_the_time_of_acceptance_also_after_a_restart() {
    let journal = MemoryJournal::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recording = |seen: &Arc<Mutex<Vec<(u32, std::time::SystemTime)>>>, code| {
        let seen = Arc::clone(seen);
        handler(move |req| {
            let attempt = req.extensions().get::<Attempt>().unwrap();
            seen.lock()
                .unwrap()
                .push((attempt.number(), attempt.received_at()));
            async move { status(code) }
        })
    };

    // A first process accepts the event, fails it twice, and stops.
    let (first, first_handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .retry(
            RetryPolicy::new()
                .attempts(10)
                .base_delay(Duration::from_millis(1))
                .jitter(false),
        )
        .build();
    let failing = stack(first, recording(&seen, StatusCode::INTERNAL_SERVER_ERROR));
    first_handle.started().await;
    let before = std::time::SystemTime::now();
    assert_eq!(send(&failing, "task_t").await.status, StatusCode::ACCEPTED);
    let after = std::time::SystemTime::now();
    until("two attempts", || seen.lock().unwrap().len() >= 2).await;
    first_handle.shutdown(Duration::ZERO).await;
    assert_eq!(journal.len(), 1, "left pending");

    // Well after, the next process runs it from the journal.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (second, handle) = FastAckLayer::builder().journal(journal.clone()).build();
    let _service = stack(second, recording(&seen, StatusCode::OK));
    handle.started().await;
    until("processed", || handle.stats().processed == 1).await;

    let seen = seen.lock().unwrap().clone();
    let received = seen[0].1;
    // Whole milliseconds, so the journaled time is the live one.
    let truncated = |t: std::time::SystemTime| {
        let since = t.duration_since(std::time::UNIX_EPOCH).unwrap();
        std::time::UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64)
    };
    assert!(
        truncated(before) <= received && received <= after,
        "{received:?}"
    );
    assert!(
        seen.iter().all(|&(_, at)| at == received),
        "the same on every attempt: {seen:?}"
    );
    assert_eq!(seen.last().unwrap().0, 1, "a new process counts from 1");
}

#[tokio::test(start_paused = true)]
async fn a_dead_letter_and_its_replay_keep_the_time_of_acceptance() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let failing = Arc::new(AtomicBool::new(true));
    let (layer, handle) = FastAckLayer::builder()
        .retry(RetryPolicy::new().attempts(1))
        .build();
    let service = stack(
        layer,
        handler({
            let (seen, failing) = (Arc::clone(&seen), Arc::clone(&failing));
            move |req| {
                let attempt = req.extensions().get::<Attempt>().unwrap();
                seen.lock().unwrap().push(attempt.received_at());
                let code = if failing.load(Ordering::SeqCst) {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                async move { status(code) }
            }
        }),
    );
    handle.started().await;
    send(&service, "task_dead").await;
    until("dead-lettered", || handle.stats().dead_lettered == 1).await;
    let letter = handle.dead_letters().remove(0);
    let received = seen.lock().unwrap()[0];
    assert_eq!(letter.received_at(), received);
    let json = serde_json::to_value(&letter).unwrap();
    let ms = received
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(json["received_at_ms"], ms);

    failing.store(false, Ordering::SeqCst);
    handle.replay(letter.seq()).await.unwrap();
    until("replayed", || handle.stats().processed == 1).await;
    assert_eq!(*seen.lock().unwrap(), [received, received]);
}
