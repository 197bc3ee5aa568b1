//! The state one [`FastAckLayer`](super::FastAckLayer) shares with every
//! service it makes, its workers and its handles, and the one owner of an
//! event's life: each transition (accept, recover, complete, refuse, retry,
//! dead-letter, replay, dismiss, shut down) is one method here that updates
//! the queue, the journal, the counters, the metrics (feature `metrics`)
//! and the log together. The queue itself is plain state in
//! [`queue`](super::queue); the workers pop, call and report; the handle
//! delegates.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;

use super::dead_letter::{DeadLetter, DeadLetters, Failure};
use super::handle::{ReplayError, ShutdownReport, Stats};
use super::job::Job;
use super::journal::{Appended, Entry, Journal, JournalError, MemoryJournal};
use super::queue::{Filled, Left, NoSlot, Queue, Signal, Take};
use super::retry::RetryPolicy;
use crate::metrics::record::{self, AttemptStart, Duplicate, FastAckMetrics, Outcome, Rejected};
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
    /// Reads the events of jobs rebuilt from the journal; `None`: the
    /// default shape.
    pub(crate) profile: Option<Arc<dyn crate::provider::Profile>>,
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
            profile: None,
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

impl From<NoSlot> for Refusal {
    fn from(no_slot: NoSlot) -> Self {
        match no_slot {
            NoSlot::Full => Self::Full,
            NoSlot::Starting => Self::Starting,
            NoSlot::ShuttingDown => Self::ShuttingDown,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    rejected_full: AtomicU64,
    rejected_unavailable: AtomicU64,
    processed: AtomicU64,
    refused: AtomicU64,
    failed_attempts: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    dead_letters_dropped: AtomicU64,
    replayed: AtomicU64,
    duplicates: AtomicU64,
    recovered: AtomicU64,
    journal_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

type Starter = Box<dyn FnOnce(&tokio::runtime::Handle) + Send>;

/// How far the layer got in starting its workers.
enum Start {
    /// No service was made with the layer yet.
    Unbound,
    /// A service was made; the workers start on the first runtime seen.
    Bound(Starter),
    /// The start-up task was spawned.
    Spawned,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    queue: Mutex<Queue>,
    /// A job is ready, or the phase changed.
    work: Notify,
    /// The last outstanding event finished.
    idle: Notify,
    counters: Counters,
    /// This layer's share of the queue-depth gauge (feature `metrics`;
    /// empty without it). Recorded next to the counters, at each transition.
    metrics: FastAckMetrics,
    dead: DeadLetters,
    dead_tx: broadcast::Sender<DeadLetter>,
    pub(crate) stop: watch::Sender<bool>,
    /// Set once the start-up replay is queued and the workers run.
    started: watch::Sender<bool>,
    start: Mutex<Start>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("phase", &self.queue().phase())
            .finish_non_exhaustive()
    }
}

/// Every critical section leaves its state consistent before it can panic,
/// so a poisoned lock still guards valid data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        let (dead_tx, _) = broadcast::channel(64);
        Self {
            dead: DeadLetters::new(config.dead_letter_capacity),
            queue: Mutex::new(Queue::new(config.capacity)),
            config,
            work: Notify::new(),
            idle: Notify::new(),
            counters: Counters::default(),
            metrics: FastAckMetrics::default(),
            dead_tx,
            stop: watch::Sender::new(false),
            started: watch::Sender::new(false),
            start: Mutex::new(Start::Unbound),
            workers: Mutex::new(Vec::new()),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    /// Acts on what a change of the queue asks for.
    fn signal(&self, signal: Signal) {
        if signal.wake_worker {
            self.work.notify_one();
        }
        if signal.idle {
            self.idle.notify_waiters();
        }
    }

    // ---- start ----------------------------------------------------------------

    /// Binds the one inner service: `true` for the first caller only.
    pub(crate) fn bind(&self, starter: Starter) -> bool {
        let mut start = lock(&self.start);
        if !matches!(*start, Start::Unbound) {
            return false;
        }
        *start = Start::Bound(starter);
        true
    }

    /// Spawns the start-up replay and the workers, once, on `runtime`.
    pub(crate) fn ensure_started(&self, runtime: &tokio::runtime::Handle) {
        let starter = {
            let mut start = lock(&self.start);
            match std::mem::replace(&mut *start, Start::Spawned) {
                Start::Bound(starter) => starter,
                other => {
                    *start = other;
                    return;
                }
            }
        };
        starter(runtime);
    }

    fn spawned(&self) -> bool {
        matches!(*lock(&self.start), Start::Spawned)
    }

    /// Waits until the start-up replay is queued and the workers run.
    pub(crate) async fn started(&self) {
        let mut started = self.started.subscribe();
        let _ = started.wait_for(|started| *started).await;
    }

    /// Loads the dead letters kept in the journal (at start-up).
    pub(crate) async fn load_dead_letters(&self) {
        match self.config.journal.dead_letters().await {
            Ok(letters) => {
                for letter in letters {
                    let dropped = self.dead.push(letter);
                    self.drop_dead_letters(dropped).await;
                }
            }
            Err(error) => {
                bump(&self.counters.journal_errors);
                tracing::error!(%error, "could not load the dead letters from the journal");
            }
        }
    }

    /// Counts a journal call that failed while the layer ran (reading the
    /// pending entries, taking over).
    pub(crate) fn journal_failed(&self) {
        bump(&self.counters.journal_errors);
    }

    /// Queues entries read back from the journal (`how`: "replaying pending"
    /// at start-up, "took over" later), in order; an entry that cannot be
    /// decoded is left pending for a human to look at.
    pub(crate) fn recover(&self, entries: Vec<Entry>, how: &'static str) {
        if !entries.is_empty() {
            tracing::info!(count = entries.len(), "{how} journal entries");
        }
        for entry in entries {
            match Job::from_entry(&entry) {
                Ok(mut job) => {
                    if let Some(profile) = &self.config.profile {
                        job.reparse(profile.as_ref());
                    }
                    let signal = self.queue().push_recovered(job);
                    bump(&self.counters.recovered);
                    record::recovered();
                    self.metrics.enqueued();
                    self.signal(signal);
                }
                Err(error) => {
                    bump(&self.counters.journal_errors);
                    tracing::error!(%error, "skipping a journal entry that cannot be decoded");
                }
            }
        }
    }

    /// Opens intake once the start-up replay is queued and the workers run.
    pub(crate) fn open(&self, workers: Vec<JoinHandle<()>>) {
        lock(&self.workers).extend(workers);
        self.queue().open();
        self.started.send_replace(true);
    }

    /// The room in the queue for entries taken over from the journal.
    pub(crate) fn room(&self) -> usize {
        self.queue().room()
    }

    // ---- accept ---------------------------------------------------------------

    /// Takes a slot in the queue for an event about to be journaled.
    pub(crate) fn reserve(self: &Arc<Self>) -> Result<Reservation, Refusal> {
        match self.queue().reserve() {
            Ok(()) => Ok(Reservation {
                shared: Some(Arc::clone(self)),
            }),
            Err(no_slot) => {
                if no_slot == NoSlot::Full {
                    bump(&self.counters.rejected_full);
                } else {
                    bump(&self.counters.rejected_unavailable);
                }
                record::rejected(match no_slot {
                    NoSlot::Full => Rejected::QueueFull,
                    NoSlot::Starting => Rejected::Starting,
                    NoSlot::ShuttingDown => Rejected::ShuttingDown,
                });
                Err(no_slot.into())
            }
        }
    }

    /// Journals `job` and queues it in the reserved slot. On `Err` nothing
    /// claims the event was accepted.
    // An `async` block rather than an `async fn`, over an owned `Shared`:
    // the accept future (boxed per request) keeps the job once.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn accept(
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
                    record::duplicate(Duplicate::Journaled);
                    return Ok(Admitted::Duplicate);
                }
                Err(error) => {
                    bump(&self.counters.rejected_unavailable);
                    record::rejected(Rejected::JournalUnavailable);
                    tracing::warn!(%error, "journal append failed; answering 503");
                    return Err(Refusal::Journal(error));
                }
            };
            job.seq = seq;
            if let Err(job) = reservation.fill(job) {
                // Stopped while the append ran: nobody would process it.
                self.withdraw(job.seq).await;
                bump(&self.counters.rejected_unavailable);
                record::rejected(Rejected::ShuttingDown);
                return Err(Refusal::ShuttingDown);
            }
            bump(&self.counters.accepted);
            record::accepted();
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

