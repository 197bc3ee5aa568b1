//! [`RedbJournal`]: opening and checking the file, the [`Journal`]
//! methods (writes go to the writer thread, reads run on tokio's blocking
//! pool), and its builder.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::backends::FileBackend;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use tokio::sync::oneshot;

use super::codec::{
    decode_dead_letter, decode_entry, encode_dead_letter, entry_task_id, journal_error, DEAD, DONE,
    DONE_BY_EXPIRY, ENTRIES, FORMAT, FORMAT_VERSION, META, NEXT_SEQ, PENDING_IDS,
};
use super::faults::{Backend, FaultInjection};
use super::writer::{Command, Counters, Dedup, Op, Outcome, Writer};
use crate::backend::moka::DEFAULT_TIME_TO_LIVE;
use crate::fast_ack::{Appended, BoxFuture, DeadLetter, Entry, Journal, JournalError, Record};

/// The default most writes committed together: 1024.
pub const DEFAULT_MAX_BATCH: usize = 1024;

/// The default redb page cache: 64 MiB (redb's own default is 1 GiB).
pub const DEFAULT_CACHE_SIZE: usize = 64 * 1024 * 1024;

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
/// use taskhook::backend::RedbJournal;
/// use taskhook::fast_ack::{Appended, FastAckLayer, Journal, Record};
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
/// let layer = FastAckLayer::new().journal(journal);
/// # drop(layer); std::fs::remove_dir_all(&dir).unwrap();
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

/// A snapshot of a [`RedbJournal`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

    #[doc(hidden)]
    /// Moves the journal's clock (the expiry of done ids) forward, for tests.
    pub fn advance_clock(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.inner.clock.skew_ms.fetch_add(by, Ordering::Relaxed);
    }

    #[doc(hidden)]
    /// Switches to make the storage fail, for tests of the error path.
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

/// Builds a [`RedbJournal`].
///
/// ```
/// use std::time::Duration;
/// use taskhook::backend::RedbJournal;
///
/// let builder = RedbJournal::builder()
///     .max_batch(256)
///     .commit_window(Duration::from_millis(1));
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
pub struct RedbJournalBuilder {
    max_batch: usize,
    commit_window: Duration,
    verify_on_open: bool,
    cache_size: usize,
    dedup_by_task_id: bool,
    done_time_to_live: Duration,
}

impl Default for RedbJournalBuilder {
    fn default() -> Self {
        Self {
            max_batch: DEFAULT_MAX_BATCH,
            commit_window: Duration::ZERO,
            verify_on_open: true,
            cache_size: DEFAULT_CACHE_SIZE,
            dedup_by_task_id: true,
            done_time_to_live: DEFAULT_TIME_TO_LIVE,
        }
    }
}

