//! Dedup store operations against baselines measured in the same run.
//!
//! ```sh
//! cargo bench --bench dedup                 # everything (about 3 minutes on 2 cores)
//! cargo bench --bench dedup -- done_id      # one group
//! ```
//!
//! Each benchmark is one dedup decision on a store pre-filled with N done
//! ids (100,000 or 1,000,000, 31-byte ids like `task_01KA040M0HP1GJWBJYZMKX1XS1`)
//! and 1,024 in-flight ids. The key (`DedupKey`, as the layer builds it) is
//! made before the timer starts and dropped after it stops.
//!
//! Groups:
//! - `new_id`: a fresh id: claim, then complete (the whole life of a first
//!   callback in the store);
//! - `mixed_10`: 10 % duplicates of done ids, 90 % fresh ids;
//! - `done_id`: a duplicate of a done id (100 % duplicates);
//! - `in_flight_id`: a duplicate of an in-flight id (the answer `InFlight`;
//!   the wait that follows in the layer is not timed);
//! - `full_store`: a fresh id into a store already at its capacity (100,000),
//!   so every claim makes room: the steady state of a busy store. Only the
//!   stores with a capacity take part.
//! - `maintenance`: one maintenance pass over the pre-filled 1,000,000-key
//!   store (nothing expired).
//!
//! Contenders (each group, N and thread count):
//! - `floor`: a `HashSet<Box<str>>` on one thread: `contains`, then `insert`
//!   of an owned copy if absent. No time, no states, no sharing: the floor.
//! - `DashMapStamp`: a `DashMap<Box<str>, Stamp>` with the state and an
//!   expiry `Instant` in the value: read first, then the entry API to claim,
//!   `get_mut` to complete. A concurrent map with an expiry stamp.
//! - `MokaPlain`: moka's `entry_by_ref(id).or_insert(0)` on a
//!   `moka::future::Cache<String, u64>` with the store's settings (LRU, TTL):
//!   insert-if-absent, no states, no claims.
//! - `MokaStore` and `CompactStore`: the crate's stores through the
//!   `DedupStore` API, built with capacity 2 N (room to grow; 100,000 in
//!   `full_store`), a 24 h TTL and a 24 h claim timeout (no claim expires
//!   during a run).
//!
//! `threads = 2` runs the same benchmark on two threads at once against one
//! shared store; divan reports the time per operation on each thread, so a
//! store that scales perfectly shows the same figure as on one thread. The
//! floor is single-threaded by nature and is measured once, on one thread.
//!
//! The stores' futures are polled by a minimal executor on the benchmark
//! thread (they are ready at once unless a lock is contended); their
//! maintenance tasks run on a background tokio runtime, as they would in a
//! server. Ratios against the floor are in `BENCHMARKS.md`.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use divan::Bencher;
use moka::future::Cache;
use moka::policy::EvictionPolicy;
use taskhook::dedup::{Claim, DedupKey};
use taskhook::{backend::CompactStore, backend::MokaStore, dedup::DedupStore};

fn main() {
    divan::main();
}

const SIZES: [u64; 2] = [100_000, 1_000_000];
const FULL: u64 = 100_000;
const IN_FLIGHT: u64 = 1_024;
const TTL: Duration = Duration::from_secs(24 * 3600);
const SAMPLES: u32 = 100;
const SAMPLE_SIZE: u32 = 100;

/// A 31-byte id, like `task_01KA040M0HP1GJWBJYZMKX1XS1`.
fn id(i: u64) -> String {
    format!("task_{i:026}")
}

/// Where the inputs of one benchmark come from: fresh ids from a counter,
/// known ids drawn at random (splitmix64 over a shared counter: no lock,
/// the same sequence every run).
struct Ids {
    n: u64,
    fresh: AtomicU64,
    draws: AtomicU64,
}

impl Ids {
    fn new(n: u64) -> Self {
        Self {
            n,
            fresh: AtomicU64::new(n + IN_FLIGHT),
            draws: AtomicU64::new(0),
        }
    }

    fn random(&self) -> u64 {
        let mut z = self
            .draws
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fresh(&self) -> DedupKey {
        DedupKey::new(id(self.fresh.fetch_add(1, Ordering::Relaxed)))
    }

    fn done(&self) -> DedupKey {
        DedupKey::new(id(self.random() % self.n))
    }

    fn in_flight(&self) -> DedupKey {
        DedupKey::new(id(self.n + self.random() % IN_FLIGHT))
    }

    /// 10 % duplicates of done ids.
    fn mixed(&self) -> DedupKey {
        if self.random() % 10 == 0 {
            self.done()
        } else {
            self.fresh()
        }
    }
}

/// Polls a future to completion on this thread, parking while it is
/// pending.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(Unpark(thread::current())));
    }
    let mut future = std::pin::pin!(future);
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            thread::park();
        }
    })
}

/// A tokio runtime the stores' maintenance tasks run on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .expect("a tokio runtime")
    })
}

/// The answer of one dedup decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    New,
    Done,
    InFlight,
}

