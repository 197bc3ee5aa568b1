//! The journal: pending entries are replayed at start-up before new intake;
//! an append that fails, stalls, panics or answers wrongly never yields a
//! 2xx for an event that will not run; a journal that knows the task answers
//! `200` duplicate.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use taskhook::fast_ack::journal::{
    Appended, BoxFuture, Entry, Journal, JournalError, MemoryJournal, Record,
};
use taskhook::fast_ack::{DeadLetter, FastAckLayer};
use tower::{ServiceBuilder, ServiceExt};

use crate::common::{callback, send, until};
use crate::support::{counting, handler, stack, status, task_id};

#[tokio::test(start_paused = true)]
async fn pending_entries_are_replayed_in_order_before_new_intake() {
    let journal = MemoryJournal::new();

    // A first process accepts five events and dies before processing them.
    let (first, first_handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .concurrency(1)
        .build();
    let stuck = stack(first, handler(|_| std::future::pending()));
    first_handle.started().await;
    for i in 1..=5 {
        send(&stuck, &format!("task_{i}")).await;
    }
    first_handle.shutdown(Duration::ZERO).await;
    assert_eq!(journal.len(), 5);

    // The next process runs them, in order, before anything new.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (second, handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .concurrency(1)
        .build();
    let service = stack(
        second,
        handler({
            let seen = Arc::clone(&seen);
            move |req| {
                seen.lock().unwrap().push(task_id(&req));
                async { status(StatusCode::OK) }
            }
        }),
    );
    let early = send(&service, "task_early").await;
    assert_eq!(early.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(early.json["error"]["code"], "starting");

    handle.started().await;
    assert_eq!(send(&service, "task_6").await.status, StatusCode::ACCEPTED);
    until("all processed", || handle.stats().processed == 6).await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["task_1", "task_2", "task_3", "task_4", "task_5", "task_6"]
    );
    assert_eq!(handle.stats().recovered, 5);
    assert!(journal.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_during_the_start_up_replay_still_drains_it() {
    let journal = MemoryJournal::new();
    let (first, first_handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .concurrency(1)
        .build();
    let stuck = stack(first, handler(|_| std::future::pending()));
    first_handle.started().await;
    for i in 1..=3 {
        send(&stuck, &format!("task_{i}")).await;
    }
    first_handle.shutdown(Duration::ZERO).await;

    let calls = Arc::new(AtomicU32::new(0));
    let (second, handle) = FastAckLayer::builder().journal(journal.clone()).build();
    let _service = stack(second, counting(&calls, StatusCode::OK));
    // No `started().await`: the shutdown comes while the replay starts.
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert!(report.drained);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(handle.stats().recovered, 3);
    assert!(journal.is_empty());
}

/// A journal whose appends fail on demand, and that knows some task ids
/// already (as a journal that deduplicates would).
#[derive(Debug, Clone, Default)]
struct FlakyJournal {
    inner: MemoryJournal,
    fail_appends: Arc<AtomicBool>,
    known: Arc<Mutex<HashSet<String>>>,
    /// Appends take 5 s (tokio time), a disk stall.
    stall_appends: Arc<AtomicBool>,
    /// Appends panic.
    panic_appends: Arc<AtomicBool>,
    /// Appends begun.
    appends: Arc<AtomicU32>,
    /// Appends answer two outcomes per record (both appended), a journal bug.
    double_appends: Arc<AtomicBool>,
}

impl Journal for FlakyJournal {
    fn append(&self, records: Vec<Record>) -> BoxFuture<'_, Result<Vec<Appended>, JournalError>> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        if self.panic_appends.load(Ordering::SeqCst) {
            panic!("journal bug");
        }
        if self.stall_appends.load(Ordering::SeqCst) {
            return Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                self.inner.append(records).await
            });
        }
        if self.fail_appends.load(Ordering::SeqCst) {
            let error = std::io::Error::other("disk full");
            return Box::pin(async move { Err(JournalError::Io(error)) });
        }
        let known = self.known.lock().unwrap();
        if records.iter().all(|r| known.contains(r.task_id().unwrap())) {
            let duplicates = vec![Appended::Duplicate; records.len()];
            return Box::pin(async move { Ok(duplicates) });
        }
        drop(known);
        if self.double_appends.load(Ordering::SeqCst) {
            return Box::pin(async move {
                let mut outcomes = self.inner.append(records.clone()).await?;
                outcomes.extend(self.inner.append(records).await?);
                Ok(outcomes)
            });
        }
        self.inner.append(records)
    }
    fn complete(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.complete(seq)
    }
    fn pending(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        self.inner.pending()
    }
    fn dead_letter(&self, letter: &DeadLetter) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.dead_letter(letter)
    }
    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, JournalError>> {
        self.inner.dead_letters()
    }
    fn remove_dead_letter(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.remove_dead_letter(seq)
    }
}

