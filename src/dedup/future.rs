//! Response future of [`Dedup`](super::Dedup).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use super::layer::Config;
use super::stats::{Counter, Counters};
use super::{Claim, DedupKey, DedupStore};
use crate::body::ResponseBody;
use crate::detach::Detach;
use crate::response::{self, Rejection};
use crate::TaskEvent;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pin_project! {
    /// Response future of [`Dedup`](super::Dedup): asks the store, then calls
    /// the inner service and records its outcome, or answers by itself.
    ///
    /// The store's futures are `impl Future` (unnameable), so the work is one
    /// boxed future per request, and a claimed request boxes the inner
    /// call and the recording of its outcome too (so that they can move onto
    /// a task of their own if this future is dropped before they ended); a
    /// misconfigured stack answers without either.
    pub struct ResponseFuture<B, E> {
        #[pin]
        kind: Kind<B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B, E> {
        Running {
            future: BoxFuture<Result<Response<ResponseBody<B>>, E>>,
        },
        Rejected {
            rejection: Option<Rejection>,
        },
    }
}

impl<B, E> ResponseFuture<B, E> {
    pub(super) fn running(
        future: impl Future<Output = Result<Response<ResponseBody<B>>, E>> + Send + 'static,
    ) -> Self {
        Self {
            kind: Kind::Running {
                future: Box::pin(future),
            },
        }
    }

    pub(super) fn rejected(rejection: Rejection) -> Self {
        Self {
            kind: Kind::Rejected {
                rejection: Some(rejection),
            },
        }
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Running { future } => future.as_mut().poll(cx),
            KindProj::Rejected { rejection } => {
                let rejection = rejection.take().expect("polled after completion");
                Poll::Ready(Ok(rejection.into_response()))
            }
        }
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Running { .. } => "Running",
            Kind::Rejected { .. } => "Rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// The whole life of one request: claim (or wait, or answer), call, record.
// An `async` block rather than an `async fn`: it keeps the arguments once
// in the future, not once as arguments and again as locals (1,072 bytes
// against 720, boxed per request).
#[allow(clippy::manual_async_fn)]
pub(super) fn run<S, St, ReqBody, ResBody>(
    mut inner: S,
    req: Request<ReqBody>,
    key: Option<DedupKey>,
    event: TaskEvent,
    store: Arc<St>,
    counters: Arc<Counters>,
    config: Config,
) -> impl Future<Output = Result<Response<ResponseBody<ResBody>>, S::Error>> + Send + 'static
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: DedupStore,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    async move {
        let Some(key) = key else {
            tracing::trace!(id = event.id(), "no dedup key: passed through");
            return Ok(inner.call(req).await?.map(ResponseBody::new));
        };
        let token = match acquire(&*store, &key, event.id(), &counters, &config).await {
            Acquired::Claimed(token) => token,
            Acquired::Bypass => return Ok(inner.call(req).await?.map(ResponseBody::new)),
            Acquired::Answer(response) => return Ok(response),
        };
        // From here on the claim is ours, held by the guard: it records the
        // outcome of the call, and gives the claim back on a panic of the inner
        // service. The call and the recording are polled here, in the request's
        // future; if that future is dropped before they ended (client gone, a
        // timeout layer outside), they move onto a task of their own and run to
        // the end: the inner service may already have accepted the event (the
        // fast-ack layer accepts even if its own response future is dropped),
        // and releasing the claim then would let the provider's retry process
        // the event a second time.
        let mut guard = ClaimGuard {
            claim: Some(Held {
                store,
                key,
                token,
                event,
                counters,
            }),
            outcome: Outcome::Release("panicked or cancelled"),
        };
        let call = inner.call(req);
        let result = Detach::new(async move {
            let result = call.await;
            guard.finish(outcome(&result, &config)).await;
            result
        })
        .await;
        Ok(result?.map(ResponseBody::new))
    }
}

/// What the inner service's answer makes of the claim.
fn outcome<B, E>(result: &Result<Response<B>, E>, config: &Config) -> Outcome {
    match result {
        Ok(response) => {
            let status = response.status();
            if status.is_success() || (status.is_client_error() && config.remember_client_errors) {
                Outcome::Done
            } else {
                Outcome::Release("not a success")
            }
        }
        Err(_) => Outcome::Release("inner error"),
    }
}

enum Acquired<T, B> {
    Claimed(T),
    /// Fail-open after a store error: call the inner service unguarded.
    Bypass,
    Answer(Response<ResponseBody<B>>),
}

async fn acquire<St: DedupStore, B>(
    store: &St,
    key: &DedupKey,
    id: &str,
    counters: &Counters,
    config: &Config,
) -> Acquired<St::Token, B> {
    let mut deadline: Option<Option<Instant>> = None;
    loop {
        let error = match store.claim(key).await {
            Ok(Claim::Acquired(token)) => {
                counters.incr(Counter::First);
                tracing::debug!(id, %key, "dedup: claimed");
                return Acquired::Claimed(token);
            }
            Ok(Claim::Done) => {
                counters.incr(Counter::DuplicateDone);
                tracing::debug!(id, %key, "dedup: duplicate of a processed callback");
                return Acquired::Answer(response::duplicate(Some(id), "done"));
            }
            Ok(Claim::InFlight) => {
                // `None` inside: a wait bound too large to be an instant.
                let deadline = *deadline.get_or_insert_with(|| {
                    counters.incr(Counter::DuplicateInFlight);
                    tracing::debug!(id, %key, "dedup: in flight elsewhere, waiting");
                    Instant::now().checked_add(config.wait_timeout)
                });
                let waited = match deadline {
                    // Checked first: a store whose `wait` returns at once
                    // must not spin past the bound.
                    Some(deadline) if Instant::now() >= deadline => None,
                    // Boxed: a rare path, which would otherwise make every
                    // request's future larger.
                    Some(deadline) => Box::pin(tokio::time::timeout_at(deadline, store.wait(key)))
                        .await
                        .ok(),
                    None => Some(Box::pin(store.wait(key)).await),
                };
                match waited {
                    Some(Ok(())) => continue,
                    Some(Err(error)) => error,
                    None => {
                        counters.incr(Counter::WaitTimeout);
                        tracing::debug!(id, %key, "dedup: still in flight after the wait bound");
                        return Acquired::Answer(
                            Rejection::duplicate_in_flight(config.retry_after).into_response(),
                        );
                    }
                }
            }
            Err(error) => error,
        };
        counters.incr(Counter::StoreError);
        if config.fail_open {
            tracing::warn!(id, %key, %error, "dedup: store failed, passing through (fail-open)");
            return Acquired::Bypass;
        }
        tracing::warn!(id, %key, %error, "dedup: store failed");
        return Acquired::Answer(
            Rejection::dedup_store_unavailable(config.retry_after).into_response(),
        );
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Done,
    Release(&'static str),
}

/// A claim owned by a request.
struct Held<St: DedupStore> {
    store: Arc<St>,
    key: DedupKey,
    token: St::Token,
    /// The callback (cheap to clone), for its id in logs.
    event: TaskEvent,
    counters: Arc<Counters>,
}

impl<St: DedupStore> Held<St> {
    async fn settle(&self, outcome: Outcome) {
        let (id, key) = (self.event.id(), &self.key);
        let result = match outcome {
            Outcome::Done => self.store.complete(key, &self.token).await,
            Outcome::Release(_) => self.store.release(key, &self.token).await,
        };
        match (result, outcome) {
            (Ok(()), Outcome::Done) => tracing::debug!(id, %key, "dedup: done"),
            (Ok(()), Outcome::Release(reason)) => {
                self.counters.incr(Counter::Released);
                tracing::debug!(id, %key, reason, "dedup: released");
            }
            (Err(error), _) => {
                // The claim expires on its own after the store's claim
                // timeout; until then duplicates wait or get a 503.
                self.counters.incr(Counter::StoreError);
                tracing::warn!(id, %key, %error, ?outcome, "dedup: store failed to record the outcome");
            }
        }
    }
}

/// Settles the claim when dropped before [`ClaimGuard::finish`] completed:
/// with a release after a panic of the inner service (or when the runtime
/// shuts down under the call), with the outcome being recorded otherwise.
struct ClaimGuard<St: DedupStore> {
    claim: Option<Held<St>>,
    /// What to record if dropped now.
    outcome: Outcome,
}

impl<St: DedupStore> ClaimGuard<St> {
    async fn finish(&mut self, outcome: Outcome) {
        // If this future is dropped while the store works, `Drop` records
        // the same outcome again (both operations are idempotent).
        self.outcome = outcome;
        if let Some(claim) = &self.claim {
            claim.settle(outcome).await;
        }
        self.claim = None;
    }
}

impl<St: DedupStore> Drop for ClaimGuard<St> {
    fn drop(&mut self) {
        let Some(claim) = self.claim.take() else {
            return;
        };
        let outcome = self.outcome;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move { claim.settle(outcome).await });
            }
            Err(_) => tracing::warn!(
                id = claim.event.id(),
                key = %claim.key,
                "dedup: no tokio runtime to release the claim; it expires on its own"
            ),
        }
    }
}
