//! Response future of [`FastAck`](super::FastAck).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::Response;
use pin_project_lite::pin_project;

use super::shared::{Admitted, Refusal};
use super::unwind::CatchUnwind;
use crate::body::ResponseBody;
use crate::detach::Detach;
use crate::response::{self, Rejection};

pin_project! {
    /// Response future of [`FastAck`](super::FastAck): waits for the event
    /// to be journaled and queued, then answers `202 Accepted`; or answers
    /// a rejection at once.
    ///
    /// It never waits for the inner service. The journal append and the
    /// enqueue run in this future (one boxed future per accepted event);
    /// dropping it does not cancel them: they move onto a task of their own
    /// and run to the end, so an entry is never left journaled but not
    /// queued.
    pub struct ResponseFuture<B> {
        #[pin]
        state: State,
        _marker: PhantomData<fn() -> B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Accepting {
            #[pin]
            admission: Admission,
            task_id: Option<Arc<str>>,
            retry_after: Duration,
        },
        Rejected {
            rejection: Option<Rejection>,
        },
    }
}

impl<B> ResponseFuture<B> {
    pub(super) fn accepting(
        admission: Admission,
        task_id: Option<Arc<str>>,
        retry_after: Duration,
    ) -> Self {
        Self {
            state: State::Accepting {
                admission,
                task_id,
                retry_after,
            },
            _marker: PhantomData,
        }
    }

    pub(super) fn rejected(rejection: Rejection) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
            },
            _marker: PhantomData,
        }
    }
}

impl<B> fmt::Debug for ResponseFuture<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Accepting { .. } => "Accepting",
            State::Rejected { .. } => "Rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<B> Future for ResponseFuture<B> {
    type Output = Result<Response<ResponseBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Accepting {
                admission,
                task_id,
                retry_after,
            } => {
                let response = match ready!(admission.poll(cx)) {
                    Ok(Ok(Admitted::Queued(seq))) => {
                        tracing::debug!(seq, task_id = task_id.as_deref(), "event accepted");
                        response::accepted(task_id.as_deref(), seq)
                    }
                    Ok(Ok(Admitted::Duplicate)) => {
                        tracing::debug!(task_id = task_id.as_deref(), "duplicate event");
                        response::duplicate(task_id.as_deref(), "journaled")
                    }
                    Ok(Err(refusal)) => Rejection::refused(&refusal, *retry_after).into_response(),
                    Err(_panic) => {
                        // The journal panicked; the reservation was released
                        // with the accept's future.
                        tracing::error!("accepting an event failed: the journal panicked");
                        Rejection::accept_failed(*retry_after).into_response()
                    }
                };
                Poll::Ready(Ok(response))
            }
            StateProj::Rejected { rejection } => {
                let rejection = rejection.take().expect("polled after completion");
                Poll::Ready(Ok(rejection.into_response()))
            }
        }
    }
}

/// The journal append and the enqueue of one event, a panic of the
/// journal caught: see [`Detach`] for what happens when the response future
/// is dropped mid-way.
pub(super) type Admission = Detach<std::thread::Result<Result<Admitted, Refusal>>>;

impl Admission {
    /// Runs `future`, handed over to `runtime` if dropped mid-way.
    pub(super) fn admit(
        runtime: tokio::runtime::Handle,
        future: impl Future<Output = Result<Admitted, Refusal>> + Send + 'static,
    ) -> Self {
        Detach::on(Some(runtime), CatchUnwind::new(future))
    }
}
