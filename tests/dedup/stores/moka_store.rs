//! What only the moka store does: it expires entries on the real clock,
//! and they leave memory without any request.

use std::time::Duration;

use taskhook::dedup::{Claim, DedupKey};
use taskhook::{backend::MokaStore, dedup::DedupStore};

/// moka measures its own time-to-live on the real clock, so this one test
/// uses a short real TTL: expired entries must leave memory without any
/// request, driven by the store's maintenance task alone.
#[tokio::test]
async fn expired_entries_leave_memory_by_themselves() {
    let ttl = Duration::from_millis(300);
    let store = MokaStore::builder()
        .time_to_live(ttl)
        .claim_timeout(ttl)
        .maintenance_interval(Duration::from_millis(10))
        .build();
    let started = std::time::Instant::now();
    for i in 0..50 {
        let key = DedupKey::new(format!("task_{i}"));
        let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
            panic!("a new key is claimed");
        };
        store.complete(&key, &token).await.unwrap();
    }
    store.run_pending_tasks().await;
    if started.elapsed() < ttl {
        assert_eq!(store.entry_count(), 50);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.entry_count() > 0 {
        assert!(std::time::Instant::now() < deadline, "entries never left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        store.claim(&DedupKey::new("task_0")).await.unwrap(),
        Claim::Acquired(_)
    ));
}
