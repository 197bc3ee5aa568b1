//! Wiring: without `PayloadLayer` the answer is a `500` naming it, the key
//! strategy is pluggable, and over HTTP a duplicate carries the header.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use taskhook::body::BufferedBody;
use taskhook::dedup::{ByIdAndStatus, DedupKey};
use taskhook::{DedupLayer, PayloadLayer, TaskEvent};
use tower::{service_fn, ServiceBuilder, ServiceExt};

use crate::common;
use crate::support::{always, push, stack};

#[tokio::test]
async fn without_the_payload_layer_it_is_a_500_naming_it() {
    let service = ServiceBuilder::new()
        .layer(DedupLayer::new())
        .service(service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }));
    let response = service.oneshot(push("task_01", "completed")).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("PayloadLayer"), "{body}");
}

#[tokio::test]
async fn the_key_strategy_is_pluggable() {
    let (service, calls) = stack(DedupLayer::new().key(ByIdAndStatus), always(StatusCode::OK));
    for status in ["failed", "completed", "completed"] {
        service
            .clone()
            .oneshot(push("task_01", status))
            .await
            .unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // `None` skips deduplication: here, for pushes that are not final.
    let layer = DedupLayer::new()
        .key(|event: &TaskEvent| event.is_final().then(|| DedupKey::from(event.id())));
    let (service, calls) = stack(layer, always(StatusCode::OK));
    for status in ["processing", "processing", "completed", "completed"] {
        let response = service
            .clone()
            .oneshot(push("task_01", status))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn over_http_a_duplicate_is_acknowledged_with_the_header() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let handler = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(DedupLayer::new())
        .service(service_fn(move |_: Request<BufferedBody>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(String::from("stored"))) }
        }));
    let router = axum::Router::new().route_service("/callback", handler);
    let addr = common::serve_axum(router).await;
    let body = common::fixture("completed-image-url-array");

    let first = common::post(addr, "/callback", Some("application/json"), &body).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, "stored");
    assert_eq!(first.header("taskhook-duplicate"), None);

    let again = common::post(addr, "/callback", Some("application/json"), &body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("taskhook-duplicate"), Some("done"));
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
