//! The store semantics, run against every in-process store: each test is
//! written once, generic over the store, and instantiated per store by
//! `store_semantics!`; what only one store does is in its own module.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use taskhook::dedup::{Claim, DedupKey, KeyState};
use taskhook::{backend::CompactStore, backend::MokaStore, dedup::DedupStore, DedupLayer};
use tokio::time::Instant;

use crate::support::{always, is_duplicate, push_with_timeout, send, stack, until_calls, Act};

mod compact_store;
mod moka_store;

/// An in-process store the tests can build and count.
trait TestStore: DedupStore + Clone {
    fn build(capacity: u64, ttl: Duration, claim_timeout: Duration) -> Self;

    /// The number of keys held, after any pending maintenance ran.
    async fn count(&self) -> u64;

    fn with_defaults() -> Self {
        Self::build(
            1_000_000,
            Duration::from_secs(24 * 3600),
            Duration::from_secs(60),
        )
    }
}

impl TestStore for MokaStore {
    fn build(capacity: u64, ttl: Duration, claim_timeout: Duration) -> Self {
        MokaStore::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .claim_timeout(claim_timeout)
            .build()
    }

    async fn count(&self) -> u64 {
        self.run_pending_tasks().await;
        self.entry_count()
    }
}

impl TestStore for CompactStore {
    fn build(capacity: u64, ttl: Duration, claim_timeout: Duration) -> Self {
        CompactStore::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .claim_timeout(claim_timeout)
            .build()
    }

    async fn count(&self) -> u64 {
        self.entry_count()
    }
}