impl RedbJournalBuilder {
    /// Sets the most write calls committed in one transaction (default
    /// 1024; at least 1). `1` commits and syncs every call on its own: no
    /// group commit.
    ///
    /// ```
    /// let builder = taskhook::backend::RedbJournal::builder().max_batch(1);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn max_batch(mut self, calls: usize) -> Self {
        self.max_batch = calls.max(1);
        self
    }

    /// Sets how long the writer waits for more calls after the first one
    /// before committing (default zero: it commits what is queued at once;
    /// calls that arrive during a commit form the next batch). A window of
    /// about a millisecond grows batches under moderate load at the cost of
    /// that much latency.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = taskhook::backend::RedbJournal::builder()
    ///     .commit_window(Duration::from_millis(1));
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn commit_window(mut self, window: Duration) -> Self {
        self.commit_window = window.min(Duration::from_secs(1));
        self
    }

    /// Sets whether opening runs redb's full integrity check, which reads
    /// the whole file and verifies every checksum (default `true`; the file
    /// holds pending entries, dead letters and done ids, so it is small).
    ///
    /// ```
    /// let builder = taskhook::backend::RedbJournal::builder().verify_on_open(false);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn verify_on_open(mut self, verify: bool) -> Self {
        self.verify_on_open = verify;
        self
    }

    /// Sets redb's page cache size in bytes (default 64 MiB).
    ///
    /// ```
    /// let builder = taskhook::backend::RedbJournal::builder().cache_size(16 << 20);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = bytes;
        self
    }

    /// Sets whether the journal deduplicates by task id (default `true`).
    ///
    /// When on, an [`append`](Journal::append) of a record whose task id is
    /// pending in the journal (appended, neither completed, withdrawn nor
    /// dead-lettered) or was completed within the
    /// [`done_time_to_live`](Self::done_time_to_live) answers
    /// [`Appended::Duplicate`] and appends nothing (the fast-ack layer
    /// answers `200` with `taskhook-duplicate: journaled`), in the same
    /// transaction as the appends around it. So a duplicate pushed after a
    /// restart is absorbed whatever dedup store is in front. Records
    /// without a task id are always appended.
    ///
    /// Turn it off when the same task id must run more than once, for
    /// example with a dedup layer keyed on something else
    /// ([`ByIdAndStatus`](crate::dedup::ByIdAndStatus): a new status of a
    /// known task runs again); the dedup layer's store is then what
    /// deduplicates.
    ///
    /// ```
    /// let builder = taskhook::backend::RedbJournal::builder().dedup_by_task_id(false);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn dedup_by_task_id(mut self, dedup: bool) -> Self {
        self.dedup_by_task_id = dedup;
        self
    }

    /// Sets how long a completed task id is remembered, so that a push of
    /// it answers [`Appended::Duplicate`] (default 24 h, the dedup stores'
    /// default time to live). The done ids are kept in the file with their
    /// expiry, which follows the wall clock across restarts; expired ones
    /// are purged a few hundred per commit. Zero remembers nothing once an
    /// entry is completed: only pending task ids are duplicates. Has no
    /// effect with [`dedup_by_task_id(false)`](Self::dedup_by_task_id).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = taskhook::backend::RedbJournal::builder()
    ///     .done_time_to_live(Duration::from_secs(6 * 3600));
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn done_time_to_live(mut self, ttl: Duration) -> Self {
        self.done_time_to_live = ttl;
        self
    }

    /// Opens (or creates) the journal at `path` and starts its writer thread.
    ///
    /// Blocking: see [`RedbJournal::open`].
    ///
    /// # Errors
    ///
    /// As [`RedbJournal::open`].
    pub fn open(self, path: impl AsRef<Path>) -> Result<RedbJournal, JournalError> {
        let path = path.as_ref().to_path_buf();
        let faults = FaultInjection::default();
        // redb may panic on some shapes of damage it does not expect; a
        // damaged file is an error to report, not a crash.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            open_database(&path, &faults, &self)
        }));
        let (db, next_seq) = match opened {
            Ok(result) => result.map_err(damaged)?,
            Err(_) => {
                return Err(JournalError::corrupt(
                    None,
                    "redb panicked while opening the file: it is damaged",
                ))
            }
        };
        let db = Arc::new(db);
        let counters = Arc::new(Counters::default());
        let poisoned = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: Arc::clone(&db),
            rx,
            max_batch: self.max_batch,
            window: self.commit_window,
            next_seq,
            counters: Arc::clone(&counters),
            poisoned: Arc::clone(&poisoned),
            dedup: Dedup {
                by_task_id: self.dedup_by_task_id,
                done_ttl_ms: u64::try_from(self.done_time_to_live.as_millis()).unwrap_or(u64::MAX),
            },
        };
        let writer = std::thread::Builder::new()
            .name("taskhook-journal".into())
            .spawn(move || writer.run())?;
        Ok(RedbJournal {
            inner: Arc::new(Inner {
                db: Some(db),
                path,
                tx: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                counters,
                poisoned,
                faults,
                clock: Clock::new(),
                config: self,
            }),
        })
    }
}

