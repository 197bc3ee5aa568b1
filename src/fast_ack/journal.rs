//! The journal of the fast-ack layer: where an event is written before it
//! is acknowledged, and marked done once it has been processed.
//!
//! [`FastAckLayer`](super::FastAckLayer) answers `202 Accepted` before the
//! handler runs, so the event must be somewhere that outlives the answer:
//! the journal. This module holds what an implementation needs:
//!
//! - [`Journal`], the trait the layer calls;
//! - [`Record`], what the layer appends (the task id and the encoded
//!   request, opaque to the journal), and [`Entry`], a record under the
//!   sequence number the journal gave it;
//! - [`Appended`], what an append did (a sequence number, or a duplicate
//!   for a journal that also deduplicates by task id);
//! - [`JournalError`], and [`BoxFuture`], the future every method returns;
//! - [`MemoryJournal`], the in-memory journal the layer uses by default.
//!
//! A journal is chosen once, with
//! [`FastAckBuilder::journal`](super::FastAckBuilder::journal) (or
//! [`CallbackStack::journal`](crate::CallbackStack::journal)). Besides the
//! memory journal, which loses what it holds with the process, the crate
//! has two durable ones: `backend::redb::RedbJournal` (feature `redb`, a
//! file with group commit) and `backend::redis::RedisJournal` (feature
//! `redis`, shared by several replicas).
//!
//! # How the layer calls a journal
//!
//! - At start-up, [`dead_letters`](Journal::dead_letters), then
//!   [`pending`](Journal::pending): those entries (accepted before a
//!   restart and not finished) are queued in sequence order before any new
//!   event is accepted; until then new events get `503 starting`.
//! - For every request, [`append_one`](Journal::append_one) (by default
//!   [`append`](Journal::append) with a batch of one), from many requests at
//!   once. The `202` waits for it; an error is answered `503`, so the
//!   provider retries. An entry appended while the layer stopped is taken
//!   back with [`withdraw`](Journal::withdraw) (and answered `503`).
//! - Once the handler is done with an event,
//!   [`complete`](Journal::complete), or [`dead_letter`](Journal::dead_letter)
//!   after its last failed attempt (or a `4xx` kept as a dead letter); a
//!   dead letter replayed, dismissed or dropped from the full list is
//!   removed with [`remove_dead_letter`](Journal::remove_dead_letter)
//!   (a replay is appended again first, under a new sequence number).
//! - Every [`take_over_interval`](Journal::take_over_interval), if the
//!   journal has one, [`take_over`](Journal::take_over): a journal shared
//!   by several processes hands over the entries of one that died.
//! - At [`shutdown`](super::FastAckHandle::shutdown), once the workers have
//!   stopped, [`sync`](Journal::sync).
//!
//! A call that fails after the event was accepted (marking it done or dead)
//! is logged and counted (`journal_errors` in
//! [`Stats`](super::Stats)), and the entry stays pending: a durable journal
//! runs it again after a restart. Events are processed at least once, never
//! lost.
//!
//! # What a journal must guarantee
//!
//! - **Durable before `Ok`.** The layer answers `2xx` on the strength of an
//!   append, and after a `2xx` the provider never sends the event again: an
//!   append completes only once its records are as durable as the journal
//!   promises.
//! - **Sequence numbers** increase in order of arrival and are never reused
//!   by one journal; [`pending`](Journal::pending) and
//!   [`dead_letters`](Journal::dead_letters) answer in sequence order.
//! - **Concurrent calls.** Every method takes `&self` and is called from
//!   many tasks at once. A durable journal groups the appends that arrive
//!   together into one commit and one disk sync (group commit).
//! - **Bounded time.** A backend that does not answer is an error, not a
//!   wait: an append holds a provider's request, the other calls a worker.
//! - **No false comfort.** A journal that cannot be sure a write is durable
//!   answers an error; after a failed sync it keeps failing until it has
//!   been recovered.
//! - **Idempotent cleanup.** Completing or removing an unknown sequence
//!   number is not an error.
//!
//! The [`Journal`] trait documents each method, with a minimal
//! implementation as its example.
//!
//! # Example
//!
//! A [`MemoryJournal`] shared with the layer (its clones share the entries)
//! shows an event's life in the journal: pending from the `202` until the
//! handler is done with it.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use taskhook::body::BufferedBody;
//! use taskhook::fast_ack::journal::{Journal, MemoryJournal};
//! use taskhook::fast_ack::FastAckLayer;
//! use taskhook::PayloadLayer;
//! use tokio::sync::Notify;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let journal = MemoryJournal::new();
//! let (fast_ack, handle) = FastAckLayer::builder().journal(journal.clone()).build();
//!
//! // A handler that waits until it is told to finish.
//! let go = Arc::new(Notify::new());
//! let handler = service_fn({
//!     let go = Arc::clone(&go);
//!     move |_: Request<BufferedBody>| {
//!         let go = Arc::clone(&go);
//!         async move {
//!             go.notified().await;
//!             Ok::<_, Infallible>(Response::new(String::new()))
//!         }
//!     }
//! });
//! let service = ServiceBuilder::new()
//!     .layer(PayloadLayer::new())
//!     .layer(fast_ack)
//!     .service(handler);
//! handle.started().await;
//!
//! let push = Request::post("/callback")
//!     .body(r#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#.to_owned())?;
//! assert_eq!(service.oneshot(push).await?.status(), StatusCode::ACCEPTED);
//!
//! // Acknowledged and not processed yet: pending in the journal.
//! let pending = journal.pending().await?;
//! assert_eq!(pending.len(), 1);
//! assert_eq!(pending[0].task_id(), Some("task_01"));
//!
//! // Processed: completed, nothing left to replay after a restart.
//! go.notify_one();
//! assert!(handle.shutdown(Duration::from_secs(5)).await.drained);
//! assert!(journal.is_empty());
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use super::dead_letter::DeadLetter;
use super::job::{self, Head};

