//! Response future of [`Progress`](super::Progress).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::service::Shared;
use super::stats::Counter;
use super::ProgressHandler;
use crate::backend::{CompactStore, CompactToken};
use crate::body::ResponseBody;
use crate::dedup::{Claim, DedupKey, DedupStore, KeyState};
use crate::response::{self, Rejection};
use crate::TaskEvent;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pin_project! {
    /// Response future of [`Progress`](super::Progress): the inner
    /// service's future for a final event (no allocation), or the layer's
    /// own answer to an intermediate one.
    ///
    /// The work on an intermediate event with a progress handler (a read
    /// of the dedup store, the handler, the record of its state) is one
    /// boxed future, as the stores' and the handler's futures are
    /// `impl Future` (unnameable).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner {
            #[pin]
            future: F,
        },
        Answer {
            answer: Option<Answer>,
        },
        Running {
            future: BoxFuture<Answer>,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    pub(super) fn answer(answer: Answer) -> Self {
        Self {
            kind: Kind::Answer {
                answer: Some(answer),
            },
        }
    }

    pub(super) fn running(future: impl Future<Output = Answer> + Send + 'static) -> Self {
        Self {
            kind: Kind::Running {
                future: Box::pin(future),
            },
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
            KindProj::Inner { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(ResponseBody::new))),
            KindProj::Answer { answer } => {
                let answer = answer.take().expect("polled after completion");
                Poll::Ready(Ok(answer.into_response()))
            }
            KindProj::Running { future } => future
                .as_mut()
                .poll(cx)
                .map(|answer| Ok(answer.into_response())),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Inner { .. } => "Inner",
            Kind::Answer { .. } => "Answer",
            Kind::Running { .. } => "Running",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// The layer's own answer to an intermediate event, made into a response
/// (by [`response`], the one place for them) when the future ends.
pub(super) enum Answer {
    /// The progress handler took it: `200`.
    Handled(TaskEvent),
    /// Answered `200` with `taskhook-ignored: <reason>`.
    Ignored(TaskEvent, &'static str),
    /// Its state was handled already: `200` with
    /// `taskhook-duplicate: progress`.
    Duplicate(TaskEvent),
    Rejected(Rejection),
}

impl Answer {
    fn into_response<B>(self) -> Response<ResponseBody<B>> {
        match self {
            Self::Handled(event) => response::progress(event.id()),
            Self::Ignored(event, reason) => response::ignored(event.id(), reason),
            Self::Duplicate(event) => response::duplicate(Some(event.id()), "progress"),
            Self::Rejected(rejection) => rejection.into_response(),
        }
    }
}

/// The key of an intermediate state: the task id, the provider's status
/// and the progress percent (empty when absent). Task ids hold no control
/// characters, so NUL separates the parts unambiguously.
pub(super) fn state_key(event: &TaskEvent) -> DedupKey {
    let status = event.raw_status().unwrap_or_default();
    let key = match event.progress() {
        Some(percent) => format!("{}\0{status}\0{percent}", event.id()),
        None => format!("{}\0{status}\0", event.id()),
    };
    DedupKey::new(key)
}

/// The life of an intermediate event with a progress handler: the
/// regression check, the state's claim, the handler, the record.
pub(super) async fn run<H: ProgressHandler, St: DedupStore>(
    shared: Arc<Shared<H, St>>,
    handler: Arc<H>,
    event: TaskEvent,
    key: Option<DedupKey>,
) -> Answer {
    let counters = &shared.counters;
    let id = event.id();
    let status = event.raw_status();
    if let Some(key) = &key {
        match shared.store.peek(key).await {
            Ok(KeyState::Unknown) => {}
            Ok(state) => {
                counters.incr(Counter::Regression);
                tracing::debug!(id, status, %key, ?state, "progress: regression ignored");
                return Answer::Ignored(event, "regression");
            }
            Err(error) => {
                counters.incr(Counter::StoreError);
                tracing::warn!(id, status, %key, %error, "progress: dedup store failed");
                return Answer::Rejected(Rejection::dedup_store_unavailable(
                    shared.config.retry_after,
                ));
            }
        }
    }
    let state = state_key(&event);
    let token = match shared.states.claim(&state).await {
        Ok(Claim::Acquired(token)) => token,
        Ok(Claim::Done | Claim::InFlight) => {
            counters.incr(Counter::Duplicate);
            tracing::debug!(id, status, "progress: state already handled");
            return Answer::Duplicate(event);
        }
        Err(never) => match never {},
    };
    // Held by a guard: a handler that panics, or a request dropped mid-way,
    // gives the state back, so a re-push of it runs again.
    let mut claim = StateClaim {
        store: shared.states.clone(),
        key: state,
        token: Some(token),
    };
    match handler.handle(event.clone()).await {
        Ok(()) => {
            claim.settle(true).await;
            counters.incr(Counter::Handled);
            tracing::debug!(id, status, "progress: handled");
            Answer::Handled(event)
        }
        Err(error) => {
            claim.settle(false).await;
            counters.incr(Counter::Failed);
            tracing::warn!(id, status, %error, "progress: the progress handler failed");
            Answer::Ignored(event, "progress_failed")
        }
    }
}

/// A claim on an intermediate state, released when dropped unsettled.
struct StateClaim {
    store: CompactStore,
    key: DedupKey,
    token: Option<CompactToken>,
}

impl StateClaim {
    /// Marks the state handled (`true`), or forgets it (`false`).
    async fn settle(&mut self, handled: bool) {
        let Some(token) = self.token.take() else {
            return;
        };
        let result = if handled {
            self.store.complete(&self.key, &token).await
        } else {
            self.store.release(&self.key, &token).await
        };
        match result {
            Ok(()) => {}
            Err(never) => match never {},
        }
    }
}

impl Drop for StateClaim {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        // Without a runtime the claim expires on its own (the store's claim
        // timeout).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (store, key) = (self.store.clone(), self.key.clone());
            runtime.spawn(async move {
                match store.release(&key, &token).await {
                    Ok(()) => {}
                    Err(never) => match never {},
                }
            });
        }
    }
}
