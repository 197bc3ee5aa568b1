//! The redb journal: replay in order across a restart, group commit, a
//! bounded file, dead letters and done ids that outlive the process, a
//! failed write answered 503 and never trusted again, a damaged file
//! reported rather than silently shortened.
//!
//! A "life" is a tokio runtime of its own: dropping it kills every task of
//! the layer, as a process exit would, and releases the journal file.

use taskhook_test_support as common;
mod dedup;
mod recovery;

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use taskhook::backend::{
    redb::{RedbDedupStore, RedbJournal},
    MokaStore,
};
use taskhook::body::BufferedBody;
use taskhook::dedup::{Claim, DedupKey, DedupStore};
use taskhook::fast_ack::journal::{Appended, Journal, JournalError, Record};
use taskhook::fast_ack::{Failure, FastAckLayer, RetryPolicy};
use taskhook::{DedupLayer, PayloadLayer, TaskEvent};
use tower::{service_fn, BoxError, Service, ServiceBuilder};

use common::{send, until};

type Handler = tower::util::BoxCloneService<Request<BufferedBody>, Response<String>, BoxError>;

/// A directory of its own for one test, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "journal-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("journal.redb")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` in a runtime of its own and drops the runtime: every task the
/// layer spawned dies, as with a process exit.
fn life<F: Future>(f: impl FnOnce() -> F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = runtime.block_on(f());
    drop(runtime);
    out
}

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<BufferedBody>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<String>, BoxError>> + Send + 'static,
{
    tower::util::BoxCloneService::new(service_fn(f))
}

fn status(code: StatusCode) -> Result<Response<String>, BoxError> {
    let mut response = Response::new(String::new());
    *response.status_mut() = code;
    Ok(response)
}

fn task_id(req: &Request<BufferedBody>) -> String {
    req.extensions()
        .get::<TaskEvent>()
        .expect("TaskEvent in the extensions")
        .id()
        .to_owned()
}

fn record(i: usize) -> Record {
    Record::new(
        Some(Arc::from(format!("task_{i}"))),
        Bytes::from(format!("body of event {i}").repeat(8)),
    )
}

#[test]
fn pending_entries_are_replayed_in_order_across_a_restart_before_new_intake() {
    let dir = TempDir::new("replay");
    let path = dir.file();

    // A first process accepts five events, never finishes them, and dies.
    let first_seqs = life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        let (layer, handle) = FastAckLayer::builder()
            .journal(journal)
            .concurrency(1)
            .build();
        let service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(layer)
            .service(handler(|_| std::future::pending()));
        handle.started().await;
        let mut seqs = Vec::new();
        for i in 1..=5 {
            let answer = send(&service, &format!("task_{i}")).await;
            assert_eq!(answer.status, StatusCode::ACCEPTED);
            seqs.push(answer.json["seq"].as_u64().unwrap());
        }
        seqs
    });
    assert_eq!(first_seqs, [0, 1, 2, 3, 4]);

    // The next process runs them, in order, before anything new.
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        let pending = journal.pending().await.unwrap();
        let ids: Vec<_> = pending.iter().map(|e| e.task_id().unwrap()).collect();
        assert_eq!(ids, ["task_1", "task_2", "task_3", "task_4", "task_5"]);

        let seen = Arc::new(Mutex::new(Vec::new()));
        let (layer, handle) = FastAckLayer::builder()
            .journal(journal.clone())
            .concurrency(1)
            .build();
        let service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(layer)
            .service(handler({
                let seen = Arc::clone(&seen);
                move |req| {
                    seen.lock().unwrap().push(task_id(&req));
                    async { status(StatusCode::OK) }
                }
            }));
        // The start-up replay has not run yet (one thread, no await so far).
        let early = send(&service, "task_early").await;
        assert_eq!(early.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(early.json["error"]["code"], "starting");

        handle.started().await;
        let answer = send(&service, "task_6").await;
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        // Sequence numbers keep increasing across the restart.
        assert_eq!(answer.json["seq"], 5);
        until("all processed", || handle.stats().processed == 6).await;
        assert_eq!(
            *seen.lock().unwrap(),
            ["task_1", "task_2", "task_3", "task_4", "task_5", "task_6"]
        );
        assert_eq!(handle.stats().recovered, 5);
        // Each completion returned before `processed` moved; one sync
        // makes them durable.
        assert_eq!(journal.stats().writes, 7);
        journal.sync().await.unwrap();
        assert!(journal.pending().await.unwrap().is_empty());
    });

    // Completions were made durable: nothing is replayed a second time.
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        assert!(journal.pending().await.unwrap().is_empty());
        let appended = journal.append(vec![record(7)]).await.unwrap();
        assert_eq!(appended, [Appended::Seq(6)]);
    });
}