/// The future a [`Journal`] method returns: boxed, `Send`, borrowing the
/// journal.
///
/// Boxed rather than `impl Future` in the trait so that the layer can hold
/// any journal as `Arc<dyn Journal>`: the layer's type does not change with
/// the journal, and an application can choose one at run time (memory, a
/// file, Redis) from its configuration. A journal call happens once per
/// event next to a disk sync or a network round trip, so the allocation is
/// noise.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the layer appends for one event: the task id (when the payload
/// layer parsed one) and the encoded request.
///
/// The bytes are opaque to a journal: store them and give them back in
/// [`Entry::bytes`]. The task id lets a journal index entries by task (a
/// store that also deduplicates, such as Redis, claims the id and appends
/// in one step).
///
/// A record the layer makes encodes its request on the first call of
/// [`bytes`](Record::bytes), so a journal that keeps records as they are
/// (the [`MemoryJournal`]) never pays for an encoding it does not read.
#[derive(Clone)]
pub struct Record {
    task_id: Option<Arc<str>>,
    encoding: Encoding,
}

#[derive(Clone)]
enum Encoding {
    /// Given to [`Record::new`].
    Given(Bytes),
    /// The request of a record the layer made, encoded on first use.
    Lazy {
        head: Arc<Head>,
        body: Bytes,
        bytes: OnceLock<Bytes>,
    },
}

impl Record {
    /// A record of `bytes` for the task `task_id`.
    pub fn new(task_id: Option<Arc<str>>, bytes: Bytes) -> Self {
        Self {
            task_id,
            encoding: Encoding::Given(bytes),
        }
    }

    /// A record of the request `head` and `body`, encoded on first use.
    pub(crate) fn of_request(task_id: Option<Arc<str>>, head: Arc<Head>, body: Bytes) -> Self {
        Self {
            task_id,
            encoding: Encoding::Lazy {
                head,
                body,
                bytes: OnceLock::new(),
            },
        }
    }

