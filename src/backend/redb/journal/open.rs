//! Opening a [`RedbJournal`]: its builder, then opening the file, redb's
//! integrity check, the index of pending task ids, and the log line of a
//! recovery.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use redb::backends::FileBackend;
use redb::{Database, ReadableDatabase, ReadableTable};

use super::{read_dead_letters, read_pending, Clock, Inner, RedbJournal};
use super::{DEFAULT_CACHE_SIZE, DEFAULT_MAX_BATCH};
use crate::backend::defaults::DEFAULT_TIME_TO_LIVE;
use crate::backend::redb::codec::{
    journal_error, DEAD, DONE, DONE_BY_EXPIRY, ENTRIES, FORMAT, FORMAT_VERSION, META, NEXT_SEQ,
    PENDING_IDS,
};
use crate::backend::redb::faults::{Backend, FaultInjection};
use crate::backend::redb::writer::{Counters, Dedup, PendingIds, Writer};
use crate::fast_ack::journal::{Entry, JournalError};
use crate::fast_ack::DeadLetter;

/// Builds a [`RedbJournal`].
///
/// ```
/// use std::time::Duration;
/// use taskhook::backend::redb::RedbJournal;
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
    /// let builder = taskhook::backend::redb::RedbJournal::builder().max_batch(1);
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
    /// let builder = taskhook::backend::redb::RedbJournal::builder()
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
    /// let builder = taskhook::backend::redb::RedbJournal::builder().verify_on_open(false);
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
    /// let builder = taskhook::backend::redb::RedbJournal::builder().cache_size(16 << 20);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = bytes;
        self
    }

    /// Sets whether the journal deduplicates by task id (default `true`).
    ///
    /// When on, an [`append`](crate::fast_ack::journal::Journal::append) of a record
    /// whose task id is pending in the journal (appended, neither completed,
    /// withdrawn nor dead-lettered) or was completed within the
    /// [`done_time_to_live`](Self::done_time_to_live) answers
    /// [`Appended::Duplicate`](crate::fast_ack::journal::Appended::Duplicate) and
    /// appends nothing (the fast-ack layer answers `200` with
    /// `taskhook-duplicate: journaled`), in the same transaction as the appends
    /// around it. So a duplicate pushed after a restart is absorbed whatever
    /// dedup store is in front. Records without a task id are always appended.
    ///
    /// Turn it off when the same task id must run more than once, for
    /// example with a dedup layer keyed on something else
    /// ([`ByIdAndStatus`](crate::dedup::ByIdAndStatus): a new status of a
    /// known task runs again); the dedup layer's store is then what
    /// deduplicates.
    ///
    /// ```
    /// let builder = taskhook::backend::redb::RedbJournal::builder().dedup_by_task_id(false);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn dedup_by_task_id(mut self, dedup: bool) -> Self {
        self.dedup_by_task_id = dedup;
        self
    }

    /// Sets how long a completed task id is remembered, so that a push of it
    /// answers [`Appended::Duplicate`](crate::fast_ack::journal::Appended::Duplicate)
    /// (default 24 h, the dedup stores' default time to live). The done ids are
    /// kept in the file with their expiry, which follows the wall clock across
    /// restarts; expired ones are purged a few hundred per commit. Zero
    /// remembers nothing once an entry is completed: only pending task ids are
    /// duplicates. Has no effect with
    /// [`dedup_by_task_id(false)`](Self::dedup_by_task_id).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = taskhook::backend::redb::RedbJournal::builder()
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
        let (db, next_seq, pending) = match opened {
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
            pending,
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

/// The index of pending task ids: each task id maps to the first pending
/// entry with it (the one a deduplicating append let in). Empty with
/// deduplication off.
fn index_pending_ids(pending: &[Entry], config: &RedbJournalBuilder) -> PendingIds {
    let mut index = PendingIds::new();
    if config.dedup_by_task_id {
        for entry in pending {
            if let Some(task) = entry.task_id() {
                index.entry(task.into()).or_insert(entry.seq());
            }
        }
    }
    index
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
    match txn.open_table(DONE) {
        Ok(done) => {
            for item in done.iter().map_err(journal_error)? {
                let (key, value) = item.map_err(journal_error)?;
                (key.value(), value.value()).hash(&mut hasher);
                rows += 1;
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(error) => return Err(journal_error(error)),
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
) -> Result<(Database, u64, PendingIds), JournalError> {
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
        Ok((next_seq, pending)) => Ok((db, next_seq, pending)),
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

/// Checks the file, creates the tables, reads `next_seq`, decodes every
/// entry and dead letter once, and indexes the pending task ids.
fn prepare(
    db: &mut Database,
    config: &RedbJournalBuilder,
) -> Result<(u64, PendingIds), JournalError> {
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
    // A table of the pending task ids kept by an earlier version: they are
    // in memory now, derived from the entries.
    txn.delete_table(PENDING_IDS).map_err(journal_error)?;
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
    Ok((next_seq.max(highest), index_pending_ids(&pending, config)))
}
