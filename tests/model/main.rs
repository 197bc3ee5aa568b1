//! Model-based property tests: random sequences of operations against a
//! simple model of the semantics, for the in-process dedup stores and the
//! journal.
//!
//! - Dedup ([`CompactStore`], the default, and [`MokaStore`]): claims,
//!   completions, failures (release), forget, waits, timeouts (paused tokio
//!   time advanced past the claim timeout or the TTL) and restarts (a new store:
//!   an in-process store forgets everything) against a model where each key
//!   is unknown, in flight with an owner until a deadline, or done until a
//!   deadline.
//! - Journal ([`MemoryJournal`], and `RedbJournal` reopened from its file at
//!   each restart): appends, completions, dead letters and
//!   their removal, and restarts (the journal is opened again; clones of a
//!   `MemoryJournal` survive a restart of the layer) against a model where
//!   pending is "appended minus completed minus dead-lettered, in sequence
//!   order". [`check_journal`] takes a function that opens the journal, so
//!   another journal plugs in with one line (see the end of this file).
//!   For a journal that deduplicates by task id (redb by default), the
//!   model also holds each task id while its first entry is pending and
//!   remembers it once completed: an append of either is a duplicate, a
//!   withdrawal or dead letter of the holder frees it.
//!
//! Each property runs 64 cases (16 for redb) of up to 40 operations, to
//! stay fast in CI.
//! To run more: `PROPTEST_CASES=10000 cargo test --release --test model`.
//! A failure prints the shrunk sequence of operations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use proptest::prelude::*;
use taskhook::dedup::{Claim, DedupKey, DedupStore};
use taskhook::fast_ack::journal::{Appended, Entry, Journal, MemoryJournal, Record};
use taskhook::fast_ack::{DeadLetter, Failure};
use taskhook::{backend::CompactStore, backend::MokaStore};

/// 64 cases unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

/// Runs `future` on a current-thread runtime whose clock is paused: time
/// moves only by `tokio::time::advance`.
fn paused<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(future)
}

// ---------------------------------------------------------------------------
// Dedup

const KEYS: usize = 4;
const CLAIM_TIMEOUT: u64 = 10;
const TTL: u64 = 60;

#[derive(Debug, Clone)]
enum DedupOp {
    /// Claims key `n`.
    Claim(usize),
    /// Completes the held claim `n` (modulo the number held).
    Complete(usize),
    /// Releases the held claim `n` (the handler failed).
    Release(usize),
    /// Forgets key `n`.
    Forget(usize),
    /// Waits on key `n` (a duplicate of an in-flight task waits): with no
    /// one to settle the claim, until it expires.
    Wait(usize),
    /// Advances the clock by whole seconds.
    Advance(u64),
    /// A new store (the process restarted): everything is forgotten and the
    /// claims held die with the process.
    Restart,
}

fn dedup_op() -> impl Strategy<Value = DedupOp> {
    let key = 0..KEYS;
    prop_oneof![
        4 => key.clone().prop_map(DedupOp::Claim),
        2 => any::<usize>().prop_map(DedupOp::Complete),
        2 => any::<usize>().prop_map(DedupOp::Release),
        1 => key.clone().prop_map(DedupOp::Forget),
        1 => key.prop_map(DedupOp::Wait),
        // Around the claim timeout and the TTL, on both sides.
        2 => prop::sample::select(vec![
            1,
            CLAIM_TIMEOUT - 1,
            CLAIM_TIMEOUT,
            CLAIM_TIMEOUT + 1,
            TTL - CLAIM_TIMEOUT,
            TTL - 1,
            TTL,
        ])
        .prop_map(DedupOp::Advance),
        1 => Just(DedupOp::Restart),
    ]
}

/// A key's state in the model; deadlines in whole seconds of model time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Unknown,
    InFlight { claim: u64, until: u64 },
    Done { until: u64 },
}

#[derive(Debug)]
struct DedupModel {
    now: u64,
    keys: [State; KEYS],
    next_claim: u64,
}

