use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{Counters, Settings};
use super::{ConfirmTask, RefetchLayer, RefetchStats};
use crate::body::ResponseBody;
use crate::response::Rejection;
use crate::TaskEvent;

/// Confirms each pushed [`TaskEvent`] with the provider before calling the
/// inner service.
///
/// Created with [`RefetchLayer`] or [`Refetch::new`]. Needs the
/// [`PayloadLayer`](crate::PayloadLayer) in front of it, and a tokio runtime
/// (for the timeout).
pub struct Refetch<S, C> {
    inner: S,
    confirm: Arc<C>,
    settings: Settings,
    counters: Arc<Counters>,
}

impl<S, C: ConfirmTask> Refetch<S, C> {
    /// Wraps `inner`, confirming with `confirm` and the default settings.
    pub fn new(inner: S, confirm: C) -> Self {
        tower_layer::Layer::layer(&RefetchLayer::new(confirm), inner)
    }

    /// Returns a new [`Layer`](tower_layer::Layer) that wraps services with a
    /// `Refetch` middleware.
    pub fn layer(confirm: C) -> RefetchLayer<C> {
        RefetchLayer::new(confirm)
    }
}

impl<S, C> Refetch<S, C> {
    pub(super) fn from_parts(
        inner: S,
        confirm: Arc<C>,
        settings: Settings,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            inner,
            confirm,
            settings,
            counters,
        }
    }

    /// A snapshot of the counters of this service's decisions (shared with
    /// its layer), read now.
    pub fn stats(&self) -> RefetchStats {
        self.counters.snapshot()
    }

    inner_service_accessors!();
}

impl<S: Clone, C> Clone for Refetch<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            confirm: Arc::clone(&self.confirm),
            settings: self.settings,
            counters: Arc::clone(&self.counters),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Refetch<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refetch")
            .field("inner", &self.inner)
            .field("confirm", &self.confirm)
            .field("timeout", &self.settings.timeout)
            .finish()
    }
}

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for Refetch<S, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    C: ConfirmTask,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(pushed) = req.extensions().get::<TaskEvent>().cloned() else {
            return ResponseFuture::rejected(Rejection::payload_layer_missing("RefetchLayer"));
        };
        let confirm = Arc::clone(&self.confirm);
        let event = pushed.clone();
        let confirmation = Box::pin(async move { confirm.confirm(&event).await });
        // The provider is asked before the inner service is called, so the
        // future takes the service that `poll_ready` made ready and leaves a
        // clone (not yet ready) in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::confirming(
            confirmation,
            inner,
            req,
            pushed,
            self.settings,
            Arc::clone(&self.counters),
        )
    }
}