#[test]
fn concurrent_appends_share_one_commit_and_one_sync() {
    let dir = TempDir::new("group");
    life(|| async {
        let journal = RedbJournal::open(dir.file()).unwrap();
        let faults = journal.fault_injection();

        // The first append's commit waits in its sync ...
        faults.hold_syncs(true);
        let first = tokio::spawn({
            let journal = journal.clone();
            async move { journal.append(vec![record(0)]).await }
        });
        until("the first commit syncs", || faults.syncs_held() == 1).await;

        // ... while 99 more requests arrive; they all queue behind it.
        let rest: Vec<_> = (1..100)
            .map(|i| {
                let journal = journal.clone();
                tokio::spawn(async move { journal.append(vec![record(i)]).await })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        faults.hold_syncs(false);

        assert_eq!(first.await.unwrap().unwrap(), [Appended::Seq(0)]);
        let mut seqs = Vec::new();
        for task in rest {
            match task.await.unwrap().unwrap()[..] {
                [Appended::Seq(seq)] => seqs.push(seq),
                ref other => panic!("{other:?}"),
            }
        }
        // In order of arrival.
        assert_eq!(seqs, (1..100).collect::<Vec<u64>>());
        let stats = journal.stats();
        assert_eq!(stats.appended, 100);
        assert_eq!(stats.durable_commits, 2, "{stats:?}");
        assert_eq!(stats.largest_batch, 99);
    });
}

#[test]
fn a_batch_of_one_syncs_every_append() {
    let dir = TempDir::new("batch1");
    life(|| async {
        let journal = RedbJournal::builder()
            .max_batch(1)
            .open(dir.file())
            .unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let journal = journal.clone();
                tokio::spawn(async move { journal.append(vec![record(i)]).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let stats = journal.stats();
        assert_eq!((stats.appended, stats.durable_commits), (20, 20));
    });
}

#[test]
fn processed_entries_are_deleted_and_the_file_stays_bounded() {
    let dir = TempDir::new("compaction");
    life(|| async {
        let journal = RedbJournal::open(dir.file()).unwrap();
        let mut sizes = Vec::new();
        for round in 0..20 {
            // 100 events of 4 KiB accepted together, then processed.
            let tasks: Vec<_> = (0..100)
                .map(|i| {
                    let journal = journal.clone();
                    tokio::spawn(async move {
                        let record = Record::new(
                            Some(Arc::from(format!("task_{round}_{i}"))),
                            Bytes::from(vec![b'x'; 4096]),
                        );
                        journal.append(vec![record]).await
                    })
                })
                .collect();
            let mut seqs = Vec::new();
            for task in tasks {
                if let [Appended::Seq(seq)] = task.await.unwrap().unwrap()[..] {
                    seqs.push(seq);
                }
            }
            let completions: Vec<_> = seqs
                .into_iter()
                .map(|seq| {
                    let journal = journal.clone();
                    tokio::spawn(async move { journal.complete(seq).await })
                })
                .collect();
            for completion in completions {
                completion.await.unwrap().unwrap();
            }
            journal.sync().await.unwrap();
            sizes.push(journal.file_size().unwrap());
        }
        assert!(journal.pending().await.unwrap().is_empty());
        assert_eq!(journal.stats().appended, 2000);
        // 8 MiB went through. A file that kept it would be over 8 MiB; this
        // one levels off (its exact size depends on how commits batched).
        eprintln!("file sizes by round: {sizes:?}");
        let first_half = sizes[..10].iter().copied().max().unwrap();
        let last = sizes[19];
        assert!(last <= 4 * 1024 * 1024, "{sizes:?}");
        assert!(last <= first_half + 1024 * 1024, "still growing: {sizes:?}");
    });
}

#[test]
fn dead_letters_survive_a_restart_and_can_be_replayed() {
    let dir = TempDir::new("dead");
    let path = dir.file();
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        let (layer, handle) = FastAckLayer::builder()
            .journal(journal.clone())
            .retry(RetryPolicy::new().attempts(1))
            .build();
        let service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(layer)
            .service(handler(|_| async { status(StatusCode::BAD_GATEWAY) }));
        handle.started().await;
        assert_eq!(
            send(&service, "task_dead").await.status,
            StatusCode::ACCEPTED
        );
        until("dead-lettered", || handle.stats().dead_lettered == 1).await;
        // The dead letter's commit returned before the count moved.
        assert_eq!(journal.dead_letters().await.unwrap().len(), 1);
    });

    let processed = Arc::new(AtomicU32::new(0));
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        assert!(journal.pending().await.unwrap().is_empty());
        let letters = journal.dead_letters().await.unwrap();
        assert_eq!(letters.len(), 1);
        let letter = &letters[0];
        assert_eq!(letter.task_id(), Some("task_dead"));
        assert_eq!(
            letter.failure(),
            &Failure::status(StatusCode::BAD_GATEWAY, "")
        );
        assert_eq!(letter.attempts(), 1);
        assert_eq!(letter.uri(), "/callback");
        assert!(letter.body().starts_with(b"{\"code\":200"));

        let (layer, handle) = FastAckLayer::builder().journal(journal.clone()).build();
        let _service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(layer)
            .service(handler({
                let processed = Arc::clone(&processed);
                move |req| {
                    assert_eq!(task_id(&req), "task_dead");
                    processed.fetch_add(1, Ordering::SeqCst);
                    async { status(StatusCode::OK) }
                }
            }));
        handle.started().await;
        let kept = handle.dead_letters();
        assert_eq!(kept.len(), 1);
        handle.replay(kept[0].seq()).await.unwrap();
        until("replayed", || handle.stats().processed == 1).await;
    });
    assert_eq!(processed.load(Ordering::SeqCst), 1);

    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        assert!(journal.dead_letters().await.unwrap().is_empty());
    });
}

