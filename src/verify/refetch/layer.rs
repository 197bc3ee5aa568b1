use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tower_layer::Layer;

use super::{ConfirmTask, Refetch};
use crate::response::DEFAULT_RETRY_AFTER;

/// The default bound on one confirmation: 5 seconds, well inside the
/// provider's ~10 s wait for an answer.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) timeout: Duration,
    pub(super) retry_after: Duration,
    pub(super) compare_urls: bool,
}

/// The live counters behind [`RefetchStats`], shared (in an `Arc`) by a
/// layer and its services.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) confirmed: AtomicU64,
    pub(super) forged: AtomicU64,
    pub(super) unavailable: AtomicU64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as they are now.
    pub(super) fn snapshot(&self) -> RefetchStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RefetchStats {
            confirmed: get(&self.confirmed),
            forged: get(&self.forged),
            unavailable: get(&self.unavailable),
        }
    }
}

/// A snapshot of what a [`RefetchLayer`] decided, from
/// [`RefetchLayer::stats`] or [`Refetch::stats`].
///
/// The counters are shared by the layer, its clones and every service it
/// makes, and each call reads them at that moment. To read them after the
/// layer went into a stack, keep a clone of the layer (it shares the
/// counters).
///
/// `Serialize` gives an admin route its JSON (`{"confirmed":..,..}`), as
/// [`fast_ack::Stats`](crate::fast_ack::Stats) does for the fast-ack layer.
///
/// ```
/// use taskhook::verify::refetch::{ConfirmError, ConfirmTask, Confirmation, RefetchLayer};
/// use taskhook::TaskEvent;
///
/// struct NeverHeardOfIt;
/// impl ConfirmTask for NeverHeardOfIt {
///     async fn confirm(&self, _: &TaskEvent) -> Result<Confirmation, ConfirmError> {
///         Err(ConfirmError::not_found())
///     }
/// }
///
/// let layer = RefetchLayer::new(NeverHeardOfIt);
/// let stats_of = layer.clone(); // shares the counters
/// // ... serve requests with `layer` ...
/// assert_eq!(stats_of.stats().forged, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RefetchStats {
    /// Pushes the provider confirmed (passed on to the inner service).
    pub confirmed: u64,
    /// Pushes the provider contradicted or did not know: refused with `403`.
    pub forged: u64,
    /// Pushes answered `503` because the provider could not confirm yet
    /// (unreachable, a 5xx or 429, our API key refused, the timeout, or a
    /// final push the provider still shows running).
    pub unavailable: u64,
}

/// Applies [`Refetch`] to a service: every pushed event is confirmed with
/// the provider (through a [`ConfirmTask`]) before the inner service sees
/// it.
///
/// The confirmer and the counters are built once here and shared by every
/// service the layer makes. See the [module docs](super) for the answers.
pub struct RefetchLayer<C> {
    confirm: Arc<C>,
    settings: Settings,
    counters: Arc<Counters>,
}

impl<C: ConfirmTask> RefetchLayer<C> {
    /// A layer confirming with `confirm`, a 5 s timeout, `Retry-After: 10`,
    /// comparing id and status.
    pub fn new(confirm: C) -> Self {
        Self {
            confirm: Arc::new(confirm),
            settings: Settings {
                timeout: DEFAULT_TIMEOUT,
                retry_after: DEFAULT_RETRY_AFTER,
                compare_urls: false,
            },
            counters: Arc::default(),
        }
    }
}

impl<C> RefetchLayer<C> {
    /// Sets the bound on one confirmation; past it the push gets `503` and
    /// is retried. Default 5 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// Sets the `Retry-After` of the `503`s. Default 10 s.
    #[must_use]
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.settings.retry_after = retry_after;
        self
    }

    /// Also requires the result URLs to agree (as sets). Off by default:
    /// a provider that signs its links per request would never agree. With
    /// it off, read trusted links from the
    /// [`Confirmation`](super::Confirmation) extension.
    #[must_use]
    pub fn compare_urls(mut self, compare: bool) -> Self {
        self.settings.compare_urls = compare;
        self
    }

    /// A snapshot of the counters of this layer's decisions, shared by
    /// every service it makes and by its clones, read now.
    pub fn stats(&self) -> RefetchStats {
        self.counters.snapshot()
    }
}

impl<C> Clone for RefetchLayer<C> {
    fn clone(&self) -> Self {
        Self {
            confirm: Arc::clone(&self.confirm),
            settings: self.settings,
            counters: Arc::clone(&self.counters),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for RefetchLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefetchLayer")
            .field("confirm", &self.confirm)
            .field("timeout", &self.settings.timeout)
            .field("retry_after", &self.settings.retry_after)
            .field("compare_urls", &self.settings.compare_urls)
            .finish()
    }
}

impl<S, C> Layer<S> for RefetchLayer<C> {
    type Service = Refetch<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Refetch::from_parts(
            inner,
            Arc::clone(&self.confirm),
            self.settings,
            Arc::clone(&self.counters),
        )
    }
}
