//! A profile mounted in the payload layer: the normalized event reaches
//! the inner service; a body in another shape is answered `400`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use taskhook::body::BufferedBody;
use taskhook::provider::Replicate;
use taskhook::{PayloadLayer, RawPayload, TaskStatus};
use tower::{service_fn, ServiceBuilder, ServiceExt};

use super::*;

/// Sends `body` through `PayloadLayer::new().profile(Replicate::new())`;
/// returns the answer and the event the inner service saw, if it was
/// called.
async fn send(body: Bytes) -> (StatusCode, serde_json::Value, Option<(TaskEvent, usize)>) {
    let seen = Arc::new(Mutex::new(None));
    let inner = {
        let seen = Arc::clone(&seen);
        service_fn(move |req: Request<BufferedBody>| {
            let seen = Arc::clone(&seen);
            async move {
                let event = req.extensions().get::<TaskEvent>().cloned();
                let raw = req.extensions().get::<RawPayload>().map(|r| r.len());
                *seen.lock().unwrap() = event.zip(raw);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
            }
        })
    };
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new().profile(Replicate::new()))
        .service(inner);
    let request = Request::post("/callback")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let seen = seen.lock().unwrap().take();
    (status, json, seen)
}

#[tokio::test]
async fn a_replicate_prediction_reaches_the_inner_service_normalized() {
    let body = fixture("replicate", "succeeded-images");
    let len = body.len();
    let (status, _, seen) = send(body).await;
    assert_eq!(status, StatusCode::OK);
    let (event, raw_len) = seen.expect("the inner service was called");
    assert_eq!(raw_len, len, "the raw body travels with the event");
    assert_eq!(event.id(), "q7n2c4xk5hrm80cmv3ta2bq4w8");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    assert_eq!(event.raw_status(), Some("succeeded"));
    assert_eq!(urls(&event).len(), 2);
    assert_eq!(urls(&event)[0].0, "images");
    assert_eq!(event.extra()["metrics"]["image_count"], 2);

    let (status, _, seen) = send(fixture("replicate", "processing")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        seen.unwrap().0.status(),
        Some(&TaskStatus::Processing),
        "an intermediate state is passed on too"
    );
}

#[tokio::test]
async fn a_body_in_another_shape_is_answered_400() {
    // APIMart's envelope: no top-level `id`.
    let apimart = Bytes::from(common::fixture("completed-video"));
    let (status, json, seen) = send(apimart).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["code"], "unexpected_shape", "{json}");
    assert!(json["error"]["message"].as_str().unwrap().contains("`id`"));
    assert!(seen.is_none(), "the inner service is not called");

    let (status, json, seen) = send(Bytes::from_static(br#"{"id":7,"status":"succeeded"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["code"], "unexpected_shape");
    assert!(seen.is_none());

    let (status, json, _) = send(Bytes::from_static(b"{oops")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["code"], "malformed_json");

    let long = format!(r#"{{"id":"{}"}}"#, "x".repeat(300));
    let (status, json, _) = send(Bytes::from(long)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["code"], "invalid_id");
}
