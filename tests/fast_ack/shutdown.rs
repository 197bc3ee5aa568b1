//! Shutdown drains the queue within its deadline, then refuses; what the
//! deadline left is reported and stays in the journal.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use taskhook::fast_ack::journal::{Entry, Journal, MemoryJournal};
use taskhook::fast_ack::{FastAckLayer, RetryPolicy};
use tokio::time::Instant;

use crate::common::{send, until};
use crate::support::{handler, stack, status, task_id};

#[tokio::test(start_paused = true)]
async fn shutdown_drains_the_queue_then_refuses() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (layer, handle) = FastAckLayer::builder().concurrency(2).build();
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
    let (layer, handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .concurrency(1)
        .retry(
            RetryPolicy::new()
                .base_delay(Duration::from_secs(100))
                .jitter(false),
        )
        .build();
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