    // ---- run ------------------------------------------------------------------

    /// The next job for a worker, or `None` once stopped.
    pub(crate) async fn pop(&self) -> Option<Job> {
        let mut woken = false;
        loop {
            let notified = self.work.notified();
            tokio::pin!(notified);
            {
                let mut queue = self.queue();
                match queue.take(woken) {
                    Take::Stopped => return None,
                    Take::Job(mut job, signal) => {
                        drop(queue);
                        job.attempt_started = AttemptStart::now();
                        self.signal(signal);
                        return Some(job);
                    }
                    // Registered while the queue is locked, so a job pushed
                    // after this check wakes this worker.
                    Take::Park => {
                        notified.as_mut().enable();
                    }
                }
            }
            notified.await;
            woken = true;
        }
    }

    /// The inner service answered a `1xx` to `3xx`: the event is done.
    pub(crate) async fn complete(&self, job: Job, status: http::StatusCode) {
        self.metrics.attempt_ended(job.attempt_started, Outcome::Ok);
        tracing::debug!(seq = job.seq, %status, "event processed");
        self.done(job, &self.counters.processed).await;
    }

    /// The inner service answered a `4xx`: it refused an event the provider
    /// was told is safe. Not retried (the answer would be the same); a dead
    /// letter unless the layer was told otherwise.
    pub(crate) async fn refuse(&self, job: Job, failure: Failure) {
        self.metrics
            .attempt_ended(job.attempt_started, Outcome::Refused);
        if self.config.dead_letter_refusals {
            self.dead_letter(job, failure).await;
            return;
        }
        tracing::warn!(
            seq = job.seq,
            task_id = job.task_id.as_deref(),
            %failure,
            "the handler refused the event (4xx); not retried"
        );
        self.done(job, &self.counters.refused).await;
    }