    /// The task id, when known.
    pub fn task_id(&self) -> Option<&str> {
        self.task_id.as_deref()
    }

    /// The encoded request.
    pub fn bytes(&self) -> &Bytes {
        match &self.encoding {
            Encoding::Given(bytes) => bytes,
            Encoding::Lazy { head, body, bytes } => bytes.get_or_init(|| job::encode(head, body)),
        }
    }

    /// Makes the journal entry of this record under `seq`.
    pub fn into_entry(self, seq: u64) -> Entry {
        Entry { seq, record: self }
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.task_id == other.task_id && self.bytes() == other.bytes()
    }
}

impl Eq for Record {}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("task_id", &self.task_id)
            .field("len", &self.bytes().len())
            .finish()
    }
}

/// A journaled event: the [`Record`] under the sequence number the journal
/// gave it.
///
/// Sequence numbers are assigned by the journal, increase in order of
/// arrival, and are never reused by one journal.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    seq: u64,
    record: Record,
}

impl Entry {
    /// The sequence number the journal assigned.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The task id, when known.
    pub fn task_id(&self) -> Option<&str> {
        self.record.task_id()
    }

    /// The encoded request.
    pub fn bytes(&self) -> &Bytes {
        self.record.bytes()
    }

    /// The record this entry was made from.
    pub fn record(&self) -> &Record {
        &self.record
    }

    pub(crate) fn task_id_arc(&self) -> Option<Arc<str>> {
        self.record.task_id.clone()
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("seq", &self.seq)
            .field("task_id", &self.record.task_id)
            .field("len", &self.record.bytes().len())
            .finish()
    }
}

/// What [`Journal::append`] did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Appended {
    /// Appended under this sequence number.
    Seq(u64),
    /// Not appended: the journal already holds, or has finished, an event
    /// with the record's task id.
    ///
    /// Only a journal that also deduplicates answers it (a Redis journal
    /// that claims the task id and appends in one atomic script, so a
    /// claimed id always has its event queued). The layer then answers
    /// `200` with `{"status":"duplicate"}` and `taskhook-duplicate: journaled` and queues nothing.
    Duplicate,
}