impl DedupModel {
    fn new() -> Self {
        Self {
            now: 0,
            keys: [State::Unknown; KEYS],
            next_claim: 0,
        }
    }

    /// The state of `key` now: a state past its deadline is unknown.
    fn state(&self, key: usize) -> State {
        match self.keys[key] {
            State::InFlight { until, .. } | State::Done { until } if self.now >= until => {
                State::Unknown
            }
            state => state,
        }
    }

    /// What a claim answers; `Some(claim)` when acquired.
    fn claim(&mut self, key: usize) -> (Claim<()>, Option<u64>) {
        match self.state(key) {
            State::Unknown => {
                let claim = self.next_claim;
                self.next_claim += 1;
                self.keys[key] = State::InFlight {
                    claim,
                    until: self.now + CLAIM_TIMEOUT,
                };
                (Claim::Acquired(()), Some(claim))
            }
            State::InFlight { .. } => (Claim::InFlight, None),
            State::Done { .. } => (Claim::Done, None),
        }
    }

    /// Done for the TTL, unless another owner holds a live claim.
    fn complete(&mut self, key: usize, claim: u64) {
        match self.state(key) {
            State::InFlight { claim: other, .. } if other != claim => {}
            _ => {
                self.keys[key] = State::Done {
                    until: self.now + TTL,
                }
            }
        }
    }

    /// Unknown again if the claim is still the current one.
    fn release(&mut self, key: usize, claim: u64) {
        if let State::InFlight { claim: current, .. } = self.keys[key] {
            if current == claim {
                self.keys[key] = State::Unknown;
            }
        }
    }

    /// Unknown again if done; a key in flight is left alone.
    fn forget(&mut self, key: usize) {
        if let State::Done { .. } = self.state(key) {
            self.keys[key] = State::Unknown;
        }
    }
}

fn same_answer<T>(actual: &Claim<T>, expected: &Claim<()>) -> bool {
    matches!(
        (actual, expected),
        (Claim::Acquired(_), Claim::Acquired(()))
            | (Claim::InFlight, Claim::InFlight)
            | (Claim::Done, Claim::Done)
    )
}

/// Runs `ops` against the stores `new_store` makes and against the model;
/// fails on the first answer that differs.
async fn check_dedup<S, F>(ops: &[DedupOp], new_store: F) -> Result<(), TestCaseError>
where
    S: DedupStore,
    F: Fn() -> S,
{
    let keys: Vec<DedupKey> = (0..KEYS)
        .map(|i| DedupKey::new(format!("task_{i}")))
        .collect();
    let mut store = new_store();
    let mut model = DedupModel::new();
    let start = tokio::time::Instant::now();
    // The claims held: key, the model's claim number, the store's token.
    let mut held: Vec<(usize, u64, S::Token)> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            DedupOp::Claim(key) => {
                let actual = store.claim(&keys[key]).await.unwrap();
                let (expected, claim) = model.claim(key);
                prop_assert!(
                    same_answer(&actual, &expected),
                    "step {step}: claim of key {key} answered {:?}, the model says {expected:?} \
                     (model: {model:?})",
                    claim_name(&actual)
                );
                if let (Claim::Acquired(token), Some(claim)) = (actual, claim) {
                    held.push((key, claim, token));
                }
            }
            DedupOp::Complete(n) | DedupOp::Release(n) if !held.is_empty() => {
                let (key, claim, token) = held.remove(n % held.len());
                if let DedupOp::Complete(_) = op {
                    store.complete(&keys[key], &token).await.unwrap();
                    model.complete(key, claim);
                } else {
                    store.release(&keys[key], &token).await.unwrap();
                    model.release(key, claim);
                }
            }
            DedupOp::Complete(_) | DedupOp::Release(_) => {}
            DedupOp::Forget(key) => {
                store.forget(&keys[key]).await.unwrap();
                model.forget(key);
            }
            DedupOp::Wait(key) => {
                // The paused clock jumps to the next timer while the
                // runtime is idle: to the claim's expiry.
                let until = match model.state(key) {
                    State::InFlight { until, .. } => until,
                    _ => model.now,
                };
                let bound = Duration::from_secs(CLAIM_TIMEOUT + 1);
                let waited = tokio::time::timeout(bound, store.wait(&keys[key])).await;
                prop_assert!(
                    waited.is_ok(),
                    "step {}: wait on key {} never ended",
                    step,
                    key
                );
                model.now = until;
                prop_assert_eq!(
                    start.elapsed(),
                    Duration::from_secs(until),
                    "step {}: wait on key {} ended at the wrong time",
                    step,
                    key
                );
            }
            DedupOp::Advance(secs) => {
                tokio::time::advance(Duration::from_secs(secs)).await;
                model.now += secs;
            }
            DedupOp::Restart => {
                held.clear();
                store = new_store();
                model.keys = [State::Unknown; KEYS];
            }
        }
    }
    Ok(())
}

