//! [`CallbackStack`]: the whole recommended stack around a handler, in the
//! right order, in one call.
//!
//! payload → (progress) → dedup → fast-ack → handler is the one order that
//! is correct (see [`fast_ack`](crate::fast_ack#stacking-with-dedup) and
//! [`progress`](crate::progress#order)), and a
//! [`FastAckLayer`] drives exactly one service. [`CallbackStack::build`]
//! makes that service from the handler and hands back the
//! [`FastAckHandle`] (counters, dead letters, replay, graceful shutdown):
//! nothing to order, nothing to mount twice. The layers stay available for
//! those who compose by hand.
//!
//! What the handler may rely on: see
//! [`fast_ack`](crate::fast_ack#what-the-handler-sees).
//!
//! For a provider that pushes every change of a task's state, give the
//! stack its [profile](CallbackStack::profile) (and, to hear of the
//! intermediate states, a [progress handler](CallbackStack::on_progress)):
//! the handler then runs once per task with its final state. The example
//! is in [`progress`](crate::progress#example).
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

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::backend::CompactStore;
use crate::body::BufferedBody;
use crate::dedup::{ById, Dedup, DedupLayer};
use crate::fast_ack::journal::Journal;
use crate::fast_ack::{FastAck, FastAckBuilder, FastAckHandle, FastAckLayer, ResponseStatus};
use crate::payload::{Payload, PayloadLayer};
use crate::progress::{Discard, Progress, ProgressHandler, ProgressLayer};
use crate::provider::{Events, Profile};

/// The service [`CallbackStack::build`] makes: payload → progress → dedup →
/// fast-ack → the handler.
///
/// The progress layer passes every request on unless the profile pushes
/// every change or a progress handler is set (see
/// [`CallbackStack::profile`]).
pub type CallbackService<S, K = ById, St = CompactStore, H = Discard> =
    Payload<Progress<Dedup<FastAck<S>, K, St>, H, K, St>>;

/// Builds payload → progress → dedup → fast-ack around a handler, in that
/// order, and returns the service with its [`FastAckHandle`].
///
/// Each layer starts from its defaults ([`PayloadLayer::new`],
/// [`DedupLayer::new`], [`FastAckLayer::new`]) and can be replaced by a
/// configured one (fast-ack by its [`FastAckBuilder`]); a
/// [profile](Self::profile) sets what depends on the provider. See the
/// [module docs](crate::stack).
pub struct CallbackStack<K = ById, St = CompactStore, H = Discard> {
    payload: PayloadLayer,
    dedup: DedupLayer<K, St>,
    /// `true` while `dedup` is the stack's own (`DedupLayer::new()`), whose
    /// store's TTL the profile sets.
    default_dedup: bool,
    fast_ack: FastAckBuilder,
    profile: Option<Arc<dyn Profile>>,
    on_progress: Option<H>,
}

impl CallbackStack {
    /// The stack with every layer at its defaults: a 256 KiB body limit, an
    /// in-memory [`CompactStore`] of task ids, an in-memory journal, the
    /// default provider ([`Apimart`](crate::provider::Apimart): final
    /// events only).
    pub fn new() -> Self {
        Self {
            payload: PayloadLayer::new(),
            dedup: DedupLayer::new(),
            default_dedup: true,
            fast_ack: FastAckLayer::builder(),
            profile: None,
            on_progress: None,
        }
    }
}

impl Default for CallbackStack {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, St, H> CallbackStack<K, St, H> {
    /// Sets the payload layer (body limit, parsing).
    #[must_use]
    pub fn payload(mut self, layer: PayloadLayer) -> Self {
        self.payload = layer;
        self
    }

    /// Sets the dedup layer (its store, key, wait bound). Keep the default
    /// key, [`ById`], with a profile that pushes every change (see
    /// [`progress`](crate::progress#regressions)).
    #[must_use]
    pub fn dedup<K2, St2>(self, layer: DedupLayer<K2, St2>) -> CallbackStack<K2, St2, H> {
        CallbackStack {
            payload: self.payload,
            dedup: layer,
            default_dedup: false,
            fast_ack: self.fast_ack,
            profile: self.profile,
            on_progress: self.on_progress,
        }
    }

