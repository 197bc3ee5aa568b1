//! The redb journal deduplicates by task id, as the Redis journal does: a
//! task id pending in the file, or done within the done TTL, is answered
//! `Appended::Duplicate` (through the layer: `200`,
//! `taskhook-duplicate: journaled`) whatever dedup store is in front, and a
//! restart does not forget it.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use taskhook::backend::{
    redb::{RedbDedupStore, RedbJournal},
    MokaStore,
};
use taskhook::dedup::{Claim, DedupKey, DedupStore, KeyState};
use taskhook::fast_ack::journal::{Appended, Journal, Record};
use taskhook::fast_ack::{DeadLetter, Failure, FastAckLayer, RetryPolicy};
use taskhook::{DedupLayer, FastAckHandle, PayloadLayer};
use tokio::sync::Semaphore;
use tower::{Service, ServiceBuilder};

use super::common::{send, until};
use super::{handler, life, status, task_id, TempDir};

/// What the handler saw: the task id of every call, in order.
type Calls = Arc<Mutex<Vec<String>>>;

/// payload → dedup with the default store (`DedupLayer::new()`, in memory:
/// a restart forgets it) → fast-ack on `journal` → a handler that records
/// each call, then waits for a permit of `gate` (when given) and answers
/// `200`.
fn default_stack(
    journal: &RedbJournal,
    calls: &Calls,
    gate: Option<Arc<Semaphore>>,
) -> (
    impl Service<
            Request<Full<Bytes>>,
            Response = Response<impl http_body::Body<Data = Bytes, Error = impl std::fmt::Debug>>,
            Error = Infallible,
        > + Clone,
    FastAckHandle,
) {
    let (layer, handle) = FastAckLayer::builder().journal(journal.clone()).build();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(DedupLayer::new())
        .layer(layer)
        .service(handler({
            let calls = Arc::clone(calls);
            move |req| {
                calls.lock().unwrap().push(task_id(&req));
                let gate = gate.clone();
                async move {
                    if let Some(gate) = gate {
                        let _permit = gate.acquire().await;
                    }
                    status(StatusCode::OK)
                }
            }
        }));
    (service, handle)
}

fn calls_of(calls: &Calls) -> Vec<String> {
    calls.lock().unwrap().clone()
}

#[test]
fn a_duplicate_of_a_processed_task_pushed_after_a_restart_is_journaled() {
    let dir = TempDir::new("dedup-done");
    let path = dir.file();
    let calls = Calls::default();
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        let (service, handle) = default_stack(&journal, &calls, None);
        handle.started().await;
        assert_eq!(send(&service, "task_1").await.status, StatusCode::ACCEPTED);
        until("processed", || handle.stats().processed == 1).await;
    });

    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        let (service, handle) = default_stack(&journal, &calls, None);
        handle.started().await;
        // The dedup layer's store is new and knows nothing; the journal
        // remembers the task as done.
        let duplicate = send(&service, "task_1").await;
        assert_eq!(duplicate.status, StatusCode::OK);
        assert_eq!(duplicate.duplicate.as_deref(), Some("journaled"));
        assert_eq!(duplicate.json["status"], "duplicate");
        assert_eq!(send(&service, "task_2").await.status, StatusCode::ACCEPTED);
        until("processed", || handle.stats().processed == 1).await;
        let stats = handle.stats();
        assert_eq!((stats.accepted, stats.duplicates), (1, 1), "{stats:?}");
    });
    assert_eq!(calls_of(&calls), ["task_1", "task_2"]);
}

