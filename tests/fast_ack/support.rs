//! Helpers shared by the fast-ack tests: boxed handlers, answers, the
//! payload -> fast-ack -> handler stack.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use taskhook::body::BufferedBody;
use taskhook::fast_ack::FastAckLayer;
use taskhook::{PayloadLayer, TaskEvent};
use tower::{service_fn, BoxError, Service, ServiceBuilder};

pub(crate) type Handler =
    tower::util::BoxCloneService<Request<BufferedBody>, Response<String>, BoxError>;

/// A boxed handler from an async closure over the request.
pub(crate) fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<BufferedBody>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<String>, BoxError>> + Send + 'static,
{
    tower::util::BoxCloneService::new(service_fn(f))
}

pub(crate) fn status(code: StatusCode) -> Result<Response<String>, BoxError> {
    let mut response = Response::new(String::new());
    *response.status_mut() = code;
    Ok(response)
}

/// A handler that counts its calls in `calls` and answers `code`.
pub(crate) fn counting(calls: &Arc<AtomicU32>, code: StatusCode) -> Handler {
    let calls = Arc::clone(calls);
    handler(move |_req| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { status(code) }
    })
}

/// A handler that answers `code` with `body`.
pub(crate) fn answering(calls: &Arc<AtomicU32>, code: StatusCode, body: &'static str) -> Handler {
    let calls = Arc::clone(calls);
    handler(move |_req| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut response = Response::new(body.to_owned());
            *response.status_mut() = code;
            Ok(response)
        }
    })
}

pub(crate) fn task_id(req: &Request<BufferedBody>) -> String {
    req.extensions()
        .get::<TaskEvent>()
        .expect("TaskEvent in the extensions")
        .id()
        .to_owned()
}

/// The stack payload -> fast-ack -> handler, as a cloneable service.
pub(crate) fn stack(
    layer: FastAckLayer,
    handler: Handler,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl http_body::Body<Data = Bytes, Error = impl std::fmt::Debug>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(handler)
}
