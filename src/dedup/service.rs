use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::{self, ResponseFuture};
use super::layer::Config;
use super::stats::Counters;
use super::{ById, DedupLayer, DedupStats, DedupStore, KeyExtractor};
use crate::backend::CompactStore;
use crate::body::ResponseBody;
use crate::response::Rejection;
use crate::TaskEvent;

/// Runs the inner service once per key (by default the task id) and answers
/// duplicates with `200` and a `taskhook-duplicate` header.
///
/// Created with [`DedupLayer`] or [`Dedup::new`]. It must sit behind the
/// [`PayloadLayer`](crate::PayloadLayer), whose [`TaskEvent`] it reads from
/// the request extensions. See the [module docs](crate::dedup).
pub struct Dedup<S, K = ById, St = CompactStore> {
    inner: S,
    key: K,
    store: Arc<St>,
    counters: Arc<Counters>,
    config: Config,
}

impl<S> Dedup<S> {
    /// Wraps `inner` with a store of its own (a [`CompactStore`] with default
    /// settings), keyed on the task id. To share a store between services,
    /// use [`DedupLayer`].
    pub fn new(inner: S) -> Self {
        let layer = DedupLayer::new();
        tower_layer::Layer::layer(&layer, inner)
    }

    /// Returns a new [`Layer`](tower_layer::Layer) that wraps services with a
    /// `Dedup` middleware.
    pub fn layer() -> DedupLayer {
        DedupLayer::new()
    }
}

impl<S, K, St> Dedup<S, K, St> {
    pub(super) fn from_parts(
        inner: S,
        key: K,
        store: Arc<St>,
        counters: Arc<Counters>,
        config: Config,
    ) -> Self {
        Self {
            inner,
            key,
            store,
            counters,
            config,
        }
    }

    /// A snapshot of the counters of this service (shared with its layer),
    /// read now.
    pub fn stats(&self) -> DedupStats {
        self.counters.snapshot()
    }

    inner_service_accessors!();
}

impl<S: Clone, K: Clone, St> Clone for Dedup<S, K, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            key: self.key.clone(),
            store: Arc::clone(&self.store),
            counters: Arc::clone(&self.counters),
            config: self.config,
        }
    }
}

impl<S: fmt::Debug, K: fmt::Debug, St: fmt::Debug> fmt::Debug for Dedup<S, K, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dedup")
            .field("inner", &self.inner)
            .field("key", &self.key)
            .field("store", &self.store)
            .field("stats", &self.stats())
            .field("config", &self.config)
            .finish()
    }
}

impl<S, K, St, ReqBody, ResBody> Service<Request<ReqBody>> for Dedup<S, K, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    K: KeyExtractor,
    St: DedupStore,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(event) = req.extensions().get::<TaskEvent>() else {
            return ResponseFuture::rejected(Rejection::payload_layer_missing("DedupLayer"));
        };
        if req.extensions().get::<crate::fast_ack::Attempt>().is_some() {
            // Behind fast-ack every duplicate has been answered `202` and
            // journaled before it gets here: the dedup decision comes too late.
            return ResponseFuture::rejected(Rejection::dedup_behind_fast_ack());
        }
        // A clone of the event (an `Arc`), not of its id: it outlives the
        // request, which moves into the inner call.
        let event = event.clone();
        let key = self.key.extract(&event, &req);
        // The store must be asked before the inner service is called, so the
        // future takes the service that `poll_ready` made ready and leaves a
        // clone (not yet ready) in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::running(future::run(
            inner,
            req,
            key,
            event,
            Arc::clone(&self.store),
            Arc::clone(&self.counters),
            self.config,
        ))
    }
}
