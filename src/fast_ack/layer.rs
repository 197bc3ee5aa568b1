use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use super::dead_letter::DeadLetter;
use super::handle::FastAckHandle;
use super::journal::Journal;
use super::retry::RetryPolicy;
use super::shared::{Config, Shared};
use super::{worker, FastAck, ResponseStatus};
use crate::body::BufferedBody;

/// Applies [`FastAck`]: answer `202 Accepted` once the event is journaled
/// and queued, run the inner service in the background with retries, keep
/// what keeps failing as dead letters.
///
/// The layer owns the queue, the journal, the dead letters and the
/// counters. It is configured once, by [`FastAckLayer::builder`], whose
/// [`build`](FastAckBuilder::build) returns it with its
/// [`FastAckHandle`], so no setting can reach a state already shared. It
/// drives **one** inner service: the first [`layer`](Layer::layer) call
/// binds it and starts the workers; a service made by a later call answers
/// `500` and the call logs an `ERROR`. It is not `Clone`, so axum's
/// `Router::layer` and `MethodRouter::layer`, which apply a layer to every
/// route and to the fallback, do not accept it (see the [module
/// docs](crate::fast_ack#axum)).
pub struct FastAckLayer {
    shared: Arc<Shared>,
}

impl FastAckLayer {
    /// A layer with the default settings: a
    /// [`MemoryJournal`](super::journal::MemoryJournal), capacity 1,024, 4 workers,
    /// [`RetryPolicy::new`], 1,024 dead letters, refusals dead-lettered,
    /// `Retry-After: 10`.
    pub fn new() -> Self {
        FastAckBuilder::default().build().0
    }

    /// A builder to configure the layer; see the [module
    /// example](crate::fast_ack#example).
    pub fn builder() -> FastAckBuilder {
        FastAckBuilder::default()
    }

    /// A handle on the counters, the dead letters and the shutdown (the
    /// same as [`build`](FastAckBuilder::build) returns).
    pub fn handle(&self) -> FastAckHandle {
        FastAckHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Default for FastAckLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FastAckLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastAckLayer")
            .field("config", &self.shared.config)
            .finish()
    }
}

/// The settings of a [`FastAckLayer`]; [`build`](Self::build) makes the
/// layer and its handle.
#[derive(Default)]
#[must_use]
pub struct FastAckBuilder {
    config: Config,
}

impl fmt::Debug for FastAckBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastAckBuilder")
            .field("config", &self.config)
            .finish()
    }
}

impl FastAckBuilder {
    fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Makes the layer with these settings, and the handle on its counters,
    /// dead letters and shutdown.
    pub fn build(self) -> (FastAckLayer, FastAckHandle) {
        let layer = FastAckLayer {
            shared: Arc::new(Shared::new(self.config)),
        };
        let handle = layer.handle();
        (layer, handle)
    }

    /// Sets the journal written before every `2xx` (default: a
    /// [`MemoryJournal`](super::journal::MemoryJournal), lost with the process).
    pub fn journal(self, journal: impl Journal) -> Self {
        let journal: Arc<dyn Journal> = Arc::new(journal);
        self.configure(|c| c.journal = journal)
    }

    /// Sets the provider profile that reads the events of jobs rebuilt from
    /// the journal (after a restart, or a replayed dead letter): the same
    /// one as the payload layer's
    /// ([`PayloadLayer::profile`](crate::PayloadLayer::profile)). Default:
    /// the [`Apimart`](crate::provider::Apimart) shape.
    pub fn profile(self, profile: impl crate::provider::Profile) -> Self {
        let profile: Arc<dyn crate::provider::Profile> = Arc::new(profile);
        self.configure(|c| c.profile = Some(profile))
    }

    /// Sets the most events accepted and not yet finished (queued, running
    /// or waiting for a retry). Beyond it, events get `503` with
    /// `Retry-After`. The default is 1,024.
    ///
    /// It bounds the memory a handler that is down can hold: at most this
    /// many events times what one held event costs. A held event keeps its
    /// request, and in a hyper or axum server its body is a slice of the
    /// read buffer hyper received it in, which hyper cannot reuse while the
    /// event is alive; so an event with a small body costs several times
    /// that body. Raise the capacity to ride out a longer outage of the
    /// handler, lower it to bound memory; `BENCHMARKS.md` ("Memory per held
    /// event") has the figures, measured by the `fast_ack_memory` tool of
    /// the repository.
    pub fn capacity(self, events: usize) -> Self {
        self.configure(|c| c.capacity = events)
    }

    /// Sets how many events the inner service works on at once (at least 1;
    /// the default is 4).
    pub fn concurrency(self, workers: usize) -> Self {
        self.configure(|c| c.concurrency = workers.max(1))
    }

    /// Sets when failed attempts are retried (default: [`RetryPolicy::new`]).
    pub fn retry(self, policy: RetryPolicy) -> Self {
        self.configure(|c| c.retry = policy)
    }

    /// Sets how many dead letters are kept (default 1,024); when full, the
    /// oldest is dropped (from the journal too) and counted.
    pub fn dead_letter_capacity(self, letters: usize) -> Self {
        self.configure(|c| c.dead_letter_capacity = letters)
    }

    /// Sets whether an event the inner service refuses with a `4xx` (an
    /// extractor's rejection, a validation error) becomes a dead letter.
    /// The default is `true`.
    ///
    /// The provider was answered `2xx` for it, so it would not send it
    /// again: a refusal is never retried (the answer would be the same) nor
    /// counted as processed. As a dead letter it is kept, listed, sent to
    /// [`on_dead_letter`](Self::on_dead_letter), and can be
    /// [replayed](FastAckHandle::replay) once the handler is fixed. With
    /// `false` it is only logged (`WARN`) and marked done in the journal.
    /// Either way it counts in [`Stats::refused`](super::Stats::refused).
    pub fn dead_letter_refusals(self, dead_letter: bool) -> Self {
        self.configure(|c| c.dead_letter_refusals = dead_letter)
    }

    /// Sets the `Retry-After` of the `503` answers (whole seconds, at least
    /// one; the default is 10 s).
    pub fn retry_after(self, after: Duration) -> Self {
        self.configure(|c| c.retry_after = after)
    }

    /// Calls `callback` with every new dead letter, on the worker, before
    /// the event counts as finished. Keep it short; a panic in it is caught
    /// and logged.
    ///
    /// With the dedup layer in front, this is where to forget the task id
    /// ([`DedupStore::forget`](crate::dedup::DedupStore::forget), on a task of its
    /// own) so that the provider's next push of it is processed (see the
    /// [module docs](crate::fast_ack#stacking-with-dedup)).
    pub fn on_dead_letter<F>(self, callback: F) -> Self
    where
        F: Fn(&DeadLetter) + Send + Sync + 'static,
    {
        let callback = Arc::new(callback);
        self.configure(|c| c.on_dead_letter = Some(callback))
    }
}

impl<S> Layer<S> for FastAckLayer
where
    S: Service<Request<BufferedBody>> + Clone + Send + 'static,
    S::Response: ResponseStatus,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
{
    type Service = FastAck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let bound = worker::bind(&self.shared, inner);
        if !bound {
            // Loud at once, when the app is built, not only at the first
            // callback.
            tracing::error!("{}", crate::response::FAST_ACK_LAYER_REUSED);
        }
        FastAck::from_shared(Arc::clone(&self.shared), bound)
    }
}
