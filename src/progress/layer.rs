use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::service::Shared;
use super::stats::Counters;
use super::{Discard, Progress, ProgressHandler, ProgressStats};
use crate::backend::CompactStore;
use crate::dedup::{ById, DedupLayer};
use crate::provider::Events;
use crate::response::DEFAULT_RETRY_AFTER;

/// How many intermediate states the default state store remembers.
const STATES_CAPACITY: u64 = 100_000;

/// How long the default state store remembers an intermediate state: 1 h,
/// far past any re-push of one state.
const STATES_TIME_TO_LIVE: Duration = Duration::from_secs(60 * 60);

/// Settings shared by the layer and its services.
#[derive(Debug, Clone, Copy)]
pub(super) struct Config {
    /// `false`: every request is passed on untouched.
    pub(super) active: bool,
    pub(super) retry_after: Duration,
}

/// Applies [`Progress`] to a service: final events pass on, intermediate
/// ones go to the progress handler (once per state) or are answered `200`
/// and dropped, and a regression is ignored.
///
/// Made from the [`DedupLayer`] that follows it ([`ProgressLayer::new`]):
/// it reads that layer's store, with that layer's key, to tell a
/// regression. The counters (read with [`stats`](Self::stats)) and the
/// store of intermediate states are created once, here, and shared by every
/// service the layer makes and by its clones.
///
/// See the [module docs](crate::progress) for the behaviour.
pub struct ProgressLayer<H = Discard, K = ById, St = CompactStore> {
    handler: Option<Arc<H>>,
    key: K,
    store: Arc<St>,
    states: CompactStore,
    counters: Arc<Counters>,
    config: Config,
}

impl<K: Clone, St> ProgressLayer<Discard, K, St> {
    /// A layer in front of `dedup`, without a progress handler: it reads
    /// `dedup`'s store with `dedup`'s key (keep the default key,
    /// [`ById`]), and remembers up to 100,000 intermediate states for an
    /// hour.
    ///
    /// ```
    /// use taskhook::progress::ProgressLayer;
    /// use taskhook::{DedupLayer, PayloadLayer};
    /// use tower::ServiceBuilder;
    ///
    /// let dedup = DedupLayer::new();
    /// let stack = ServiceBuilder::new()
    ///     .layer(PayloadLayer::new())
    ///     .layer(ProgressLayer::new(&dedup))
    ///     .layer(dedup);
    /// # let _ = stack;
    /// ```
    pub fn new(dedup: &DedupLayer<K, St>) -> Self {
        Self {
            handler: None,
            key: dedup.key_extractor().clone(),
            store: dedup.shared_store(),
            states: CompactStore::builder()
                .max_capacity(STATES_CAPACITY)
                .time_to_live(STATES_TIME_TO_LIVE)
                .build(),
            counters: Arc::default(),
            config: Config {
                active: true,
                retry_after: DEFAULT_RETRY_AFTER,
            },
        }
    }
}

impl<H, K, St> ProgressLayer<H, K, St> {
    /// Sets the progress handler: an async closure taking the
    /// [`TaskEvent`](crate::TaskEvent), or any [`ProgressHandler`] (a tower
    /// service through [`ServiceHandler`](super::ServiceHandler)). It gets
    /// each intermediate state once; without it, intermediate events are
    /// answered `200` and dropped.
    ///
    /// ```
    /// use taskhook::progress::ProgressLayer;
    /// use taskhook::{DedupLayer, TaskEvent};
    ///
    /// let layer = ProgressLayer::new(&DedupLayer::new()).on_progress(|event: TaskEvent| async move {
    ///     println!("{} at {:?} %", event.id(), event.progress());
    /// });
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn on_progress<H2: ProgressHandler>(self, handler: H2) -> ProgressLayer<H2, K, St> {
        self.handler(Some(handler))
    }

    /// Sets the handler, or none.
    pub(crate) fn handler<H2>(self, handler: Option<H2>) -> ProgressLayer<H2, K, St> {
        ProgressLayer {
            handler: handler.map(Arc::new),
            key: self.key,
            store: self.store,
            states: self.states,
            counters: self.counters,
            config: self.config,
        }
    }

    /// Sets which events the provider pushes (default
    /// [`Events::EveryChange`], what the layer is for): with
    /// [`Events::FinalOnly`] it passes every request on untouched, so that
    /// one stack type serves every profile (`.events(profile.events())`).
    ///
    /// ```
    /// use taskhook::progress::ProgressLayer;
    /// use taskhook::provider::{Apimart, Profile};
    /// use taskhook::DedupLayer;
    ///
    /// let layer = ProgressLayer::new(&DedupLayer::new()).events(Apimart::new().events());
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn events(mut self, events: Events) -> Self {
        self.config.active = events != Events::FinalOnly;
        self
    }

    /// Sets the `Retry-After` of the `503` answered when the dedup store
    /// cannot be read (default 10 s; whole seconds, at least 1).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook::progress::ProgressLayer;
    /// use taskhook::DedupLayer;
    ///
    /// let layer = ProgressLayer::new(&DedupLayer::new()).retry_after(Duration::from_secs(30));
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.config.retry_after = after;
        self
    }

    /// Sets where the intermediate states handed to the progress handler
    /// are remembered (default: a [`CompactStore`] of 100,000 states for
    /// 1 h). Only its capacity and times matter: a full store forgets its
    /// oldest states, which at worst hands a re-pushed old state to the
    /// progress handler again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook::backend::CompactStore;
    /// use taskhook::progress::ProgressLayer;
    /// use taskhook::DedupLayer;
    ///
    /// let states = CompactStore::builder()
    ///     .max_capacity(10_000)
    ///     .time_to_live(Duration::from_secs(600))
    ///     .build();
    /// let layer = ProgressLayer::new(&DedupLayer::new()).state_store(states);
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn state_store(mut self, store: CompactStore) -> Self {
        self.states = store;
        self
    }

    /// A snapshot of the counters of this layer, shared by every service it
    /// makes and by its clones, read now.
    pub fn stats(&self) -> ProgressStats {
        self.counters.snapshot()
    }
}

impl<H, K: Clone, St> Clone for ProgressLayer<H, K, St> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            key: self.key.clone(),
            store: Arc::clone(&self.store),
            states: self.states.clone(),
            counters: Arc::clone(&self.counters),
            config: self.config,
        }
    }
}

// No `H: Debug`: a closure, the usual handler, is not; its type name is
// shown instead.
impl<H, K: fmt::Debug, St: fmt::Debug> fmt::Debug for ProgressLayer<H, K, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressLayer")
            .field("handler", &handler_name(&self.handler))
            .field("key", &self.key)
            .field("store", &self.store)
            .field("states", &self.states)
            .field("stats", &self.stats())
            .field("active", &self.config.active)
            .field("retry_after", &self.config.retry_after)
            .finish()
    }
}

/// The type name of a handler, or `None`.
pub(super) fn handler_name<H>(handler: &Option<Arc<H>>) -> Option<&'static str> {
    handler.as_ref().map(|_| std::any::type_name::<H>())
}

impl<S, H, K: Clone, St> Layer<S> for ProgressLayer<H, K, St> {
    type Service = Progress<S, H, K, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Progress::from_parts(
            inner,
            self.key.clone(),
            Arc::new(Shared {
                handler: self.handler.clone(),
                store: Arc::clone(&self.store),
                states: self.states.clone(),
                counters: Arc::clone(&self.counters),
                config: self.config,
            }),
        )
    }
}
