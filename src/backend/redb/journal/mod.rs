//! [`RedbJournal`]: the [`Journal`] methods (writes go to the writer
//! thread, reads run on tokio's blocking pool); opening and checking the
//! file, and the builder, are in `open`.

mod open;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::Serialize;
use tokio::sync::oneshot;

use super::codec::{
    decode_dead_letter, decode_entry, encode_dead_letter, journal_error, DEAD, DONE, ENTRIES,
};
use super::faults::FaultInjection;
use super::writer::{Command, Counters, Op, Outcome};
use crate::fast_ack::journal::{Appended, BoxFuture, Entry, Journal, JournalError, Record};
use crate::fast_ack::DeadLetter;

pub use self::open::RedbJournalBuilder;

/// The default most writes committed together: 1024.
pub(crate) const DEFAULT_MAX_BATCH: usize = 1024;

/// The default redb page cache: 64 MiB (redb's own default is 1 GiB).
pub(crate) const DEFAULT_CACHE_SIZE: usize = 64 * 1024 * 1024;

/// A durable [`Journal`] in a redb file: an event is on disk,
/// synced, before the fast-ack layer answers `2xx`.
///
/// - **Group commit**: one writer thread takes every write queued (appends,
///   completions, dead letters, done dedup keys; up to
///   [`max_batch`](RedbJournalBuilder::max_batch)), optionally waits a short
///   [`commit_window`](RedbJournalBuilder::commit_window) for more, and
///   commits them in one write transaction with one disk sync
///   (`Durability::Immediate`). Each [`append`](Journal::append) completes
///   when the commit of its batch returned: many concurrent requests share
///   one `fsync`. redb's blocking calls never run on the async runtime.
/// - **Order**: sequence numbers are assigned in order of arrival at the
///   writer and persisted, so they keep increasing across restarts;
///   [`pending`](Journal::pending) lists entries in that order.
/// - **Compaction**: [`complete`](Journal::complete) deletes the entry; redb
///   reuses the freed pages, so the file stays bounded by the pending
///   entries, not by the history (see `BENCHMARKS.md`, "Journal"), plus
///   the task ids completed within the
///   [`done_time_to_live`](RedbJournalBuilder::done_time_to_live) (two
///   small rows each, the id and its expiry; none with
///   [`dedup_by_task_id(false)`](RedbJournalBuilder::dedup_by_task_id)).
///   Completions do not ask for a sync of their own: a batch with only
///   completions is committed without one and made durable by the next
///   durable commit, or by [`sync`](Journal::sync), which
///   [`FastAckHandle::shutdown`](crate::FastAckHandle::shutdown) calls once
///   the workers stopped (and dropping the last clone syncs too). A crash
///   may forget a completion (the entry runs again after the restart: at
///   least once), never an append.
/// - **Deduplication by task id**, as the Redis journal does: an append of
///   a record whose task id is pending here, or was completed within the
///   [`done_time_to_live`](RedbJournalBuilder::done_time_to_live) (default
///   24 h), answers [`Appended::Duplicate`] and appends nothing, checked in
///   the append's own transaction (two records with one task id in one
///   batch: the first is appended). [`complete`](Journal::complete) marks
///   the task id done in the same transaction as the deletion;
///   [`withdraw`](Journal::withdraw) and
///   [`dead_letter`](Journal::dead_letter) forget it (when that entry held
///   it), so the provider's retry, a [replay](crate::FastAckHandle::replay)
///   or the next push runs it. Behind any dedup store, even the default
///   in-memory one, a duplicate pushed after a restart is answered `200`
///   duplicate (`taskhook-duplicate: journaled`). Pending task ids are
///   indexed (a point lookup per append), and the index is rebuilt from the
///   entries on open when a file lacks it. Off with
///   [`dedup_by_task_id(false)`](RedbJournalBuilder::dedup_by_task_id).
/// - **Dead letters** are kept in the file until replayed or dismissed.
/// - **Done task ids**, with their expiry: the journal's own and those of
///   [`RedbDedupStore`](super::RedbDedupStore), in one table (with the
///   default key, a dedup key is the task id, so both see one set); every
///   commit purges a bounded number of expired ones.
/// - **Failures**: an append whose commit fails returns the error (the
///   layer answers `503`); after a failed commit the journal refuses every
///   later write with [`JournalError::Failed`] until it is reopened, because
///   neither it nor redb can vouch for what is on disk.
/// - **Crash safety**: redb commits with one `fsync` over a checksummed
///   copy-on-write tree (XXH3-128 Merkle tree, two commit slots); a crash
///   or power loss mid-commit leaves the previous commit, which redb
///   restores on open. On open the journal also runs redb's integrity check
///   ([`verify_on_open`](RedbJournalBuilder::verify_on_open)) and decodes
///   every entry: a damaged file is [`JournalError::Corrupt`] (or
///   [`JournalError::Io`]), never a silently shorter journal.
///
/// One process opens a file at a time (redb locks it). Clones share the
/// database and the writer; dropping the last clone ends the writer thread
/// after a final sync and waits for it (at most one commit), so the file
/// can be reopened at once. A file not closed that way (the process was
/// killed) is recovered by redb on the next open, with one warning logged.
///
/// ```
/// use taskhook::backend::redb::RedbJournal;
/// use taskhook::fast_ack::FastAckLayer;
/// use taskhook::fast_ack::journal::{Appended, Journal, Record};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let dir = std::env::temp_dir().join(format!("taskhook-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("journal.redb");
/// # let _ = std::fs::remove_file(&path);
/// let journal = RedbJournal::open(&path).unwrap();
/// let appended = journal.append(vec![Record::new(None, "a".into())]).await.unwrap();
/// assert_eq!(appended, [Appended::Seq(0)]);
/// drop(journal);
///
/// // After a restart the entry is still pending.
/// let journal = RedbJournal::open(&path).unwrap();
/// assert_eq!(journal.pending().await.unwrap().len(), 1);
/// let (layer, handle) = FastAckLayer::builder().journal(journal).build();
/// # drop((layer, handle)); std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct RedbJournal {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while dropping.
    db: Option<Arc<Database>>,
    path: PathBuf,
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
    poisoned: Arc<AtomicBool>,
    /// Read by `fault_injection` (feature `test-util`) only.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    faults: FaultInjection,
    clock: Clock,
    config: RedbJournalBuilder,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer after its last commit; waiting
        // for it releases the file lock before a reopen.
        drop(lock(&self.tx).take());
        if let Some(writer) = lock(&self.writer).take() {
            let _ = writer.join();
        }
        // redb's `Drop` asserts on some states a failed commit leaves
        // behind; a journal being dropped must not take its owner down.
        let db = self.db.take();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each guarded value is a plain `Option` swapped in one statement.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wall-clock milliseconds that advance with tokio's clock: the wall time
