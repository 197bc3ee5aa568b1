//! A panicking handler releases its key: in the request, after its client
//! left, and when the panic is caught outside the layer.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use taskhook::DedupLayer;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::support::{is_duplicate, push, push_with_timeout, send, stack, Act};

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_releases_its_key() {
    let (service, calls) = stack(DedupLayer::new(), |n| {
        if n == 0 {
            Act::Panic
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    let first = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    assert!(first.await.unwrap_err().is_panic());

    let started = Instant::now();
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// The client leaves, then the handler, still running, panics: the key is
/// released (not left in flight until the claim timeout).
#[tokio::test(start_paused = true)]
async fn a_handler_panicking_after_its_client_left_releases_its_key() {
    let layer = DedupLayer::new();
    let counted = layer.clone(); // shares the counters
    let (service, calls) = stack(layer, |n| {
        if n == 0 {
            Act::SlowPanic(Duration::from_secs(3))
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    push_with_timeout(&service).await;

    // The retry waits for the outcome (a panic at 3 s), then runs.
    let started = Instant::now();
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(counted.stats().released, 1);
}

/// A catch-panic wrapper outside catches the handler's panic and drops the
/// response future later, not while unwinding: the claim is released and
/// the call, which panicked, is never polled again on a task of its own.
#[tokio::test]
async fn a_panic_caught_outside_releases_the_key_and_is_not_polled_again() {
    static RESUMED: AtomicUsize = AtomicUsize::new(0);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.to_string().contains("resumed after panicking") {
            RESUMED.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
    let layer = DedupLayer::new();
    let counted = layer.clone(); // shares the counters
    let (service, calls) = stack(layer, |n| {
        if n == 0 {
            Act::Panic
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    let mut future = Box::pin(service.clone().oneshot(push("task_01", "completed")));
    let caught = std::future::poll_fn(|cx| {
        let poll = std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx));
        std::task::Poll::Ready(std::panic::catch_unwind(poll))
    })
    .await;
    assert!(caught.is_err(), "the handler's panic reaches the caller");
    drop(future);

    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(counted.stats().released, 1);
    assert_eq!(RESUMED.load(Ordering::SeqCst), 0);
}
