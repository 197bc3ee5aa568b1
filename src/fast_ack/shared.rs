//! The state one [`FastAckLayer`](super::FastAckLayer) shares with every
//! service it makes, its workers and its handles: the bounded queue, the
//! journal, the dead letters, the counters.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;

use super::dead_letter::{DeadLetter, DeadLetters, Failure};
use super::job::Job;
use super::journal::{Appended, Journal, JournalError, MemoryJournal};
use super::retry::RetryPolicy;
use crate::response::DEFAULT_RETRY_AFTER;

pub(crate) type DeadLetterCallback = Arc<dyn Fn(&DeadLetter) + Send + Sync>;

/// The layer's settings, fixed once a service is made.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) capacity: usize,
    pub(crate) concurrency: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) dead_letter_capacity: usize,
    pub(crate) dead_letter_refusals: bool,
    pub(crate) retry_after: Duration,
    pub(crate) journal: Arc<dyn Journal>,
    pub(crate) on_dead_letter: Option<DeadLetterCallback>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            capacity: 1024,
            concurrency: 4,
            retry: RetryPolicy::new(),
            dead_letter_capacity: 1024,
            dead_letter_refusals: true,
            retry_after: DEFAULT_RETRY_AFTER,
            journal: Arc::new(MemoryJournal::new()),
            on_dead_letter: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("capacity", &self.capacity)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .field("dead_letter_capacity", &self.dead_letter_capacity)
            .field("dead_letter_refusals", &self.dead_letter_refusals)
            .field("retry_after", &self.retry_after)
            .field("on_dead_letter", &self.on_dead_letter.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No inner service yet, or the start-up replay is running.
    Starting,
    /// Accepting events.
    Open,
    /// Shutting down: no intake, the queue drains.
    Closed,
    /// Shut down: the workers are gone.
    Stopped,
}

/// What became of an event the journal took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admitted {
    /// Journaled and queued under this sequence number.
    Queued(u64),
    /// The journal already had this task.
    Duplicate,
}

/// Why an event was not accepted.
#[derive(Debug)]
pub(crate) enum Refusal {
    Full,
    Starting,
    ShuttingDown,
    Journal(JournalError),
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected_full: AtomicU64,
    pub(crate) rejected_unavailable: AtomicU64,
    pub(crate) processed: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) dead_letters_dropped: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) recovered: AtomicU64,
    pub(crate) journal_errors: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The queue: every event accepted and not finished is in exactly one of
/// `reserved` (being journaled), `ready`, `running` or `waiting`, and their
/// sum is bounded by the capacity.
#[derive(Debug)]
pub(crate) struct QueueState {
    pub(crate) phase: Phase,
    pub(crate) reserved: usize,
    pub(crate) ready: VecDeque<Job>,
    pub(crate) running: BTreeSet<u64>,
    pub(crate) waiting: BTreeSet<u64>,
    /// Workers parked in [`Shared::pop`], waiting for a job.
    parked: usize,
    /// Workers woken for a job that have not looked at the queue yet.
    waking: usize,
}

impl QueueState {
    fn outstanding(&self) -> usize {
        self.reserved + self.ready.len() + self.running.len() + self.waiting.len()
    }

    /// Decides whether to wake a parked worker for the jobs in `ready`:
    /// only if none is already on its way. The woken worker wakes the next
    /// one if it leaves jobs behind, so a burst wakes workers one at a time,
    /// as fast as they take jobs: a handler that waits on I/O still gets
    /// every worker (each one wakes the next before it waits), and a
    /// handler that never waits gets one worker draining the burst, instead
    /// of all of them woken to find the queue empty.
    fn wake_one(&mut self) -> bool {
        if self.ready.is_empty() || self.waking > 0 || self.parked == 0 {
            return false;
        }
        self.parked -= 1;
        self.waking += 1;
        true
    }
}

type Starter = Box<dyn FnOnce(&tokio::runtime::Handle) + Send>;

