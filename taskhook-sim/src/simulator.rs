//! The simulator: runs tasks against a callback URL with bounded
//! concurrency and reports what happened.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::delivery::{Outcome, Push, PushKind, Schedule, Sender};
use super::report::{Report, TaskRecord};
use super::url::{callback_url, UrlError, UrlPolicy};
use super::workload::{DuplicateKind, Task, Workload};

/// The default number of HTTP requests in flight at once.
pub(crate) const DEFAULT_CONCURRENCY: usize = 64;

/// The provider's sending side: validates a callback URL, then pushes every
/// task of a workload to it with the provider's timeout and retries, and
/// reports every attempt.
///
/// At most [`concurrency`](Self::concurrency) requests are in flight at
/// once; a push waiting for its next retry holds no slot, so a receiver
/// answering 503 does not stall the other tasks. Tasks start in order as
/// slots free up. Each task's duplicates are pushed as its
/// [`DuplicateKind`]s say, each with its own retries.
///
/// The simulator speaks plain HTTP/1.1 only: an `https` URL passes the rules
/// but [`connect`](Self::connect) refuses it with [`RunError::TlsUnsupported`].
///
/// ```
/// use std::time::Duration;
/// use taskhook_sim::{Schedule, Simulator, UrlPolicy};
///
/// let simulator = Simulator::new()
///     .url_policy(UrlPolicy::new().allow_loopback_for_local_testing())
///     .schedule(Schedule::provider().time_factor(0.01))
///     .concurrency(32);
/// ```
#[derive(Debug, Clone)]
pub struct Simulator {
    policy: UrlPolicy,
    schedule: Schedule,
    concurrency: usize,
    rate: Option<f64>,
    progress: Progress,
}

impl Simulator {
    /// The provider's rules and schedule, 64 requests in
    /// flight.
    pub fn new() -> Self {
        Self {
            policy: UrlPolicy::new(),
            schedule: Schedule::provider(),
            concurrency: DEFAULT_CONCURRENCY,
            rate: None,
            progress: Progress::default(),
        }
    }

    /// Sets the URL rules (use
    /// [`UrlPolicy::allow_loopback_for_local_testing`] to reach a receiver on
    /// this machine).
    ///
    /// ```
    /// use taskhook_sim::{Simulator, UrlPolicy};
    ///
    /// let simulator = Simulator::new().url_policy(UrlPolicy::new().allow_loopback_for_local_testing());
    /// ```
    #[must_use]
    pub fn url_policy(mut self, policy: UrlPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the timeout, the retry delays and the time factor.
    ///
    /// ```
    /// use taskhook_sim::{Schedule, Simulator};
    ///
    /// let simulator = Simulator::new().schedule(Schedule::provider().time_factor(0.01));
    /// ```
    #[must_use]
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Sets the most HTTP requests in flight at once (default 64, at least 1).
    ///
    /// ```
    /// use taskhook_sim::Simulator;
    ///
    /// let simulator = Simulator::new().concurrency(256);
    /// ```
    #[must_use]
    pub fn concurrency(mut self, requests: usize) -> Self {
        self.concurrency = requests.max(1);
        self
    }

    /// Starts at most `tasks_per_second` tasks a second, evenly spaced
    /// (their duplicates and retries follow their own schedule). Default:
    /// as fast as the concurrency allows; a rate that is not positive and
    /// finite means that too.
    ///
    /// ```
    /// use taskhook_sim::Simulator;
    ///
    /// let simulator = Simulator::new().rate(200.0);
    /// ```
    #[must_use]
    pub fn rate(mut self, tasks_per_second: f64) -> Self {
        self.rate =
            (tasks_per_second.is_finite() && tasks_per_second > 0.0).then_some(tasks_per_second);
        self
    }

    /// A live view of the counters of the current run (for a progress bar).
    /// Every clone of this simulator shares it.
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// Builds the callback URL from `base` ([`callback_url`]), checks it
    /// against the rules, resolves it once, and returns a [`Sender`] bound to
    /// the checked addresses.
    pub async fn connect(&self, base: &str) -> Result<Sender, RunError> {
        let uri = callback_url(base)?;
        let addrs = self.policy.resolve(&uri).await?;
        if uri.scheme_str() != Some("http") {
            return Err(RunError::TlsUnsupported(uri));
        }
        Ok(Sender::new(
            uri,
            addrs,
            self.schedule.clone(),
            self.concurrency,
            self.progress.clone(),
        ))
    }

    /// Generates `workload` and runs it against `base` (see
    /// [`run_tasks`](Self::run_tasks)).
    pub async fn run(&self, base: &str, workload: &Workload) -> Result<Report, RunError> {
        self.run_tasks(base, workload.generate()).await
    }

    /// Connects to `base` and pushes every task (with its duplicates) until
    /// each push is delivered, rejected or exhausted.
    pub async fn run_tasks(&self, base: &str, tasks: Vec<Task>) -> Result<Report, RunError> {
        let sender = self.connect(base).await?;
        Ok(self.run_with(&sender, tasks).await)
    }

    /// Pushes every task with `sender` (made by [`connect`](Self::connect);
    /// reusing one sender reuses its connections).
    pub async fn run_with(&self, sender: &Sender, tasks: Vec<Task>) -> Report {
        self.progress.reset(tasks.len());
        let start = Instant::now();
        let mut records: Vec<TaskRecord> = tasks
            .iter()
            .map(|task| TaskRecord {
                id: task.id().to_owned(),
                kind: task.kind(),
                pushes: Vec::new(),
            })
            .collect();
        let mut running = JoinSet::new();
        for (index, task) in tasks.into_iter().enumerate() {
            if let Some(rate) = self.rate {
                let due = start + Duration::from_secs_f64(index as f64 / rate);
                tokio::time::sleep_until(due).await;
            }
            // Start a task only when its first attempt can go out: this paces
            // the start of tasks instead of spawning them all at once.
            let slot = sender.slot().await;
            let sender = sender.clone();
            let progress = self.progress.clone();
            running.spawn(async move {
                let pushes = run_task(&sender, task, slot).await;
                progress.inner.tasks_done.fetch_add(1, Ordering::Relaxed);
                (index, pushes)
            });
            // Collect finished tasks as we go, so the set stays small.
            while let Some(done) = running.try_join_next() {
                store(&mut records, done);
            }
        }
        while let Some(done) = running.join_next().await {
            store(&mut records, done);
        }
        Report {
            tasks: records,
            elapsed: start.elapsed(),
        }
    }
}

impl Default for Simulator {
    fn default() -> Self {
        Self::new()
    }
}

fn store(records: &mut [TaskRecord], done: Result<(usize, Vec<Push>), tokio::task::JoinError>) {
    match done {
        Ok((index, pushes)) => {
            if let Some(record) = records.get_mut(index) {
                record.pushes = pushes;
            }
        }
        // A task only panics if something is badly broken: let it be seen.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Cancelled (the runtime is shutting down): the record keeps no pushes.
        Err(_) => {}
    }
}

/// One task: its first push, then its duplicates as their kinds say.
async fn run_task(sender: &Sender, task: Task, slot: Option<OwnedSemaphorePermit>) -> Vec<Push> {
    let mut side = JoinSet::new();
    let mut immediate = 0;
    for duplicate in task.duplicates() {
        let kind = PushKind::Duplicate(*duplicate);
        let payload = task.payload().clone();
        let sender = sender.clone();
        match *duplicate {
            DuplicateKind::Immediate => immediate += 1,
            DuplicateKind::Concurrent => {
                side.spawn(async move { sender.push(kind, payload).await });
            }
            DuplicateKind::After(after) => {
                side.spawn(async move {
                    tokio::time::sleep(sender.schedule().scale(after)).await;
                    sender.push(kind, payload).await
                });
            }
        }
    }
    let mut pushes = vec![
        sender
            .push_with(PushKind::First, task.payload().clone(), slot)
            .await,
    ];
    for _ in 0..immediate {
        let kind = PushKind::Duplicate(DuplicateKind::Immediate);
        pushes.push(sender.push(kind, task.payload().clone()).await);
    }
    while let Some(done) = side.join_next().await {
        match done {
            Ok(push) => pushes.push(push),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => {}
        }
    }
    // The first push first, then duplicates in the order they started.
    pushes[1..].sort_by_key(|p| p.started);
    pushes
}

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunError {
    /// The callback URL breaks the provider's rules.
    InvalidUrl(UrlError),
    /// The callback URL is `https`: the simulator speaks plain HTTP only.
    TlsUnsupported(Uri),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::InvalidUrl(error) => write!(f, "invalid callback URL: {error}"),
            RunError::TlsUnsupported(uri) => {
                write!(f, "{uri}: the simulator speaks plain HTTP only")
            }
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::InvalidUrl(error) => Some(error),
            RunError::TlsUnsupported(_) => None,
        }
    }
}