#[test]
fn a_duplicate_of_a_task_still_pending_after_a_restart_is_journaled() {
    let dir = TempDir::new("dedup-pending");
    let path = dir.file();
    let calls = Calls::default();
    // The first process accepts the task and dies while its handler runs.
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        let (service, handle) = default_stack(&journal, &calls, Some(Arc::new(Semaphore::new(0))));
        handle.started().await;
        assert_eq!(send(&service, "task_1").await.status, StatusCode::ACCEPTED);
        until("the handler runs", || calls_of(&calls).len() == 1).await;
    });

    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        let gate = Arc::new(Semaphore::new(0));
        let (service, handle) = default_stack(&journal, &calls, Some(Arc::clone(&gate)));
        handle.started().await;
        // The start-up replay runs it (and waits at the gate) ...
        until("the replay runs", || calls_of(&calls).len() == 2).await;
        assert_eq!(handle.stats().recovered, 1);
        // ... while the provider pushes it again: the dedup layer's new
        // store lets it through, the journal holds it.
        let duplicate = send(&service, "task_1").await;
        assert_eq!(duplicate.status, StatusCode::OK);
        assert_eq!(duplicate.duplicate.as_deref(), Some("journaled"));
        gate.add_permits(10);
        until("processed", || handle.stats().processed == 1).await;
        assert_eq!(handle.stats().accepted, 0);
    });
    // Once in the process that died, once in the replay; never for the
    // duplicate.
    assert_eq!(calls_of(&calls), ["task_1", "task_1"]);
}

#[test]
fn completions_answered_before_a_graceful_shutdown_are_durable_without_a_sync_call() {
    let dir = TempDir::new("dedup-shutdown");
    let path = dir.file();
    // What a process that exits right after its graceful shutdown leaves
    // on disk when the journal's destructor never runs (`process::exit`,
    // a SIGKILL after the grace period): only what was synced. A commit
    // without a sync lives in redb's memory until the next synced one.
    let exited = dir.0.join("exited.redb");
    let calls = Calls::default();
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        let (service, handle) = default_stack(&journal, &calls, None);
        handle.started().await;
        assert_eq!(send(&service, "task_1").await.status, StatusCode::ACCEPTED);
        until("processed", || handle.stats().processed == 1).await;
        let report = handle.shutdown(Duration::from_secs(5)).await;
        assert!(report.drained, "{report:?}");
        std::fs::copy(&path, &exited).unwrap();
    });

    life(|| async {
        let journal = RedbJournal::open(&exited).unwrap();
        assert!(journal.pending().await.unwrap().is_empty());
        let (service, handle) = default_stack(&journal, &calls, None);
        handle.started().await;
        let duplicate = send(&service, "task_1").await;
        assert_eq!(duplicate.status, StatusCode::OK);
        assert_eq!(duplicate.duplicate.as_deref(), Some("journaled"));
        assert_eq!(handle.stats().recovered, 0);
    });
    assert_eq!(calls_of(&calls), ["task_1"]);
}