pub(crate) struct Shared {
    pub(crate) config: Config,
    state: Mutex<QueueState>,
    /// A job is ready, or the phase changed.
    work: Notify,
    /// The last outstanding event finished.
    idle: Notify,
    pub(crate) counters: Counters,
    pub(crate) dead: DeadLetters,
    pub(crate) dead_tx: broadcast::Sender<DeadLetter>,
    pub(crate) stop: watch::Sender<bool>,
    /// Set once the start-up replay is queued and the workers run.
    pub(crate) started: watch::Sender<bool>,
    /// Set when a service is bound; taken to spawn the workers.
    starter: Mutex<Option<Starter>>,
    /// The start-up task was spawned.
    pub(crate) spawned: AtomicBool,
    bound: Mutex<bool>,
    pub(crate) workers: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("phase", &self.lock().phase)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        let (dead_tx, _) = broadcast::channel(64);
        Self {
            dead: DeadLetters::new(config.dead_letter_capacity),
            config,
            state: Mutex::new(QueueState {
                phase: Phase::Starting,
                reserved: 0,
                ready: VecDeque::new(),
                running: BTreeSet::new(),
                waiting: BTreeSet::new(),
                parked: 0,
                waking: 0,
            }),
            work: Notify::new(),
            idle: Notify::new(),
            counters: Counters::default(),
            dead_tx,
            stop: watch::Sender::new(false),
            started: watch::Sender::new(false),
            starter: Mutex::new(None),
            spawned: AtomicBool::new(false),
            bound: Mutex::new(false),
            workers: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every critical section leaves the state consistent before it can
        // panic, so a poisoned lock still guards valid data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds the one inner service: `true` for the first caller only.
    pub(crate) fn bind(&self, starter: Starter) -> bool {
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        if *bound {
            return false;
        }
        *bound = true;
        *self.starter.lock().unwrap_or_else(|e| e.into_inner()) = Some(starter);
        true
    }

    /// Spawns the start-up replay and the workers, once, on `runtime`.
    pub(crate) fn ensure_started(&self, runtime: &tokio::runtime::Handle) {
        if self.spawned.load(Ordering::Acquire) {
            return;
        }
        let starter = self
            .starter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(start) = starter {
            self.spawned.store(true, Ordering::Release);
            start(runtime);
        }
    }

    /// Opens intake once the start-up replay is queued (unless a shutdown
    /// began meanwhile).
    pub(crate) fn open(&self) {
        let mut state = self.lock();
        if state.phase == Phase::Starting {
            state.phase = Phase::Open;
        }
        self.started.send_replace(true);
    }

    /// Takes a slot in the queue for an event about to be journaled.
    pub(crate) fn reserve(self: &Arc<Self>) -> Result<Reservation, Refusal> {
        let mut state = self.lock();
        let refusal = match state.phase {
            Phase::Open if state.outstanding() < self.config.capacity => {
                state.reserved += 1;
                return Ok(Reservation {
                    shared: Some(Arc::clone(self)),
                });
            }
            Phase::Open => {
                bump(&self.counters.rejected_full);
                return Err(Refusal::Full);
            }
            Phase::Starting => Refusal::Starting,
            Phase::Closed | Phase::Stopped => Refusal::ShuttingDown,
        };
        bump(&self.counters.rejected_unavailable);
        Err(refusal)
    }

    /// Journals `job` and queues it in the reserved slot. On `Err` nothing
    /// claims the event was accepted.
    // An `async` block rather than an `async fn`, over an owned `Shared`:
    // the accept future (boxed per request) keeps the job once.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn admit(
        self: Arc<Self>,
        reservation: Reservation,
        mut job: Job,
    ) -> impl Future<Output = Result<Admitted, Refusal>> + Send + 'static {
        async move {
            let record = job.record();
            let seq = match self.config.journal.append_one(record).await {
                Ok(Appended::Seq(seq)) => seq,
                Ok(Appended::Duplicate) => {
                    bump(&self.counters.duplicates);
                    return Ok(Admitted::Duplicate);
                }
                Err(error) => {
                    bump(&self.counters.rejected_unavailable);
                    tracing::warn!(%error, "journal append failed; answering 503");
                    return Err(Refusal::Journal(error));
                }
            };
            job.seq = seq;
            if let Err(job) = reservation.push(job) {
                // Stopped while the append ran: nobody would process it.
                self.withdraw(job.seq).await;
                bump(&self.counters.rejected_unavailable);
                return Err(Refusal::ShuttingDown);
            }
            Ok(Admitted::Queued(seq))
        }
    }

    /// Takes back a journal entry that will not be queued.
    async fn withdraw(&self, seq: u64) {
        if let Err(error) = self.config.journal.withdraw(seq).await {
            bump(&self.counters.journal_errors);
            tracing::error!(seq, %error, "could not withdraw a journal entry");
        }
    }

    /// Queues an entry found pending in the journal at start-up (it was
    /// accepted before; the capacity does not apply).
    pub(crate) fn push_recovered(&self, job: Job) {
        let mut state = self.lock();
        state.ready.push_back(job);
        let wake = state.wake_one();
        drop(state);
        bump(&self.counters.recovered);
        if wake {
            self.work.notify_one();
        }
    }

    /// The room left in the queue for entries taken over from the journal:
    /// `0` unless intake is open.
    pub(crate) fn room(&self) -> usize {
        let state = self.lock();
        match state.phase {
            Phase::Open => self.config.capacity.saturating_sub(state.outstanding()),
            Phase::Starting | Phase::Closed | Phase::Stopped => 0,
        }
    }

    /// The next job for a worker, or `None` once stopped.
    pub(crate) async fn pop(&self) -> Option<Job> {
        let mut woken = false;
        loop {
            let notified = self.work.notified();
            tokio::pin!(notified);
            {
                let mut state = self.lock();
                if woken {
                    // After `stop` (which wakes every worker) the counts
                    // no longer matter.
                    state.waking = state.waking.saturating_sub(1);
                }
                if state.phase == Phase::Stopped {
                    return None;
                }
                if let Some(job) = state.ready.pop_front() {
                    state.running.insert(job.seq);
                    let wake = state.wake_one();
                    drop(state);
                    if wake {
                        self.work.notify_one();
                    }
                    return Some(job);
                }
                // Registered while the queue is locked, so a job pushed
                // after this check wakes this worker.
                state.parked += 1;
                notified.as_mut().enable();
            }
            notified.await;
            woken = true;
        }
    }

    /// A running job is finished (processed or dead-lettered).
    pub(crate) fn finish(&self, seq: u64) {
        let mut state = self.lock();
        state.running.remove(&seq);
        if state.outstanding() == 0 {
            self.idle.notify_waiters();
        }
    }

    /// A running job waits for its retry.
    pub(crate) fn to_waiting(&self, seq: u64) {
        let mut state = self.lock();
        state.running.remove(&seq);
        state.waiting.insert(seq);
    }

    /// A job's retry delay is over: back in the queue.
    pub(crate) fn retry_now(&self, job: Job) {
        let mut state = self.lock();
        if state.phase == Phase::Stopped {
            return;
        }
        state.waiting.remove(&job.seq);
        state.ready.push_back(job);
        let wake = state.wake_one();
        drop(state);
        if wake {
            self.work.notify_one();
        }
    }

    /// The last attempt failed, or the handler refused the event: keep it
    /// as a dead letter.
    pub(crate) async fn dead_letter(&self, job: Job, failure: Failure) {
        let seq = job.seq;
        let letter = DeadLetter::from_job(job, failure, SystemTime::now());
        if letter.failure().is_refusal() {
            tracing::error!(
                seq,
                task_id = letter.task_id(),
                failure = %letter.failure(),
                "the handler refused the event (4xx): kept as a dead letter, not retried"
            );
        } else {
            tracing::error!(
                seq,
                task_id = letter.task_id(),
                attempts = letter.attempts(),
                failure = %letter.failure(),
                "event dead-lettered"
            );
        }
        if let Err(error) = self.config.journal.dead_letter(&letter).await {
            // The entry stays pending in the journal: a durable journal
            // replays it after a restart (at least once, never lost).
            bump(&self.counters.journal_errors);
            tracing::error!(seq, %error, "journal could not record a dead letter");
        }
        for dropped in self.dead.push(letter.clone()) {
            bump(&self.counters.dead_letters_dropped);
            tracing::warn!(seq = dropped.seq(), "dead letter dropped: the list is full");
            if let Err(error) = self.config.journal.remove_dead_letter(dropped.seq()).await {
                bump(&self.counters.journal_errors);
                tracing::error!(seq = dropped.seq(), %error, "journal could not drop a dead letter");
            }
        }
        if letter.failure().is_refusal() {
            bump(&self.counters.refused);
        } else {
            bump(&self.counters.dead_lettered);
        }
        if let Some(callback) = &self.config.on_dead_letter {
            // A panicking callback must not take a worker down with it.
            let call = std::panic::AssertUnwindSafe(|| callback(&letter));
            if std::panic::catch_unwind(call).is_err() {
                tracing::error!(seq, "the dead-letter callback panicked");
            }
        }
        let _ = self.dead_tx.send(letter);
        self.finish(seq);
    }

    /// Stops intake (shutdown begins).
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        if matches!(state.phase, Phase::Starting | Phase::Open) {
            state.phase = Phase::Closed;
        }
        if state.outstanding() == 0 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until nothing is outstanding; `true` if that happened.
    pub(crate) async fn drained(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().outstanding() == 0 {
                return true;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return self.lock().outstanding() == 0,
            }
        }
    }

    /// Stops the workers and the retry timers; what is left stays pending in
    /// the journal.
    pub(crate) fn stop(&self) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        let mut state = self.lock();
        state.phase = Phase::Stopped;
        self.stop.send_replace(true);
        self.work.notify_waiters();
        (
            state.ready.iter().map(|job| job.seq).collect(),
            state.running.iter().copied().collect(),
            state.waiting.iter().copied().collect(),
        )
    }
}

/// A slot in the queue, released on drop unless a job was pushed into it.
#[derive(Debug)]
pub(crate) struct Reservation {
    shared: Option<Arc<Shared>>,
}

impl Reservation {
    /// Puts `job` in the reserved slot; gives it back once stopped.
    pub(crate) fn push(mut self, job: Job) -> Result<(), Job> {
        let Some(shared) = self.shared.take() else {
            return Err(job);
        };
        let mut state = shared.lock();
        state.reserved -= 1;
        if state.phase == Phase::Stopped {
            if state.outstanding() == 0 {
                shared.idle.notify_waiters();
            }
            return Err(job);
        }
        state.ready.push_back(job);
        let wake = state.wake_one();
        drop(state);
        bump(&shared.counters.accepted);
        if wake {
            shared.work.notify_one();
        }
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let mut state = shared.lock();
            state.reserved -= 1;
            if state.outstanding() == 0 {
                shared.idle.notify_waiters();
            }
        }
    }
}
