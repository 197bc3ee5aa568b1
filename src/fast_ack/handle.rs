//! [`FastAckHandle`]: counters, dead letters, replay and shutdown.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use super::dead_letter::DeadLetter;
use super::journal::JournalError;
use super::shared::{Refusal, Shared};

/// A handle on the state a [`FastAckLayer`](super::FastAckLayer) shares with
/// its services: counters, dead letters, replay, graceful shutdown.
///
/// Made by [`FastAckLayer::handle`](super::FastAckLayer::handle) (or
/// [`FastAck::handle`](super::FastAck::handle)); cheap to clone.
#[derive(Clone)]
pub struct FastAckHandle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for FastAckHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastAckHandle")
            .field("stats", &self.stats())
            .finish()
    }
}

/// A snapshot of the counters and of the queue.
///
/// At any time, `accepted + recovered == processed + refused +
/// dead_lettered + queued + in_flight + waiting_retry` (plus the events
/// being journaled at that instant).
///
/// `Serialize` gives an admin route its JSON (`{"accepted":..,..}`) with no
/// field written by hand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Events answered `2xx` (replayed dead letters included).
    pub accepted: u64,
    /// Events answered `503` because the queue was full.
    pub rejected_full: u64,
    /// Events answered `503` for another reason: starting, shutting down,
    /// the journal failed.
    pub rejected_unavailable: u64,
    /// Events the inner service finished (a `1xx`, `2xx` or `3xx` answer).
    pub processed: u64,
    /// Events the inner service refused with a `4xx`: not retried, kept as
    /// dead letters (unless
    /// [`dead_letter_refusals`](super::FastAckBuilder::dead_letter_refusals)
    /// is off), never counted as `processed` nor as `dead_lettered`.
    pub refused: u64,
    /// Attempts that failed (`5xx`, error, panic).
    pub failed_attempts: u64,
    /// Retries scheduled.
    pub retried: u64,
    /// Events that failed every attempt (`5xx`, error, panic).
    pub dead_lettered: u64,
    /// Dead letters dropped because the list was full.
    pub dead_letters_dropped: u64,
    /// Dead letters replayed.
    pub replayed: u64,
    /// Events the journal recognised as duplicates (answered `200`).
    pub duplicates: u64,
    /// Pending journal entries queued at start-up.
    pub recovered: u64,
    /// Journal calls that failed after the event was accepted (marking it
    /// done or dead): the entry stays pending and is replayed after a
    /// restart.
    pub journal_errors: u64,
    /// Events waiting in the queue (the queue depth).
    pub queued: usize,
    /// Events the inner service is working on.
    pub in_flight: usize,
    /// Events waiting for their retry delay.
    pub waiting_retry: usize,
    /// Dead letters kept.
    pub dead_letters: usize,
}

/// What a graceful shutdown left unfinished.
///
/// Every event listed stays pending in the journal: a durable journal runs
/// it after the next start.
/// `Serialize`: `{"drained":..,"queued":[..],"in_flight":[..],"waiting_retry":[..]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// `true` when everything accepted was processed or dead-lettered
    /// before the deadline.
    pub drained: bool,
    /// Sequence numbers still in the queue.
    pub queued: Vec<u64>,
    /// Sequence numbers whose attempt was running at the deadline (it was
    /// cancelled).
    pub in_flight: Vec<u64>,
    /// Sequence numbers waiting for a retry.
    pub waiting_retry: Vec<u64>,
}

impl ShutdownReport {
    /// The number of events left unfinished.
    pub fn left(&self) -> usize {
        self.queued.len() + self.in_flight.len() + self.waiting_retry.len()
    }
}

