//! The single writer thread: group commit.
//!
//! Every write (appends, completions, dead letters, done dedup keys) is a
//! [`Command`] on one channel. The thread takes the first command waiting,
//! then whatever else is queued (up to the batch size), optionally waits the
//! commit window for more, and applies the whole batch in one redb write
//! transaction with one commit: one disk sync for every caller in it. Each
//! caller's future completes when that commit returned.
//!
//! Deduplication by task id happens here too, inside the same transaction
//! as the append: an append checks the pending task ids and the done ids,
//! so the check and the append are one atomic step, in order of arrival.
//! The pending task ids live in this thread's memory, not in the file:
//! they are derived from the pending entries (rebuilt from them on open),
//! and a table of them cost a B-tree insert and a delete per event. A
//! commit that fails leaves the map ahead of the file, which is harmless:
//! the writer then refuses every later write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::codec::{
    encode_record, entry_task_id, journal_error, DEAD, DONE, DONE_BY_EXPIRY, ENTRIES, META,
    NEXT_SEQ,
};
use crate::fast_ack::journal::{Appended, JournalError, Record};

/// At most this many expired done keys are purged per commit, so a purge
/// never makes one commit slow.
const PURGE_PER_COMMIT: usize = 256;

/// One write, with the caller's clock and where to send the outcome.
pub(super) struct Command {
    pub(super) op: Op,
    /// The caller's "now" in unix milliseconds (see `Clock`).
    pub(super) now_ms: u64,
    pub(super) reply: oneshot::Sender<Result<Outcome, JournalError>>,
}

pub(super) enum Op {
    Append(Vec<Record>),
    /// Processed: deleted, its task id done.
    Complete(u64),
    /// Appended but not queued: deleted, its task id forgotten.
    Withdraw(u64),
    DeadLetter {
        seq: u64,
        task_id: Option<Box<str>>,
        value: Vec<u8>,
    },
    RemoveDeadLetter(u64),
    MarkDone {
        key: Box<str>,
        until_ms: u64,
    },
    ForgetDone(Box<str>),
    /// A durable commit with nothing but the purge in it.
    Sync,
}

impl Op {
    /// Whether the caller is promised durability when the commit returns.
    /// Completions, withdrawals and removals are not: losing one in a crash
    /// replays an entry (at least once), never loses one, and a
    /// [`Sync`](Op::Sync) makes them durable.
    fn durable(&self) -> bool {
        !matches!(
            self,
            Op::Complete(_) | Op::Withdraw(_) | Op::RemoveDeadLetter(_)
        )
    }
}

pub(super) enum Outcome {
    Appended(Vec<Appended>),
    Done,
}

/// Counters shared with [`RedbJournal::stats`](super::RedbJournal::stats).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) durable_commits: AtomicU64,
    pub(super) commands: AtomicU64,
    pub(super) appended: AtomicU64,
    pub(super) largest_batch: AtomicU64,
    pub(super) purged: AtomicU64,
    pub(super) failed_commits: AtomicU64,
}

pub(super) struct Writer {
    pub(super) db: Arc<Database>,
    pub(super) rx: Receiver<Command>,
    pub(super) max_batch: usize,
    pub(super) window: Duration,
    pub(super) next_seq: u64,
    pub(super) counters: Arc<Counters>,
    pub(super) poisoned: Arc<AtomicBool>,
    pub(super) dedup: Dedup,
    /// With [`Dedup::by_task_id`], each pending task id and the sequence
    /// number of the entry holding it (the first one appended with it).
    pub(super) pending: PendingIds,
}

/// The task ids of the pending entries, each with the sequence number of
/// the entry that holds it.
pub(super) type PendingIds = HashMap<Box<str>, u64>;

/// How the journal deduplicates by task id.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dedup {
    /// `false`: every record is appended, no task id is indexed or marked
    /// done.
    pub(super) by_task_id: bool,
    /// How long a completed task id answers [`Appended::Duplicate`].
    pub(super) done_ttl_ms: u64,
}

