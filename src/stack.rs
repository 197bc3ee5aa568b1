//! [`CallbackStack`]: the whole recommended stack around a handler, in the
//! right order, in one call.
//!
//! payload → dedup → fast-ack → handler is the one order that is correct
//! (see [`fast_ack`](crate::fast_ack#stacking-with-dedup)), and a
//! [`FastAckLayer`] drives exactly one service. [`CallbackStack::build`]
//! makes that service from the handler and hands back the
//! [`FastAckHandle`] (counters, dead letters, replay, graceful shutdown):
//! nothing to order, nothing to mount twice. The layers stay available for
//! those who compose by hand.
//!
//! What the handler may rely on: see
//! [`fast_ack`](crate::fast_ack#what-the-handler-sees).
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use taskhook::body::BufferedBody;
//! use taskhook::fast_ack::FastAckLayer;
//! use taskhook::{CallbackStack, TaskEvent};
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Infallible> {
//! let handler = service_fn(|req: Request<BufferedBody>| async move {
//!     let event = req.extensions().get::<TaskEvent>().expect("set by the stack");
//!     println!("task {} is final", event.id());
//!     Ok::<_, Infallible>(Response::new(String::new()))
//! });
//! let (service, handle) = CallbackStack::new()
//!     .fast_ack(FastAckLayer::builder().concurrency(8))
//!     .build(handler);
//! handle.started().await;
//!
//! let push = || {
//!     Request::post("/callback")
//!         .body(r#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#.to_owned())
//!         .unwrap()
//! };
//! assert_eq!(service.clone().oneshot(push()).await?.status(), StatusCode::ACCEPTED);
//! assert_eq!(service.oneshot(push()).await?.status(), StatusCode::OK); // a duplicate
//!
//! let report = handle.shutdown(Duration::from_secs(20)).await;
//! assert!(report.drained);
//! assert_eq!(handle.stats().processed, 1);
//! # Ok(()) }
//! ```
//!
//! With axum (feature `axum`), a handler with state, mounted with
//! `route_service` (the stack is a service, not a layer):
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::extract::State;
//! use axum::handler::Handler;
//! use axum::Router;
//! use taskhook::{CallbackStack, TaskEvent};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     bucket: String,
//! }
//!
//! async fn on_callback(State(state): State<AppState>, event: TaskEvent) {
//!     for url in event.urls() {
//!         println!("copy {} to {}", url.url(), state.bucket);
//!     }
//! }
//!
//! let state = AppState { bucket: "results".into() };
//! let (callback, handle) = CallbackStack::new().build(on_callback.with_state(state.clone()));
//! let app: Router = Router::new()
//!     .route_service("/callback", callback)
//!     .with_state(state);
//! # drop((app, handle));
//! # }
//! ```

use std::fmt;

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::backend::CompactStore;
use crate::body::BufferedBody;
use crate::dedup::{ById, Dedup, DedupLayer};
use crate::fast_ack::journal::Journal;
use crate::fast_ack::{FastAck, FastAckBuilder, FastAckHandle, FastAckLayer, ResponseStatus};
use crate::payload::{Payload, PayloadLayer};

/// The service [`CallbackStack::build`] makes: payload → dedup → fast-ack →
/// the handler.
pub type CallbackService<S, K = ById, St = CompactStore> = Payload<Dedup<FastAck<S>, K, St>>;

/// Builds payload → dedup → fast-ack around a handler, in that order, and
/// returns the service with its [`FastAckHandle`].
///
/// Each layer starts from its defaults ([`PayloadLayer::new`],
/// [`DedupLayer::new`], [`FastAckLayer::new`]) and can be replaced by a
/// configured one (fast-ack by its [`FastAckBuilder`]). See the [module docs](crate::stack).
pub struct CallbackStack<K = ById, St = CompactStore> {
    payload: PayloadLayer,
    dedup: DedupLayer<K, St>,
    fast_ack: FastAckBuilder,
}

impl CallbackStack {
    /// The stack with every layer at its defaults: a 256 KiB body limit, an
    /// in-memory [`CompactStore`] of task ids, an in-memory journal.
    pub fn new() -> Self {
        Self {
            payload: PayloadLayer::new(),
            dedup: DedupLayer::new(),
            fast_ack: FastAckLayer::builder(),
        }
    }
}

impl Default for CallbackStack {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, St> CallbackStack<K, St> {
    /// Sets the payload layer (body limit, parsing).
    #[must_use]
    pub fn payload(mut self, layer: PayloadLayer) -> Self {
        self.payload = layer;
        self
    }

    /// Sets the dedup layer (its store, key, wait bound).
    #[must_use]
    pub fn dedup<K2, St2>(self, layer: DedupLayer<K2, St2>) -> CallbackStack<K2, St2> {
        CallbackStack {
            payload: self.payload,
            dedup: layer,
            fast_ack: self.fast_ack,
        }
    }

    /// Sets the fast-ack layer's settings (capacity, workers, retries,
    /// journal).
    #[must_use]
    pub fn fast_ack(mut self, settings: FastAckBuilder) -> Self {
        self.fast_ack = settings;
        self
    }

    /// Sets the fast-ack journal, keeping the layer's other settings.
    ///
    /// A durable journal (`RedbJournal`, feature `redb`; `RedisJournal`,
    /// feature `redis`) also remembers the task ids it accepted and
    /// finished, so a duplicate pushed after a restart is recognised with no
    /// other wiring.
    #[must_use]
    pub fn journal(mut self, journal: impl Journal) -> Self {
        self.fast_ack = self.fast_ack.journal(journal);
        self
    }

    /// Builds the stack around `handler`; returns the service to mount
    /// (with axum: `Router::route_service`) and the handle on fast-ack.
    ///
    /// The workers start on the current tokio runtime, or with the first
    /// request when there is none yet.
    pub fn build<S>(self, handler: S) -> (CallbackService<S, K, St>, FastAckHandle)
    where
        S: Service<Request<BufferedBody>> + Clone + Send + 'static,
        S::Response: ResponseStatus,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        S::Future: Send + 'static,
        K: Clone,
    {
        let (fast_ack, handle) = self.fast_ack.build();
        let service = self
            .payload
            .layer(self.dedup.layer(fast_ack.layer(handler)));
        (service, handle)
    }
}

impl<K: fmt::Debug, St: fmt::Debug> fmt::Debug for CallbackStack<K, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackStack")
            .field("payload", &self.payload)
            .field("dedup", &self.dedup)
            .field("fast_ack", &self.fast_ack)
            .finish()
    }
}
