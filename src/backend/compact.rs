//! The in-process [`CompactStore`]: a sharded hash table of 24-byte entries,
//! the compact alternative to the [`MokaStore`](super::MokaStore).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::defaults::{
    DEFAULT_CLAIM_TIMEOUT, DEFAULT_MAINTENANCE_INTERVAL, DEFAULT_MAX_CAPACITY, DEFAULT_TIME_TO_LIVE,
};
use super::hash::KeyHasher;
use super::maintenance::{self, Maintained};
use crate::dedup::{Claim, DedupKey, DedupStore, KeyState};

/// Durations are capped here (about 100 years): deadlines are whole seconds
/// in a `u32` (136 years) counted from the store's creation.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Shards hold at least this many keys each (when the capacity allows), so
/// that a small store keeps one table and its eviction order is exact.
const MIN_KEYS_PER_SHARD: u64 = 4096;

/// The most shards a store uses.
const MAX_SHARDS: usize = 256;

/// A full shard forgets this fraction (1/n) of its keys at once, the oldest
/// first, so eviction costs a few slot visits per new key, not a scan.
const EVICT_FRACTION: usize = 8;

/// The bit of [`Slot::tag`] that marks a key in flight.
const IN_FLIGHT: u32 = 1 << 31;

/// A [`DedupStore`] in process memory: a sharded hash table of compact
/// entries.
///
/// Each remembered key is 24 bytes in an open-addressing hash table: a
/// 128-bit keyed hash of the key, the deadline in whole seconds and a tag
/// (the claim's number while in flight, the completion's number once done).
/// At 1,000,000 keys that is about 52 bytes of resident memory
/// per key with the table's free slots, against about 407 for the
/// `MokaStore` (feature `moka`); a dedup decision takes 0.1 to 0.4 µs
/// where the moka store takes 1 to 3 µs (`BENCHMARKS.md`). It is the default
/// store of [`DedupLayer::new`](crate::DedupLayer::new).
///
/// - **Bounded**: at most [`max_capacity`](CompactStoreBuilder::max_capacity)
///   keys (default 1,000,000), a hard bound. The keys are spread over shards
///   (a power of two, about four per core, each with `max_capacity / shards`
///   keys, at least 4,096 per shard when the capacity allows); a full shard
///   first forgets its expired keys, then the oldest eighth of its done keys
///   in one pass (the earliest deadlines, which with one TTL are the
///   earliest completions; within one second, in order of completion). A
///   new claim is never refused: forgetting the oldest done
///   ids is the failure mode, so a full store remembers at least the
///   latest seven eighths of its capacity. In-flight keys are forgotten only
///   if a shard holds nothing else (a capacity far too small), which would
///   let a duplicate run beside its first request.
/// - **Compact keys**: a key is stored as a 128-bit hash (SipHash-1-3 with a
///   128-bit output, under a random per-store key), as in the
///   `MokaStore`: two distinct ids collide with
///   probability about n² / 2¹²⁹ (10⁻²⁷ at a million ids) and the secret key
///   keeps a sender from forging a collision.
/// - **Exact expiry on tokio time**: deadlines are whole seconds since the
///   store was built, on [`tokio::time::Instant`], rounded up: a done key is
///   remembered at least its TTL and at most one second longer, a claim
///   lasts at least the claim timeout. Every decision compares the deadline
///   with the current time, so a key past its deadline is unknown at once,
///   and `tokio::time::pause`/`advance` drive TTLs and claim timeouts in
///   tests.
/// - **Maintenance**: on its first use inside a tokio runtime the store
///   spawns a task that removes expired keys every
///   [`maintenance_interval`](CompactStoreBuilder::maintenance_interval)
///   (default 1 s; a shard whose earliest deadline has not passed is
///   skipped) and gives memory back when a shard's table is mostly empty.
///   The task holds only a weak reference and ends once every clone of the
///   store is dropped.
/// - **Waiting**: callers waiting on an in-flight key share a
///   `tokio::sync::Notify` kept beside the table, created only when someone
///   waits; they wake when the claim is completed, released or expires.
/// - **Locks**: one `std::sync::Mutex` per shard, held for a table lookup
///   (or an eviction pass), never across an `.await`.
///
/// The store is not shared between processes: for replicas, use a shared
/// store (Redis).
///
/// Clones share the same table.
///
/// ```
/// use std::time::Duration;
/// use taskhook::backend::CompactStore;
///
/// let store = CompactStore::builder()
///     .max_capacity(200_000)
///     .time_to_live(Duration::from_secs(12 * 3600))
///     .claim_timeout(Duration::from_secs(30))
///     .build();
/// assert_eq!(store.entry_count(), 0);
/// ```
#[derive(Clone)]
pub struct CompactStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Padded]>,
    /// `shards.len() - 1`: the shard of a key is `key.hi & mask`.
    mask: u64,
    /// The most keys one shard holds.
    shard_capacity: usize,
    sip: KeyHasher,
    epoch: Instant,
    time_to_live: Duration,
    claim_timeout: Duration,
    maintenance_interval: Duration,
    maintenance_running: AtomicBool,
}