    /// An attempt failed (`5xx`, error, panic): retried after the policy's
    /// delay (no sooner than the answer's `retry_after`, capped by the
    /// policy), or a dead letter after the last attempt.
    pub(crate) async fn fail(
        self: &Arc<Self>,
        job: Job,
        failure: Failure,
        retry_after: Option<Duration>,
    ) {
        bump(&self.counters.failed_attempts);
        if job.attempts >= self.config.retry.max_attempts() {
            self.metrics
                .attempt_ended(job.attempt_started, Outcome::DeadLetter);
            self.dead_letter(job, failure).await;
            return;
        }
        let delay = self.config.retry.delay_after(job.attempts, retry_after);
        tracing::warn!(
            seq = job.seq,
            task_id = job.task_id.as_deref(),
            attempt = job.attempts,
            %failure,
            retry_in = ?delay,
            "attempt failed; will retry"
        );
        self.metrics
            .attempt_ended(job.attempt_started, Outcome::Retry);
        bump(&self.counters.retried);
        self.queue().wait_retry(job.seq);
        let shared = Arc::clone(self);
        let mut stop = self.stop.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {
                    let signal = shared.queue().retry(job);
                    shared.signal(signal);
                }
                _ = stop.wait_for(|stopped| *stopped) => {}
            }
        });
    }

    /// The last attempt failed, or the handler refused the event: keep it
    /// as a dead letter, in memory and in the journal.
    async fn dead_letter(&self, job: Job, failure: Failure) {
        let seq = job.seq;
        let letter = DeadLetter::from_job(job, failure, SystemTime::now());
        let refused = letter.failure().is_refusal();
        if refused {
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
        let dropped = self.dead.push(letter.clone());
        self.drop_dead_letters(dropped).await;
        bump(if refused {
            &self.counters.refused
        } else {
            &self.counters.dead_lettered
        });
        record::dead_letter();
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

    /// A finished event: done in the journal, counted in `counter`, out of
    /// the queue.
    async fn done(&self, job: Job, counter: &AtomicU64) {
        if let Err(error) = self.config.journal.complete(job.seq).await {
            // Still pending in the journal: replayed after a restart, so
            // processed at least once.
            bump(&self.counters.journal_errors);
            tracing::error!(seq = job.seq, %error, "journal could not mark the event done");
        }
        bump(counter);
        self.finish(job.seq);
    }

    fn finish(&self, seq: u64) {
        let signal = self.queue().finish(seq);
        self.metrics.finished();
        self.signal(signal);
    }

    /// Forgets, in the journal too, the dead letters dropped because the
    /// list was full.
    async fn drop_dead_letters(&self, dropped: Vec<DeadLetter>) {
        for letter in dropped {
            bump(&self.counters.dead_letters_dropped);
            tracing::warn!(seq = letter.seq(), "dead letter dropped: the list is full");
            self.forget_dead_letter(letter.seq()).await;
        }
    }

    /// Removes the dead letter `seq` from the journal; a failure is logged
    /// and counted (the journal keeps it, and loads it at the next start).
    async fn forget_dead_letter(&self, seq: u64) {
        if let Err(error) = self.config.journal.remove_dead_letter(seq).await {
            bump(&self.counters.journal_errors);
            tracing::error!(seq, %error, "journal could not drop a dead letter");
        }
    }

    // ---- dead letters -----------------------------------------------------------

    pub(crate) fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.list()
    }

    pub(crate) fn dead_letter_by_seq(&self, seq: u64) -> Option<DeadLetter> {
        self.dead.get(seq)
    }

    pub(crate) fn subscribe_dead_letters(&self) -> broadcast::Receiver<DeadLetter> {
        self.dead_tx.subscribe()
    }

    /// Sends the dead letter `seq` through the journal and the queue again.
    pub(crate) async fn replay(self: &Arc<Self>, seq: u64) -> Result<u64, ReplayError> {
        // Taken out first, so two concurrent replays cannot both run it.
        let letter = self.dead.remove(seq).ok_or(ReplayError::NotFound(seq))?;
        let reservation = match self.reserve() {
            Ok(reservation) => reservation,
            Err(refusal) => {
                self.dead.push(letter);
                return Err(refusal.into());
            }
        };
        let mut job = letter.job().clone();
        if let Some(profile) = &self.config.profile {
            job.reparse(profile.as_ref());
        }
        job.attempts = 0;
        job.span = tracing::Span::current();
        match Arc::clone(self).accept(reservation, job).await {
            Ok(Admitted::Duplicate) => {
                // The journal says this task is already there (or done):
                // nothing to run again.
                self.forget_dead_letter(seq).await;
                Err(ReplayError::Duplicate)
            }
            Ok(Admitted::Queued(new_seq)) => {
                self.forget_dead_letter(seq).await;
                bump(&self.counters.replayed);
                record::replayed();
                tracing::info!(
                    seq,
                    new_seq,
                    task_id = letter.task_id(),
                    "dead letter replayed"
                );
                Ok(new_seq)
            }
            Err(refusal) => {
                self.dead.push(letter);
                Err(refusal.into())
            }
        }
    }

    /// Forgets the dead letter `seq`, in memory and in the journal.
    pub(crate) async fn dismiss(&self, seq: u64) -> Result<Option<DeadLetter>, JournalError> {
        let Some(letter) = self.dead.remove(seq) else {
            return Ok(None);
        };
        if let Err(error) = self.config.journal.remove_dead_letter(seq).await {
            self.dead.push(letter);
            return Err(error);
        }
        Ok(Some(letter))
    }

    // ---- shut down --------------------------------------------------------------

    /// Stops intake, drains until `timeout`, stops the workers and the
    /// retry timers, syncs the journal, and reports what was left (it stays
    /// pending in the journal).
    pub(crate) async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let signal = self.queue().close();
        self.signal(signal);
        let deadline = tokio::time::Instant::now() + timeout;
        if self.spawned() {
            // Let the start-up replay queue the pending entries first, so
            // that they are drained (or reported) too.
            let _ = tokio::time::timeout_at(deadline, self.started()).await;
        }
        self.drained(deadline).await;
        let left = self.queue().stop();
        self.stop.send_replace(true);
        self.work.notify_waiters();
        let workers = std::mem::take(&mut *lock(&self.workers));
        for worker in workers {
            let _ = worker.await;
        }
        // What the workers completed may wait for the journal's next sync.
        if let Err(error) = self.config.journal.sync().await {
            bump(&self.counters.journal_errors);
            tracing::error!(%error, "journal could not sync at shutdown");
        }
        let Left {
            queued,
            in_flight,
            waiting_retry,
        } = left;
        let report = ShutdownReport {
            drained: queued.is_empty() && in_flight.is_empty() && waiting_retry.is_empty(),
            queued,
            in_flight,
            waiting_retry,
        };
        tracing::info!(
            drained = report.drained,
            left = report.left(),
            "fast-ack shut down"
        );
        report
    }

    /// Waits until nothing is outstanding; `true` if that happened.
    async fn drained(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.queue().outstanding() == 0 {
                return true;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return self.queue().outstanding() == 0,
            }
        }
    }

    // ---- counters ---------------------------------------------------------------

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (queued, in_flight, waiting_retry) = self.queue().depths();
        Stats {
            accepted: get(&c.accepted),
            rejected_full: get(&c.rejected_full),
            rejected_unavailable: get(&c.rejected_unavailable),
            processed: get(&c.processed),
            refused: get(&c.refused),
            failed_attempts: get(&c.failed_attempts),
            retried: get(&c.retried),
            dead_lettered: get(&c.dead_lettered),
            dead_letters_dropped: get(&c.dead_letters_dropped),
            replayed: get(&c.replayed),
            duplicates: get(&c.duplicates),
            recovered: get(&c.recovered),
            journal_errors: get(&c.journal_errors),
            queued,
            in_flight,
            waiting_retry,
            dead_letters: self.dead.len(),
        }
    }

    pub(crate) fn queue_depth(&self) -> usize {
        self.queue().depths().0
    }
}

/// A slot in the queue, released on drop unless a job was put in it.
#[derive(Debug)]
pub(crate) struct Reservation {
    shared: Option<Arc<Shared>>,
}

impl Reservation {
    /// Puts `job` in the reserved slot; gives it back once stopped.
    // The job is given back only once stopped, never on the common path.
    #[allow(clippy::result_large_err)]
    fn fill(mut self, job: Job) -> Result<(), Job> {
        let Some(shared) = self.shared.take() else {
            return Err(job);
        };
        let filled = shared.queue().fill(job);
        match filled {
            Filled::Queued(signal) => {
                shared.metrics.enqueued();
                shared.signal(signal);
                Ok(())
            }
            Filled::Stopped(job, signal) => {
                shared.signal(signal);
                Err(job)
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let signal = shared.queue().unreserve();
            shared.signal(signal);
        }
    }
}