impl Writer {
    pub(super) fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        // A non-durable commit is waiting for the next durable one.
        let mut unsynced = false;
        let mut last_now = 0;
        while let Ok(first) = self.rx.recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            if !self.window.is_zero() && batch.len() < self.max_batch {
                let deadline = Instant::now() + self.window;
                while batch.len() < self.max_batch {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(left) {
                        Ok(command) => batch.push(command),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
            last_now = batch.iter().map(|c| c.now_ms).fold(last_now, u64::max);
            let durable = batch.iter().any(|c| c.op.durable());
            self.commit_batch(&mut batch, durable, last_now);
            unsynced = !durable && !self.poisoned.load(Ordering::SeqCst);
        }
        // Every handle is gone: make the last completions durable too.
        if unsynced {
            let _ = self.commit(&mut [], true, last_now);
        }
        // redb's `Drop` asserts on some states a failed commit leaves
        // behind: keep that inside this thread.
        let db = self.db;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
    }

    fn commit_batch(&mut self, batch: &mut Vec<Command>, durable: bool, now_ms: u64) {
        let size = batch.len() as u64;
        self.counters.commands.fetch_add(size, Ordering::Relaxed);
        self.counters
            .largest_batch
            .fetch_max(size, Ordering::Relaxed);
        if self.poisoned.load(Ordering::SeqCst) {
            for command in batch.drain(..) {
                let _ = command.reply.send(Err(JournalError::Failed));
            }
            return;
        }
        // A panic inside redb (it asserts on states it does not expect) is
        // a failed commit like any other, not a dead writer.
        let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.commit(batch, durable, now_ms)
        }))
        .unwrap_or_else(|_| Err(JournalError::other("redb panicked during a commit")));
        match committed {
            Ok(outcomes) => {
                for (command, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = command.reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                // Nothing in this batch is known to be on disk, and redb
                // cannot vouch for the file until it is reopened: refuse
                // every later write rather than pretend.
                self.poisoned.store(true, Ordering::SeqCst);
                self.counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "journal commit failed; refusing writes until reopened");
                let mut first = Some(error);
                for command in batch.drain(..) {
                    let error = first.take().unwrap_or(JournalError::Failed);
                    let _ = command.reply.send(Err(error));
                }
            }
        }
    }

    fn commit(
        &mut self,
        batch: &mut [Command],
        durable: bool,
        now_ms: u64,
    ) -> Result<Vec<Outcome>, JournalError> {
        let mut txn = self.db.begin_write().map_err(journal_error)?;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability).map_err(journal_error)?;
        let mut next_seq = self.next_seq;
        let outcomes = apply(&txn, batch, &mut next_seq, self.dedup, &mut self.pending)?;
        let purged = purge(&txn, now_ms)?;
        txn.commit().map_err(journal_error)?;
        self.next_seq = next_seq;
        let appended: u64 = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Appended(seqs) => seqs.len() as u64,
                Outcome::Done => 0,
            })
            .sum();
        self.counters
            .appended
            .fetch_add(appended, Ordering::Relaxed);
        self.counters.purged.fetch_add(purged, Ordering::Relaxed);
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        if durable {
            self.counters
                .durable_commits
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcomes)
    }
}

fn apply(
    txn: &WriteTransaction,
    batch: &[Command],
    next_seq: &mut u64,
    dedup: Dedup,
    pending: &mut PendingIds,
) -> Result<Vec<Outcome>, JournalError> {
    let mut tables = Tables {
        entries: txn.open_table(ENTRIES).map_err(journal_error)?,
        dead: txn.open_table(DEAD).map_err(journal_error)?,
        done: txn.open_table(DONE).map_err(journal_error)?,
        by_expiry: txn.open_table(DONE_BY_EXPIRY).map_err(journal_error)?,
        pending,
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    let start = *next_seq;
    for command in batch {
        let now_ms = command.now_ms;
        let outcome = match &command.op {
            Op::Append(records) => {
                let mut seqs = Vec::with_capacity(records.len());
                for record in records {
                    let task = record.task_id().filter(|_| dedup.by_task_id);
                    if let Some(task) = task {
                        if tables.holds(task, now_ms)? {
                            seqs.push(Appended::Duplicate);
                            continue;
                        }
                    }
                    let seq = *next_seq;
                    *next_seq += 1;
                    tables
                        .entries
                        .insert(seq, encode_record(record).as_slice())
                        .map_err(journal_error)?;
                    if let Some(task) = task {
                        tables.pending.insert(task.into(), seq);
                    }
                    seqs.push(Appended::Seq(seq));
                }
                Outcome::Appended(seqs)
            }
            Op::Complete(seq) => {
                let task = tables.remove_entry(*seq)?;
                if let Some(task) = task.filter(|_| dedup.by_task_id) {
                    tables.release(&task, *seq);
                    let until_ms = now_ms.saturating_add(dedup.done_ttl_ms);
                    tables.mark_done(&task, until_ms)?;
                }
                Outcome::Done
            }
            Op::Withdraw(seq) => {
                let task = tables.remove_entry(*seq)?;
                if let Some(task) = task.filter(|_| dedup.by_task_id) {
                    tables.forget_if_held(&task, *seq)?;
                }
                Outcome::Done
            }
            Op::DeadLetter {
                seq,
                task_id,
                value,
            } => {
                let stored = tables.remove_entry(*seq)?;
                tables
                    .dead
                    .insert(*seq, value.as_slice())
                    .map_err(journal_error)?;
                let task = stored.or_else(|| task_id.as_deref().map(str::to_owned));
                if let Some(task) = task.filter(|_| dedup.by_task_id) {
                    tables.forget_if_held(&task, *seq)?;
                }
                Outcome::Done
            }
            Op::RemoveDeadLetter(seq) => {
                tables.dead.remove(*seq).map_err(journal_error)?;
                Outcome::Done
            }
            Op::MarkDone { key, until_ms } => {
                tables.mark_done(key, *until_ms)?;
                Outcome::Done
            }
            Op::ForgetDone(key) => {
                tables.forget_done(key)?;
                Outcome::Done
            }
            Op::Sync => Outcome::Done,
        };
        outcomes.push(outcome);
    }
    if *next_seq != start {
        let mut meta = txn.open_table(META).map_err(journal_error)?;
        meta.insert(NEXT_SEQ, *next_seq).map_err(journal_error)?;
    }
    Ok(outcomes)
}

/// The tables one batch writes, opened once per commit.
struct Tables<'txn> {
    entries: redb::Table<'txn, u64, &'static [u8]>,
    dead: redb::Table<'txn, u64, &'static [u8]>,
    done: redb::Table<'txn, &'static str, u64>,
    by_expiry: redb::Table<'txn, (u64, &'static str), ()>,
    pending: &'txn mut PendingIds,
}

