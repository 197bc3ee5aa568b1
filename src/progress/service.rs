use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::{self, Answer, ResponseFuture};
use super::layer::{handler_name, Config};
use super::stats::{Counter, Counters};
use super::{Discard, ProgressHandler, ProgressLayer, ProgressStats};
use crate::backend::CompactStore;
use crate::body::ResponseBody;
use crate::dedup::{ById, DedupLayer, DedupStore, KeyExtractor};
use crate::response::Rejection;
use crate::TaskEvent;

/// Passes final events on; answers intermediate ones itself, after handing
/// each state once to the progress handler; ignores a regression.
///
/// Created with [`ProgressLayer`] or [`Progress::new`]. It sits between the
/// [`PayloadLayer`](crate::PayloadLayer), whose [`TaskEvent`] it reads from
/// the request extensions, and the [`DedupLayer`], whose store it reads.
/// See the [module docs](crate::progress).
pub struct Progress<S, H = Discard, K = ById, St = CompactStore> {
    inner: S,
    key: K,
    shared: Arc<Shared<H, St>>,
}

/// What every request of one service reads: one `Arc` to clone per
/// intermediate event.
pub(super) struct Shared<H, St> {
    pub(super) handler: Option<Arc<H>>,
    /// The dedup layer's store.
    pub(super) store: Arc<St>,
    /// The intermediate states already handed to the handler.
    pub(super) states: CompactStore,
    pub(super) counters: Arc<Counters>,
    pub(super) config: Config,
}

impl<S, K: Clone, St> Progress<S, Discard, K, St> {
    /// Wraps `inner`, in front of `dedup`, without a progress handler; see
    /// [`ProgressLayer::new`].
    pub fn new(inner: S, dedup: &DedupLayer<K, St>) -> Self {
        tower_layer::Layer::layer(&ProgressLayer::new(dedup), inner)
    }

    /// Returns a new [`Layer`](tower_layer::Layer) that wraps services with a
    /// `Progress` middleware, in front of `dedup`.
    pub fn layer(dedup: &DedupLayer<K, St>) -> ProgressLayer<Discard, K, St> {
        ProgressLayer::new(dedup)
    }
}

impl<S, H, K, St> Progress<S, H, K, St> {
    pub(super) fn from_parts(inner: S, key: K, shared: Arc<Shared<H, St>>) -> Self {
        Self { inner, key, shared }
    }

    /// A snapshot of the counters of this service (shared with its layer),
    /// read now.
    pub fn stats(&self) -> ProgressStats {
        self.shared.counters.snapshot()
    }

    inner_service_accessors!();
}

impl<S: Clone, H, K: Clone, St> Clone for Progress<S, H, K, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            key: self.key.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, H, K: fmt::Debug, St: fmt::Debug> fmt::Debug for Progress<S, H, K, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &*self.shared;
        f.debug_struct("Progress")
            .field("inner", &self.inner)
            .field("handler", &handler_name(&shared.handler))
            .field("key", &self.key)
            .field("store", &shared.store)
            .field("stats", &self.stats())
            .field("config", &shared.config)
            .finish()
    }
}

impl<S, H, K, St, ReqBody, ResBody> Service<Request<ReqBody>> for Progress<S, H, K, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    H: ProgressHandler,
    K: KeyExtractor,
    St: DedupStore,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        if !shared.config.active {
            return ResponseFuture::inner(self.inner.call(req));
        }
        let Some(event) = req.extensions().get::<TaskEvent>() else {
            return ResponseFuture::answer(Answer::Rejected(Rejection::payload_layer_missing(
                "ProgressLayer",
            )));
        };
        if event.is_final() {
            shared.counters.incr(Counter::Final);
            return ResponseFuture::inner(self.inner.call(req));
        }
        // An intermediate event never reaches the inner service: the
        // readiness `poll_ready` got stays with it for the next call.
        let Some(handler) = &shared.handler else {
            shared.counters.incr(Counter::Dropped);
            tracing::debug!(
                id = event.id(),
                status = event.raw_status(),
                "progress: intermediate event dropped (no progress handler)"
            );
            return ResponseFuture::answer(Answer::Ignored(event.clone(), "intermediate"));
        };
        // The key the final event is (or will be) deduplicated by.
        let key = self.key.extract(event, &req);
        ResponseFuture::running(future::run(
            Arc::clone(shared),
            Arc::clone(handler),
            event.clone(),
            key,
        ))
    }
}