fn claim_name<T>(claim: &Claim<T>) -> &'static str {
    match claim {
        Claim::Acquired(_) => "Acquired",
        Claim::InFlight => "InFlight",
        Claim::Done => "Done",
    }
}

fn compact_store() -> CompactStore {
    CompactStore::builder()
        .claim_timeout(Duration::from_secs(CLAIM_TIMEOUT))
        .time_to_live(Duration::from_secs(TTL))
        .build()
}

fn moka_store() -> MokaStore {
    MokaStore::builder()
        .claim_timeout(Duration::from_secs(CLAIM_TIMEOUT))
        .time_to_live(Duration::from_secs(TTL))
        .build()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn compact_store_follows_the_dedup_model(ops in prop::collection::vec(dedup_op(), 1..40)) {
        paused(check_dedup(&ops, compact_store))?;
    }

    #[test]
    fn moka_store_follows_the_dedup_model(ops in prop::collection::vec(dedup_op(), 1..40)) {
        paused(check_dedup(&ops, moka_store))?;
    }
}

// ---------------------------------------------------------------------------
// Journal

#[derive(Debug, Clone)]
enum JournalOp {
    /// Appends one record per task id (`None`: no id), in one batch.
    Append(Vec<Option<u8>>),
    /// Completes pending entry `n` (modulo the number pending).
    Complete(usize),
    /// Completes a sequence number never appended (not an error).
    CompleteUnknown,
    /// Dead-letters pending entry `n`.
    DeadLetter(usize),
    /// Withdraws pending entry `n` (appended, never queued).
    Withdraw(usize),
    /// Removes dead letter `n`.
    RemoveDeadLetter(usize),
    /// Drops the journal and opens it again.
    Restart,
}

fn journal_op() -> impl Strategy<Value = JournalOp> {
    prop_oneof![
        4 => prop::collection::vec(prop::option::of(0u8..6), 1..4).prop_map(JournalOp::Append),
        3 => any::<usize>().prop_map(JournalOp::Complete),
        1 => Just(JournalOp::CompleteUnknown),
        2 => any::<usize>().prop_map(JournalOp::DeadLetter),
        1 => any::<usize>().prop_map(JournalOp::Withdraw),
        1 => any::<usize>().prop_map(JournalOp::RemoveDeadLetter),
        1 => Just(JournalOp::Restart),
    ]
}

/// An encoded request, as the fast-ack layer journals it (the format of
/// `src/fast_ack/job.rs`: `THJ1`, then method, URI, version and headers,
/// then the body, each length-prefixed): a dead letter is rebuilt from it.
fn encoded_request(body: &[u8]) -> Bytes {
    let mut bytes = b"THJ1".to_vec();
    for field in [&b"POST"[..], b"/callback"] {
        bytes.extend_from_slice(&(field.len() as u32).to_le_bytes());
        bytes.extend_from_slice(field);
    }
    bytes.push(2); // HTTP/1.1
    bytes.extend_from_slice(&0u32.to_le_bytes()); // no headers
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(body);
    Bytes::from(bytes)
}

