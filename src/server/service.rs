//! The per-connection hyper service: the user's tower service with the
//! request deadline, the peer address, and the count of requests in flight
//! that the idle timeout watches.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tokio::time::Sleep;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::response::Rejection;

/// The `Retry-After` of a request that timed out: the client was slow, not
/// the server busy, so it may come back soon.
const TIMEOUT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The requests in flight on one connection.
#[derive(Debug, Default)]
pub(super) struct Activity {
    in_flight: AtomicUsize,
    changed: Notify,
}

impl Activity {
    /// Counts a request until the guard is dropped.
    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        InFlight(Arc::clone(self))
    }

    /// Resolves once no request has been in flight for `after`.
    ///
    /// `notify_one` keeps a wake-up for a change made while no one waits,
    /// so none is lost between reading the count and waiting; a stale one
    /// only costs another turn of the loop.
    pub(super) async fn idle(&self, after: Duration) {
        loop {
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                self.changed.notified().await;
            } else if tokio::time::timeout(after, self.changed.notified())
                .await
                .is_err()
                && self.in_flight.load(Ordering::SeqCst) == 0
            {
                return;
            }
        }
    }
}

/// One request in flight, counted in its connection's [`Activity`].
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_one();
    }
}

/// The hyper service of one connection.
#[derive(Debug)]
pub(super) struct Handler<S> {
    pub(super) inner: S,
    pub(super) peer: SocketAddr,
    pub(super) request_timeout: Duration,
    pub(super) activity: Arc<Activity>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Handler<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone,
{
    type Response = Response<ResponseBody<B>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, S::Future, Request<Incoming>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let extensions = request.extensions_mut();
        #[cfg(feature = "verify")]
        extensions.insert(crate::verify::PeerAddr(self.peer));
        #[cfg(feature = "axum")]
        extensions.insert(axum::extract::ConnectInfo(self.peer));
        #[cfg(not(any(feature = "verify", feature = "axum")))]
        let _ = (extensions, self.peer);
        ResponseFuture {
            // hyper calls through `&self`: each request gets its own clone,
            // driven to readiness in the future (under the deadline).
            state: State::Ready {
                service: self.inner.clone(),
                request: Some(request),
            },
            deadline: tokio::time::sleep(self.request_timeout),
            _in_flight: self.activity.start(),
        }
    }
}

pin_project! {
    /// The response future of [`Handler`]: the inner service's answer, or
    /// `503 request_timeout` at the deadline.
    pub(super) struct ResponseFuture<S, F, R> {
        #[pin]
        state: State<S, F, R>,
        #[pin]
        deadline: Sleep,
        _in_flight: InFlight,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, R> {
        Ready { service: S, request: Option<R> },
        Called { #[pin] future: F },
    }
}

impl<S, B, R> Future for ResponseFuture<S, S::Future, R>
where
    S: Service<R, Response = Response<B>>,
{
    type Output = Result<Response<ResponseBody<B>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The service first: an answer ready at the deadline is sent.
        loop {
            match this.state.as_mut().project() {
                StateProj::Ready { service, request } => match service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => match request.take() {
                        Some(request) => {
                            let future = service.call(request);
                            this.state.set(State::Called { future });
                        }
                        // Only taken on the way to `Called`.
                        None => break,
                    },
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => break,
                },
                StateProj::Called { future } => match future.poll(cx) {
                    Poll::Ready(result) => {
                        return Poll::Ready(result.map(|r| r.map(ResponseBody::new)))
                    }
                    Poll::Pending => break,
                },
            }
        }
        ready!(this.deadline.poll(cx));
        Poll::Ready(Ok(
            Rejection::request_timeout(TIMEOUT_RETRY_AFTER).into_response()
        ))
    }
}

impl<S, F, R> std::fmt::Debug for ResponseFuture<S, F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_the_last_request_to_end() {
        let activity = Arc::new(Activity::default());
        let after = Duration::from_secs(5);
        let request = activity.start();
        let started = tokio::time::Instant::now();
        let idle = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { activity.idle(after).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!idle.is_finished(), "idle with a request in flight");
        drop(request);
        idle.await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(65));
    }
}
