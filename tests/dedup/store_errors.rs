//! A store that is down: `503` (or fail open, on request), and a failed
//! `complete` keeps the handler's answer.

use std::sync::atomic::Ordering;

use http::StatusCode;
use taskhook::dedup::{Claim, DedupKey};
use taskhook::{dedup::DedupStore, DedupLayer};

use crate::support::{always, is_duplicate, send, stack};

/// A store whose backend is down for the chosen operations.
#[derive(Debug, Default)]
struct FailingStore {
    claim: bool,
    complete: bool,
}

impl DedupStore for FailingStore {
    type Token = ();
    type Error = std::io::Error;

    async fn claim(&self, _key: &DedupKey) -> Result<Claim<()>, std::io::Error> {
        if self.claim {
            Err(std::io::Error::other("connection refused"))
        } else {
            Ok(Claim::Acquired(()))
        }
    }

    async fn complete(&self, _key: &DedupKey, _token: &()) -> Result<(), std::io::Error> {
        if self.complete {
            Err(std::io::Error::other("connection reset"))
        } else {
            Ok(())
        }
    }

    async fn release(&self, _key: &DedupKey, _token: &()) -> Result<(), std::io::Error> {
        Ok(())
    }

    async fn forget(&self, _key: &DedupKey) -> Result<(), std::io::Error> {
        Ok(())
    }
}

#[tokio::test]
async fn a_store_failure_is_a_503_unless_fail_open() {
    let layer = DedupLayer::with_store(FailingStore {
        claim: true,
        ..FailingStore::default()
    });
    let counted = layer.clone(); // shares the counters
    let (service, calls) = stack(layer, always(StatusCode::OK));
    let (status, headers, body) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "10");
    assert!(
        body.contains(r#""code":"dedup_store_unavailable""#),
        "{body}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(counted.stats().store_errors, 1);

    let layer = DedupLayer::with_store(FailingStore {
        claim: true,
        ..FailingStore::default()
    })
    .fail_open(true);
    let (service, calls) = stack(layer, always(StatusCode::OK));
    for _ in 0..2 {
        let (status, headers, body) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(!is_duplicate(&headers));
        assert_eq!(body, "handled");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_complete_keeps_the_handlers_answer() {
    let layer = DedupLayer::with_store(FailingStore {
        complete: true,
        ..FailingStore::default()
    });
    let counted = layer.clone(); // shares the counters
    let (service, _) = stack(layer, always(StatusCode::OK));
    let (status, _, body) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "handled");
    assert_eq!(counted.stats().store_errors, 1);
}