/// A record of a callback for `id`, encoded as the fast-ack layer journals
/// it (`THJ1`, method, URI, version, no headers, body: see
/// `src/fast_ack/job.rs`), so a dead letter can be made of it.
fn task(id: &str) -> Record {
    let body = format!(r#"{{"id":"{id}","status":"completed"}}"#);
    let mut bytes = b"THJ1".to_vec();
    for field in [&b"POST"[..], b"/callback"] {
        bytes.extend_from_slice(&(field.len() as u32).to_le_bytes());
        bytes.extend_from_slice(field);
    }
    bytes.push(2); // HTTP/1.1
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(body.as_bytes());
    Record::new(Some(Arc::from(id)), Bytes::from(bytes))
}

fn seq(appended: &[Appended]) -> u64 {
    match appended {
        [Appended::Seq(seq)] => *seq,
        other => panic!("not one appended record: {other:?}"),
    }
}

#[tokio::test]
async fn a_done_task_id_is_a_duplicate_for_the_done_ttl_then_appended_again() {
    let dir = TempDir::new("dedup-ttl");
    let ttl = Duration::from_secs(60);
    let open = || {
        RedbJournal::builder()
            .done_time_to_live(ttl)
            .open(dir.file())
            .unwrap()
    };
    let journal = open();
    let first = seq(&journal.append(vec![task("task_ttl")]).await.unwrap());
    // Pending: a duplicate.
    let again = journal.append(vec![task("task_ttl")]).await.unwrap();
    assert_eq!(again, [Appended::Duplicate]);
    journal.complete(first).await.unwrap();
    // Done: a duplicate, also for the next process.
    assert_eq!(journal.done_id_count().await.unwrap(), 1);
    drop(journal);
    let journal = open();
    journal.advance_clock(ttl - Duration::from_secs(1));
    let again = journal.append(vec![task("task_ttl")]).await.unwrap();
    assert_eq!(again, [Appended::Duplicate]);

    // Past the TTL: appended again.
    journal.advance_clock(Duration::from_secs(2));
    let later = seq(&journal.append(vec![task("task_ttl")]).await.unwrap());
    assert!(later > first);
    assert_eq!(journal.pending().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_completion_does_not_shorten_the_dedup_stores_longer_ttl() {
    let dir = TempDir::new("dedup-ttl-max");
    let hour = Duration::from_secs(3600);
    let journal = RedbJournal::builder()
        .done_time_to_live(hour)
        .open(dir.file())
        .unwrap();
    let moka = MokaStore::builder().time_to_live(48 * hour).build();
    let store = RedbDedupStore::new(journal.clone(), moka);
    let key = DedupKey::from("task_long");
    let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
        panic!("a new key is acquired");
    };
    // The layer answered 202: the dedup store marks the id done for 48 h.
    let first = seq(&journal.append(vec![task("task_long")]).await.unwrap());
    store.complete(&key, &token).await.unwrap();
    // Processed: the journal would mark it done for 1 h.
    journal.complete(first).await.unwrap();
    journal.advance_clock(2 * hour);
    let again = journal.append(vec![task("task_long")]).await.unwrap();
    assert_eq!(again, [Appended::Duplicate]);
    let restarted = RedbDedupStore::new(journal.clone(), MokaStore::new());
    assert!(matches!(restarted.claim(&key).await.unwrap(), Claim::Done));
}

#[tokio::test]
async fn peek_reads_memory_then_the_file_and_changes_neither() {
    let dir = TempDir::new("dedup-peek");
    let journal = RedbJournal::open(dir.file()).unwrap();
    let store = RedbDedupStore::new(journal.clone(), MokaStore::new());
    let key = DedupKey::from("task_peek");
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::Unknown);
    let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
        panic!("a peeked key is still new");
    };
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::InFlight);
    store.complete(&key, &token).await.unwrap();
    assert_eq!(store.peek(&key).await.unwrap(), KeyState::Done);
    // After a restart only the file knows it.
    let restarted = RedbDedupStore::new(journal.clone(), MokaStore::new());
    assert_eq!(restarted.peek(&key).await.unwrap(), KeyState::Done);
    assert_eq!(
        restarted.peek(&DedupKey::from("task_other")).await.unwrap(),
        KeyState::Unknown
    );
    // Peeking taught moka nothing and claimed nothing.
    assert_eq!(
        restarted.moka().peek(&key).await.unwrap(),
        KeyState::Unknown
    );
    assert!(matches!(
        restarted
            .claim(&DedupKey::from("task_other"))
            .await
            .unwrap(),
        Claim::Acquired(_)
    ));
}

#[tokio::test]
async fn a_zero_done_ttl_remembers_only_pending_task_ids() {
    let dir = TempDir::new("dedup-ttl0");
    let journal = RedbJournal::builder()
        .done_time_to_live(Duration::ZERO)
        .open(dir.file())
        .unwrap();
    let first = seq(&journal.append(vec![task("task_0")]).await.unwrap());
    let again = journal.append(vec![task("task_0")]).await.unwrap();
    assert_eq!(again, [Appended::Duplicate]);
    journal.complete(first).await.unwrap();
    seq(&journal.append(vec![task("task_0")]).await.unwrap());
}