/// One shard on its own cache lines, so two cores using neighbouring shards
/// do not share a line.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

struct Shard {
    table: HashMap<Key, Slot, PassThrough>,
    /// The callers waiting on in-flight keys, only for keys someone waits
    /// on: in-flight keys are few, done keys need none.
    waiters: HashMap<Key, Arc<Notify>, PassThrough>,
    /// No deadline in `table` is earlier (a lower bound): the sweep skips
    /// the shard until then.
    earliest: u32,
    /// The tag of the next claim in this shard (with [`IN_FLIGHT`] set).
    next_claim: u32,
    /// The tag of the next completion in this shard ([`IN_FLIGHT`] clear):
    /// orders done keys with the same deadline second.
    next_done: u32,
}

/// The 128-bit keyed hash of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    hi: u64,
    lo: u64,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed hash: the table uses its low half as is.
        state.write_u64(self.lo);
    }
}

/// A [`BuildHasher`] for [`Key`]: the table hash is the key's low half.
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;

    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

#[derive(Debug, Clone, Copy)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Key`; mix anything else anyway.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// What the table keeps per key: 8 bytes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Whole seconds since the epoch; the key is unknown from then on.
    until: u32,
    /// In flight: [`IN_FLIGHT`] and the claim's number, the owner's proof.
    /// Done: the completion's number in its shard (31 bits).
    tag: u32,
}

impl Slot {
    fn is_done(self) -> bool {
        self.tag & IN_FLIGHT == 0
    }

    /// Orders slots oldest first: by deadline, then by completion (or claim)
    /// number within a deadline second.
    fn age(self) -> u64 {
        (u64::from(self.until) << 32) | u64::from(self.tag & !IN_FLIGHT)
    }

    fn is_live(self, now: u32) -> bool {
        now < self.until
    }
}

/// The owner token of a [`CompactStore`] claim: the key's hash and the
/// claim's number.
///
/// [`complete`](DedupStore::complete) and [`release`](DedupStore::release)
/// act on the key the token was given for (its hash is not computed again).
#[derive(Debug)]
pub struct CompactToken {
    key: Key,
    claim: u32,
}

impl Shard {
    fn new() -> Self {
        Self {
            table: HashMap::with_hasher(PassThrough),
            waiters: HashMap::with_hasher(PassThrough),
            earliest: u32::MAX,
            next_claim: IN_FLIGHT,
            next_done: 0,
        }
    }

    /// Inserts a key that is not in the table, making room first if the
    /// shard is full.
    fn insert_new(&mut self, key: Key, slot: Slot, now: u32, capacity: usize) {
        if self.table.len() >= capacity {
            self.make_room(now, capacity);
        }
        self.earliest = self.earliest.min(slot.until);
        self.table.insert(key, slot);
    }

    /// Forgets the expired keys, then, if the shard is still full, the
    /// oldest eighth of its done keys (in-flight keys only if there is
    /// nothing else).
    fn make_room(&mut self, now: u32, capacity: usize) {
        self.remove_expired(now);
        if self.table.len() < capacity {
            return;
        }
        let batch = (capacity / EVICT_FRACTION).max(self.table.len() + 1 - capacity);
        let mut ages: Vec<u64> = self
            .table
            .values()
            .filter(|slot| slot.is_done())
            .map(|slot| slot.age())
            .collect();
        let in_flight_too = ages.is_empty();
        if in_flight_too {
            ages = self.table.values().map(|slot| slot.age()).collect();
        }
        let batch = batch.min(ages.len());
        if batch == 0 {
            return;
        }
        let (_, &mut threshold, _) = ages.select_nth_unstable(batch - 1);
        // Ages are unique within a shard (but for 31-bit wrap-around), so
        // this forgets `batch` keys: those up to the threshold.
        self.table
            .retain(|_, slot| !(in_flight_too || slot.is_done()) || slot.age() > threshold);
        tracing::debug!(
            remembered = self.table.len(),
            "dedup: compact store shard full, forgot its oldest keys"
        );
    }

