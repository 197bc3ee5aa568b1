//! The in-process [`MokaStore`]: a dedup store on a moka cache.

use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::moka::future::Cache;
use ::moka::ops::compute::Op;
use ::moka::policy::EvictionPolicy;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::hash::KeyHasher;
use super::maintenance::{self, Maintained};
use crate::dedup::{Claim, DedupKey, DedupStore, KeyState};

use super::defaults::{
    DEFAULT_CLAIM_TIMEOUT, DEFAULT_MAINTENANCE_INTERVAL, DEFAULT_MAX_CAPACITY, DEFAULT_TIME_TO_LIVE,
};

/// Durations are capped here (about 100 years) so that no deadline overflows
/// and moka's own limit (1000 years) is never hit.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A [`DedupStore`] in process memory, built on a [`moka`] cache.
///
/// - **Bounded**: at most [`max_capacity`](MokaStoreBuilder::max_capacity)
///   keys (default 1,000,000). Past it, the least recently used keys are
///   forgotten first (moka's LRU policy: its default TinyLFU policy may refuse
///   to admit a *new* key when full, which would forget the newest task ids).
///   A full store may also evict a key that is in flight, letting a
///   duplicate run beside it: keep headroom in the capacity.
/// - **Compact keys**: a key is stored as a 128-bit keyed hash (SipHash-1-3
///   with a random per-store key, two outputs), not as the id string. Two
///   distinct ids collide with probability about n² / 2¹²⁹: for n = 1,000,000
///   remembered ids, about 10⁻²⁷, and the random key keeps an attacker from
///   forging a collision. A collision would answer a new task as a
///   duplicate, a lost event; 64 bits (10⁻⁸ per million) was judged too
///   close. Measured cost: about 400 bytes of resident memory per key at
///   1,000,000 keys (moka's bookkeeping is most of it; compact keys save
///   about 48 bytes per 31-byte id), so a full default store takes about
///   390 MiB: size `max_capacity` to your task volume per TTL. Method and
///   figures: `BENCHMARKS.md`, section "Dedup memory".
/// - **Expiry you can test**: each entry carries its own deadline as a
///   [`tokio::time::Instant`], and every decision compares it with
///   `tokio::time::Instant::now()`, so `tokio::time::pause`/`advance` drive
///   TTLs and claim timeouts in tests. moka's own time-to-live (set to the
///   same TTL) only bounds memory: it removes entries whose deadline passed.
/// - **Maintenance**: moka expires lazily, so on its first use inside a tokio
///   runtime the store spawns a task that runs moka's pending work
///   ([`run_pending_tasks`](Self::run_pending_tasks)) every
///   [`maintenance_interval`](MokaStoreBuilder::maintenance_interval)
///   (default 1 s); expired entries leave memory even when no request comes.
///   The task holds only a weak reference and ends once every clone of the
///   store is dropped; it is spawned again if its runtime went away.
/// - **Waiting**: an in-flight claim holds a `tokio::sync::Notify` and a flag;
///   duplicates wait on it and wake when the claim is completed, released or
///   expired.
///
/// The store is not shared between processes: for replicas, use a shared
/// store (Redis).
///
/// Clones share the same cache.
///
/// ```
/// use std::time::Duration;
/// use taskhook::backend::MokaStore;
///
/// let store = MokaStore::builder()
///     .max_capacity(200_000)
///     .time_to_live(Duration::from_secs(12 * 3600))
///     .claim_timeout(Duration::from_secs(30))
///     .build();
/// assert_eq!(store.entry_count(), 0);
/// ```
#[derive(Clone)]
pub struct MokaStore {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Cache<u128, Slot>,
    hasher: KeyHasher,
    time_to_live: Duration,
    claim_timeout: Duration,
    maintenance_interval: Duration,
    maintenance_running: AtomicBool,
}

#[derive(Clone)]
enum Slot {
    Done { until: Instant },
    InFlight(Arc<Flight>),
}

struct Flight {
    until: Instant,
    /// `true` once the claim was completed or released.
    settled: AtomicBool,
    /// Wakes the waiters when `settled` is set.
    notify: Notify,
}