/// Where accepted events are written before the `2xx`, and marked done after
/// they are processed.
///
/// The fast-ack layer calls it in this order for every event:
///
/// 1. [`append`](Journal::append) before answering; only once it returns
///    `Ok` does the layer answer `2xx`. An error is answered `503` with
///    `Retry-After`, so the provider retries.
/// 2. [`complete`](Journal::complete) once the inner service succeeded (or
///    answered a `4xx`, its final word).
/// 3. or, after the last failed attempt, [`dead_letter`](Journal::dead_letter):
///    the entry stops being pending and is kept as a dead letter until it is
///    replayed or dismissed ([`remove_dead_letter`](Journal::remove_dead_letter)).
///
/// At start-up the layer reads [`pending`](Journal::pending) and runs those
/// entries, in sequence order, before it accepts new events, and loads
/// [`dead_letters`](Journal::dead_letters).
///
/// # Batching
///
/// `append` takes a batch and the layer calls it concurrently, once per
/// request (a batch of one), from many tasks at the same time: `&self`, not
/// `&mut self`. A durable journal groups the calls that arrive together into
/// one transaction and one disk sync (a group commit) and completes each
/// caller's future when that sync is done. A journal must not complete an
/// `append` before the records are as durable as it promises: the layer
/// answers `2xx` on the strength of it.
///
/// # Time and sharing
///
/// Every call should finish within a bounded time (a backend that does not
/// answer is an error, not a wait): `append` holds a provider's request and
/// the other calls hold a worker. A journal shared by several processes
/// (Redis) answers from [`pending`](Journal::pending) only the entries this
/// process should run.
///
/// # Errors
///
/// A journal that cannot be sure a write is durable returns an error rather
/// than `Ok`; after a failed sync it should keep failing until it has been
/// recovered, not pretend later writes are safe.
///
/// # Example
///
/// A journal that keeps nothing (so it loses events on a crash: only a
/// sketch of the shape):
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use taskhook::fast_ack::DeadLetter;
/// use taskhook::fast_ack::journal::{Appended, BoxFuture, Entry, Journal, JournalError, Record};
///
/// #[derive(Debug, Default)]
/// struct Forgetful(AtomicU64);
///
/// impl Journal for Forgetful {
///     fn append(&self, records: Vec<Record>) -> BoxFuture<'_, Result<Vec<Appended>, JournalError>> {
///         let first = self.0.fetch_add(records.len() as u64, Ordering::Relaxed);
///         let seqs = (first..first + records.len() as u64).map(Appended::Seq).collect();
///         Box::pin(async move { Ok(seqs) })
///     }
///     fn complete(&self, _seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
///         Box::pin(async { Ok(()) })
///     }
///     fn pending(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
///         Box::pin(async { Ok(Vec::new()) })
///     }
///     fn dead_letter(&self, _letter: &DeadLetter) -> BoxFuture<'_, Result<(), JournalError>> {
///         Box::pin(async { Ok(()) })
///     }
///     fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, JournalError>> {
///         Box::pin(async { Ok(Vec::new()) })
///     }
///     fn remove_dead_letter(&self, _seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
///         Box::pin(async { Ok(()) })
///     }
/// }
/// ```
pub trait Journal: Send + Sync + 'static {
    /// Appends `records` durably and answers, for each record in order, its
    /// sequence number ([`Appended::Seq`]), or [`Appended::Duplicate`] from
    /// a journal that also deduplicates by task id.
    fn append(&self, records: Vec<Record>) -> BoxFuture<'_, Result<Vec<Appended>, JournalError>>;

    /// Appends one record durably: what the layer calls for each request it
    /// accepts.
    ///
    /// The default calls [`append`](Journal::append) with a batch of one
    /// (and if that answers a wrong number of outcomes, withdraws what it
    /// appended and fails). A journal can answer it without the two `Vec`s.
    fn append_one(&self, record: Record) -> BoxFuture<'_, Result<Appended, JournalError>> {
        Box::pin(async move {
            let appended = self.append(vec![record]).await?;
            if let [one] = appended[..] {
                return Ok(one);
            }
            for outcome in appended {
                if let Appended::Seq(seq) = outcome {
                    if let Err(error) = self.withdraw(seq).await {
                        tracing::error!(seq, %error, "could not withdraw a journal entry");
                    }
                }
            }
            Err(JournalError::corrupt(
                None,
                "append answered a wrong number of outcomes",
            ))
        })
    }

    /// Marks the pending entry `seq` as done: it is no longer replayed.
    ///
    /// Also used to withdraw an entry that was appended but could not be
    /// queued (the layer then answers `503`, so the provider retries).
    /// Completing an unknown `seq` is not an error.
    fn complete(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>>;

    /// Every entry appended and neither completed nor dead-lettered, in
    /// sequence order.
    fn pending(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>>;

    /// The entry `letter.seq()` failed for good: it is no longer pending and
    /// is kept, with the failure, until
    /// [`remove_dead_letter`](Journal::remove_dead_letter).
    fn dead_letter(&self, letter: &DeadLetter) -> BoxFuture<'_, Result<(), JournalError>>;

    /// The dead letters kept, in sequence order (read at start-up).
    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, JournalError>>;

    /// Forgets the dead letter `seq` (it was replayed under a new sequence
    /// number, or dismissed). Removing an unknown `seq` is not an error.
    fn remove_dead_letter(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>>;

    /// Takes back the entry `seq`, appended but not queued: the layer
    /// answers `503`, so the provider sends the event again.
    ///
    /// The default calls [`complete`](Journal::complete). A journal that
    /// deduplicates by task id must also forget the id here (not mark it
    /// done), or the provider's retry would be answered as a duplicate of an
    /// event that never ran.
    fn withdraw(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        self.complete(seq)
    }

    /// How often the layer calls [`take_over`](Journal::take_over) while it
    /// runs; `None` (the default) never.
    fn take_over_interval(&self) -> Option<Duration> {
        None
    }

    /// Hands the layer work found while it runs, at most `max` entries
    /// (the free room in its queue; `0` while it shuts down): in a journal
    /// shared by several processes, the pending entries of a process that
    /// died. The entries are queued like the start-up
    /// [`pending`](Journal::pending) ones, then completed or dead-lettered.
    ///
    /// Called every [`take_over_interval`](Journal::take_over_interval)
    /// until the layer stops, so a journal can also use the call as a
    /// heartbeat that shows the entries this process holds are still alive.
    /// The default hands over nothing.
    fn take_over(&self, max: usize) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        let _ = max;
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Makes every call answered so far durable: the completions, dead
    /// letters and removals that a journal defers to its next sync.
    ///
    /// [`FastAckHandle::shutdown`](super::FastAckHandle::shutdown) calls it
    /// once the workers have stopped, so an event processed just before a
    /// graceful shutdown does not run again after the restart. The default
    /// does nothing (a journal that makes each call durable before it
    /// answers).
    fn sync(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

impl<J: Journal + ?Sized> Journal for Arc<J> {
    fn append(&self, records: Vec<Record>) -> BoxFuture<'_, Result<Vec<Appended>, JournalError>> {
        (**self).append(records)
    }

    fn append_one(&self, record: Record) -> BoxFuture<'_, Result<Appended, JournalError>> {
        (**self).append_one(record)
    }

    fn complete(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        (**self).complete(seq)
    }

    fn pending(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        (**self).pending()
    }

    fn dead_letter(&self, letter: &DeadLetter) -> BoxFuture<'_, Result<(), JournalError>> {
        (**self).dead_letter(letter)
    }

    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, JournalError>> {
        (**self).dead_letters()
    }

    fn remove_dead_letter(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        (**self).remove_dead_letter(seq)
    }

    fn withdraw(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        (**self).withdraw(seq)
    }

    fn take_over_interval(&self) -> Option<Duration> {
        (**self).take_over_interval()
    }

    fn take_over(&self, max: usize) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        (**self).take_over(max)
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        (**self).sync()
    }
}

