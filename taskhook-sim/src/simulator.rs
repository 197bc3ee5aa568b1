//! The simulator: runs tasks against a callback URL with bounded
//! concurrency and reports what happened.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Uri;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::delivery::{Ids, Outcome, Push, PushKind, Schedule, Sender, SenderConfig};
use super::provider::Provider;
use super::report::{Report, TaskRecord};
use super::sign::Signing;
use super::url::{callback_url, UrlError, UrlPolicy};
use super::workload::{DuplicateKind, Task, Workload};

/// The default number of HTTP requests in flight at once.
pub(crate) const DEFAULT_CONCURRENCY: usize = 64;

/// The provider's sending side: validates a callback URL, then pushes every
/// task of a workload to it with the provider's timeout and retries, and
/// reports every attempt.
///
/// It plays one [`Provider`] ([`provider`](Self::provider); APIMart by
/// default): [`run`](Self::run) generates that provider's bodies, and its
/// [`Schedule::for_provider`] is the schedule unless
/// [`schedule`](Self::schedule) sets another. Each task pushes its
/// intermediate events in order, each as its own push, then its final
/// event; then its duplicates and its late intermediate event, if any.
/// Every attempt is signed with the [`Signing`] set by
/// [`signing`](Self::signing) (none by default).
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
/// use taskhook_sim::{Provider, Schedule, Signing, Simulator, UrlPolicy};
///
/// let simulator = Simulator::new()
///     .url_policy(UrlPolicy::new().allow_loopback_for_local_testing())
///     .schedule(Schedule::provider().time_factor(0.01))
///     .concurrency(32);
///
/// let replicate = Simulator::new()
///     .provider(Provider::Replicate)
///     .schedule(Schedule::for_provider(Provider::Replicate).time_factor(0.01))
///     .signing(Signing::standard_webhooks_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?);
/// # Ok::<(), taskhook_sim::sign::InvalidSigning>(())
/// ```
#[derive(Debug, Clone)]
pub struct Simulator {
    policy: UrlPolicy,
    provider: Provider,
    schedule: Option<Schedule>,
    signing: Signing,
    wall_clock: Option<SystemTime>,
    concurrency: usize,
    rate: Option<f64>,
    progress: Progress,
}

impl Simulator {
    /// APIMart's rules and schedule, no signatures, 64 requests in flight.
    pub fn new() -> Self {
        Self {
            policy: UrlPolicy::new(),
            provider: Provider::Apimart,
            schedule: None,
            signing: Signing::none(),
            wall_clock: None,
            concurrency: DEFAULT_CONCURRENCY,
            rate: None,
            progress: Progress::default(),
        }
    }

    /// Plays `provider`: [`run`](Self::run) generates its bodies, its
    /// [`Schedule::for_provider`] is the schedule (unless
    /// [`schedule`](Self::schedule) sets one, before or after this), and
    /// [`Sender::push`] finds the task id in a payload where it puts it.
    ///
    /// ```
    /// use taskhook_sim::{Provider, Simulator};
    ///
    /// let simulator = Simulator::new().provider(Provider::MidjourneyProxy);
    /// ```
    #[must_use]
    pub fn provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    /// Signs every attempt with `signing` (default [`Signing::none`]).
    ///
    /// ```
    /// use taskhook_sim::{Provider, Signing, Simulator};
    ///
    /// let simulator = Simulator::new()
    ///     .provider(Provider::Fal)
    ///     .signing(Signing::fal([7; 32], "user_sim"));
    /// ```
    #[must_use]
    pub fn signing(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }

