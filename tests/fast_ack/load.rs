//! Thousands of events with random failures, panics and a full queue: every
//! one is processed once or dead-lettered, and the counters and the journal
//! agree.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use taskhook::fast_ack::journal::MemoryJournal;
use taskhook::fast_ack::{FastAckLayer, RetryPolicy};

use crate::common::send;
use crate::support::{handler, stack, status, task_id};

#[tokio::test(start_paused = true)]
async fn thousands_of_events_with_random_failures_are_all_accounted_for() {
    const EVENTS: usize = 3000;
    let journal = MemoryJournal::new();
    let successes = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let (layer, handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .capacity(256)
        .concurrency(8)
        .dead_letter_capacity(EVENTS)
        .retry(
            RetryPolicy::new()
                .attempts(3)
                .base_delay(Duration::from_millis(20)),
        )
        .build();
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
