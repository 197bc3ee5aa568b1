//! What a run did: every push of every task, and figures drawn from them.

use std::time::Duration;

use super::delivery::{Outcome, Push, PushKind};
use super::workload::TaskKind;

/// Every push of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskRecord {
    /// The task id.
    pub id: String,
    /// The generated kind (`None` for a task made from a payload of your own).
    pub kind: Option<TaskKind>,
    /// Its pushes: the intermediate events' in order (if its provider
    /// pushes any), the final event's first push, then duplicates and the
    /// late intermediate event in the order they started.
    pub pushes: Vec<Push>,
}

impl TaskRecord {
    /// Whether the final event got a 2xx, by its first push or a duplicate
    /// (intermediate events do not count).
    pub fn delivered(&self) -> bool {
        self.pushes
            .iter()
            .any(|p| p.kind.is_final() && p.outcome == Outcome::Delivered)
    }
}

/// The result of a [`Simulator`](super::Simulator) run.
#[derive(Debug, Clone)]
pub struct Report {
    pub(super) tasks: Vec<TaskRecord>,
    pub(super) elapsed: Duration,
}

/// Counts over a [`Report`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Tasks run.
    pub tasks: usize,
    /// Pushes: first pushes, duplicates, intermediate and late ones.
    pub pushes: usize,
    /// First pushes of the final event (one per task).
    pub first_pushes: usize,
    /// Duplicate pushes injected.
    pub duplicate_pushes: usize,
    /// Pushes of intermediate events, before the final one (none for a
    /// provider that pushes only the final state).
    pub intermediate_pushes: usize,
    /// Intermediate events pushed again after the final one.
    pub late_pushes: usize,
    /// HTTP attempts: pushes plus retries.
    pub attempts: usize,
    /// Retries: attempts after the first of their push.
    pub retries: usize,
    /// Pushes that got a 2xx.
    pub delivered: usize,
    /// Pushes that got a 4xx and were given up at once.
    pub rejected: usize,
    /// Pushes that used up their retries.
    pub exhausted: usize,
    /// Tasks whose final event got a 2xx (by its first push or a
    /// duplicate).
    pub tasks_delivered: usize,
    /// Tasks whose final event no push delivered (a delivered intermediate
    /// event does not count).
    pub tasks_undelivered: usize,
}

impl Report {
    /// Every task, in the order they were given.
    pub fn tasks(&self) -> &[TaskRecord] {
        &self.tasks
    }

    /// The task with this id.
    pub fn task(&self, id: &str) -> Option<&TaskRecord> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// Every push of every task.
    pub fn pushes(&self) -> impl Iterator<Item = &Push> + '_ {
        self.tasks.iter().flat_map(|t| t.pushes.iter())
    }

    /// The wall-clock (tokio) time the run took.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The counts.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            tasks: self.tasks.len(),
            ..Summary::default()
        };
        for task in &self.tasks {
            if task.delivered() {
                summary.tasks_delivered += 1;
            } else {
                summary.tasks_undelivered += 1;
            }
        }
        for push in self.pushes() {
            summary.pushes += 1;
            match push.kind {
                PushKind::First => summary.first_pushes += 1,
                PushKind::Duplicate(_) => summary.duplicate_pushes += 1,
                PushKind::Intermediate(_) => summary.intermediate_pushes += 1,
                PushKind::Late => summary.late_pushes += 1,
            }
            summary.attempts += push.attempts.len();
            summary.retries += push.retries();
            match push.outcome {
                Outcome::Delivered => summary.delivered += 1,
                Outcome::Rejected(_) => summary.rejected += 1,
                Outcome::Exhausted => summary.exhausted += 1,
            }
        }
        summary
    }

    /// The latency of every attempt the receiver answered (any status): how
    /// fast it acks.
    pub fn ack_latencies(&self) -> Latencies {
        Latencies::new(
            self.pushes()
                .flat_map(|p| p.attempts.iter())
                .filter(|a| a.result.status().is_some())
                .map(|a| a.latency)
                .collect(),
        )
    }

    /// Tasks per second of [`elapsed`](Self::elapsed) (0 if no time passed).
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.tasks.len() as f64 / secs
        } else {
            0.0
        }
    }
}

/// Latency samples, sorted, with percentile helpers.
///
/// ```
/// use std::time::Duration;
/// use taskhook_sim::Latencies;
///
/// let l = Latencies::new((1..=100).map(Duration::from_millis).collect());
/// assert_eq!(l.p50(), Some(Duration::from_millis(50)));
/// assert_eq!(l.p99(), Some(Duration::from_millis(99)));
/// assert_eq!(l.max(), Some(Duration::from_millis(100)));
/// assert_eq!(Latencies::new(vec![]).p50(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latencies {
    sorted: Vec<Duration>,
}

impl Latencies {
    /// Sorts `samples`.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }

    /// The samples, smallest first.
    pub fn samples(&self) -> &[Duration] {
        &self.sorted
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The `q` quantile (`0.0..=1.0`, clamped) by the nearest-rank method;
    /// `None` without samples.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        let rank = (q * n as f64).ceil() as usize;
        self.sorted.get(rank.clamp(1, n) - 1).copied()
    }

    /// The median.
    pub fn p50(&self) -> Option<Duration> {
        self.percentile(0.50)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Option<Duration> {
        self.percentile(0.99)
    }

    /// The largest sample.
    pub fn max(&self) -> Option<Duration> {
        self.sorted.last().copied()
    }
}