    /// Sets the wall-clock time that signature timestamps start from: a
    /// sender made by [`connect`](Self::connect) stamps an attempt with
    /// this time plus the tokio time since it was made
    /// ([`Sender::wall_clock`]). Default: the system clock when the sender
    /// is made. Under `tokio::time::pause` the stamps follow the paused
    /// clock (a retry 6 h later is stamped 6 h later); give the receiver a
    /// clock that follows it too, or a fixed start here and in the test.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use taskhook_sim::Simulator;
    ///
    /// let simulator = Simulator::new()
    ///     .wall_clock(SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_000_000));
    /// ```
    #[must_use]
    pub fn wall_clock(mut self, start: SystemTime) -> Self {
        self.wall_clock = Some(start);
        self
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

    /// Sets the timeout, the retry delays, the time factor and what a `4xx`
    /// means (default: the provider's, [`Schedule::for_provider`]).
    ///
    /// ```
    /// use taskhook_sim::{Schedule, Simulator};
    ///
    /// let simulator = Simulator::new().schedule(Schedule::provider().time_factor(0.01));
    /// ```
    #[must_use]
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = Some(schedule);
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
        let schedule = self
            .schedule
            .clone()
            .unwrap_or_else(|| Schedule::for_provider(self.provider));
        Ok(Sender::new(
            uri,
            addrs,
            SenderConfig {
                schedule,
                provider: self.provider,
                signing: self.signing.clone(),
                wall_clock: self.wall_clock,
                max_in_flight: self.concurrency,
                progress: self.progress.clone(),
            },
        ))
    }

    /// Generates `workload` for the simulator's provider
    /// ([`Workload::generate_for`]) and runs it against `base` (see
    /// [`run_tasks`](Self::run_tasks)).
    pub async fn run(&self, base: &str, workload: &Workload) -> Result<Report, RunError> {
        self.run_tasks(base, workload.generate_for(self.provider))
            .await
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

/// One task: its intermediate events in order, the first push of its final
/// event, then its duplicates as their kinds say and its late intermediate
/// event (right after the final event's first push).
async fn run_task(
    sender: &Sender,
    task: Task,
    mut slot: Option<OwnedSemaphorePermit>,
) -> Vec<Push> {
    let id = |webhook_id: &str| Ids {
        task_id: task.id().to_owned(),
        webhook_id: webhook_id.to_owned(),
    };
    let mut pushes = Vec::new();
    for (n, event) in task.intermediates().iter().enumerate() {
        let kind = PushKind::Intermediate(n);
        let ids = id(event.webhook_id());
        pushes.push(
            sender
                .push_with(kind, event.payload().clone(), &ids, slot.take())
                .await,
        );
    }
    let first = pushes.len();
    let final_ids = Arc::new(id(task.webhook_id()));
    let mut side = JoinSet::new();
    let mut immediate = 0;
    for duplicate in task.duplicates() {
        let kind = PushKind::Duplicate(*duplicate);
        let payload = task.payload().clone();
        let sender = sender.clone();
        let ids = Arc::clone(&final_ids);
        match *duplicate {
            DuplicateKind::Immediate => immediate += 1,
            DuplicateKind::Concurrent => {
                side.spawn(async move { sender.push_with(kind, payload, &ids, None).await });
            }
            DuplicateKind::After(after) => {
                side.spawn(async move {
                    tokio::time::sleep(sender.schedule().scale(after)).await;
                    sender.push_with(kind, payload, &ids, None).await
                });
            }
        }
    }
    pushes.push(
        sender
            .push_with(PushKind::First, task.payload().clone(), &final_ids, slot)
            .await,
    );
    if let (true, Some(event)) = (task.has_late_intermediate(), task.intermediates().last()) {
        let ids = id(event.webhook_id());
        pushes.push(
            sender
                .push_with(PushKind::Late, event.payload().clone(), &ids, None)
                .await,
        );
    }
    for _ in 0..immediate {
        let kind = PushKind::Duplicate(DuplicateKind::Immediate);
        pushes.push(
            sender
                .push_with(kind, task.payload().clone(), &final_ids, None)
                .await,
        );
    }
    while let Some(done) = side.join_next().await {
        match done {
            Ok(push) => pushes.push(push),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => {}
        }
    }
    // The intermediate events and the first push first, then the others in
    // the order they started.
    if let Some(rest) = pushes.get_mut(first + 1..) {
        rest.sort_by_key(|p| p.started);
    }
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