    /// Sets the provider [`Profile`]: what the provider's pushes look like
    /// and how it behaves. Whatever the order of the calls, it
    ///
    /// - reads the bodies in the payload layer ([`PayloadLayer::profile`])
    ///   and the jobs read back from the journal
    ///   ([`FastAckBuilder::profile`]), over any profile those layers were
    ///   given;
    /// - sets the TTL of the stack's own dedup store to
    ///   [`Profile::default_time_to_live`] (a store given with
    ///   [`dedup`](Self::dedup) keeps its own);
    /// - turns the [progress layer](crate::progress) on when the profile
    ///   pushes every change ([`Events::EveryChange`]): final events reach
    ///   the handler once per task, intermediate ones the
    ///   [progress handler](Self::on_progress) or nobody.
    ///
    /// Without a profile the stack reads the default provider's shape
    /// ([`Apimart`](crate::provider::Apimart)), and the progress layer
    /// passes every request on.
    ///
    /// ```
    /// use taskhook::provider::Apimart;
    /// use taskhook::CallbackStack;
    ///
    /// let stack = CallbackStack::new().profile(Apimart::new());
    /// # drop(stack);
    /// ```
    #[must_use]
    pub fn profile(mut self, profile: impl Profile) -> Self
    where
        K: 'static,
        St: 'static,
    {
        let profile: Arc<dyn Profile> = Arc::new(profile);
        if self.default_dedup {
            // Still `DedupLayer::new()` (nothing else sets `default_dedup`),
            // so the downcast succeeds: the same layer with its TTL.
            let dedup: &mut dyn Any = &mut self.dedup;
            if let Some(dedup) = dedup.downcast_mut::<DedupLayer>() {
                let store = CompactStore::builder()
                    .time_to_live(profile.default_time_to_live())
                    .build();
                *dedup = DedupLayer::with_store(store);
            }
        }
        self.profile = Some(profile);
        self
    }

    /// Sets the progress handler: an async closure taking the
    /// [`TaskEvent`](crate::TaskEvent), or any [`ProgressHandler`]. It gets
    /// each intermediate state of a task once (see
    /// [`progress`](crate::progress)); without it intermediate events are
    /// answered `200` and dropped.
    ///
    /// A progress handler turns the progress layer on whatever the profile
    /// says: with a provider that pushes only final states, an unexpected
    /// intermediate push then goes to it, not to the handler.
    ///
    /// ```
    /// use taskhook::{CallbackStack, TaskEvent};
    ///
    /// let stack = CallbackStack::new().on_progress(|event: TaskEvent| async move {
    ///     println!("{} is {:?} at {:?} %", event.id(), event.raw_status(), event.progress());
    /// });
    /// # drop(stack);
    /// ```
    #[must_use]
    pub fn on_progress<H2: ProgressHandler>(self, handler: H2) -> CallbackStack<K, St, H2> {
        CallbackStack {
            payload: self.payload,
            dedup: self.dedup,
            default_dedup: self.default_dedup,
            fast_ack: self.fast_ack,
            profile: self.profile,
            on_progress: Some(handler),
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
    pub fn build<S>(self, handler: S) -> (CallbackService<S, K, St, H>, FastAckHandle)
    where
        S: Service<Request<BufferedBody>> + Clone + Send + 'static,
        S::Response: ResponseStatus,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        S::Future: Send + 'static,
        K: Clone,
        H: ProgressHandler,
    {
        let (mut payload, mut fast_ack) = (self.payload, self.fast_ack);
        if let Some(profile) = &self.profile {
            payload = payload.profile(Arc::clone(profile));
            fast_ack = fast_ack.profile(Arc::clone(profile));
        }
        let events = match (&self.on_progress, &self.profile) {
            (Some(_), _) => Events::EveryChange,
            (None, Some(profile)) => profile.events(),
            (None, None) => Events::FinalOnly,
        };
        let progress = ProgressLayer::new(&self.dedup)
            .handler(self.on_progress)
            .events(events);
        let (fast_ack, handle) = fast_ack.build();
        let service = payload.layer(progress.layer(self.dedup.layer(fast_ack.layer(handler))));
        (service, handle)
    }
}

// No `H: Debug`: a closure, the usual progress handler, is not.
impl<K: fmt::Debug, St: fmt::Debug, H> fmt::Debug for CallbackStack<K, St, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackStack")
            .field("payload", &self.payload)
            .field("dedup", &self.dedup)
            .field("fast_ack", &self.fast_ack)
            .field("profile", &self.profile)
            .field(
                "on_progress",
                &self
                    .on_progress
                    .as_ref()
                    .map(|_| std::any::type_name::<H>()),
            )
            .finish()
    }
}
