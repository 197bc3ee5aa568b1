//! Counters of the dedup layer.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of one [`DedupLayer`](super::DedupLayer), shared by every service
/// it makes. Cheap to clone (an [`Arc`] of atomics); read them from a
/// metrics exporter or a health endpoint.
///
/// ```
/// use taskhook::DedupLayer;
///
/// let layer = DedupLayer::new();
/// let metrics = layer.metrics();
/// // ... serve requests with `layer` ...
/// assert_eq!(metrics.first(), 0);
/// ```
#[derive(Clone, Default)]
pub struct DedupMetrics {
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    first: AtomicU64,
    duplicate_done: AtomicU64,
    duplicate_in_flight: AtomicU64,
    wait_timeouts: AtomicU64,
    released: AtomicU64,
    store_errors: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Counter {
    First,
    DuplicateDone,
    DuplicateInFlight,
    WaitTimeout,
    Released,
    StoreError,
}

impl DedupMetrics {
    pub(super) fn new() -> Self {
        Self::default()
    }

    pub(super) fn incr(&self, counter: Counter) {
        let c = &self.counters;
        let cell = match counter {
            Counter::First => &c.first,
            Counter::DuplicateDone => &c.duplicate_done,
            Counter::DuplicateInFlight => &c.duplicate_in_flight,
            Counter::WaitTimeout => &c.wait_timeouts,
            Counter::Released => &c.released,
            Counter::StoreError => &c.store_errors,
        };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests that claimed their key and ran the inner service (a retry
    /// after a release counts again).
    pub fn first(&self) -> u64 {
        self.counters.first.load(Ordering::Relaxed)
    }

    /// Requests answered as duplicates of a done key, without running the
    /// inner service (found done at once or after waiting).
    pub fn duplicate_done(&self) -> u64 {
        self.counters.duplicate_done.load(Ordering::Relaxed)
    }

    /// Requests that found their key in flight and waited for its outcome
    /// (whatever came next: a duplicate, a run of their own, or a timeout).
    pub fn duplicate_in_flight(&self) -> u64 {
        self.counters.duplicate_in_flight.load(Ordering::Relaxed)
    }

    /// Requests whose key stayed in flight for the whole wait bound, answered
    /// `503` with `Retry-After`.
    pub fn wait_timeouts(&self) -> u64 {
        self.counters.wait_timeouts.load(Ordering::Relaxed)
    }

    /// Claims released so a retry runs: the inner service answered neither
    /// 2xx nor a remembered 4xx, returned an error, panicked, or its future
    /// was dropped.
    pub fn released(&self) -> u64 {
        self.counters.released.load(Ordering::Relaxed)
    }

    /// Failed store operations (claim, wait, complete or release).
    pub fn store_errors(&self) -> u64 {
        self.counters.store_errors.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for DedupMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupMetrics")
            .field("first", &self.first())
            .field("duplicate_done", &self.duplicate_done())
            .field("duplicate_in_flight", &self.duplicate_in_flight())
            .field("wait_timeouts", &self.wait_timeouts())
            .field("released", &self.released())
            .field("store_errors", &self.store_errors())
            .finish()
    }
}
