//! Response future of [`FalSignature`](crate::verify::FalSignature).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::response::Rejection;

/// What the keys say of a signature, once they could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A key verifies it.
    Pass,
    /// No key of an up-to-date set verifies it: `401`.
    Refused,
    /// No key verifies it and the set could not be fetched: `503`.
    Unavailable,
}

/// The key lookup in flight. Boxed: it may wait for a fetch, whose cost is
/// nothing next to a network round trip.
pub(crate) type Deciding = Pin<Box<dyn Future<Output = Verdict> + Send>>;

pin_project! {
    /// Response future of [`FalSignature`](crate::verify::FalSignature):
    /// the inner service's future, or the layer's own answer, possibly
    /// after fetching the signing keys.
    pub struct FalResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Deciding {
            decision: Deciding,
            waiting: Option<(S, Request<ReqBody>)>,
            retry_after: Duration,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Rejected {
            rejection: Option<Rejection>,
        },
    }
}

impl<S, ReqBody> FalResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn calling(future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
        }
    }

    pub(crate) fn rejected(rejection: Rejection) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
            },
        }
    }

    pub(crate) fn deciding(
        decision: Deciding,
        inner: S,
        request: Request<ReqBody>,
        retry_after: Duration,
    ) -> Self {
        Self {
            state: State::Deciding {
                decision,
                waiting: Some((inner, request)),
                retry_after,
            },
        }
    }
}

impl<S, ReqBody> fmt::Debug for FalResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FalResponseFuture")
    }
}

impl<S, ReqBody, ResBody> Future for FalResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::new)));
                }
                StateProj::Rejected { rejection } => {
                    let rejection = rejection.take().expect("polled after completion");
                    return Poll::Ready(Ok(rejection.into_response()));
                }
                StateProj::Deciding {
                    decision,
                    waiting,
                    retry_after,
                } => {
                    let verdict = ready!(decision.as_mut().poll(cx));
                    let (mut inner, request) = waiting.take().expect("polled after completion");
                    match verdict {
                        Verdict::Pass => State::Calling {
                            future: inner.call(request),
                        },
                        Verdict::Refused => {
                            tracing::info!(reason = super::NO_MATCH, "fal signature refused: 401");
                            State::Rejected {
                                rejection: Some(Rejection::invalid_signature(super::NO_MATCH)),
                            }
                        }
                        Verdict::Unavailable => {
                            tracing::warn!(
                                "fal signature not checked, the signing keys could not be fetched: 503"
                            );
                            State::Rejected {
                                rejection: Some(Rejection::signing_keys_unavailable(*retry_after)),
                            }
                        }
                    }
                }
            };
            this.state.set(next);
        }
    }
}