    /// Forgets the keys whose deadline passed; gives memory back when the
    /// table is mostly empty.
    fn remove_expired(&mut self, now: u32) {
        let mut earliest = u32::MAX;
        self.table.retain(|_, slot| {
            let live = slot.is_live(now);
            if live {
                earliest = earliest.min(slot.until);
            }
            live
        });
        self.earliest = earliest;
        let table = &self.table;
        self.waiters.retain(|key, _| {
            table
                .get(key)
                .is_some_and(|slot| !slot.is_done() && slot.is_live(now))
        });
        // Shrinking rehashes: only when most of the table is free.
        if self.table.capacity() > 1024 && self.table.capacity() / 4 > self.table.len() {
            self.table.shrink_to(self.table.len() * 2);
        }
        if self.waiters.capacity() > 64 && self.waiters.capacity() / 4 > self.waiters.len() {
            self.waiters.shrink_to(self.waiters.len() * 2);
        }
    }
}

impl CompactStore {
    /// A store with the default settings: 1,000,000 keys, 24 h TTL, 60 s
    /// claim timeout.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to change the settings.
    pub fn builder() -> CompactStoreBuilder {
        CompactStoreBuilder::default()
    }

    /// The number of keys held (done or in flight, including expired keys
    /// not yet removed by the maintenance task).
    pub fn entry_count(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|shard| lock(&shard.0).table.len() as u64)
            .sum()
    }

    /// Removes the expired keys now, in every shard. The maintenance task
    /// does this periodically.
    pub fn remove_expired(&self) {
        let now = self.now();
        for shard in self.inner.shards.iter() {
            lock(&shard.0).remove_expired(now);
        }
    }

    /// Whole seconds since the epoch, rounded down.
    fn now(&self) -> u32 {
        secs_since(self.inner.epoch, Instant::now(), Duration::ZERO, false)
    }

    /// The current time and the deadline `after` from now (rounded up), in
    /// whole seconds since the epoch: one reading of the clock.
    fn now_and_deadline(&self, after: Duration) -> (u32, u32) {
        let now = Instant::now();
        (
            secs_since(self.inner.epoch, now, Duration::ZERO, false),
            secs_since(self.inner.epoch, now, after, true),
        )
    }

    fn hash(&self, key: &DedupKey) -> Key {
        let (hi, lo) = self.inner.sip.hash128(key.as_str().as_bytes());
        Key { hi, lo }
    }

    fn shard(&self, key: Key) -> MutexGuard<'_, Shard> {
        // Masked, so always in bounds; `% len` only keeps indexing panic-free.
        let index = (key.hi & self.inner.mask) as usize % self.inner.shards.len();
        lock(&self.inner.shards[index].0)
    }

    /// Spawns the maintenance task unless it runs, if a tokio runtime is
    /// current.
    fn ensure_maintenance(&self) {
        maintenance::ensure(&self.inner);
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // No code panics while holding a shard, and a table is consistent
    // between any two operations: a poisoned lock is still usable.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whole seconds from `epoch` to `now + after`, rounded down or up, capped
/// at `u32::MAX`.
fn secs_since(epoch: Instant, now: Instant, after: Duration, round_up: bool) -> u32 {
    let elapsed = now.saturating_duration_since(epoch).saturating_add(after);
    let secs = elapsed.as_secs() + u64::from(round_up && elapsed.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

impl Maintained for Inner {
    fn maintenance_running(&self) -> &AtomicBool {
        &self.maintenance_running
    }

    fn maintenance_interval(&self) -> Duration {
        self.maintenance_interval
    }

    async fn maintain(&self) {
        let now = secs_since(self.epoch, Instant::now(), Duration::ZERO, false);
        // One shard at a time: requests on the other shards go on.
        for shard in self.shards.iter() {
            let mut shard = lock(&shard.0);
            if now >= shard.earliest {
                shard.remove_expired(now);
            }
        }
    }
}

impl Default for CompactStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CompactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactStore")
            .field("entry_count", &self.entry_count())
            .field("shards", &self.inner.shards.len())
            .field(
                "max_capacity",
                &(self.inner.shard_capacity * self.inner.shards.len()),
            )
            .field("time_to_live", &self.inner.time_to_live)
            .field("claim_timeout", &self.inner.claim_timeout)
            .finish()
    }
}

impl DedupStore for CompactStore {
    type Token = CompactToken;
    type Error = Infallible;

    async fn claim(&self, key: &DedupKey) -> Result<Claim<CompactToken>, Infallible> {
        self.ensure_maintenance();
        let key = self.hash(key);
        let (now, until) = self.now_and_deadline(self.inner.claim_timeout);
        let capacity = self.inner.shard_capacity;
        let mut guard = self.shard(key);
        let shard = &mut *guard;
        let full = shard.table.len() >= capacity;
        let claim = match shard.table.entry(key) {
            Entry::Occupied(entry) if entry.get().is_live(now) => {
                return Ok(if entry.get().is_done() {
                    Claim::Done
                } else {
                    Claim::InFlight
                });
            }
            // Expired: unknown, so claimed again in place.
            Entry::Occupied(mut entry) => {
                let claim = next_tag(&mut shard.next_claim);
                entry.insert(Slot { until, tag: claim });
                shard.earliest = shard.earliest.min(until);
                claim
            }
            Entry::Vacant(entry) if !full => {
                let claim = next_tag(&mut shard.next_claim);
                entry.insert(Slot { until, tag: claim });
                shard.earliest = shard.earliest.min(until);
                claim
            }
            Entry::Vacant(_) => {
                let claim = next_tag(&mut shard.next_claim);
                shard.insert_new(key, Slot { until, tag: claim }, now, capacity);
                claim
            }
        };
        Ok(Claim::Acquired(CompactToken { key, claim }))
    }

    async fn complete(&self, _key: &DedupKey, token: &CompactToken) -> Result<(), Infallible> {
        let (now, until) = self.now_and_deadline(self.inner.time_to_live);
        let capacity = self.inner.shard_capacity;
        let notify = {
            let mut guard = self.shard(token.key);
            let shard = &mut *guard;
            let done = Slot {
                until,
                tag: next_tag(&mut shard.next_done),
            };
            match shard.table.get_mut(&token.key) {
                // Another caller's live claim: not ours to touch.
                Some(slot) if !slot.is_done() && slot.tag != token.claim && slot.is_live(now) => {
                    None
                }
                Some(slot) => {
                    *slot = done;
                    shard.earliest = shard.earliest.min(until);
                    take_waiters(shard, token.key)
                }
                // Forgotten meanwhile (evicted, or expired and swept).
                None => {
                    shard.insert_new(token.key, done, now, capacity);
                    take_waiters(shard, token.key)
                }
            }
        };
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
        Ok(())
    }

    async fn release(&self, _key: &DedupKey, token: &CompactToken) -> Result<(), Infallible> {
        let notify = {
            let mut shard = self.shard(token.key);
            match shard.table.get(&token.key) {
                Some(slot) if !slot.is_done() && slot.tag == token.claim => {
                    shard.table.remove(&token.key);
                    take_waiters(&mut shard, token.key)
                }
                _ => None,
            }
        };
        // Woken after the key changed: a woken waiter claims again and must
        // not find the old claim still there.
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
        Ok(())
    }

    async fn forget(&self, key: &DedupKey) -> Result<(), Infallible> {
        let key = self.hash(key);
        let mut shard = self.shard(key);
        if shard.table.get(&key).is_some_and(|slot| slot.is_done()) {
            shard.table.remove(&key);
        }
        Ok(())
    }

    async fn wait(&self, key: &DedupKey) -> Result<(), Infallible> {
        let key = self.hash(key);
        let now = self.now();
        let notify;
        let notified;
        let until;
        {
            let mut shard = self.shard(key);
            match shard.table.get(&key) {
                Some(slot) if !slot.is_done() && slot.is_live(now) => until = slot.until,
                _ => return Ok(()),
            }
            notify = Arc::clone(shard.waiters.entry(key).or_default());
            // Created under the lock: `notify_waiters` after the lock is
            // released (by `complete` or `release`) wakes this future even
            // before it is first polled.
            notified = notify.notified();
        }
        // Until the claim ends, or expires (its owner is stuck or gone).
        match self
            .inner
            .epoch
            .checked_add(Duration::from_secs(u64::from(until)))
        {
            Some(until) => {
                let _ = tokio::time::timeout_at(until, notified).await;
            }
            None => notified.await,
        }
        Ok(())
    }
    async fn peek(&self, key: &DedupKey) -> Result<KeyState, Infallible> {
        let key = self.hash(key);
        let now = self.now();
        let shard = self.shard(key);
        Ok(match shard.table.get(&key) {
            Some(slot) if slot.is_live(now) && slot.is_done() => KeyState::Done,
            Some(slot) if slot.is_live(now) => KeyState::InFlight,
            _ => KeyState::Unknown,
        })
    }
}

/// Takes the next tag of a shard's counter, keeping its [`IN_FLIGHT`] bit
/// (set for claims, clear for completions) as the low 31 bits wrap.
fn next_tag(next: &mut u32) -> u32 {
    let tag = *next;
    *next = (next.wrapping_add(1) & !IN_FLIGHT) | (tag & IN_FLIGHT);
    tag
}

fn take_waiters(shard: &mut Shard, key: Key) -> Option<Arc<Notify>> {
    if shard.waiters.is_empty() {
        None
    } else {
        shard.waiters.remove(&key)
    }
}

/// Builds a [`CompactStore`].
///
/// ```
/// use std::time::Duration;
/// use taskhook::backend::CompactStore;
///
/// let store = CompactStore::builder()
///     .max_capacity(10_000)
///     .time_to_live(Duration::from_secs(3600))
///     .build();
/// ```
#[derive(Debug, Clone)]
pub struct CompactStoreBuilder {
    max_capacity: u64,
    time_to_live: Duration,
    claim_timeout: Duration,
    maintenance_interval: Duration,
}

impl Default for CompactStoreBuilder {
    fn default() -> Self {
        Self {
            max_capacity: DEFAULT_MAX_CAPACITY,
            time_to_live: DEFAULT_TIME_TO_LIVE,
            claim_timeout: DEFAULT_CLAIM_TIMEOUT,
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
        }
    }
}

impl CompactStoreBuilder {
    /// Sets the largest number of keys kept (default 1,000,000; at least
    /// 1), a hard bound; past it the oldest done keys are forgotten.
    ///
    /// ```
    /// let store = taskhook::backend::CompactStore::builder()
    ///     .max_capacity(50_000)
    ///     .build();
    /// ```
    #[must_use]
    pub fn max_capacity(mut self, keys: u64) -> Self {
        self.max_capacity = keys.max(1);
        self
    }

    /// Sets how long a done key is remembered (default 24 h; kept in whole
    /// seconds, rounded up).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let store = taskhook::backend::CompactStore::builder()
    ///     .time_to_live(Duration::from_secs(6 * 3600))
    ///     .build();
    /// ```
    #[must_use]
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.time_to_live = ttl.min(MAX_DURATION);
        self
    }

    /// Sets how long an in-flight claim lasts before it expires on its own
    /// (default 60 s; whole seconds, rounded up). Longer than your handler's
    /// slowest run, or a duplicate may run next to it.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let store = taskhook::backend::CompactStore::builder()
    ///     .claim_timeout(Duration::from_secs(30))
    ///     .build();
    /// ```
    #[must_use]
    pub fn claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout.min(MAX_DURATION);
        self
    }

    /// Sets the period of the maintenance task that removes expired keys
    /// (default 1 s; zero is taken as 1 ms).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let store = taskhook::backend::CompactStore::builder()
    ///     .maintenance_interval(Duration::from_secs(10))
    ///     .build();
    /// ```
    #[must_use]
    pub fn maintenance_interval(mut self, period: Duration) -> Self {
        self.maintenance_interval = period.clamp(Duration::from_millis(1), MAX_DURATION);
        self
    }

    /// Builds the store. No runtime is needed here: the maintenance task is
    /// spawned on first use. Its clock starts now.
    pub fn build(self) -> CompactStore {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wanted = (cores * 4).next_power_of_two().min(MAX_SHARDS);
        // Every shard holds at least MIN_KEYS_PER_SHARD keys if it can.
        let allowed = usize::try_from(self.max_capacity / MIN_KEYS_PER_SHARD)
            .unwrap_or(usize::MAX)
            .max(1);
        let shards = if allowed >= wanted {
            wanted
        } else {
            // The largest power of two not above `allowed`.
            1 << (usize::BITS - 1 - allowed.leading_zeros())
        };
        let capacity = usize::try_from(self.max_capacity).unwrap_or(usize::MAX);
        let shard_capacity = (capacity / shards).max(1);
        CompactStore {
            inner: Arc::new(Inner {
                shards: (0..shards)
                    .map(|_| Padded(Mutex::new(Shard::new())))
                    .collect(),
                mask: shards as u64 - 1,
                shard_capacity,
                sip: KeyHasher::random(),
                epoch: Instant::now(),
                time_to_live: self.time_to_live,
                claim_timeout: self.claim_timeout,
                maintenance_interval: self.maintenance_interval,
                maintenance_running: AtomicBool::new(false),
            }),
        }
    }
}
