//! Counters of the dedup layer.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::metrics::record::{self, Duplicate};

/// A snapshot of the counters of one [`DedupLayer`](super::DedupLayer),
/// from [`DedupLayer::stats`](super::DedupLayer::stats) or
/// [`Dedup::stats`](super::Dedup::stats).
///
/// The counters are shared by the layer and every service it makes, and
/// each call reads them at that moment. To read them after the layer went
/// into a stack, keep a clone of the layer (it shares the counters), or ask
/// the service.
///
/// `Serialize` gives an admin route its JSON (`{"first":..,..}`), as
/// [`fast_ack::Stats`](crate::fast_ack::Stats) does for the fast-ack layer.
///
/// ```
/// use taskhook::DedupLayer;
///
/// let layer = DedupLayer::new();
/// let stats_of = layer.clone(); // shares the counters
/// // ... serve requests with `layer` ...
/// assert_eq!(stats_of.stats().first, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DedupStats {
    /// Requests that claimed their key and ran the inner service (a retry
    /// after a release counts again).
    pub first: u64,
    /// Requests answered as duplicates of a done key, without running the
    /// inner service (found done at once or after waiting).
    pub duplicate_done: u64,
    /// Requests that found their key in flight and waited for its outcome
    /// (whatever came next: a duplicate, a run of their own, or a timeout).
    pub duplicate_in_flight: u64,
    /// Requests whose key stayed in flight for the whole wait bound,
    /// answered `503` with `Retry-After`.
    pub wait_timeouts: u64,
    /// Claims released so a retry runs: the inner service answered neither
    /// 2xx nor a remembered 4xx, returned an error, panicked, or its future
    /// was dropped.
    pub released: u64,
    /// Failed store operations (claim, wait, complete or release).
    pub store_errors: u64,
}

/// The live counters behind [`DedupStats`], shared (in an `Arc`) by a layer
/// and its services.
#[derive(Debug, Default)]
pub(super) struct Counters {
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

impl Counters {
    pub(super) fn incr(&self, counter: Counter) {
        let cell = match counter {
            Counter::First => &self.first,
            Counter::DuplicateDone => &self.duplicate_done,
            Counter::DuplicateInFlight => &self.duplicate_in_flight,
            Counter::WaitTimeout => &self.wait_timeouts,
            Counter::Released => &self.released,
            Counter::StoreError => &self.store_errors,
        };
        cell.fetch_add(1, Ordering::Relaxed);
        // A duplicate is counted once, by how it was answered: a request
        // that waited is counted when the wait ends (done, or timed out).
        match counter {
            Counter::DuplicateDone => record::duplicate(Duplicate::Done),
            Counter::WaitTimeout => record::duplicate(Duplicate::InFlight),
            _ => {}
        }
    }

    /// The counters as they are now.
    pub(super) fn snapshot(&self) -> DedupStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DedupStats {
            first: get(&self.first),
            duplicate_done: get(&self.duplicate_done),
            duplicate_in_flight: get(&self.duplicate_in_flight),
            wait_timeouts: get(&self.wait_timeouts),
            released: get(&self.released),
            store_errors: get(&self.store_errors),
        }
    }
}
