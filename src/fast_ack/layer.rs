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
/// counters; clones share them. It drives **one** inner service: the first
/// [`layer`](Layer::layer) call binds it and starts the workers; a service
/// made by a later call answers `500` (see the [module docs](crate::fast_ack)
/// for axum). Configure the layer before cloning it or taking a
/// [`handle`](FastAckLayer::handle): a setter on a shared layer makes a new,
/// separate state.
///
/// Defaults: a [`MemoryJournal`](super::MemoryJournal), capacity 1024,
/// 4 workers, [`RetryPolicy::new`], 1024 dead letters, `Retry-After: 10`.
/// The [module example](crate::fast_ack#example) sets them all.
#[derive(Clone)]
pub struct FastAckLayer {
    shared: Arc<Shared>,
}

impl FastAckLayer {
    /// A layer with the default settings.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::new(Config::default())),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        // The state is built from the settings; nothing ran on it yet unless
        // the layer was already used, and then the new settings get a state
        // of their own.
        let mut config = self.shared.config.clone();
        f(&mut config);
        self.shared = Arc::new(Shared::new(config));
        self
    }

    /// Sets the journal written before every `2xx`.
    #[must_use]
    pub fn journal(self, journal: impl Journal) -> Self {
        let journal: Arc<dyn Journal> = Arc::new(journal);
        self.configure(|c| c.journal = journal)
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
    /// event") has the figures and `examples/fast_ack_memory.rs` measures
    /// them.
    #[must_use]
    pub fn capacity(self, events: usize) -> Self {
        self.configure(|c| c.capacity = events)
    }

    /// Sets how many events the inner service works on at once (at least 1).
    #[must_use]
    pub fn concurrency(self, workers: usize) -> Self {
        self.configure(|c| c.concurrency = workers.max(1))
    }

    /// Sets when failed attempts are retried.
    #[must_use]
    pub fn retry(self, policy: RetryPolicy) -> Self {
        self.configure(|c| c.retry = policy)
    }

    /// Sets how many dead letters are kept; when full, the oldest is
    /// dropped (from the journal too) and counted.
    #[must_use]
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
    #[must_use]
    pub fn dead_letter_refusals(self, dead_letter: bool) -> Self {
        self.configure(|c| c.dead_letter_refusals = dead_letter)
    }

    /// Sets the `Retry-After` of the `503` answers (whole seconds, at least
    /// one).
    #[must_use]
    pub fn retry_after(self, after: Duration) -> Self {
        self.configure(|c| c.retry_after = after)
    }

    /// Calls `callback` with every new dead letter, on the worker, before
    /// the event counts as finished. Keep it short; a panic in it is caught
    /// and logged.
    ///
    /// With the dedup layer in front, this is where to forget the task id
    /// ([`DedupStore::forget`](crate::DedupStore::forget), on a task of its
    /// own) so that the provider's next push of it is processed (see the
    /// [module docs](crate::fast_ack#stacking-with-dedup)).
    #[must_use]
    pub fn on_dead_letter<F>(self, callback: F) -> Self
    where
        F: Fn(&DeadLetter) + Send + Sync + 'static,
    {
        let callback = Arc::new(callback);
        self.configure(|c| c.on_dead_letter = Some(callback))
    }

    /// A handle on the counters, the dead letters and the shutdown.
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
