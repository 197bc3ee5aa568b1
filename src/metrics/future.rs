//! Response future of [`Metrics`](super::Metrics).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::record;

pin_project! {
    /// Response future of [`Metrics`](super::Metrics): the inner service's
    /// future; once it is ready, counts the answer by status and records
    /// the time since the request.
    ///
    /// Dropped before it is ready (the client went away), it records
    /// nothing: there was no answer.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, start: Instant) -> Self {
        Self { inner, start }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let status = result.as_ref().ok().map(Response::status);
        record::answered(status, this.start.elapsed());
        Poll::Ready(result)
    }
}