/// A way to remember ids, shared by the benchmark threads.
trait Contender: Send + Sync + Sized + 'static {
    fn build(capacity: u64) -> Self;

    /// Claims `key`; if it is new, completes it.
    fn claim_complete(&self, key: &DedupKey) -> Answer;

    /// Claims `key` and leaves it in flight.
    fn claim_only(&self, key: &DedupKey);

    /// The shared pre-filled contender of size `n`, built on first use.
    fn shared(n: u64) -> &'static Self;

    /// `n` done ids, then `IN_FLIGHT` in-flight ids.
    fn prefilled(n: u64, capacity: u64) -> Self {
        let contender = Self::build(capacity);
        for i in 0..n {
            contender.claim_complete(&DedupKey::new(id(i)));
        }
        for i in n..n + IN_FLIGHT {
            contender.claim_only(&DedupKey::new(id(i)));
        }
        contender
    }
}

/// The shared contenders, one per size.
macro_rules! shared {
    ($n:expr) => {{
        static SMALL: OnceLock<Self_> = OnceLock::new();
        static LARGE: OnceLock<Self_> = OnceLock::new();
        let cell = if $n == SIZES[0] { &SMALL } else { &LARGE };
        cell.get_or_init(|| Self_::prefilled($n, 2 * $n))
    }};
}

#[derive(Debug, Clone, Copy)]
struct Stamp {
    in_flight: bool,
    until: Instant,
}

struct DashMapStamp(DashMap<Box<str>, Stamp>);

impl Contender for DashMapStamp {
    fn build(_capacity: u64) -> Self {
        Self(DashMap::new())
    }

    fn claim_complete(&self, key: &DedupKey) -> Answer {
        let answer = self.claim(key, Duration::from_secs(60));
        if answer == Answer::New {
            if let Some(mut stamp) = self.0.get_mut(key.as_str()) {
                *stamp = Stamp {
                    in_flight: false,
                    until: Instant::now() + TTL,
                };
            }
        }
        answer
    }

    fn claim_only(&self, key: &DedupKey) {
        self.claim(key, TTL);
    }

    fn shared(n: u64) -> &'static Self {
        type Self_ = DashMapStamp;
        shared!(n)
    }
}

impl DashMapStamp {
    fn claim(&self, key: &DedupKey, claim_timeout: Duration) -> Answer {
        let now = Instant::now();
        let live = |stamp: &Stamp| {
            (now < stamp.until).then_some(if stamp.in_flight {
                Answer::InFlight
            } else {
                Answer::Done
            })
        };
        // A read first: a duplicate costs no allocation and no write lock.
        if let Some(answer) = self.0.get(key.as_str()).and_then(|s| live(&s)) {
            return answer;
        }
        let claim = Stamp {
            in_flight: true,
            until: now + claim_timeout,
        };
        match self.0.entry(key.as_str().into()) {
            dashmap::Entry::Occupied(mut entry) => {
                if let Some(answer) = live(entry.get()) {
                    return answer;
                }
                entry.insert(claim);
            }
            dashmap::Entry::Vacant(entry) => {
                entry.insert(claim);
            }
        }
        Answer::New
    }
}

struct MokaPlain(Cache<String, u64>);

impl Contender for MokaPlain {
    fn build(capacity: u64) -> Self {
        Self(
            Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(EvictionPolicy::lru())
                .time_to_live(TTL)
                .build(),
        )
    }

    fn claim_complete(&self, key: &DedupKey) -> Answer {
        let entry = block_on(self.0.entry_by_ref(key.as_str()).or_insert(0));
        if entry.is_fresh() {
            Answer::New
        } else {
            Answer::Done
        }
    }

    fn claim_only(&self, key: &DedupKey) {
        self.claim_complete(key);
    }

    fn shared(n: u64) -> &'static Self {
        type Self_ = MokaPlain;
        shared!(n)
    }
}

/// Claim, then complete a new key, through the `DedupStore` API.
fn store_claim_complete<St: DedupStore>(store: &St, key: &DedupKey) -> Answer {
    block_on(async {
        match store.claim(key).await {
            Ok(Claim::Acquired(token)) => {
                let _ = store.complete(key, &token).await;
                Answer::New
            }
            Ok(Claim::Done) => Answer::Done,
            Ok(Claim::InFlight) => Answer::InFlight,
            Err(_) => unreachable!("an in-process store does not fail"),
        }
    })
}

fn store_claim_only<St: DedupStore>(store: &St, key: &DedupKey) {
    // Left in flight: dropping the token does not release the claim.
    let _ = block_on(store.claim(key));
}

/// Spawns a store's maintenance task on the background runtime (its first
/// claim inside a runtime does it).
fn start_maintenance<St: DedupStore>(store: &St) {
    let key = DedupKey::new("maintenance");
    runtime().block_on(async {
        if let Ok(Claim::Acquired(token)) = store.claim(&key).await {
            let _ = store.release(&key, &token).await;
        }
    });
}