async fn duplicate_after_success_and_retry_after_5xx<St: TestStore>() {
    let layer = DedupLayer::with_store(St::with_defaults());
    let (service, calls) = stack(layer, |n| {
        Act::Answer(if n == 0 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        })
    });
    let (status, _, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    for _ in 0..2 {
        let (status, headers, _) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(is_duplicate(&headers));
    }
    let (_, headers, _) = send(&service, "task_02").await.unwrap();
    assert!(!is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

async fn concurrent_identical_ids_run_once<St: TestStore>() {
    let layer = DedupLayer::with_store(St::with_defaults());
    let counted = layer.clone(); // shares the counters
    let (service, calls) = stack(layer, |_| {
        Act::Slow(Duration::from_millis(300), StatusCode::OK)
    });
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let service = service.clone();
        set.spawn(async move { send(&service, "task_01").await.unwrap() });
    }
    let mut duplicates = 0;
    while let Some(result) = set.join_next().await {
        let (status, headers, _) = result.unwrap();
        assert_eq!(status, StatusCode::OK);
        duplicates += usize::from(is_duplicate(&headers));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(duplicates, 63);
    let stats = counted.stats();
    assert_eq!(stats.first, 1);
    assert_eq!(stats.duplicate_done, 63);
    assert_eq!(stats.duplicate_in_flight, 63);
    assert_eq!(stats.wait_timeouts, 0);
}

async fn concurrent_identical_ids_run_once_across_threads<St: TestStore>() {
    let (service, calls) = stack(DedupLayer::with_store(St::with_defaults()), |_| {
        Act::Slow(Duration::from_millis(50), StatusCode::OK)
    });
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let service = service.clone();
        set.spawn(async move { send(&service, "task_01").await.unwrap().0 });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

async fn a_dropped_response_future_does_not_cancel_the_handler<St: TestStore>() {
    let layer = DedupLayer::with_store(St::with_defaults());
    let counted = layer.clone(); // shares the counters
    let (service, calls) = stack(layer, |n| {
        if n == 0 {
            Act::Slow(Duration::from_secs(10), StatusCode::OK)
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    push_with_timeout(&service).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The handler goes on (it may already have accepted the event): the
    // provider's retry is not run beside it, it waits, then gets a 503.
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));

    // Once the handler succeeded, the next retry is a duplicate.
    tokio::time::advance(Duration::from_secs(10)).await;
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(counted.stats().released, 0);
}

async fn a_handler_failing_after_its_client_left_releases_its_key<St: TestStore>() {
    let layer = DedupLayer::with_store(St::with_defaults());
    let counted = layer.clone(); // shares the counters
    let (service, calls) = stack(layer, |n| {
        if n == 0 {
            Act::Slow(Duration::from_secs(3), StatusCode::INTERNAL_SERVER_ERROR)
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    push_with_timeout(&service).await;

    // The retry waits for the outcome (a 500 at 3 s) and then runs.
    let started = Instant::now();
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(counted.stats().released, 1);
}

async fn forget_clears_only_done_keys<St: TestStore>() {
    let store = St::with_defaults();
    let done = DedupKey::new("task_done");
    let Claim::Acquired(token) = store.claim(&done).await.unwrap() else {
        panic!("a new key is claimed");
    };
    store.complete(&done, &token).await.unwrap();
    assert!(matches!(store.claim(&done).await.unwrap(), Claim::Done));
    store.forget(&done).await.unwrap();
    assert!(matches!(
        store.claim(&done).await.unwrap(),
        Claim::Acquired(_)
    ));

    let flying = DedupKey::new("task_flying");
    assert!(matches!(
        store.claim(&flying).await.unwrap(),
        Claim::Acquired(_)
    ));
    store.forget(&flying).await.unwrap();
    assert!(matches!(
        store.claim(&flying).await.unwrap(),
        Claim::InFlight
    ));
}

async fn a_stuck_in_flight_claim_expires<St: TestStore>() {
    let store = St::build(
        1_000_000,
        Duration::from_secs(3600),
        Duration::from_secs(60),
    );
    let (service, calls) = stack(DedupLayer::with_store(store), |n| {
        if n == 0 {
            Act::Hang
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    let stuck = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    until_calls(&calls, 1).await;
    tokio::time::advance(Duration::from_secs(50)).await;
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The wait took 5 s: the claim is 55 s old. At 60 s it is free.
    tokio::time::advance(Duration::from_secs(5)).await;
    let started = Instant::now();
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(!stuck.is_finished());
    stuck.abort();
}

async fn waiters_get_the_outcome_or_run_after_a_release<St: TestStore>() {
    // Done: the waiter answers as soon as the first request finished.
    let layer = DedupLayer::with_store(St::with_defaults()).wait_timeout(Duration::from_secs(3));
    let (service, calls) = stack(layer, |_| Act::Slow(Duration::from_secs(2), StatusCode::OK));
    let first = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    until_calls(&calls, 1).await;
    let started = Instant::now();
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!((status, is_duplicate(&headers)), (StatusCode::OK, true));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(!is_duplicate(&first.await.unwrap().unwrap().1));

    // Released: exactly one waiter runs.
    let layer = DedupLayer::with_store(St::with_defaults());
    let counted = layer.clone(); // shares the counters
    let (service, calls) = stack(layer, |n| {
        let status = if n == 0 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        Act::Slow(Duration::from_secs(1), status)
    });
    let first = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    until_calls(&calls, 1).await;
    let mut waiters = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let service = service.clone();
        waiters.spawn(async move { send(&service, "task_01").await.unwrap() });
    }
    assert_eq!(
        first.await.unwrap().unwrap().0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let mut ran = 0;
    while let Some(result) = waiters.join_next().await {
        let (status, headers, _) = result.unwrap();
        assert_eq!(status, StatusCode::OK);
        ran += usize::from(!is_duplicate(&headers));
    }
    assert_eq!((ran, calls.load(Ordering::SeqCst)), (1, 2));
    let stats = counted.stats();
    assert_eq!((stats.first, stats.released), (2, 1));

    // Still in flight after the bound: 503.
    let (service, calls) = stack(DedupLayer::with_store(St::with_defaults()), |_| {
        Act::Slow(Duration::from_secs(30), StatusCode::OK)
    });
    let first = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    until_calls(&calls, 1).await;
    let started = Instant::now();
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(first.await.unwrap().unwrap().0, StatusCode::OK);
}

async fn ttl_expiry_makes_an_id_new_again<St: TestStore>() {
    let store = St::build(
        1_000_000,
        Duration::from_secs(3600),
        Duration::from_secs(60),
    );
    let (service, calls) = stack(DedupLayer::with_store(store), always(StatusCode::OK));
    send(&service, "task_01").await.unwrap();
    tokio::time::advance(Duration::from_secs(3599)).await;
    let (_, headers, _) = send(&service, "task_01").await.unwrap();
    assert!(is_duplicate(&headers));
    tokio::time::advance(Duration::from_secs(1)).await;
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

async fn memory_stays_bounded_past_capacity<St: TestStore>() {
    let store = St::build(100, Duration::from_secs(3600), Duration::from_secs(60));
    let layer = DedupLayer::with_store(store);
    let store = layer.store().clone();
    let (service, calls) = stack(layer, always(StatusCode::OK));
    for i in 0..1000 {
        send(&service, &format!("task_{i:04}")).await.unwrap();
        if i == 99 {
            assert_eq!(store.count().await, 100);
        }
    }
    assert!(store.count().await <= 100);
    assert_eq!(calls.load(Ordering::SeqCst), 1000);
    let (_, headers, _) = send(&service, "task_0999").await.unwrap();
    assert!(is_duplicate(&headers));
    let (_, headers, _) = send(&service, "task_0000").await.unwrap();
    assert!(!is_duplicate(&headers));
}

async fn only_the_callers_own_claim_is_touched<St: TestStore>() {
    let store = St::with_defaults();
    let key = DedupKey::new("task_01");
    let Claim::Acquired(stale) = store.claim(&key).await.unwrap() else {
        panic!("a new key is claimed");
    };
    assert!(matches!(store.claim(&key).await.unwrap(), Claim::InFlight));
    tokio::time::advance(Duration::from_secs(60)).await;
    let Claim::Acquired(current) = store.claim(&key).await.unwrap() else {
        panic!("an expired claim is claimed again");
    };
    store.release(&key, &stale).await.unwrap();
    assert!(matches!(store.claim(&key).await.unwrap(), Claim::InFlight));
    store.complete(&key, &stale).await.unwrap();
    assert!(matches!(store.claim(&key).await.unwrap(), Claim::InFlight));
    store.complete(&key, &current).await.unwrap();
    assert!(matches!(store.claim(&key).await.unwrap(), Claim::Done));
    let other = DedupKey::new("task_02");
    let Claim::Acquired(token) = store.claim(&other).await.unwrap() else {
        panic!("a new key is claimed");
    };
    store.release(&other, &token).await.unwrap();
    assert!(matches!(
        store.claim(&other).await.unwrap(),
        Claim::Acquired(_)
    ));
}

async fn peek_reads_a_key_without_changing_it<St: TestStore>() {
    let store = St::build(1_000, Duration::from_secs(100), Duration::from_secs(10));
    let key = DedupKey::new("task_01");
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::Unknown);
    // Peeking claims nothing.
    let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
        panic!("a peeked key is still new");
    };
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::InFlight);
    store.release(&key, &token).await.unwrap();
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::Unknown);

    let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
        panic!("a released key is new");
    };
    store.complete(&key, &token).await.unwrap();
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::Done);
    assert!(matches!(store.claim(&key).await.unwrap(), Claim::Done));
    tokio::time::advance(Duration::from_secs(101)).await;
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::Unknown);

    // A claim whose owner is gone is unknown once it expired.
    let stuck = DedupKey::new("task_stuck");
    assert!(matches!(
        store.claim(&stuck).await.unwrap(),
        Claim::Acquired(_)
    ));
    assert_eq!(store.peek(&stuck).await.unwrap(), KeyState::InFlight);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(store.peek(&stuck).await.unwrap(), KeyState::Unknown);
}

macro_rules! store_semantics {
    ($name:ident, $store:ty) => {
        mod $name {
            use super::*;

            #[tokio::test(start_paused = true)]
            async fn duplicate_after_success_and_retry_after_5xx() {
                super::duplicate_after_success_and_retry_after_5xx::<$store>().await;
            }

            #[tokio::test(start_paused = true)]
            async fn concurrent_identical_ids_run_once() {
                super::concurrent_identical_ids_run_once::<$store>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_identical_ids_run_once_across_threads() {
                super::concurrent_identical_ids_run_once_across_threads::<$store>().await;
            }

            #[tokio::test(start_paused = true)]
            async fn a_dropped_response_future_does_not_cancel_the_handler() {
                super::a_dropped_response_future_does_not_cancel_the_handler::<$store>().await;
            }

            #[tokio::test(start_paused = true)]
            async fn a_handler_failing_after_its_client_left_releases_its_key() {
                super::a_handler_failing_after_its_client_left_releases_its_key::<$store>().await;
            }

            #[tokio::test(start_paused = true)]
            async fn forget_clears_only_done_keys() {
                super::forget_clears_only_done_keys::<$store>().await;
            }

            #[tokio::test(start_paused = true)]
            async fn a_stuck_in_flight_claim_expires() {
                super::a_stuck_in_flight_claim_expires::<$store>().await;
            }

            #[tokio::test(start_paused = true)]
            async fn waiters_get_the_outcome_or_run_after_a_release() {
                super::waiters_get_the_outcome_or_run_after_a_release::<$store>().await;
            }

            #[tokio::test(start_paused = true)]
            async fn ttl_expiry_makes_an_id_new_again() {
                super::ttl_expiry_makes_an_id_new_again::<$store>().await;
            }

            #[tokio::test]
            async fn memory_stays_bounded_past_capacity() {
                super::memory_stays_bounded_past_capacity::<$store>().await;
            }

            #[tokio::test(start_paused = true)]
            async fn peek_reads_a_key_without_changing_it() {
                super::peek_reads_a_key_without_changing_it::<$store>().await;
            }

            #[tokio::test(start_paused = true)]
            async fn only_the_callers_own_claim_is_touched() {
                super::only_the_callers_own_claim_is_touched::<$store>().await;
            }
        }
    };
}

store_semantics!(moka, MokaStore);
store_semantics!(compact, CompactStore);