/// payload -> dedup (moka over the journal's done ids) -> fast-ack -> handler.
fn durable_stack(
    journal: &RedbJournal,
    processed: &Arc<Mutex<Vec<String>>>,
) -> (
    impl Service<
            Request<Full<Bytes>>,
            Response = Response<impl http_body::Body<Data = Bytes, Error = impl std::fmt::Debug>>,
            Error = Infallible,
        > + Clone,
    taskhook::FastAckHandle,
) {
    let (layer, handle) = FastAckLayer::builder().journal(journal.clone()).build();
    let store = RedbDedupStore::new(journal.clone(), MokaStore::new());
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(DedupLayer::with_store(store))
        .layer(layer)
        .service(handler({
            let processed = Arc::clone(processed);
            move |req| {
                processed.lock().unwrap().push(task_id(&req));
                async { status(StatusCode::OK) }
            }
        }));
    (service, handle)
}

#[test]
fn a_duplicate_pushed_after_a_restart_is_absorbed() {
    let dir = TempDir::new("dedup");
    let path = dir.file();
    let processed = Arc::new(Mutex::new(Vec::new()));
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        let (service, handle) = durable_stack(&journal, &processed);
        handle.started().await;
        assert_eq!(send(&service, "task_1").await.status, StatusCode::ACCEPTED);
        // Answered from moka while the process lives.
        let again = send(&service, "task_1").await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.duplicate.as_deref(), Some("done"));
        until("processed", || handle.stats().processed == 1).await;
    });

    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        assert_eq!(journal.done_id_count().await.unwrap(), 1);
        let (service, handle) = durable_stack(&journal, &processed);
        handle.started().await;
        // A fresh moka knows nothing: the answer comes from the file.
        let duplicate = send(&service, "task_1").await;
        assert_eq!(duplicate.status, StatusCode::OK);
        assert_eq!(duplicate.duplicate.as_deref(), Some("done"));
        assert_eq!(duplicate.json["status"], "duplicate");
        assert_eq!(send(&service, "task_2").await.status, StatusCode::ACCEPTED);
        until("processed", || handle.stats().processed == 1).await;
        assert_eq!(handle.stats().accepted, 1);
    });
    assert_eq!(*processed.lock().unwrap(), ["task_1", "task_2"]);
}