/// Why a dead letter could not be replayed. The dead letter is kept.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplayError {
    /// No dead letter has this sequence number.
    NotFound(u64),
    /// The queue is full; try again later.
    QueueFull,
    /// The layer is starting or shutting down.
    Unavailable,
    /// The journal could not record the replay.
    Journal(JournalError),
    /// The journal already holds or has finished this task (a journal that
    /// deduplicates by task id); the dead letter was dropped.
    Duplicate,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(seq) => write!(f, "no dead letter {seq}"),
            Self::QueueFull => f.write_str("the fast-ack queue is full"),
            Self::Unavailable => f.write_str("the fast-ack layer is not accepting events"),
            Self::Journal(error) => write!(f, "replay not journaled: {error}"),
            Self::Duplicate => f.write_str("the journal already has this task"),
        }
    }
}

impl std::error::Error for ReplayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Journal(error) => Some(error),
            _ => None,
        }
    }
}

impl From<Refusal> for ReplayError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Full => Self::QueueFull,
            Refusal::Starting | Refusal::ShuttingDown => Self::Unavailable,
            Refusal::Journal(error) => Self::Journal(error),
        }
    }
}

impl FastAckHandle {
    /// The counters and the queue now.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The number of events waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.shared.queue_depth()
    }

    /// Waits until the start-up replay is queued and the workers run.
    ///
    /// Until then the layer answers `503` (`starting`). The workers start
    /// once a service has been made with the layer: await this after
    /// building the stack, not before.
    pub async fn started(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.shared.ensure_started(&runtime);
        }
        self.shared.started().await;
    }

    /// The dead letters kept, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.dead_letters()
    }

    /// The dead letter `seq`, if kept.
    pub fn dead_letter(&self, seq: u64) -> Option<DeadLetter> {
        self.shared.dead_letter_by_seq(seq)
    }

    /// Subscribes to new dead letters.
    ///
    /// A receiver that falls more than 64 letters behind misses the oldest
    /// ones ([`broadcast`] semantics); [`dead_letters`](Self::dead_letters)
    /// still lists them.
    pub fn subscribe_dead_letters(&self) -> broadcast::Receiver<DeadLetter> {
        self.shared.subscribe_dead_letters()
    }

    /// Sends the dead letter `seq` through the journal and the queue again,
    /// as a new event (with a new sequence number, which is returned) with a
    /// fresh set of attempts.
    ///
    /// # Errors
    ///
    /// When the letter is unknown, the queue is full, the layer is not
    /// accepting, or the journal fails. The letter is then kept.
    pub async fn replay(&self, seq: u64) -> Result<u64, ReplayError> {
        self.shared.replay(seq).await
    }

    /// Replays every dead letter, oldest first; answers how many.
    ///
    /// # Errors
    ///
    /// Stops at the first error; the letters not yet replayed are kept.
    pub async fn replay_all(&self) -> Result<usize, ReplayError> {
        let mut replayed = 0;
        for letter in self.dead_letters() {
            match self.replay(letter.seq()).await {
                Ok(_) => replayed += 1,
                // Removed meanwhile (replayed or dismissed elsewhere), or
                // already in the journal.
                Err(ReplayError::NotFound(_) | ReplayError::Duplicate) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(replayed)
    }

    /// Forgets the dead letter `seq`, in memory and in the journal; answers
    /// it, or `None` if it was not kept.
    ///
    /// # Errors
    ///
    /// When the journal fails; the letter is then kept.
    pub async fn dismiss(&self, seq: u64) -> Result<Option<DeadLetter>, JournalError> {
        self.shared.dismiss(seq).await
    }

    /// Shuts down gracefully: stops intake at once (new events get `503`
    /// with `Retry-After`, so the provider sends them again later, to this
    /// or another instance), lets the workers finish the queue, the running
    /// attempts and the retries until `timeout` has passed, then stops them,
    /// [syncs](super::journal::Journal::sync) the journal and reports what was left.
    ///
    /// What is left stays pending in the journal (a durable journal runs it
    /// after the next start). Calling it again reports the same state.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.shared.shutdown(timeout).await
    }
}
