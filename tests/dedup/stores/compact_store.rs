//! What only the compact store promises: expiry on tokio time (so its
//! maintenance runs on paused time), rounding to whole seconds in the
//! safe direction, and its eviction order.

use super::*;

async fn claim_and_complete(store: &CompactStore, id: &str) {
    let key = DedupKey::new(id);
    let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
        panic!("{id} is new");
    };
    store.complete(&key, &token).await.unwrap();
}

async fn claim(store: &CompactStore, id: &str) -> Claim<taskhook::backend::CompactToken> {
    store.claim(&DedupKey::new(id)).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn expired_entries_leave_memory_by_themselves() {
    let store = CompactStore::builder()
        .time_to_live(Duration::from_secs(3600))
        .maintenance_interval(Duration::from_secs(10))
        .build();
    for i in 0..50 {
        claim_and_complete(&store, &format!("task_{i}")).await;
    }
    tokio::time::sleep(Duration::from_secs(3590)).await;
    assert_eq!(store.entry_count(), 50);
    // No request: the maintenance task alone removes them.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(store.entry_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_key_is_remembered_at_least_its_ttl() {
    let store = CompactStore::builder()
        .time_to_live(Duration::from_secs(10))
        .build();
    // Completed mid-second: the deadline rounds up, never down.
    tokio::time::advance(Duration::from_millis(500)).await;
    claim_and_complete(&store, "task_01").await;
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert!(matches!(claim(&store, "task_01").await, Claim::Done));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(matches!(claim(&store, "task_01").await, Claim::Acquired(_)));
}

#[tokio::test(start_paused = true)]
async fn a_full_store_forgets_its_oldest_done_keys_and_keeps_claims() {
    let store = CompactStore::builder()
        .max_capacity(100)
        .claim_timeout(Duration::from_secs(3600))
        .build();
    let mut in_flight = Vec::new();
    for i in 0..100 {
        if i % 10 == 0 {
            let Claim::Acquired(token) = claim(&store, &format!("task_{i:03}")).await else {
                panic!("a new key is claimed");
            };
            in_flight.push(token);
        } else {
            claim_and_complete(&store, &format!("task_{i:03}")).await;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(store.entry_count(), 100);
    // Full: a new claim is never refused; the oldest done keys go.
    assert!(matches!(
        claim(&store, "task_100").await,
        Claim::Acquired(_)
    ));
    assert!(store.entry_count() <= 100);
    for i in [1, 2, 3] {
        assert!(
            matches!(
                claim(&store, &format!("task_{i:03}")).await,
                Claim::Acquired(_)
            ),
            "task_{i:03} was forgotten"
        );
    }
    for i in [97, 98, 99] {
        assert!(matches!(
            claim(&store, &format!("task_{i:03}")).await,
            Claim::Done
        ));
    }
    // The in-flight claims outlive the eviction.
    for i in (0..100).step_by(10) {
        assert!(matches!(
            claim(&store, &format!("task_{i:03}")).await,
            Claim::InFlight
        ));
    }
    assert!(store.entry_count() <= 100);
}

#[tokio::test(start_paused = true)]
async fn within_one_second_the_first_completed_are_forgotten_first() {
    let store = CompactStore::builder().max_capacity(16).build();
    // All in the same second: the deadlines are equal.
    for i in 0..17 {
        claim_and_complete(&store, &format!("task_{i:02}")).await;
    }
    // The 17th made room: 16 / 8 = 2 keys went, the first two.
    assert_eq!(store.entry_count(), 15);
    for i in 2..17 {
        assert!(matches!(
            claim(&store, &format!("task_{i:02}")).await,
            Claim::Done
        ));
    }
    for i in 0..2 {
        assert!(matches!(
            claim(&store, &format!("task_{i:02}")).await,
            Claim::Acquired(_)
        ));
    }
}