/// Makes the index of pending task ids match the pending entries: each task
/// id maps to the first pending entry with it (the one a deduplicating
/// append let in). Rewritten only when it differs: a file written before the
/// index existed, or with deduplication off, gets it here.
fn index_pending_ids(txn: &redb::WriteTransaction) -> Result<(), JournalError> {
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    {
        let entries = txn.open_table(ENTRIES).map_err(journal_error)?;
        for item in entries.iter().map_err(journal_error)? {
            let (seq, value) = item.map_err(journal_error)?;
            if let Some(task) = entry_task_id(value.value()) {
                expected.entry(task.to_owned()).or_insert(seq.value());
            }
        }
    }
    let mut index = txn.open_table(PENDING_IDS).map_err(journal_error)?;
    let mut stored = BTreeMap::new();
    for item in index.iter().map_err(journal_error)? {
        let (task, seq) = item.map_err(journal_error)?;
        stored.insert(task.value().to_owned(), seq.value());
    }
    if stored == expected {
        return Ok(());
    }
    index.retain(|_, _| false).map_err(journal_error)?;
    for (task, seq) in &expected {
        index.insert(task.as_str(), *seq).map_err(journal_error)?;
    }
    tracing::info!(
        pending_task_ids = expected.len(),
        "journal: rebuilt the index of pending task ids from the pending entries"
    );
    Ok(())
}

/// A digest of everything the journal keeps, to tell whether a repair
/// changed any of it.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    next_seq: Option<u64>,
    rows: u64,
    digest: u64,
}

fn snapshot(db: &Database) -> Result<Snapshot, JournalError> {
    use std::hash::{DefaultHasher, Hash, Hasher};

    let txn = db.begin_read().map_err(journal_error)?;
    let mut hasher = DefaultHasher::new();
    let mut rows = 0;
    let mut next_seq = None;
    match txn.open_table(META) {
        Ok(meta) => {
            next_seq = meta
                .get(NEXT_SEQ)
                .map_err(journal_error)?
                .map(|v| v.value())
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(error) => return Err(journal_error(error)),
    }
    for (i, definition) in [ENTRIES, DEAD].into_iter().enumerate() {
        let table = match txn.open_table(definition) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => continue,
            Err(error) => return Err(journal_error(error)),
        };
        for item in table.iter().map_err(journal_error)? {
            let (seq, value) = item.map_err(journal_error)?;
            (i, seq.value(), value.value()).hash(&mut hasher);
            rows += 1;
        }
    }
    // The pending task ids are derived from the entries, but a rollback
    // that changed only them still means an older commit came back.
    for (i, definition) in [DONE, PENDING_IDS].into_iter().enumerate() {
        let table = match txn.open_table(definition) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => continue,
            Err(error) => return Err(journal_error(error)),
        };
        for item in table.iter().map_err(journal_error)? {
            let (key, value) = item.map_err(journal_error)?;
            (i, key.value(), value.value()).hash(&mut hasher);
            rows += 1;
        }
    }
    Ok(Snapshot {
        next_seq,
        rows,
        digest: hasher.finish(),
    })
}

/// Opens the file, checks it, creates the tables, reads `next_seq`, and
/// decodes every entry and dead letter once.
fn open_database(
    path: &Path,
    faults: &FaultInjection,
    config: &RedbJournalBuilder,
) -> Result<(Database, u64), JournalError> {
    let mut created = false;
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => {
            // redb would take an empty file for a new database; a journal
            // file is never empty once created, so this one lost its data.
            if file.metadata()?.len() == 0 {
                return Err(JournalError::corrupt(
                    None,
                    "the journal file is empty (truncated?); move it away to start a new journal",
                ));
            }
            file
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            created = true;
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)?
        }
        Err(error) => return Err(error.into()),
    };
    let backend = Backend::new(FileBackend::new(file).map_err(journal_error)?, faults);
    let repair = Arc::new(RepairSeen::default());
    let opened = redb::Builder::new()
        .set_cache_size(config.cache_size)
        .set_repair_callback({
            let repair = Arc::clone(&repair);
            move |session| repair.saw(session.progress())
        })
        .create_with_backend(backend);
    // Once per open, after redb is done: its callback runs once per phase
    // of a repair, and a brand-new file goes through one too (it has no
    // allocator state yet), which is no recovery.
    if !created && repair.started.load(Ordering::Relaxed) {
        tracing::warn!(
            path = %path.display(),
            rolled_back = repair.rolled_back.load(Ordering::Relaxed),
            "journal was not closed cleanly; redb recovered it from its last commit"
        );
    }
    let mut db = opened.map_err(journal_error)?;
    match prepare(&mut db, config) {
        Ok(next_seq) => Ok((db, next_seq)),
        Err(error) => {
            close_quietly(db);
            Err(error)
        }
    }
}