#[tokio::test]
async fn a_failed_append_is_503_and_the_handler_never_runs() {
    let journal = FlakyJournal::default();
    journal.fail_appends.store(true, Ordering::SeqCst);
    let calls = Arc::new(AtomicU32::new(0));
    let (layer, handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .capacity(1)
        .build();
    let service = stack(layer, counting(&calls, StatusCode::OK));
    handle.started().await;
    for _ in 0..3 {
        let answer = send(&service, "task_disk").await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.json["error"]["code"], "journal_unavailable");
        assert_eq!(answer.retry_after.as_deref(), Some("10"));
    }
    let stats = handle.stats();
    assert_eq!((stats.accepted, stats.rejected_unavailable), (0, 3));

    // The slot of each failed append was given back (capacity is 1).
    journal.fail_appends.store(false, Ordering::SeqCst);
    assert_eq!(
        send(&service, "task_disk").await.status,
        StatusCode::ACCEPTED
    );
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A journal that answers a wrong number of outcomes for the one record of
/// a request: what it appended is withdrawn, and the provider is told to
/// retry (`503`), as for any failed append; nothing runs.
#[tokio::test]
async fn an_append_with_a_wrong_number_of_outcomes_is_withdrawn_and_503() {
    let journal = FlakyJournal::default();
    journal.double_appends.store(true, Ordering::SeqCst);
    let calls = Arc::new(AtomicU32::new(0));
    let (layer, handle) = FastAckLayer::builder().journal(journal.clone()).build();
    let service = stack(layer, counting(&calls, StatusCode::OK));
    handle.started().await;
    let answer = send(&service, "task_twice").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json["error"]["code"], "journal_unavailable");
    assert_eq!(answer.retry_after.as_deref(), Some("10"));
    assert_eq!(journal.appends.load(Ordering::SeqCst), 1);
    assert!(journal.inner.is_empty(), "both appended entries withdrawn");
    assert_eq!(handle.stats().accepted, 0);

    journal.double_appends.store(false, Ordering::SeqCst);
    assert_eq!(
        send(&service, "task_twice").await.status,
        StatusCode::ACCEPTED
    );
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// The client goes away (a timeout layer outside drops the response future)
/// while the journal append is stalled: the append and the enqueue still
/// finish, so the event is journaled, queued and processed, not left
/// journaled and never run.
#[tokio::test(start_paused = true)]
async fn an_accept_whose_client_left_mid_append_is_still_queued_and_processed() {
    let journal = FlakyJournal::default();
    journal.stall_appends.store(true, Ordering::SeqCst);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (layer, handle) = FastAckLayer::builder().journal(journal.clone()).build();
    let service = stack(
        layer,
        handler({
            let seen = Arc::clone(&seen);
            move |req| {
                seen.lock().unwrap().push(task_id(&req));
                async { status(StatusCode::OK) }
            }
        }),
    );
    handle.started().await;
    let outer = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .service(service.clone());
    let Err(error) = outer.oneshot(callback("task_gone")).await else {
        panic!("answered although the append stalls");
    };
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
    assert_eq!(journal.appends.load(Ordering::SeqCst), 1);
    assert_eq!(handle.stats().accepted, 0, "the append is still stalled");

    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(*seen.lock().unwrap(), ["task_gone"]);
    assert_eq!(handle.stats().accepted, 1);
    assert!(journal.inner.is_empty(), "completed in the journal");
}

/// The runtime shuts down while an accept waits for a stalled append: the
/// request's task is dropped, the accept's hand-over to a task of its own
/// ends with the runtime, and nothing hangs.
#[test]
fn a_runtime_shutting_down_mid_append_drops_the_accept_cleanly() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let journal = FlakyJournal::default();
    journal.stall_appends.store(true, Ordering::SeqCst);
    let (layer, handle) = FastAckLayer::builder().journal(journal.clone()).build();
    let service = rt.block_on(async {
        let service = stack(layer, handler(|_| async { status(StatusCode::OK) }));
        handle.started().await;
        service
    });
    let request = rt.spawn(async move { send(&service, "task_stalled").await.status });
    rt.block_on(until("the append began", || {
        journal.appends.load(Ordering::SeqCst) == 1
    }));
    drop(rt);
    assert!(request.is_finished());
    assert_eq!(handle.stats().accepted, 0);
}

/// A journal that panics in `append` fails that one accept with a `503`
/// (the provider retries); the slot is given back and the layer goes on.
#[tokio::test]
async fn a_panicking_journal_append_is_503_and_frees_its_slot() {
    let journal = FlakyJournal::default();
    journal.panic_appends.store(true, Ordering::SeqCst);
    let (layer, handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .capacity(1)
        .build();
    let service = stack(layer, handler(|_| async { status(StatusCode::OK) }));
    handle.started().await;
    for _ in 0..2 {
        let answer = send(&service, "task_bug").await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.json["error"]["code"], "accept_failed");
        assert_eq!(answer.retry_after.as_deref(), Some("10"));
    }
    journal.panic_appends.store(false, Ordering::SeqCst);
    assert_eq!(
        send(&service, "task_bug").await.status,
        StatusCode::ACCEPTED
    );
    until("processed", || handle.stats().processed == 1).await;
}

#[tokio::test]
async fn a_journal_that_knows_the_task_answers_200_duplicate_and_queues_nothing() {
    let journal = FlakyJournal::default();
    journal.known.lock().unwrap().insert("task_seen".to_owned());
    let calls = Arc::new(AtomicU32::new(0));
    let (layer, handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .capacity(1)
        .build();
    let service = stack(layer, counting(&calls, StatusCode::OK));
    handle.started().await;
    for _ in 0..2 {
        let answer = send(&service, "task_seen").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json["status"], "duplicate");
        assert_eq!(answer.json["id"], "task_seen");
    }
    let stats = handle.stats();
    assert_eq!((stats.accepted, stats.duplicates, stats.queued), (0, 2, 0));
    // The reserved slot was given back: a new task is accepted.
    assert_eq!(
        send(&service, "task_new").await.status,
        StatusCode::ACCEPTED
    );
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(journal.inner.is_empty());
}
