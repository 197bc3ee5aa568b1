use std::task::{Context, Poll};

use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use super::future::ResponseFuture;
use super::MetricsLayer;

/// Counts every answer of the inner service by status code and records how
/// long it took, from the call to the response head.
///
/// Created with [`MetricsLayer`] or [`Metrics::new`]; generic over the
/// request and response bodies, and never fails by itself
/// (`Error = S::Error`; an error of the inner service is counted with
/// `status="error"`). See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
}

impl<S> Metrics<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// Returns a new [`Layer`](tower_layer::Layer) that wraps services with
    /// a `Metrics` middleware.
    pub fn layer() -> MetricsLayer {
        MetricsLayer::new()
    }

    inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Metrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Before the inner call: a layer may do its work in `call` (fast-ack
        // reserves its slot there).
        let start = Instant::now();
        ResponseFuture::new(self.inner.call(req), start)
    }
}