#[tokio::test]
async fn one_task_id_twice_in_one_batch_is_appended_once() {
    let dir = TempDir::new("dedup-batch");
    let journal = RedbJournal::open(dir.file()).unwrap();
    let untagged = || Record::new(None, Bytes::from_static(b"no task id"));
    let appended = journal
        .append(vec![
            task("task_a"),
            task("task_a"),
            untagged(),
            untagged(),
            task("task_b"),
            task("task_a"),
        ])
        .await
        .unwrap();
    assert_eq!(
        appended,
        [
            Appended::Seq(0),
            Appended::Duplicate,
            Appended::Seq(1),
            Appended::Seq(2),
            Appended::Seq(3),
            Appended::Duplicate,
        ]
    );
    let pending: Vec<_> = journal
        .pending()
        .await
        .unwrap()
        .iter()
        .map(|e| (e.seq(), e.task_id().map(str::to_owned)))
        .collect();
    assert_eq!(
        pending,
        [
            (0, Some("task_a".to_owned())),
            (1, None),
            (2, None),
            (3, Some("task_b".to_owned())),
        ]
    );
    // Concurrent appends of one id (each its own call, so one group
    // commit or several): exactly one is appended.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let journal = journal.clone();
            tokio::spawn(async move { journal.append(vec![task("task_c")]).await })
        })
        .collect();
    let mut appended = 0;
    for task in tasks {
        if let [Appended::Seq(_)] = task.await.unwrap().unwrap()[..] {
            appended += 1;
        }
    }
    assert_eq!(appended, 1);
}

#[tokio::test]
async fn withdraw_and_dead_letter_free_the_task_id() {
    let dir = TempDir::new("dedup-free");
    let journal = RedbJournal::open(dir.file()).unwrap();

    // Withdrawn (appended, not queued; the layer answered 503): the
    // provider's retry is appended, not a duplicate of an event that never
    // ran. Nor is the id remembered as done.
    let withdrawn = seq(&journal.append(vec![task("task_w")]).await.unwrap());
    journal.withdraw(withdrawn).await.unwrap();
    let retried = seq(&journal.append(vec![task("task_w")]).await.unwrap());
    assert!(retried > withdrawn);
    assert_eq!(journal.done_id_count().await.unwrap(), 0);

    // Dead-lettered: the next push (or a replay) is appended.
    let dead = seq(&journal.append(vec![task("task_d")]).await.unwrap());
    let entry = journal
        .pending()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.seq() == dead)
        .unwrap();
    let letter = DeadLetter::new(
        entry,
        Failure::status(StatusCode::BAD_GATEWAY, ""),
        3,
        SystemTime::now(),
    )
    .unwrap();
    journal.dead_letter(&letter).await.unwrap();
    let pushed = seq(&journal.append(vec![task("task_d")]).await.unwrap());
    assert!(pushed > dead);

    // Withdrawing or dead-lettering an entry that does not hold the id (it
    // is held by a later one) leaves it held.
    journal.withdraw(dead).await.unwrap();
    let again = journal.append(vec![task("task_d")]).await.unwrap();
    assert_eq!(again, [Appended::Duplicate]);

    // A completion marks it done, a withdrawal of that seq afterwards does
    // not forget it.
    journal.complete(pushed).await.unwrap();
    journal.withdraw(pushed).await.unwrap();
    let again = journal.append(vec![task("task_d")]).await.unwrap();
    assert_eq!(again, [Appended::Duplicate]);
}

/// The handler fails the first call for each task id (one attempt: it is
/// dead-lettered) and answers `200` afterwards.
fn fails_first(calls: &Calls) -> super::Handler {
    handler({
        let calls = Arc::clone(calls);
        move |req| {
            let id = task_id(&req);
            let mut calls = calls.lock().unwrap();
            let first = !calls.contains(&id);
            calls.push(id);
            async move {
                if first {
                    status(StatusCode::BAD_GATEWAY)
                } else {
                    status(StatusCode::OK)
                }
            }
        }
    })
}

