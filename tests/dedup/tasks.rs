//! Where the handler runs: in the request's own task, and nothing is left
//! behind when the runtime shuts down under a pending call.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use taskhook::body::BufferedBody;
use taskhook::{DedupLayer, PayloadLayer};
use tower::{service_fn, ServiceBuilder, ServiceExt};

use crate::support::{push, send, stack, until_calls, Act};

/// The runtime shuts down while a claimed call hangs: the request's task is
/// dropped with it; the guard's hand-over to a new task and its release end
/// there (no loop of tasks spawned on a runtime that is gone).
#[test]
fn a_runtime_shutting_down_under_a_pending_call_drops_it_cleanly() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (service, calls) = rt.block_on(async { stack(DedupLayer::new(), |_| Act::Hang) });
    let request = rt.spawn(send(&service, "task_01"));
    rt.block_on(until_calls(&calls, 1));
    drop(rt);
    assert!(request.is_finished());
}

tokio::task_local! {
    static REQUEST_TAG: &'static str;
}

/// The handler runs in the request's own task (no task between), so what
/// the request's task carries, such as a task-local set by an outer layer,
/// is there in the handler.
#[tokio::test]
async fn the_handler_runs_in_the_request_task() {
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(DedupLayer::new())
        .service(service_fn(|_req: Request<BufferedBody>| async move {
            let tag = REQUEST_TAG.try_with(|tag| *tag).unwrap_or("none");
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(tag))))
        }));
    let response = REQUEST_TAG
        .scope("outer", service.oneshot(push("task_01", "completed")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "outer");
}
