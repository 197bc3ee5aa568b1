//! Helpers shared by the dedup tests: a handler scripted per call behind
//! `PayloadLayer` + `DedupLayer`, pushes, and waits.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use taskhook::body::{BufferedBody, ResponseBody};
use taskhook::dedup::DUPLICATE_HEADER;
use taskhook::{dedup::DedupStore, DedupLayer, PayloadLayer, TaskEvent};
use tower::util::BoxCloneService;
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};

/// What the handler does on its n-th call (0-based).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Act {
    Answer(StatusCode),
    /// Sleeps (tokio time), then answers.
    Slow(Duration, StatusCode),
    Hang,
    Fail,
    Panic,
    /// Sleeps (tokio time), then panics.
    SlowPanic(Duration),
}

pub(crate) type Stack = BoxCloneService<
    Request<Full<Bytes>>,
    Response<ResponseBody<ResponseBody<Full<Bytes>>>>,
    BoxError,
>;

/// `PayloadLayer` + `layer` + a handler acting per `script`; returns the
/// service and the handler's call counter.
pub(crate) fn stack<K, St>(
    layer: DedupLayer<K, St>,
    script: impl Fn(usize) -> Act + Clone + Send + Sync + 'static,
) -> (Stack, Arc<AtomicUsize>)
where
    K: taskhook::dedup::KeyExtractor + Clone + Send + Sync + 'static,
    St: DedupStore,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let handler = service_fn(move |req: Request<BufferedBody>| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let act = script(n);
        async move {
            assert!(req.extensions().get::<TaskEvent>().is_some());
            let status = match act {
                Act::Answer(status) => status,
                Act::Slow(delay, status) => {
                    tokio::time::sleep(delay).await;
                    status
                }
                Act::Hang => std::future::pending().await,
                Act::Fail => return Err(BoxError::from("handler failed")),
                Act::Panic => panic!("handler panicked"),
                Act::SlowPanic(delay) => {
                    tokio::time::sleep(delay).await;
                    panic!("handler panicked late")
                }
            };
            let mut response = Response::new(Full::new(Bytes::from("handled")));
            *response.status_mut() = status;
            Ok::<_, BoxError>(response)
        }
    });
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(handler);
    (BoxCloneService::new(service), calls)
}

pub(crate) fn push(id: &str, status: &str) -> Request<Full<Bytes>> {
    let body = format!(r#"{{"code":200,"data":{{"id":"{id}","status":"{status}"}}}}"#);
    Request::post("/callback")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Pushes a completed callback for `id`; returns status, headers and body.
pub(crate) fn send(
    service: &Stack,
    id: &str,
) -> impl Future<Output = Result<(StatusCode, HeaderMap, String), BoxError>> + Send {
    let (service, request) = (service.clone(), push(id, "completed"));
    async move {
        let response = service.oneshot(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Ok((
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        ))
    }
}

pub(crate) fn is_duplicate(headers: &HeaderMap) -> bool {
    headers.get(&DUPLICATE_HEADER).is_some_and(|v| v == "done")
}

pub(crate) fn always(status: StatusCode) -> impl Fn(usize) -> Act + Clone + Send + Sync + 'static {
    move |_| Act::Answer(status)
}

/// Waits (yielding) until the handler was called `n` times.
pub(crate) async fn until_calls(calls: &AtomicUsize, n: usize) {
    for _ in 0..1000 {
        if calls.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("handler not called {n} times");
}

/// A timeout layer outside drops the response future after 1 s, as a
/// server does when the client goes away.
pub(crate) async fn push_with_timeout(service: &Stack) {
    let outer = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .service(service.clone());
    let error = outer
        .oneshot(push("task_01", "completed"))
        .await
        .unwrap_err();
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
}
