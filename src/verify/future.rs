//! Response futures of the verification layers: [`ResponseFuture`] for
//! those that decide without waiting ([`PathToken`](super::PathToken),
//! [`IpAllow`](super::IpAllow), [`StandardWebhooks`](super::StandardWebhooks),
//! [`KieSignature`](super::KieSignature), [`HeaderSecret`](super::HeaderSecret)),
//! [`FalResponseFuture`] for [`FalSignature`](super::FalSignature), which
//! may fetch its keys first.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;
use crate::response::{not_found, Rejection};

pub use super::fal::future::FalResponseFuture;

pin_project! {
    /// Response future of the synchronous verification layers: the inner
    /// service's future, or the layer's own answer.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Early { reply: Option<Early> },
    }
}

/// What a layer answers instead of calling the inner service.
#[derive(Debug)]
pub(crate) enum Early {
    /// A JSON rejection (403, 401, 500, ...).
    Rejection(Rejection),
    /// An empty `404`, identical to "no route".
    NotFound,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn early(reply: Early) -> Self {
        Self {
            kind: Kind::Early { reply: Some(reply) },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(ResponseBody::new)))
            }
            KindProj::Early { reply } => {
                Poll::Ready(Ok(match reply.take().expect("polled after completion") {
                    Early::Rejection(rejection) => rejection.into_response(),
                    Early::NotFound => not_found(),
                }))
            }
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}