/// at open plus the tokio time elapsed since (plus what a test added).
/// Expiries persist across restarts (wall time) and follow
/// `tokio::time::pause`/`advance`.
#[derive(Debug)]
struct Clock {
    wall_ms: u64,
    start: tokio::time::Instant,
    skew_ms: std::sync::atomic::AtomicU64,
}

impl Clock {
    fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            wall_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
            start: tokio::time::Instant::now(),
            skew_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.wall_ms
            .saturating_add(elapsed)
            .saturating_add(self.skew_ms.load(Ordering::Relaxed))
    }
}

/// A snapshot of a [`RedbJournal`]'s counters, from
/// [`RedbJournal::stats`].
///
/// `Serialize` gives an admin route its JSON (`{"commits":..,..}`), as
/// [`Stats`](crate::fast_ack::Stats) does for the fast-ack layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RedbStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Of those, the ones committed with a disk sync.
    pub durable_commits: u64,
    /// Write calls (appends, completions, dead letters, done keys) taken by
    /// the writer.
    pub writes: u64,
    /// Records appended.
    pub appended: u64,
    /// The most write calls committed together.
    pub largest_batch: u64,
    /// Expired done keys purged.
    pub purged: u64,
    /// Commits that failed (the journal then refuses writes).
    pub failed_commits: u64,
    /// `true` after a failed commit: writes are refused until reopened.
    pub poisoned: bool,
}

