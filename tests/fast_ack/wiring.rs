//! Wiring mistakes answer `500` naming them (no payload layer, one layer
//! driving two services); any inner service type fits.

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use taskhook::body::BufferedBody;
use taskhook::fast_ack::FastAckLayer;
use taskhook::PayloadLayer;
use tower::{service_fn, ServiceBuilder, ServiceExt};

use crate::common::{callback, send, until};
use crate::support::{handler, status};

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
    // Not `Clone`: only a reference applies it twice.
    let layer = FastAckLayer::new();
    let on = |layer: &FastAckLayer| {
        ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(layer)
            .service(handler(|_| async { status(StatusCode::OK) }))
    };
    let first = on(&layer);
    let second = on(&layer);
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