impl Contender for MokaStore {
    fn build(capacity: u64) -> Self {
        let store = MokaStore::builder()
            .max_capacity(capacity)
            .time_to_live(TTL)
            .claim_timeout(TTL)
            .build();
        start_maintenance(&store);
        store
    }

    fn claim_complete(&self, key: &DedupKey) -> Answer {
        store_claim_complete(self, key)
    }

    fn claim_only(&self, key: &DedupKey) {
        store_claim_only(self, key);
    }

    fn shared(n: u64) -> &'static Self {
        type Self_ = MokaStore;
        shared!(n)
    }
}

impl Contender for CompactStore {
    fn build(capacity: u64) -> Self {
        let store = CompactStore::builder()
            .max_capacity(capacity)
            .time_to_live(TTL)
            .claim_timeout(TTL)
            .build();
        start_maintenance(&store);
        store
    }

    fn claim_complete(&self, key: &DedupKey) -> Answer {
        store_claim_complete(self, key)
    }

    fn claim_only(&self, key: &DedupKey) {
        store_claim_only(self, key);
    }

    fn shared(n: u64) -> &'static Self {
        type Self_ = CompactStore;
        shared!(n)
    }
}

/// The floor: a `HashSet` on one thread, pre-filled like the contenders.
fn floor(n: u64) -> HashSet<Box<str>> {
    (0..n + IN_FLIGHT).map(|i| id(i).into_boxed_str()).collect()
}

fn floor_op(set: &mut HashSet<Box<str>>, key: &DedupKey) -> Answer {
    if set.contains(key.as_str()) {
        Answer::Done
    } else {
        set.insert(key.as_str().into());
        Answer::New
    }
}

/// Benchmarks `pick` keys against a contender: a fresh pre-filled one if
/// the benchmark adds keys, the shared one if it only reads.
fn run<C: Contender>(bencher: Bencher<'_, '_>, n: u64, adds: bool, pick: fn(&Ids) -> DedupKey) {
    let fresh;
    let contender = if adds {
        fresh = C::prefilled(n, 2 * n);
        &fresh
    } else {
        C::shared(n)
    };
    let ids = Ids::new(n);
    bencher
        .with_inputs(|| pick(&ids))
        .bench_refs(|key| contender.claim_complete(key));
}

fn run_floor(bencher: Bencher<'_, '_>, n: u64, pick: fn(&Ids) -> DedupKey) {
    let mut set = floor(n);
    let ids = Ids::new(n);
    bencher
        .with_inputs(|| pick(&ids))
        .bench_local_refs(|key| floor_op(&mut set, key));
}

macro_rules! group {
    ($group:ident, $adds:expr, $pick:expr) => {
        mod $group {
            use super::*;

            #[divan::bench(args = SIZES, sample_count = SAMPLES, sample_size = SAMPLE_SIZE)]
            fn floor(bencher: Bencher<'_, '_>, n: u64) {
                run_floor(bencher, n, $pick);
            }

            #[divan::bench(
                                        types = [DashMapStamp, MokaPlain, MokaStore, CompactStore],
                                        args = SIZES,
                                        threads = [1, 2],
                                        sample_count = SAMPLES,
                                        sample_size = SAMPLE_SIZE,
                                    )]
            fn store<C: Contender>(bencher: Bencher<'_, '_>, n: u64) {
                run::<C>(bencher, n, $adds, $pick);
            }
        }
    };
}

group!(new_id, true, Ids::fresh);
group!(mixed_10, true, Ids::mixed);
group!(done_id, false, Ids::done);
group!(in_flight_id, false, Ids::in_flight);

/// A fresh id into a store at its capacity: every claim makes room.
#[divan::bench(
    types = [MokaPlain, MokaStore, CompactStore],
    threads = [1, 2],
    sample_count = SAMPLES,
    sample_size = SAMPLE_SIZE,
)]
fn full_store<C: Contender>(bencher: Bencher<'_, '_>) {
    let contender = C::build(FULL);
    for i in 0..FULL {
        contender.claim_complete(&DedupKey::new(id(i)));
    }
    let ids = Ids::new(FULL);
    bencher
        .with_inputs(|| ids.fresh())
        .bench_refs(|key| contender.claim_complete(key));
}

/// One maintenance pass over a store of 1,000,000 live keys (nothing to
/// expire): the compact store scans every shard (its periodic task skips a
/// shard until its earliest deadline passed), moka applies its pending
/// work.
#[divan::bench(types = [MokaStore, CompactStore], sample_count = 10, sample_size = 1)]
fn maintenance<C: Contender + Maintain>(bencher: Bencher<'_, '_>) {
    let store = C::shared(SIZES[1]);
    bencher.bench_local(|| store.maintain());
}

trait Maintain {
    fn maintain(&self);
}

impl Maintain for MokaStore {
    fn maintain(&self) {
        block_on(self.run_pending_tasks());
    }
}

impl Maintain for CompactStore {
    fn maintain(&self) {
        self.remove_expired();
    }
}