impl Tables<'_> {
    /// Whether `task` is pending, or done and not expired at `now_ms`.
    fn holds(&self, task: &str, now_ms: u64) -> Result<bool, JournalError> {
        if self.pending.contains_key(task) {
            return Ok(true);
        }
        let until = self.done.get(task).map_err(journal_error)?;
        Ok(until.is_some_and(|until| now_ms < until.value()))
    }

    /// Deletes the entry `seq`; answers its task id, if it had one.
    fn remove_entry(&mut self, seq: u64) -> Result<Option<String>, JournalError> {
        let removed = self.entries.remove(seq).map_err(journal_error)?;
        Ok(removed.and_then(|value| entry_task_id(value.value()).map(str::to_owned)))
    }

    /// Drops `task` from the pending ids if the entry `seq` holds it.
    /// Answers whether it did.
    fn release(&mut self, task: &str, seq: u64) -> bool {
        let held = self.pending.get(task) == Some(&seq);
        if held {
            self.pending.remove(task);
        }
        held
    }

    /// Forgets `task` if the entry `seq` held it: neither pending nor done,
    /// so the provider's retry, a replay or the next push runs it. A done
    /// id found then was written after this entry's append (a pending id
    /// is never appended over), by the dedup layer's store answering its
    /// `2xx`, and goes with it.
    fn forget_if_held(&mut self, task: &str, seq: u64) -> Result<(), JournalError> {
        if self.release(task, seq) {
            self.forget_done(task)?;
        }
        Ok(())
    }

    /// Marks `key` done until `until_ms`, or later if it already was: the
    /// journal's completion and the dedup store's answer both mark a task
    /// id, each with its own time to live, and neither shortens the other.
    fn mark_done(&mut self, key: &str, until_ms: u64) -> Result<(), JournalError> {
        // One lookup: written, and the old expiry put back in the rare case
        // that it was later.
        let old = self
            .done
            .insert(key, until_ms)
            .map_err(journal_error)?
            .map(|old| old.value());
        match old {
            Some(old) if old >= until_ms => {
                self.done.insert(key, old).map_err(journal_error)?;
            }
            Some(old) => {
                self.by_expiry.remove((old, key)).map_err(journal_error)?;
                self.by_expiry
                    .insert((until_ms, key), ())
                    .map_err(journal_error)?;
            }
            None => {
                self.by_expiry
                    .insert((until_ms, key), ())
                    .map_err(journal_error)?;
            }
        }
        Ok(())
    }

    fn forget_done(&mut self, key: &str) -> Result<(), JournalError> {
        let old = self
            .done
            .remove(key)
            .map_err(journal_error)?
            .map(|old| old.value());
        if let Some(old) = old {
            self.by_expiry.remove((old, key)).map_err(journal_error)?;
        }
        Ok(())
    }
}

/// Removes up to [`PURGE_PER_COMMIT`] done keys that expired by `now_ms`.
fn purge(txn: &WriteTransaction, now_ms: u64) -> Result<u64, JournalError> {
    let mut by_expiry = txn.open_table(DONE_BY_EXPIRY).map_err(journal_error)?;
    let mut expired: Vec<(u64, String)> = Vec::new();
    for item in by_expiry
        .range::<(u64, &str)>(..(now_ms, ""))
        .map_err(journal_error)?
        .take(PURGE_PER_COMMIT)
    {
        let (key, _) = item.map_err(journal_error)?;
        let (until, id) = key.value();
        expired.push((until, id.to_owned()));
    }
    if expired.is_empty() {
        return Ok(0);
    }
    let mut done = txn.open_table(DONE).map_err(journal_error)?;
    for (until, id) in &expired {
        by_expiry
            .remove((*until, id.as_str()))
            .map_err(journal_error)?;
        done.remove(id.as_str()).map_err(journal_error)?;
    }
    Ok(expired.len() as u64)
}
