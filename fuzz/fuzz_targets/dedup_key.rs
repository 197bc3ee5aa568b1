//! Fuzzes key extraction: the `KeyExtractor` implementations on parsed
//! events, and the in-process store's view of the keys.
//!
//! Input: one or two callback bodies, separated by the first `0x00` byte
//! (a raw JSON file is one body).
//!
//! Checked: no panic; `ById` is the task id; `ByIdAndStatus` is injective
//! (the id, then NUL, then the status, and the id never holds a NUL); two
//! events share a key exactly when their ids (and statuses) match, and the
//! `CompactStore` agrees: the second key is a duplicate of the first exactly
//! when the keys are equal.
#![no_main]

use std::future::Future;
use std::task::{Context, Poll, Waker};

use http::Request;
use libfuzzer_sys::fuzz_target;
use taskhook::dedup::{ById, ByIdAndStatus, Claim, DedupKey, DedupStore, KeyExtractor};
use taskhook::{backend::CompactStore, TaskEvent};

/// Polls `future` once, outside any runtime: the `CompactStore`'s methods
/// never wait (and outside a runtime it spawns no maintenance task, so no
/// task outlives its input).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match std::pin::pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a CompactStore call did not complete at once"),
    }
}

fn keys(event: &TaskEvent) -> (DedupKey, DedupKey) {
    let request = Request::new(());
    let by_id = ById.extract(event, &request).expect("ById always keys");
    let by_status = ByIdAndStatus
        .extract(event, &request)
        .expect("ByIdAndStatus always keys");

    assert_eq!(by_id.as_str(), event.id());
    assert!(!event.id().contains('\0'), "NUL in an id");
    let (id, status) = by_status
        .as_str()
        .split_once('\0')
        .expect("ByIdAndStatus has a NUL");
    assert_eq!(id, event.id());
    assert_eq!(status, event.status().map_or("", |s| s.as_str()));
    (by_id, by_status)
}

fuzz_target!(|data: &[u8]| {
    let (a, b) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(first) = TaskEvent::from_slice(a) else {
        return;
    };
    let (id_a, status_a) = keys(&first);
    let Some(Ok(second)) = b.map(TaskEvent::from_slice) else {
        return;
    };
    let (id_b, status_b) = keys(&second);

    let same_id = first.id() == second.id();
    let same_status =
        first.status().map_or("", |s| s.as_str()) == second.status().map_or("", |s| s.as_str());
    assert_eq!(id_a == id_b, same_id);
    assert_eq!(status_a == status_b, same_id && same_status);

    // The store sees the same equality through its 128-bit keyed hash.
    let store = CompactStore::builder().max_capacity(16).build();
    block_on(async {
        for (a, b) in [(&id_a, &id_b), (&status_a, &status_b)] {
            let Ok(Claim::Acquired(token)) = store.claim(a).await else {
                panic!("a fresh store refused a claim");
            };
            let _ = store.complete(a, &token).await;
            let claim = store.claim(b).await.expect("infallible");
            if a == b {
                assert!(matches!(claim, Claim::Done), "{a:?} is not remembered");
            } else {
                assert!(
                    matches!(claim, Claim::Acquired(_)),
                    "{b:?} collides with {a:?}"
                );
            }
            let _ = store.forget(a).await;
            let _ = store.forget(b).await;
        }
    });
});