fn record(id: Option<u8>, n: usize) -> Record {
    let task_id = id.map(|id| Arc::<str>::from(format!("task_{id}")));
    let body = format!(r#"{{"id":"task_{}","n":{n}}}"#, id.unwrap_or(0));
    Record::new(task_id, encoded_request(body.as_bytes()))
}

/// What an entry is, for comparison.
fn summary(entry: &Entry) -> (u64, Option<String>, Bytes) {
    (
        entry.seq(),
        entry.task_id().map(str::to_owned),
        entry.bytes().clone(),
    )
}

/// Runs `ops` against the journal `open` opens (again at each restart) and
/// against the model, checking `pending` and `dead_letters` after every
/// step.
///
/// `open` is called after the previous journal was dropped, so a durable
/// journal can reopen its file: `check_journal(&ops, false, || MyJournal::open(&path))`.
/// `dedups`: the journal deduplicates by task id (and remembers done ids
/// longer than a case runs).
async fn check_journal<J, F>(
    ops: &[JournalOp],
    dedups: bool,
    mut open: F,
) -> Result<(), TestCaseError>
where
    J: Journal,
    F: FnMut() -> J,
{
    let mut journal = Some(open());
    // The model: every record appended and neither completed nor
    // dead-lettered, by sequence number; the dead letters; the highest
    // sequence number ever given; with `dedups`, the task ids held by a
    // pending entry (and by which) and those done.
    let mut pending: BTreeMap<u64, (u64, Option<String>, Bytes)> = BTreeMap::new();
    let mut dead: BTreeMap<u64, (u64, Option<String>, Bytes)> = BTreeMap::new();
    let mut held: BTreeMap<String, u64> = BTreeMap::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut last_seq: Option<u64> = None;
    let mut appended = 0usize;
    for (step, op) in ops.iter().enumerate() {
        let j = journal.as_ref().unwrap();
        match op {
            JournalOp::Append(ids) => {
                let records: Vec<Record> = ids
                    .iter()
                    .map(|&id| {
                        appended += 1;
                        record(id, appended)
                    })
                    .collect();
                let answers = j.append(records.clone()).await.unwrap();
                prop_assert_eq!(answers.len(), records.len(), "step {}", step);
                for (answer, record) in answers.into_iter().zip(records) {
                    let task = record.task_id().filter(|_| dedups).map(str::to_owned);
                    let duplicate = task
                        .as_ref()
                        .is_some_and(|task| held.contains_key(task) || done.contains(task));
                    let seq = match answer {
                        Appended::Duplicate if duplicate => continue,
                        Appended::Seq(seq) if !duplicate => seq,
                        other => {
                            return Err(TestCaseError::fail(format!(
                                "step {step}: {other:?} for {:?} (held {held:?}, done {done:?})",
                                record.task_id()
                            )))
                        }
                    };
                    // Increasing in order of arrival, never reused, even
                    // across restarts.
                    prop_assert!(
                        last_seq.map_or(true, |last| seq > last),
                        "step {}: seq {} after {:?}",
                        step,
                        seq,
                        last_seq
                    );
                    last_seq = Some(seq);
                    if let Some(task) = task {
                        held.insert(task, seq);
                    }
                    pending.insert(seq, summary(&record.into_entry(seq)));
                }
            }
            JournalOp::Complete(n) if !pending.is_empty() => {
                let seq = *pending.keys().nth(n % pending.len()).unwrap();
                j.complete(seq).await.unwrap();
                let (_, task, _) = pending.remove(&seq).unwrap();
                if let Some(task) = task.filter(|_| dedups) {
                    if held.get(&task) == Some(&seq) {
                        held.remove(&task);
                    }
                    done.insert(task);
                }
            }
            JournalOp::CompleteUnknown => {
                let unknown = last_seq.map_or(0, |seq| seq + 1000);
                j.complete(unknown).await.unwrap();
            }
            JournalOp::DeadLetter(n) if !pending.is_empty() => {
                let seq = *pending.keys().nth(n % pending.len()).unwrap();
                // The entry as the journal gave it back, as the layer does.
                let entries = j.pending().await.unwrap();
                let entry = entries.into_iter().find(|e| e.seq() == seq).unwrap();
                let letter = DeadLetter::new(
                    entry,
                    Failure::status(http::StatusCode::INTERNAL_SERVER_ERROR, ""),
                    3,
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                )
                .unwrap();
                j.dead_letter(&letter).await.unwrap();
                let moved = pending.remove(&seq).unwrap();
                free(&mut held, &mut done, moved.1.as_ref(), seq);
                dead.insert(seq, moved);
            }
            JournalOp::Withdraw(n) if !pending.is_empty() => {
                let seq = *pending.keys().nth(n % pending.len()).unwrap();
                j.withdraw(seq).await.unwrap();
                let (_, task, _) = pending.remove(&seq).unwrap();
                free(&mut held, &mut done, task.as_ref(), seq);
            }
            JournalOp::RemoveDeadLetter(n) if !dead.is_empty() => {
                let seq = *dead.keys().nth(n % dead.len()).unwrap();
                j.remove_dead_letter(seq).await.unwrap();
                dead.remove(&seq);
            }
            JournalOp::Complete(_)
            | JournalOp::DeadLetter(_)
            | JournalOp::Withdraw(_)
            | JournalOp::RemoveDeadLetter(_) => {}
            JournalOp::Restart => {
                drop(journal.take());
                journal = Some(open());
            }
        }
        let j = journal.as_ref().unwrap();
        let actual: Vec<_> = j.pending().await.unwrap().iter().map(summary).collect();
        let expected: Vec<_> = pending.values().cloned().collect();
        prop_assert_eq!(actual, expected, "pending after step {} ({:?})", step, op);
        let actual: Vec<_> = j
            .dead_letters()
            .await
            .unwrap()
            .iter()
            .map(|letter| summary(letter.entry()))
            .collect();
        let expected: Vec<_> = dead.values().cloned().collect();
        prop_assert_eq!(
            actual,
            expected,
            "dead letters after step {} ({:?})",
            step,
            op
        );
    }
    Ok(())
}

/// The entry `seq` of `task` left without being done (withdrawn or
/// dead-lettered): its task id, if it held it, is neither held nor done.
fn free(
    held: &mut BTreeMap<String, u64>,
    done: &mut BTreeSet<String>,
    task: Option<&String>,
    seq: u64,
) {
    if let Some(task) = task {
        if held.get(task) == Some(&seq) {
            held.remove(task);
            done.remove(task);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn memory_journal_follows_the_journal_model(ops in prop::collection::vec(journal_op(), 1..40)) {
        // A clone survives the restart: the same entries, as for a
        // journal reopened from its file.
        let journal = MemoryJournal::new();
        paused(check_journal(&ops, false, || journal.clone()))?;
    }

}

proptest! {
    // Each restart reopens (and checks) the file: fewer cases.
    #![proptest_config(ProptestConfig { cases: config().cases.min(16), ..config() })]

    #[test]
    fn redb_journal_follows_the_journal_model(ops in prop::collection::vec(journal_op(), 1..40)) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "model-redb-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("journal.redb");
        let result = paused(check_journal(&ops, true, || taskhook::backend::redb::RedbJournal::open(&file).unwrap()));
        let _ = std::fs::remove_dir_all(&dir);
        result?;
    }

    #[test]
    fn redb_journal_without_dedup_follows_the_journal_model(ops in prop::collection::vec(journal_op(), 1..40)) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "model-redb-nodedup-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("journal.redb");
        let open = || {
            taskhook::backend::redb::RedbJournal::builder()
                .dedup_by_task_id(false)
                .open(&file)
                .unwrap()
        };
        let result = paused(check_journal(&ops, false, open));
        let _ = std::fs::remove_dir_all(&dir);
        result?;
    }
}