impl RedbJournal {
    /// Opens (or creates) the journal at `path` with the default settings.
    ///
    /// Blocking: it reads and checks the file. Call it before serving, or
    /// from `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] for a damaged file, [`JournalError::Io`]
    /// when it cannot be read or written, [`JournalError::Other`] when
    /// another process has it open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        Self::builder().open(path)
    }

    /// A builder to change the settings.
    pub fn builder() -> RedbJournalBuilder {
        RedbJournalBuilder::default()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The counters.
    pub fn stats(&self) -> RedbStats {
        let c = &self.inner.counters;
        let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        RedbStats {
            commits: get(&c.commits),
            durable_commits: get(&c.durable_commits),
            writes: get(&c.commands),
            appended: get(&c.appended),
            largest_batch: get(&c.largest_batch),
            purged: get(&c.purged),
            failed_commits: get(&c.failed_commits),
            poisoned: self.inner.poisoned.load(Ordering::SeqCst),
        }
    }

    /// The size of the file in bytes.
    ///
    /// # Errors
    ///
    /// When the file's metadata cannot be read.
    pub fn file_size(&self) -> std::io::Result<u64> {
        std::fs::metadata(&self.inner.path).map(|m| m.len())
    }

    /// The number of done task ids remembered (expired ones not yet purged
    /// included).
    ///
    /// # Errors
    ///
    /// When the file cannot be read.
    pub async fn done_id_count(&self) -> Result<u64, JournalError> {
        self.read(|txn| {
            let table = txn.open_table(DONE).map_err(journal_error)?;
            table.len().map_err(journal_error)
        })
        .await
    }

    /// Commits (with a sync) everything queued so far and purges expired
    /// done ids; completes once that commit returned. Every completion,
    /// withdrawal and removal answered before the call (committed without
    /// a sync of its own) is durable then. [`Journal::sync`], which
    /// [`FastAckHandle::shutdown`](crate::FastAckHandle::shutdown) calls,
    /// is this.
    ///
    /// # Errors
    ///
    /// When the commit fails, or the journal refuses writes after an earlier
    /// failure.
    pub async fn sync(&self) -> Result<(), JournalError> {
        self.write(Op::Sync).await.map(|_| ())
    }

    /// Moves the journal's clock (the expiry of done ids) forward, for tests
    /// (feature `test-util`).
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn advance_clock(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.inner.clock.skew_ms.fetch_add(by, Ordering::Relaxed);
    }

    /// Switches to make the storage fail, for tests of the error path
    /// (feature `test-util`).
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn fault_injection(&self) -> FaultInjection {
        self.inner.faults.clone()
    }

    /// Whether `key` is a done dedup key that has not expired.
    pub(super) async fn is_done(&self, key: &str) -> Result<bool, JournalError> {
        let now = self.inner.clock.now_ms();
        let key = key.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(DONE).map_err(journal_error)?;
            let until = table.get(key.as_str()).map_err(journal_error)?;
            Ok(until.is_some_and(|until| now < until.value()))
        })
        .await
    }

    /// Records `key` as done for `ttl`; completes once it is on disk.
    pub(super) async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), JournalError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let until_ms = self.inner.clock.now_ms().saturating_add(ttl_ms);
        self.write(Op::MarkDone {
            key: key.into(),
            until_ms,
        })
        .await
        .map(|_| ())
    }

    /// Forgets the done key `key`; completes once that is on disk.
    pub(super) async fn forget_done(&self, key: &str) -> Result<(), JournalError> {
        self.write(Op::ForgetDone(key.into())).await.map(|_| ())
    }

    async fn write(&self, op: Op) -> Result<Outcome, JournalError> {
        if self.inner.poisoned.load(Ordering::SeqCst) {
            return Err(JournalError::Failed);
        }
        let (reply, answer) = oneshot::channel();
        let command = Command {
            op,
            now_ms: self.inner.clock.now_ms(),
            reply,
        };
        let sent = lock(&self.inner.tx)
            .as_ref()
            .map(|tx| tx.send(command).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(JournalError::unavailable("the journal writer has stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(JournalError::unavailable("the journal writer has stopped")))
    }

    async fn read<T, F>(&self, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction) -> Result<T, JournalError> + Send + 'static,
    {
        let db = self
            .inner
            .db
            .clone()
            .ok_or_else(|| JournalError::unavailable("the journal is closed"))?;
        let read = move || {
            let txn = db.begin_read().map_err(journal_error)?;
            f(&txn)
        };
        if tokio::runtime::Handle::try_current().is_err() {
            // Polled outside tokio: no blocking pool to hand the read to.
            return read();
        }
        tokio::task::spawn_blocking(read)
            .await
            .map_err(JournalError::other)?
    }
}

impl fmt::Debug for RedbJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbJournal")
            .field("path", &self.inner.path)
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

fn read_pending(txn: &redb::ReadTransaction) -> Result<Vec<Entry>, JournalError> {
    let table = txn.open_table(ENTRIES).map_err(journal_error)?;
    let mut entries = Vec::new();
    for item in table.iter().map_err(journal_error)? {
        let (seq, value) = item.map_err(journal_error)?;
        entries.push(decode_entry(seq.value(), value.value())?);
    }
    Ok(entries)
}

fn read_dead_letters(txn: &redb::ReadTransaction) -> Result<Vec<DeadLetter>, JournalError> {
    let table = txn.open_table(DEAD).map_err(journal_error)?;
    let mut letters = Vec::new();
    for item in table.iter().map_err(journal_error)? {
        let (seq, value) = item.map_err(journal_error)?;
        letters.push(decode_dead_letter(seq.value(), value.value())?);
    }
    Ok(letters)
}

impl Journal for RedbJournal {
    fn append(&self, records: Vec<Record>) -> BoxFuture<'_, Result<Vec<Appended>, JournalError>> {
        Box::pin(async move {
            match self.write(Op::Append(records)).await? {
                Outcome::Appended(seqs) => Ok(seqs),
                Outcome::Done => Err(JournalError::other("the writer answered a wrong outcome")),
            }
        })
    }

    fn complete(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move { self.write(Op::Complete(seq)).await.map(|_| ()) })
    }

    fn withdraw(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move { self.write(Op::Withdraw(seq)).await.map(|_| ()) })
    }

    fn pending(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        Box::pin(self.read(read_pending))
    }

    fn dead_letter(&self, letter: &DeadLetter) -> BoxFuture<'_, Result<(), JournalError>> {
        let op = Op::DeadLetter {
            seq: letter.seq(),
            task_id: letter.task_id().map(Box::from),
            value: encode_dead_letter(letter),
        };
        Box::pin(async move { self.write(op).await.map(|_| ()) })
    }

    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, JournalError>> {
        Box::pin(self.read(read_dead_letters))
    }

    fn remove_dead_letter(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move { self.write(Op::RemoveDeadLetter(seq)).await.map(|_| ()) })
    }

    /// A durable commit behind every write queued before it: the writer
    /// takes commands in order, so each completion, withdrawal and removal
    /// answered before this call was committed by then, and this commit's
    /// sync makes them durable ([`RedbJournal::sync`]).
    fn sync(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(RedbJournal::sync(self))
    }
}