#[tokio::test]
async fn done_ids_expire_with_the_ttl_and_are_purged() {
    let dir = TempDir::new("ttl");
    let journal = RedbJournal::open(dir.file()).unwrap();
    let ttl = Duration::from_secs(3600);
    let fresh_moka = || MokaStore::builder().time_to_live(ttl).build();
    let store = RedbDedupStore::new(journal.clone(), fresh_moka());
    let key = DedupKey::from("task_ttl");
    let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
        panic!("a new key is acquired");
    };
    store.complete(&key, &token).await.unwrap();
    assert_eq!(journal.done_id_count().await.unwrap(), 1);

    // The journal's clock is moved, not waited for (moka's own TTL runs
    // on tokio time; each restart below gets a fresh moka).
    // Within the TTL, another process: done.
    journal.advance_clock(ttl / 2);
    let restarted = RedbDedupStore::new(journal.clone(), fresh_moka());
    assert!(matches!(restarted.claim(&key).await.unwrap(), Claim::Done));

    // Past the TTL: new again, and purged from the file by the next commit.
    journal.advance_clock(ttl);
    let later = RedbDedupStore::new(journal.clone(), fresh_moka());
    let Claim::Acquired(token) = later.claim(&key).await.unwrap() else {
        panic!("an expired key is acquired again");
    };
    later.release(&key, &token).await.unwrap();
    assert_eq!(journal.stats().purged, 0);
    journal.sync().await.unwrap();
    assert_eq!(journal.done_id_count().await.unwrap(), 0);
    assert_eq!(journal.stats().purged, 1);
}

#[test]
fn a_failed_sync_is_503_through_the_layer_and_poisons_the_journal_until_reopened() {
    let dir = TempDir::new("fault");
    let path = dir.file();
    let calls = Arc::new(AtomicU32::new(0));
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        let faults = journal.fault_injection();
        let (layer, handle) = FastAckLayer::builder().journal(journal.clone()).build();
        let service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(layer)
            .service(handler({
                let calls = Arc::clone(&calls);
                move |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { status(StatusCode::OK) }
                }
            }));
        handle.started().await;
        assert_eq!(send(&service, "task_ok").await.status, StatusCode::ACCEPTED);
        until("processed", || handle.stats().processed == 1).await;

        // The disk fails: 503, never 2xx.
        faults.fail_syncs(true);
        let failed = send(&service, "task_lost").await;
        assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(failed.json["error"]["code"], "journal_unavailable");
        assert!(journal.stats().poisoned);

        // The disk is back, but the journal cannot vouch for the file:
        // still 503 until it is reopened.
        faults.fail_syncs(false);
        let still = send(&service, "task_later").await;
        assert_eq!(still.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(matches!(
            journal.append(vec![record(1)]).await,
            Err(JournalError::Failed)
        ));
        assert_eq!(handle.stats().accepted, 1);
        assert_eq!(journal.stats().failed_commits, 1);
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Reopened, it works again and kept what it acknowledged.
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        assert!(!journal.stats().poisoned);
        let appended = journal.append(vec![record(2)]).await.unwrap();
        assert!(matches!(appended[..], [Appended::Seq(_)]));
    });
}

#[test]
fn a_failed_write_is_an_io_error_then_failed() {
    let dir = TempDir::new("write-fault");
    life(|| async {
        let journal = RedbJournal::open(dir.file()).unwrap();
        journal.append(vec![record(0)]).await.unwrap();
        journal.fault_injection().fail_writes(true);
        let big = Record::new(None, Bytes::from(vec![0u8; 4 << 20]));
        match journal.append(vec![big]).await {
            Err(JournalError::Io(error)) => assert!(error.to_string().contains("injected")),
            other => panic!("{other:?}"),
        }
        journal.fault_injection().fail_writes(false);
        assert!(matches!(
            journal.complete(0).await,
            Err(JournalError::Failed)
        ));
        assert!(journal.stats().poisoned);
    });
    life(|| async {
        let journal = RedbJournal::open(dir.file()).unwrap();
        let pending = journal.pending().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].record(), &record(0));
    });
}

/// Writes a journal with `n` pending entries and returns them.
fn journal_with_entries(path: &Path, n: usize) -> Vec<Record> {
    life(|| async {
        let journal = RedbJournal::open(path).unwrap();
        let records: Vec<_> = (0..n).map(record).collect();
        for chunk in records.chunks(10) {
            journal.append(chunk.to_vec()).await.unwrap();
        }
        records
    })
}

/// Opens a damaged copy: an error, or every entry intact. Never fewer.
fn open_damaged(path: &Path, expected: &[Record]) -> Result<(), JournalError> {
    let journal = RedbJournal::open(path)?;
    let pending = life(|| async { journal.pending().await })?;
    let records: Vec<_> = pending.iter().map(|e| e.record().clone()).collect();
    assert_eq!(
        records, expected,
        "a damaged journal opened with other entries"
    );
    Ok(())
}