/// Why a [`Journal`] operation failed.
///
/// The fast-ack layer answers `503` with `Retry-After` when an append fails,
/// whatever the kind.
#[derive(Debug)]
#[non_exhaustive]
pub enum JournalError {
    /// Reading or writing the journal's storage failed.
    Io(std::io::Error),
    /// The journal's backend is unreachable or did not answer in time.
    Unavailable(Box<dyn StdError + Send + Sync>),
    /// A stored entry cannot be decoded.
    Corrupt {
        /// The entry, when known.
        seq: Option<u64>,
        /// What is wrong with it.
        reason: String,
    },
    /// An earlier write failed, so the journal refuses writes until it is
    /// recovered (it cannot vouch for what is on disk).
    Failed,
    /// Another error of the journal's backend.
    Other(Box<dyn StdError + Send + Sync>),
}

impl JournalError {
    /// A [`JournalError::Unavailable`] from any error.
    pub fn unavailable(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Unavailable(error.into())
    }

    /// A [`JournalError::Other`] from any error.
    pub fn other(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Other(error.into())
    }

    pub(crate) fn corrupt(seq: Option<u64>, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            seq,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(error) => write!(f, "journal I/O failed: {error}"),
            Self::Unavailable(error) => write!(f, "journal unavailable: {error}"),
            Self::Corrupt {
                seq: Some(seq),
                reason,
            } => {
                write!(f, "journal entry {seq} is corrupt: {reason}")
            }
            Self::Corrupt { seq: None, reason } => write!(f, "journal is corrupt: {reason}"),
            Self::Failed => f.write_str("journal refuses writes after an earlier failure"),
            Self::Other(error) => write!(f, "journal failed: {error}"),
        }
    }
}

