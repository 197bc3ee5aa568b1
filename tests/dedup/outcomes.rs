//! What the handler's answer does to the key: a 2xx is remembered and its
//! duplicates absorbed, a 5xx or an error releases it, a 4xx is remembered
//! unless told otherwise.

use std::sync::atomic::Ordering;

use http::StatusCode;
use taskhook::DedupLayer;

use crate::support::{always, is_duplicate, send, stack, Act};

#[tokio::test]
async fn duplicate_after_success_is_absorbed() {
    let layer = DedupLayer::new();
    let counted = layer.clone(); // shares the counters
    let (service, calls) = stack(layer, always(StatusCode::OK));

    let (status, headers, body) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(body, "handled");

    for _ in 0..3 {
        let (status, headers, body) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(is_duplicate(&headers), "{headers:?}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, r#"{"status":"duplicate","id":"task_01"}"#);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Another id is not a duplicate.
    let (status, headers, _) = send(&service, "task_02").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let stats = counted.stats();
    assert_eq!((stats.first, stats.duplicate_done), (2, 3));
}

/// `stats()` is a snapshot: read at the call, the same through the layer,
/// its clones and its services, and serialisable for an admin route.
#[tokio::test]
async fn stats_are_a_snapshot_shared_by_the_layer_and_its_services() {
    let layer = DedupLayer::new();
    let counted = layer.clone();
    let service = tower::Layer::layer(&layer, tower::service_fn(|_: ()| async { Ok::<_, ()>(()) }));
    let (stack, _) = stack(layer, always(StatusCode::OK));

    let before = counted.stats();
    send(&stack, "task_01").await.unwrap();
    send(&stack, "task_01").await.unwrap();
    assert_eq!((before.first, before.duplicate_done), (0, 0));
    let after = counted.stats();
    assert_eq!((after.first, after.duplicate_done), (1, 1));
    assert_eq!(service.stats(), after);

    let json = serde_json::to_value(after).unwrap();
    assert_eq!(json["first"], 1);
    assert_eq!(json["duplicate_done"], 1);
    assert_eq!(json["store_errors"], 0);
}

#[tokio::test]
async fn retry_after_a_5xx_runs_again() {
    let layer = DedupLayer::new();
    let counted = layer.clone(); // shares the counters
    let (service, calls) = stack(layer, |n| {
        Act::Answer(if n == 0 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        })
    });
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!is_duplicate(&headers));

    let (status, headers, body) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(body, "handled");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let (_, headers, _) = send(&service, "task_01").await.unwrap();
    assert!(is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let stats = counted.stats();
    assert_eq!((stats.first, stats.released), (2, 1));
}

#[tokio::test]
async fn an_inner_error_releases_the_key() {
    let (service, calls) = stack(DedupLayer::new(), |n| {
        if n == 0 {
            Act::Fail
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    assert!(send(&service, "task_01").await.is_err());
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_4xx_is_remembered_by_default_and_released_on_request() {
    let (service, calls) = stack(DedupLayer::new(), always(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(
        send(&service, "task_01").await.unwrap().0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let layer = DedupLayer::new().remember_client_errors(false);
    let (service, calls) = stack(layer, always(StatusCode::CONFLICT));
    for _ in 0..2 {
        let (status, headers, _) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(!is_duplicate(&headers));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
