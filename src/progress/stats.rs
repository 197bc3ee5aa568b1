//! Counters of the progress layer.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A snapshot of the counters of one [`ProgressLayer`](super::ProgressLayer),
/// from [`ProgressLayer::stats`](super::ProgressLayer::stats) or
/// [`Progress::stats`](super::Progress::stats).
///
/// Shared by the layer, its clones and every service it makes, read at the
/// call; `Serialize` gives an admin route its JSON, as
/// [`DedupStats`](crate::dedup::DedupStats) does. A layer that passes every
/// request on ([`Events::FinalOnly`](crate::provider::Events::FinalOnly))
/// counts nothing.
///
/// ```
/// use taskhook::progress::ProgressLayer;
/// use taskhook::DedupLayer;
///
/// let layer = ProgressLayer::new(&DedupLayer::new());
/// let stats_of = layer.clone(); // shares the counters
/// assert_eq!(stats_of.stats().regressions, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProgressStats {
    /// Final events passed on to the rest of the stack (dedup, then the
    /// handler).
    pub finals: u64,
    /// Intermediate events the progress handler took.
    pub handled: u64,
    /// Intermediate events the progress handler failed on (answered `200`).
    pub failed: u64,
    /// Intermediate events answered `200` and dropped, with no progress
    /// handler.
    pub dropped: u64,
    /// Intermediate events whose state (task, status, progress) was already
    /// handled or being handled.
    pub duplicates: u64,
    /// Intermediate events that came after the task's final event was
    /// accepted (or while it was in flight), ignored.
    pub regressions: u64,
    /// Failed reads of the dedup store, answered `503` with `Retry-After`.
    pub store_errors: u64,
}

/// The live counters behind [`ProgressStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    finals: AtomicU64,
    handled: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    duplicates: AtomicU64,
    regressions: AtomicU64,
    store_errors: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Counter {
    Final,
    Handled,
    Failed,
    Dropped,
    Duplicate,
    Regression,
    StoreError,
}

impl Counters {
    pub(super) fn incr(&self, counter: Counter) {
        let cell = match counter {
            Counter::Final => &self.finals,
            Counter::Handled => &self.handled,
            Counter::Failed => &self.failed,
            Counter::Dropped => &self.dropped,
            Counter::Duplicate => &self.duplicates,
            Counter::Regression => &self.regressions,
            Counter::StoreError => &self.store_errors,
        };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> ProgressStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ProgressStats {
            finals: get(&self.finals),
            handled: get(&self.handled),
            failed: get(&self.failed),
            dropped: get(&self.dropped),
            duplicates: get(&self.duplicates),
            regressions: get(&self.regressions),
            store_errors: get(&self.store_errors),
        }
    }
}