impl From<UrlError> for RunError {
    fn from(error: UrlError) -> Self {
        RunError::InvalidUrl(error)
    }
}

/// Live counters of a run, shared with the [`Simulator`] that made it.
///
/// Reset when a run starts; runs sharing one simulator at the same time
/// share the counters.
///
/// ```
/// use taskhook_sim::Simulator;
///
/// let simulator = Simulator::new();
/// let progress = simulator.progress();
/// assert_eq!(progress.tasks_done(), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Progress {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    tasks_total: AtomicU64,
    tasks_done: AtomicU64,
    pushes_done: AtomicU64,
    attempts: AtomicU64,
    delivered: AtomicU64,
    rejected: AtomicU64,
    exhausted: AtomicU64,
}

impl Progress {
    /// Tasks in the current run.
    pub fn tasks_total(&self) -> u64 {
        self.inner.tasks_total.load(Ordering::Relaxed)
    }

    /// Tasks all of whose pushes have ended.
    pub fn tasks_done(&self) -> u64 {
        self.inner.tasks_done.load(Ordering::Relaxed)
    }

    /// Pushes ended (first pushes and duplicates).
    pub fn pushes_done(&self) -> u64 {
        self.inner.pushes_done.load(Ordering::Relaxed)
    }

    /// HTTP attempts made.
    pub fn attempts(&self) -> u64 {
        self.inner.attempts.load(Ordering::Relaxed)
    }

    /// Pushes delivered (a 2xx).
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }

    /// Pushes rejected (a 4xx).
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// Pushes that used up their retries.
    pub fn exhausted(&self) -> u64 {
        self.inner.exhausted.load(Ordering::Relaxed)
    }

    fn reset(&self, tasks: usize) {
        self.inner
            .tasks_total
            .store(tasks as u64, Ordering::Relaxed);
        for counter in [
            &self.inner.tasks_done,
            &self.inner.pushes_done,
            &self.inner.attempts,
            &self.inner.delivered,
            &self.inner.rejected,
            &self.inner.exhausted,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    pub(super) fn attempted(&self) {
        self.inner.attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn pushed(&self, outcome: Outcome) {
        self.inner.pushes_done.fetch_add(1, Ordering::Relaxed);
        let counter = match outcome {
            Outcome::Delivered => &self.inner.delivered,
            Outcome::Rejected(_) => &self.inner.rejected,
            Outcome::Exhausted => &self.inner.exhausted,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