impl Flight {
    fn new(until: Instant) -> Self {
        Self {
            until,
            settled: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    fn settle(&self) {
        self.settled.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Until settled, or until the claim expires (its owner is stuck or
    /// gone).
    async fn settled(&self) {
        let notified = self.notify.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the flag is read, so a `settle` in between is
        // not missed.
        notified.as_mut().enable();
        if self.settled.load(Ordering::Acquire) {
            return;
        }
        let _ = tokio::time::timeout_at(self.until, notified).await;
    }
}

/// The owner token of a [`MokaStore`] claim.
pub struct MokaToken {
    flight: Arc<Flight>,
}

impl fmt::Debug for MokaToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaToken")
            .field("until", &self.flight.until)
            .finish()
    }
}

impl MokaStore {
    /// A store with the default settings: 1,000,000 keys, 24 h TTL, 60 s
    /// claim timeout.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to change the settings.
    pub fn builder() -> MokaStoreBuilder {
        MokaStoreBuilder::default()
    }

    /// The number of keys held (done or in flight), as last counted by moka's
    /// maintenance; call [`run_pending_tasks`](Self::run_pending_tasks) first
    /// for an exact figure.
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    /// How long a done key is remembered.
    #[cfg(feature = "redb")]
    pub(crate) fn time_to_live(&self) -> Duration {
        self.inner.time_to_live
    }

    /// Runs moka's pending maintenance now: applies recorded reads and
    /// writes, and evicts expired entries and entries over capacity. The
    /// maintenance task does this periodically.
    pub async fn run_pending_tasks(&self) {
        self.inner.cache.run_pending_tasks().await;
    }

    fn hash(&self, key: &DedupKey) -> u128 {
        let (high, low) = self.inner.hasher.hash128(key.as_str().as_bytes());
        (u128::from(high) << 64) | u128::from(low)
    }

    /// Spawns the maintenance task unless it runs, if a tokio runtime is
    /// current.
    fn ensure_maintenance(&self) {
        maintenance::ensure(&self.inner);
    }
}

impl Maintained for Inner {
    fn maintenance_running(&self) -> &AtomicBool {
        &self.maintenance_running
    }

    fn maintenance_interval(&self) -> Duration {
        self.maintenance_interval
    }

    async fn maintain(&self) {
        self.cache.run_pending_tasks().await;
    }
}

impl Default for MokaStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MokaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaStore")
            .field("entry_count", &self.entry_count())
            .field("max_capacity", &self.inner.cache.policy().max_capacity())
            .field("time_to_live", &self.inner.time_to_live)
            .field("claim_timeout", &self.inner.claim_timeout)
            .finish()
    }
}

impl DedupStore for MokaStore {
    type Token = MokaToken;
    type Error = Infallible;

    async fn claim(&self, key: &DedupKey) -> Result<Claim<MokaToken>, Infallible> {
        self.ensure_maintenance();
        let now = Instant::now();
        let claim_timeout = self.inner.claim_timeout;
        let mut claim = Claim::InFlight;
        // `and_compute_with` runs calls on one key one at a time: this is the
        // atomic insert-if-absent-or-expired.
        self.inner
            .cache
            .entry(self.hash(key))
            .and_compute_with(|entry| {
                let op = match entry.map(|e| e.into_value()) {
                    Some(Slot::Done { until }) if now < until => {
                        claim = Claim::Done;
                        Op::Nop
                    }
                    Some(Slot::InFlight(flight)) if now < flight.until => {
                        claim = Claim::InFlight;
                        Op::Nop
                    }
                    _ => {
                        let flight = Arc::new(Flight::new(now + claim_timeout));
                        claim = Claim::Acquired(MokaToken {
                            flight: Arc::clone(&flight),
                        });
                        Op::Put(Slot::InFlight(flight))
                    }
                };
                std::future::ready(op)
            })
            .await;
        Ok(claim)
    }

    async fn complete(&self, key: &DedupKey, token: &MokaToken) -> Result<(), Infallible> {
        let now = Instant::now();
        let until = now + self.inner.time_to_live;
        self.inner
            .cache
            .entry(self.hash(key))
            .and_compute_with(|entry| {
                let op = match entry.map(|e| e.into_value()) {
                    // Another caller's live claim: not ours to touch.
                    Some(Slot::InFlight(flight))
                        if !Arc::ptr_eq(&flight, &token.flight) && now < flight.until =>
                    {
                        Op::Nop
                    }
                    _ => Op::Put(Slot::Done { until }),
                };
                std::future::ready(op)
            })
            .await;
        token.flight.settle();
        Ok(())
    }

