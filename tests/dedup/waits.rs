//! A duplicate of a request in flight waits for its outcome, at most the
//! wait timeout, then `503` with `Retry-After`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use taskhook::DedupLayer;
use tokio::time::Instant;

use crate::support::{is_duplicate, send, stack, until_calls, Act};

#[tokio::test(start_paused = true)]
async fn the_in_flight_wait_is_bounded_then_503_with_retry_after() {
    let layer = DedupLayer::new().retry_after(Duration::from_secs(20));
    let counted = layer.clone(); // shares the counters
    let (service, calls) = stack(layer, |_| {
        Act::Slow(Duration::from_secs(30), StatusCode::OK)
    });
    let first = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    until_calls(&calls, 1).await;

    let started = Instant::now();
    let (status, headers, body) = send(&service, "task_01").await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "20");
    assert!(body.contains(r#""code":"duplicate_in_flight""#), "{body}");
    assert_eq!(counted.stats().wait_timeouts, 1);

    // The first one still succeeds, and later pushes are duplicates.
    assert_eq!(first.await.unwrap().unwrap().0, StatusCode::OK);
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gets_the_outcome_as_soon_as_it_is_known() {
    let layer = DedupLayer::new().wait_timeout(Duration::from_secs(3));
    let (service, calls) = stack(layer, |_| Act::Slow(Duration::from_secs(2), StatusCode::OK));
    let first = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    until_calls(&calls, 1).await;
    let started = Instant::now();
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(is_duplicate(&headers));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(!is_duplicate(&first.await.unwrap().unwrap().1));
}