/// What redb's repair callback reported during one open.
#[derive(Debug, Default)]
struct RepairSeen {
    /// A repair ran: the file was not closed cleanly (or is brand-new).
    started: AtomicBool,
    /// The primary commit slot failed its checksums: a commit was torn and
    /// rolled back to the previous one (never acknowledged, see the module
    /// docs).
    rolled_back: AtomicBool,
}

impl RepairSeen {
    /// redb calls back at `0.0` when a repair starts, at `0.3` only when
    /// the primary commit is torn (before rolling it back), then at `0.6`
    /// and `0.9`.
    fn saw(&self, progress: f64) {
        self.started.store(true, Ordering::Relaxed);
        if (0.2..0.5).contains(&progress) {
            self.rolled_back.store(true, Ordering::Relaxed);
        }
    }
}

/// Drops `db`, containing the panic redb's `Drop` raises for some damaged
/// files (it asserts that no repair is pending).
fn close_quietly(db: Database) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
}

/// An I/O error reading a file that turned out too short or not a redb
/// file means the file is damaged.
fn damaged(error: JournalError) -> JournalError {
    match error {
        JournalError::Io(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            JournalError::corrupt(
                None,
                format!("the file is damaged or not a journal: {error}"),
            )
        }
        other => other,
    }
}

/// Checks the file, creates the tables, reads `next_seq`, and decodes every
/// entry and dead letter once.
fn prepare(db: &mut Database, config: &RedbJournalBuilder) -> Result<u64, JournalError> {
    if config.verify_on_open {
        // What the file holds before the check: if the check has to roll
        // back to an older commit, acknowledged entries may be gone, and
        // that must be an error, not a quietly shorter journal.
        let before = snapshot(db);
        if !db.check_integrity().map_err(journal_error)? {
            let after = snapshot(db)?;
            if before.ok().as_ref() != Some(&after) {
                return Err(JournalError::corrupt(
                    None,
                    "the file failed redb's integrity check and had to be rolled back to \
                     an older commit; acknowledged entries may be lost",
                ));
            }
            // redb rebuilt its page bookkeeping; no entry changed.
            tracing::warn!(
                "journal file: redb repaired its page allocation state; no entry changed"
            );
        }
    }
    let txn = db.begin_write().map_err(journal_error)?;
    let next_seq = {
        let mut meta = txn.open_table(META).map_err(journal_error)?;
        txn.open_table(ENTRIES).map_err(journal_error)?;
        txn.open_table(DEAD).map_err(journal_error)?;
        txn.open_table(DONE).map_err(journal_error)?;
        txn.open_table(DONE_BY_EXPIRY).map_err(journal_error)?;
        let format = meta.get(FORMAT).map_err(journal_error)?.map(|v| v.value());
        match format {
            None => {
                meta.insert(FORMAT, FORMAT_VERSION).map_err(journal_error)?;
            }
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(JournalError::corrupt(
                    None,
                    format!("unknown journal format {other}"),
                ))
            }
        }
        let stored = meta
            .get(NEXT_SEQ)
            .map_err(journal_error)?
            .map(|v| v.value());
        stored.unwrap_or(0)
    };
    if config.dedup_by_task_id {
        index_pending_ids(&txn)?;
    } else {
        // Not kept up to date while deduplication is off: dropped, and
        // rebuilt by the next open with it on.
        txn.delete_table(PENDING_IDS).map_err(journal_error)?;
    }
    txn.commit().map_err(journal_error)?;
    let txn = db.begin_read().map_err(journal_error)?;
    let pending = read_pending(&txn)?;
    let dead = read_dead_letters(&txn)?;
    drop(txn);
    // Never hand out a sequence number that is already stored, even if the
    // counter in `meta` was damaged.
    let highest = pending
        .iter()
        .map(Entry::seq)
        .chain(dead.iter().map(DeadLetter::seq))
        .max()
        .map_or(0, |seq| seq.saturating_add(1));
    Ok(next_seq.max(highest))
}
