//! Response future of [`Refetch`](super::Refetch).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use std::time::Duration;
use tokio::time::Sleep;
use tower_service::Service;

use super::layer::{Counters, Settings};
use super::{ConfirmError, ConfirmErrorKind, Confirmation};
use crate::body::ResponseBody;
use crate::response::Rejection;
use crate::TaskEvent;

/// The confirmation in flight. Boxed: a [`ConfirmTask`](super::ConfirmTask)
/// future has no name, and its cost is nothing next to a network round trip.
pub(super) type Confirming =
    Pin<Box<dyn Future<Output = Result<Confirmation, ConfirmError>> + Send>>;

pin_project! {
    /// Response future of [`Refetch`](super::Refetch): asks the provider,
    /// then calls the inner service, or answers with a rejection.
    pub struct ResponseFuture<S, ReqBody>
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
        Confirming {
            confirmation: Confirming,
            #[pin]
            deadline: Sleep,
            waiting: Option<Waiting<S, ReqBody>>,
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

/// What the future holds while the provider is asked.
pub(super) struct Waiting<S, ReqBody> {
    inner: S,
    request: Request<ReqBody>,
    pushed: TaskEvent,
    settings: Settings,
    counters: Arc<Counters>,
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(super) fn rejected(rejection: Rejection) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
            },
        }
    }

    pub(super) fn confirming(
        confirmation: Confirming,
        inner: S,
        request: Request<ReqBody>,
        pushed: TaskEvent,
        settings: Settings,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            state: State::Confirming {
                confirmation,
                deadline: tokio::time::sleep(settings.timeout),
                waiting: Some(Waiting {
                    inner,
                    request,
                    pushed,
                    settings,
                    counters,
                }),
            },
        }
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
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
                StateProj::Confirming {
                    confirmation,
                    deadline,
                    waiting,
                } => {
                    let outcome = match confirmation.as_mut().poll(cx) {
                        Poll::Ready(outcome) => Some(outcome),
                        Poll::Pending => {
                            ready!(deadline.poll(cx));
                            None
                        }
                    };
                    let waiting = waiting.take().expect("polled after completion");
                    decide(waiting, outcome)
                }
            };
            this.state.set(next);
        }
    }
}

/// What the provider's answer (`None`: no answer in time) means for the
/// push.
fn decide<S, ReqBody>(
    waiting: Waiting<S, ReqBody>,
    outcome: Option<Result<Confirmation, ConfirmError>>,
) -> State<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    let Waiting {
        mut inner,
        mut request,
        pushed,
        settings,
        counters,
    } = waiting;
    let id = pushed.id();
    let retry_after = settings.retry_after;
    let unavailable = |rejection: fn(Duration) -> Rejection| {
        Counters::add(&counters.unavailable);
        State::Rejected {
            rejection: Some(rejection(retry_after)),
        }
    };
    let forged = |reason: &str| {
        Counters::add(&counters.forged);
        tracing::warn!(task_id = %id, reason, "callback not confirmed by the provider: 403");
        State::Rejected {
            rejection: Some(Rejection::not_confirmed()),
        }
    };
    match outcome {
        None => {
            tracing::warn!(task_id = %id, timeout = ?settings.timeout, "task confirmation timed out: 503");
            unavailable(Rejection::confirmation_timeout)
        }
        Some(Err(error)) => match error.kind() {
            ConfirmErrorKind::NotFound => forged("the provider does not know the task"),
            ConfirmErrorKind::Unauthorized => {
                tracing::error!(task_id = %id, "the provider refused our API key: 503");
                unavailable(Rejection::provider_unavailable)
            }
            _ => {
                tracing::warn!(task_id = %id, %error, "task confirmation failed: 503");
                unavailable(Rejection::provider_unavailable)
            }
        },
        Some(Ok(confirmation)) => match judge(&pushed, confirmation.event(), settings.compare_urls)
        {
            Verdict::Confirmed => {
                Counters::add(&counters.confirmed);
                request.extensions_mut().insert(confirmation);
                State::Calling {
                    future: inner.call(request),
                }
            }
            Verdict::NotYet => {
                tracing::info!(task_id = %id, "the provider does not show the pushed state yet: 503");
                unavailable(Rejection::not_confirmed_yet)
            }
            Verdict::Forged(reason) => forged(reason),
        },
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Confirmed,
    /// The push is final, the provider still shows the task running: its
    /// status API may lag its push, so the push is retried.
    NotYet,
    Forged(&'static str),
}

fn judge(pushed: &TaskEvent, fetched: &TaskEvent, compare_urls: bool) -> Verdict {
    if pushed.id() != fetched.id() {
        return Verdict::Forged("the provider answered for another task id");
    }
    if pushed.status() != fetched.status() {
        let pushed_final = pushed.status().is_some_and(|s| s.is_final());
        let fetched_final = fetched.status().is_some_and(|s| s.is_final());
        return if pushed_final && !fetched_final {
            Verdict::NotYet
        } else {
            Verdict::Forged("the status differs from the provider's")
        };
    }
    if compare_urls {
        let mut a: Vec<&str> = pushed.urls().map(|u| u.url()).collect();
        let mut b: Vec<&str> = fetched.urls().map(|u| u.url()).collect();
        a.sort_unstable();
        b.sort_unstable();
        if a != b {
            return Verdict::Forged("the result urls differ from the provider's");
        }
    }
    Verdict::Confirmed
}

#[cfg(test)]
mod tests {
    use super::{judge, Verdict};
    use crate::TaskEvent;

    fn event(json: &str) -> TaskEvent {
        TaskEvent::from_slice(json.as_bytes()).unwrap()
    }

    #[test]
    fn verdicts() {
        let done =
            event(r#"{"id":"t","status":"completed","result":{"images":[{"url":"https://a/1"}]}}"#);
        let other_url = event(
            r#"{"id":"t","status":"completed","result":{"images":[{"url":"https://evil/1"}]}}"#,
        );
        let running = event(r#"{"id":"t","status":"processing"}"#);
        let failed = event(r#"{"id":"t","status":"failed"}"#);
        let other_id = event(r#"{"id":"u","status":"completed"}"#);
        assert_eq!(judge(&done, &done, true), Verdict::Confirmed);
        assert_eq!(judge(&other_url, &done, false), Verdict::Confirmed);
        assert!(matches!(judge(&other_url, &done, true), Verdict::Forged(_)));
        assert_eq!(judge(&done, &running, false), Verdict::NotYet);
        assert!(matches!(judge(&done, &failed, false), Verdict::Forged(_)));
        assert!(matches!(judge(&running, &done, false), Verdict::Forged(_)));
        assert!(matches!(judge(&done, &other_id, false), Verdict::Forged(_)));
    }
}