    async fn release(&self, key: &DedupKey, token: &MokaToken) -> Result<(), Infallible> {
        self.inner
            .cache
            .entry(self.hash(key))
            .and_compute_with(|entry| {
                let op = match entry.map(|e| e.into_value()) {
                    Some(Slot::InFlight(flight)) if Arc::ptr_eq(&flight, &token.flight) => {
                        Op::Remove
                    }
                    _ => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        // Settled after the entry changed: a woken waiter claims again and
        // must not find the old claim still there.
        token.flight.settle();
        Ok(())
    }

    async fn forget(&self, key: &DedupKey) -> Result<(), Infallible> {
        self.inner
            .cache
            .entry(self.hash(key))
            .and_compute_with(|entry| {
                let op = match entry.map(|e| e.into_value()) {
                    Some(Slot::Done { .. }) => Op::Remove,
                    _ => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        Ok(())
    }

    async fn wait(&self, key: &DedupKey) -> Result<(), Infallible> {
        let Some(Slot::InFlight(flight)) = self.inner.cache.get(&self.hash(key)).await else {
            return Ok(());
        };
        flight.settled().await;
        Ok(())
    }
    async fn peek(&self, key: &DedupKey) -> Result<KeyState, Infallible> {
        let now = Instant::now();
        Ok(match self.inner.cache.get(&self.hash(key)).await {
            Some(Slot::Done { until }) if now < until => KeyState::Done,
            Some(Slot::InFlight(flight)) if now < flight.until => KeyState::InFlight,
            _ => KeyState::Unknown,
        })
    }
}

/// Builds a [`MokaStore`].
///
/// ```
/// use std::time::Duration;
/// use taskhook::backend::MokaStore;
///
/// let store = MokaStore::builder()
///     .max_capacity(10_000)
///     .time_to_live(Duration::from_secs(3600))
///     .build();
/// ```
#[derive(Debug, Clone)]
pub struct MokaStoreBuilder {
    max_capacity: u64,
    time_to_live: Duration,
    claim_timeout: Duration,
    maintenance_interval: Duration,
}

impl Default for MokaStoreBuilder {
    fn default() -> Self {
        Self {
            max_capacity: DEFAULT_MAX_CAPACITY,
            time_to_live: DEFAULT_TIME_TO_LIVE,
            claim_timeout: DEFAULT_CLAIM_TIMEOUT,
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
        }
    }
}

impl MokaStoreBuilder {
    /// Sets the largest number of keys kept (default 1,000,000); past it the
    /// least recently used are forgotten.
    ///
    /// ```
    /// let store = taskhook::backend::MokaStore::builder().max_capacity(50_000).build();
    /// ```
    #[must_use]
    pub fn max_capacity(mut self, keys: u64) -> Self {
        self.max_capacity = keys;
        self
    }

    /// Sets how long a done key is remembered (default 24 h).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let store = taskhook::backend::MokaStore::builder()
    ///     .time_to_live(Duration::from_secs(6 * 3600))
    ///     .build();
    /// ```
    #[must_use]
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.time_to_live = ttl.min(MAX_DURATION);
        self
    }

    /// Sets how long an in-flight claim lasts before it expires on its own
    /// (default 60 s). Longer than your handler's slowest run, or a duplicate
    /// may run next to it.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let store = taskhook::backend::MokaStore::builder()
    ///     .claim_timeout(Duration::from_secs(30))
    ///     .build();
    /// ```
    #[must_use]
    pub fn claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout.min(MAX_DURATION);
        self
    }

    /// Sets the period of the maintenance task that makes expired entries
    /// leave memory (default 1 s; zero is taken as 1 ms).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let store = taskhook::backend::MokaStore::builder()
    ///     .maintenance_interval(Duration::from_secs(10))
    ///     .build();
    /// ```
    #[must_use]
    pub fn maintenance_interval(mut self, period: Duration) -> Self {
        self.maintenance_interval = period.clamp(Duration::from_millis(1), MAX_DURATION);
        self
    }

    /// Builds the store. No runtime is needed here: the maintenance task is
    /// spawned on first use.
    pub fn build(self) -> MokaStore {
        let cache = Cache::builder()
            .name("taskhook-dedup")
            .max_capacity(self.max_capacity)
            .eviction_policy(EvictionPolicy::lru())
            // Only bounds memory; expiry decisions use the deadline in each
            // entry. An in-flight entry must outlive its claim.
            .time_to_live(self.time_to_live.max(self.claim_timeout))
            .build();
        MokaStore {
            inner: Arc::new(Inner {
                cache,
                hasher: KeyHasher::random(),
                time_to_live: self.time_to_live,
                claim_timeout: self.claim_timeout,
                maintenance_interval: self.maintenance_interval,
                maintenance_running: AtomicBool::new(false),
            }),
        }
    }
}
