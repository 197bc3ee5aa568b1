use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::stats::Counters;
use super::{ById, Dedup, DedupStats, DedupStore, KeyExtractor};
use crate::backend::CompactStore;
use crate::response::DEFAULT_RETRY_AFTER;

/// The default bound on waiting for an in-flight duplicate: 5 s, well below
/// the provider's 10 s answer timeout.
pub(crate) const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings shared by the layer and its services.
#[derive(Debug, Clone, Copy)]
pub(super) struct Config {
    pub(super) wait_timeout: Duration,
    pub(super) retry_after: Duration,
    pub(super) remember_client_errors: bool,
    pub(super) fail_open: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            retry_after: DEFAULT_RETRY_AFTER,
            remember_client_errors: true,
            fail_open: false,
        }
    }
}

/// Applies [`Dedup`] to a service: run the inner service once per key (by
/// default the task id), answer duplicates with `200`.
///
/// The store and the counters (read with [`stats`](Self::stats)) are
/// created once, here, and shared by every service the layer makes and by
/// the layer's clones: apply one layer value to every route that must share
/// its memory of task ids.
///
/// See the [module docs](crate::dedup) for the behaviour, and its
/// [example](crate::dedup#example) for the settings.
pub struct DedupLayer<K = ById, St = CompactStore> {
    key: K,
    store: Arc<St>,
    counters: Arc<Counters>,
    config: Config,
}

impl DedupLayer {
    /// A layer keyed on the task id, with a [`CompactStore`] of default
    /// settings (1,000,000 keys, 24 h TTL, 60 s claim timeout).
    pub fn new() -> Self {
        Self::with_store(CompactStore::new())
    }
}

impl Default for DedupLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<St: DedupStore> DedupLayer<ById, St> {
    /// A layer keyed on the task id, remembering keys in `store`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook::{DedupLayer, backend::CompactStore};
    ///
    /// let store = CompactStore::builder()
    ///     .max_capacity(100_000)
    ///     .time_to_live(Duration::from_secs(6 * 3600))
    ///     .build();
    /// let layer = DedupLayer::with_store(store);
    /// ```
    pub fn with_store(store: St) -> Self {
        Self {
            key: ById,
            store: Arc::new(store),
            counters: Arc::default(),
            config: Config::default(),
        }
    }
}

impl<K, St> DedupLayer<K, St> {
    /// Sets what requests are deduplicated by (default: [`ById`]).
    #[must_use]
    pub fn key<K2: KeyExtractor>(self, key: K2) -> DedupLayer<K2, St> {
        DedupLayer {
            key,
            store: self.store,
            counters: self.counters,
            config: self.config,
        }
    }

    /// Sets how long a request waits for an in-flight request with the same
    /// key before answering `503` with `Retry-After` (default 5 s). Keep it
    /// well below the provider's 10 s answer timeout.
    #[must_use]
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.config.wait_timeout = timeout;
        self
    }

    /// Sets the `Retry-After` of this layer's `503` answers (default 10 s;
    /// sent in whole seconds, at least 1).
    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.config.retry_after = after;
        self
    }

    /// Sets whether a `4xx` answer of the inner service marks the key done
    /// (default `true`).
    ///
    /// The provider never retries a 4xx, so a retry of it will not come; only
    /// a rare duplicate push would run the handler again, to get the same 4xx.
    /// Set `false` if your handler's 4xx can be transient (a 409 or 429 from
    /// a downstream you pass through): the key is then released like after a
    /// 5xx.
    #[must_use]
    pub fn remember_client_errors(mut self, remember: bool) -> Self {
        self.config.remember_client_errors = remember;
        self
    }

    /// Sets what happens when the store fails (a backend that is down):
    /// `false` (the default) answers `503` with `Retry-After`, so the
    /// provider retries later; `true` calls the inner service anyway, without
    /// deduplication.
    ///
    /// Fail-open keeps callbacks flowing during a store outage at the price
    /// of running the handler again for duplicates and concurrent retries:
    /// choose it only for a handler that is idempotent by itself.
    #[must_use]
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.config.fail_open = fail_open;
        self
    }

    /// A snapshot of the counters of this layer, shared by every service it
    /// makes and by its clones, read now.
    pub fn stats(&self) -> DedupStats {
        self.counters.snapshot()
    }

    /// The store of this layer.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The store, shared: for the progress layer, which reads it.
    pub(crate) fn shared_store(&self) -> Arc<St> {
        Arc::clone(&self.store)
    }

    /// What this layer keys requests by.
    pub(crate) fn key_extractor(&self) -> &K {
        &self.key
    }
}

impl<K: Clone, St> Clone for DedupLayer<K, St> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            store: Arc::clone(&self.store),
            counters: Arc::clone(&self.counters),
            config: self.config,
        }
    }
}

impl<K: fmt::Debug, St: fmt::Debug> fmt::Debug for DedupLayer<K, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupLayer")
            .field("key", &self.key)
            .field("store", &self.store)
            .field("stats", &self.stats())
            .field("wait_timeout", &self.config.wait_timeout)
            .field("retry_after", &self.config.retry_after)
            .field(
                "remember_client_errors",
                &self.config.remember_client_errors,
            )
            .field("fail_open", &self.config.fail_open)
            .finish()
    }
}

impl<S, K: Clone, St> Layer<S> for DedupLayer<K, St> {
    type Service = Dedup<S, K, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Dedup::from_parts(
            inner,
            self.key.clone(),
            Arc::clone(&self.store),
            Arc::clone(&self.counters),
            self.config,
        )
    }
}