#[test]
fn a_dead_lettered_task_runs_again_when_pushed_or_replayed() {
    let dir = TempDir::new("dedup-dead");
    let calls = Calls::default();
    life(|| async {
        let journal = RedbJournal::open(dir.file()).unwrap();
        let (layer, handle) = FastAckLayer::builder()
            .journal(journal.clone())
            .retry(RetryPolicy::new().attempts(1))
            .build();
        let service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(layer)
            .service(fails_first(&calls));
        handle.started().await;
        assert_eq!(send(&service, "task_p").await.status, StatusCode::ACCEPTED);
        until("dead-lettered", || handle.stats().dead_lettered == 1).await;
        // The provider's next push is a new event, not a duplicate.
        let pushed = send(&service, "task_p").await;
        assert_eq!(pushed.status, StatusCode::ACCEPTED);
        assert_eq!(pushed.duplicate, None);
        until("processed", || handle.stats().processed == 1).await;
        // Then it is done.
        let again = send(&service, "task_p").await;
        assert_eq!(again.duplicate.as_deref(), Some("journaled"));
    });
    assert_eq!(calls_of(&calls), ["task_p", "task_p"]);
}

#[test]
fn a_dead_letter_behind_the_redb_dedup_store_can_be_replayed() {
    let dir = TempDir::new("dedup-replay");
    let calls = Calls::default();
    life(|| async {
        let journal = RedbJournal::open(dir.file()).unwrap();
        let (layer, handle) = FastAckLayer::builder()
            .journal(journal.clone())
            .retry(RetryPolicy::new().attempts(1))
            .build();
        // The dedup store marks the id done in the journal's file when the
        // layer answers 202, before the handler ran.
        let store = RedbDedupStore::new(journal.clone(), MokaStore::new());
        let service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(DedupLayer::with_store(store))
            .layer(layer)
            .service(fails_first(&calls));
        handle.started().await;
        assert_eq!(send(&service, "task_r").await.status, StatusCode::ACCEPTED);
        until("dead-lettered", || handle.stats().dead_lettered == 1).await;
        let letter = handle.dead_letters()[0].seq();
        let replayed = handle.replay(letter).await.unwrap();
        assert!(replayed > letter);
        until("processed", || handle.stats().processed == 1).await;
        assert!(journal.dead_letters().await.unwrap().is_empty());
        let again = send(&service, "task_r").await;
        assert_eq!(again.status, StatusCode::OK);
        assert!(again.duplicate.is_some(), "{:?}", again.json);
    });
    assert_eq!(calls_of(&calls), ["task_r", "task_r"]);
}

#[tokio::test]
async fn without_dedup_by_task_id_every_record_is_appended_and_turning_it_on_indexes_the_file() {
    let dir = TempDir::new("dedup-off");
    let journal = RedbJournal::builder()
        .dedup_by_task_id(false)
        .open(dir.file())
        .unwrap();
    let appended = journal
        .append(vec![task("task_1"), task("task_1"), task("task_2")])
        .await
        .unwrap();
    assert_eq!(
        appended,
        [Appended::Seq(0), Appended::Seq(1), Appended::Seq(2)]
    );
    journal.complete(2).await.unwrap();
    let appended = journal.append(vec![task("task_2")]).await.unwrap();
    assert_eq!(appended, [Appended::Seq(3)]);
    assert_eq!(journal.done_id_count().await.unwrap(), 0);
    drop(journal);

    // Opened with deduplication on, the journal indexes the task ids of
    // the pending entries, whatever wrote them.
    let journal = RedbJournal::open(dir.file()).unwrap();
    let appended = journal
        .append(vec![task("task_1"), task("task_2"), task("task_3")])
        .await
        .unwrap();
    assert_eq!(
        appended,
        [Appended::Duplicate, Appended::Duplicate, Appended::Seq(4)]
    );
    // `task_1` is held by its first entry; completing it marks it done.
    journal.complete(0).await.unwrap();
    journal.complete(1).await.unwrap();
    let appended = journal.append(vec![task("task_1")]).await.unwrap();
    assert_eq!(appended, [Appended::Duplicate]);
}