#[test]
fn a_truncated_journal_is_an_error_not_a_shorter_journal() {
    let dir = TempDir::new("torn");
    let path = dir.file();
    let expected = journal_with_entries(&path, 100);
    let original = std::fs::read(&path).unwrap();
    let copy = dir.0.join("copy.redb");
    let mut errors = 0;
    let lengths = [
        0,
        1,
        100,
        512,
        4096,
        original.len() / 3,
        original.len() / 2,
        original.len() - 4096,
        original.len() - 1,
    ];
    for len in lengths {
        std::fs::write(&copy, &original[..len]).unwrap();
        match open_damaged(&copy, &expected) {
            Ok(()) => {}
            Err(error) => {
                errors += 1;
                assert!(
                    matches!(error, JournalError::Corrupt { .. } | JournalError::Io(_)),
                    "{len}: {error:?}"
                );
                eprintln!("truncated to {len}: {error}");
            }
        }
    }
    assert!(errors > 0, "no truncation was detected");
    // The original still opens with every entry.
    std::fs::write(&copy, &original).unwrap();
    open_damaged(&copy, &expected).unwrap();
}

#[test]
fn flipped_bytes_are_an_error_never_a_silent_loss() {
    let dir = TempDir::new("flip");
    let path = dir.file();
    let expected = journal_with_entries(&path, 100);
    let original = std::fs::read(&path).unwrap();
    let copy = dir.0.join("copy.redb");
    let mut detected = 0;
    let mut offsets: Vec<usize> = (0..original.len()).step_by(4999).collect();
    offsets.extend([0, 1, 8, 64, 512, 4096 + 16, original.len() - 1]);
    for offset in offsets {
        let mut damaged = original.clone();
        damaged[offset] ^= 0x5a;
        std::fs::write(&copy, &damaged).unwrap();
        if let Err(error) = open_damaged(&copy, &expected) {
            eprintln!("flip at {offset}: {error}");
            detected += 1;
            assert!(
                matches!(error, JournalError::Corrupt { .. } | JournalError::Io(_)),
                "{offset}: {error:?}"
            );
        }
    }
    assert!(detected > 0, "no flipped byte was detected");
}

#[test]
fn a_journal_file_is_opened_by_one_process_at_a_time() {
    let dir = TempDir::new("lock");
    let journal = RedbJournal::open(dir.file()).unwrap();
    let second = RedbJournal::open(dir.file()).unwrap_err();
    assert!(second.to_string().contains("already open"), "{second}");
    drop(journal);
    RedbJournal::open(dir.file()).unwrap();
}

#[test]
fn pending_lists_only_what_is_neither_done_nor_dead() {
    let dir = TempDir::new("pending");
    life(|| async {
        let journal = RedbJournal::open(dir.file()).unwrap();
        let appended = journal.append((0..5).map(record).collect()).await.unwrap();
        assert_eq!(appended, (0..5).map(Appended::Seq).collect::<Vec<_>>());
        journal.complete(1).await.unwrap();
        journal.complete(3).await.unwrap();
        journal.complete(42).await.unwrap();
        journal.remove_dead_letter(42).await.unwrap();
        let seqs: HashSet<u64> = journal
            .pending()
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq())
            .collect();
        assert_eq!(seqs, HashSet::from([0, 2, 4]));
    });
}

#[tokio::test]
async fn forget_removes_a_done_id_from_memory_and_from_the_file() {
    let dir = TempDir::new("forget");
    let journal = RedbJournal::open(dir.file()).unwrap();
    let store = RedbDedupStore::new(journal.clone(), MokaStore::new());
    let key = DedupKey::from("task_forget");
    let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
        panic!("a new key is acquired");
    };
    store.complete(&key, &token).await.unwrap();
    assert!(matches!(store.claim(&key).await.unwrap(), Claim::Done));

    store.forget(&key).await.unwrap();
    assert_eq!(journal.done_id_count().await.unwrap(), 0);
    // Neither this process nor the next one (a fresh moka) has it.
    let restarted = RedbDedupStore::new(journal.clone(), MokaStore::new());
    for store in [&store, &restarted] {
        let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
            panic!("a forgotten key is acquired again");
        };
        store.release(&key, &token).await.unwrap();
    }
}