impl StdError for JournalError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Io(error) => Some(error),
            Self::Unavailable(error) | Self::Other(error) => Some(&**error),
            Self::Corrupt { .. } | Self::Failed => None,
        }
    }
}

impl From<std::io::Error> for JournalError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

/// A [`Journal`] in memory: fast, and lost with the process.
///
/// With it, an event answered `2xx` and not yet processed is lost if the
/// process dies (a deploy, a crash). Use a durable journal where that
/// matters. Clones share the same entries.
///
/// ```
/// use taskhook::fast_ack::journal::{Appended, Journal, MemoryJournal, Record};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let journal = MemoryJournal::new();
/// let appended = journal.append(vec![Record::new(None, "a".into())]).await.unwrap();
/// assert_eq!(appended, [Appended::Seq(0)]);
/// assert_eq!(journal.pending().await.unwrap().len(), 1);
/// journal.complete(0).await.unwrap();
/// assert!(journal.is_empty());
/// # }
/// ```
#[derive(Clone, Default)]
pub struct MemoryJournal {
    state: Arc<Mutex<MemoryState>>,
}

#[derive(Default)]
struct MemoryState {
    next_seq: u64,
    pending: BTreeMap<u64, Entry>,
    dead: BTreeMap<u64, DeadLetter>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of pending entries (appended, neither completed nor
    /// dead-lettered).
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    /// `true` when no entry is pending.
    pub fn is_empty(&self) -> bool {
        self.lock().pending.is_empty()
    }

    /// The number of dead letters kept.
    pub fn dead_letter_count(&self) -> usize {
        self.lock().dead.len()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // The state is consistent after every statement, so a panic while
        // the lock was held cannot have left it half-updated.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for MemoryJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryJournal")
            .field("pending", &state.pending.len())
            .field("dead_letters", &state.dead.len())
            .finish()
    }
}

impl Journal for MemoryJournal {
    fn append(&self, records: Vec<Record>) -> BoxFuture<'_, Result<Vec<Appended>, JournalError>> {
        let mut state = self.lock();
        let mut seqs = Vec::with_capacity(records.len());
        for record in records {
            let seq = state.next_seq;
            state.next_seq += 1;
            state.pending.insert(seq, record.into_entry(seq));
            seqs.push(Appended::Seq(seq));
        }
        Box::pin(std::future::ready(Ok(seqs)))
    }

    fn append_one(&self, record: Record) -> BoxFuture<'_, Result<Appended, JournalError>> {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.pending.insert(seq, record.into_entry(seq));
        Box::pin(std::future::ready(Ok(Appended::Seq(seq))))
    }

    fn complete(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        self.lock().pending.remove(&seq);
        Box::pin(Done)
    }

    fn pending(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        let entries = self.lock().pending.values().cloned().collect();
        Box::pin(std::future::ready(Ok(entries)))
    }

    fn dead_letter(&self, letter: &DeadLetter) -> BoxFuture<'_, Result<(), JournalError>> {
        let mut state = self.lock();
        state.pending.remove(&letter.seq());
        state.dead.insert(letter.seq(), letter.clone());
        Box::pin(Done)
    }

    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, JournalError>> {
        let letters = self.lock().dead.values().cloned().collect();
        Box::pin(std::future::ready(Ok(letters)))
    }

    fn remove_dead_letter(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        self.lock().dead.remove(&seq);
        Box::pin(Done)
    }
}

/// A call that is done when it returns: a `Box` of it does not allocate (it
/// has no size), unlike a boxed `std::future::Ready`.
struct Done;

impl Future for Done {
    type Output = Result<(), JournalError>;

    fn poll(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::task::Poll::Ready(Ok(()))
    }
}
