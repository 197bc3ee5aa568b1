//! The future a [`Forward`](super::Forward) returns.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use super::service::ForwardBody;

type Answer = Result<Response<ForwardBody>, Infallible>;

/// The response future of [`Forward`](super::Forward): one exchange with the
/// upstream (boxed: an allocation per forward is noise next to an HTTP
/// round trip).
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Answer> + Send>>,
}

impl ResponseFuture {
    pub(super) fn new(future: impl Future<Output = Answer> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(future),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
