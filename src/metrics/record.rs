//! The recording calls the layers make at their transitions, in one place:
//! every metric name (from `names`) and every label value
//! is written here, and listed in the module docs of `taskhook::metrics`.
//!
//! Without the feature `metrics` this file is compiled too, but each call
//! is empty and each type holds nothing: the layers call the same functions
//! either way, and pay nothing when the feature is off.
#![cfg_attr(not(feature = "metrics"), allow(unused_variables))]

#[cfg(feature = "metrics")]
use std::sync::atomic::{AtomicI64, Ordering};

#[cfg(feature = "metrics")]
use ::metrics::{counter, gauge, histogram};
#[cfg(feature = "metrics")]
use tokio::time::Instant;

#[cfg(feature = "metrics")]
use super::names;

/// What one attempt of the inner service ended in (`outcome` of
/// `taskhook_attempts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A `1xx` to `3xx`: the event is done.
    Ok,
    /// A `5xx`, an error or a panic, retried later.
    Retry,
    /// A `5xx`, an error or a panic on the last attempt: a dead letter.
    DeadLetter,
    /// A `4xx`: not retried.
    Refused,
}

/// Why fast-ack answered `503` (`reason` of `taskhook_rejected_total`): the
/// `code` of the answer's JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    QueueFull,
    Starting,
    ShuttingDown,
    JournalUnavailable,
}

/// What recognised a duplicate push (`kind` of `taskhook_duplicates_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Duplicate {
    /// The dedup store: the task is done (`200`, `taskhook-duplicate: done`).
    Done,
    /// A deduplicating journal: the task was accepted before (`200`,
    /// `taskhook-duplicate: journaled`).
    Journaled,
    /// The dedup store: the task stayed in flight for the whole wait bound
    /// (`503 duplicate_in_flight`).
    InFlight,
}

// Every label value below is a literal: the macros then build the key in a
// `static`, with no allocation per call.

/// An event journaled and queued: answered `2xx`.
#[inline]
pub(crate) fn accepted() {
    #[cfg(feature = "metrics")]
    counter!(names::ACCEPTED).increment(1);
}

/// An event answered `503` by fast-ack.
#[inline]
pub(crate) fn rejected(reason: Rejected) {
    #[cfg(feature = "metrics")]
    match reason {
        Rejected::QueueFull => counter!(names::REJECTED, "reason" => "queue_full"),
        Rejected::Starting => counter!(names::REJECTED, "reason" => "starting"),
        Rejected::ShuttingDown => counter!(names::REJECTED, "reason" => "shutting_down"),
        Rejected::JournalUnavailable => {
            counter!(names::REJECTED, "reason" => "journal_unavailable")
        }
    }
    .increment(1);
}

/// A duplicate push answered without running the handler.
#[inline]
pub(crate) fn duplicate(kind: Duplicate) {
    #[cfg(feature = "metrics")]
    match kind {
        Duplicate::Done => counter!(names::DUPLICATES, "kind" => "done"),
        Duplicate::Journaled => counter!(names::DUPLICATES, "kind" => "journaled"),
        Duplicate::InFlight => counter!(names::DUPLICATES, "kind" => "in_flight"),
    }
    .increment(1);
}

/// A journal entry queued again (at start-up, or taken over).
#[inline]
pub(crate) fn recovered() {
    #[cfg(feature = "metrics")]
    counter!(names::RECOVERED).increment(1);
}

/// An event kept as a dead letter (the last attempt failed, or a refusal).
#[inline]
pub(crate) fn dead_letter() {
    #[cfg(feature = "metrics")]
    counter!(names::DEAD_LETTERS).increment(1);
}

/// A dead letter sent through the journal and the queue again.
#[inline]
pub(crate) fn replayed() {
    #[cfg(feature = "metrics")]
    counter!(names::REPLAYED).increment(1);
}

/// One answer of the route (the `MetricsLayer`): its status (`None` for an
/// error of the inner service) and the time from the request to the
/// response head.
#[cfg(feature = "metrics")]
pub(crate) fn answered(status: Option<http::StatusCode>, elapsed: std::time::Duration) {
    // The statuses the layers and the usual handlers answer get a static
    // key; any other one allocates its label (a rare path).
    macro_rules! by_status {
        ($($code:literal => $label:literal),* $(,)?) => {
            match status.map(|status| status.as_u16()) {
                $(Some($code) => counter!(names::CALLBACKS, "status" => $label),)*
                Some(_) => {
                    let label = status.map(|s| s.as_str().to_owned()).unwrap_or_default();
                    counter!(names::CALLBACKS, "status" => label)
                }
                None => counter!(names::CALLBACKS, "status" => "error"),
            }
        };
    }
    by_status!(
        200 => "200", 201 => "201", 202 => "202", 204 => "204",
        400 => "400", 401 => "401", 403 => "403", 404 => "404", 405 => "405",
        408 => "408", 413 => "413", 415 => "415", 422 => "422", 429 => "429",
        500 => "500", 502 => "502", 503 => "503", 504 => "504",
    )
    .increment(1);
    histogram!(names::ACK_DURATION).record(elapsed.as_secs_f64());
}

/// When a worker took a job for its current attempt (carried by the job,
/// for `taskhook_attempt_duration_seconds`). Empty without the feature.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AttemptStart {
    #[cfg(feature = "metrics")]
    at: Option<Instant>,
}

impl AttemptStart {
    /// Now.
    #[inline]
    pub(crate) fn now() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            at: Some(Instant::now()),
        }
    }
}

/// The part of one fast-ack layer's state that its metrics need: its share
/// of the queue-depth gauge (taken back when the layer is dropped, so the
/// gauge stays the sum over the layers alive). Empty without the feature.
#[derive(Debug, Default)]
pub(crate) struct FastAckMetrics {
    /// Events this layer added to `taskhook_queue_depth` and not yet
    /// removed.
    #[cfg(feature = "metrics")]
    depth: AtomicI64,
}

impl FastAckMetrics {
    /// An event entered the queue (accepted, recovered or replayed).
    #[inline]
    pub(crate) fn enqueued(&self) {
        #[cfg(feature = "metrics")]
        {
            self.depth.fetch_add(1, Ordering::Relaxed);
            gauge!(names::QUEUE_DEPTH).increment(1.0);
        }
    }

    /// An event left the queue for good (done, refused or a dead letter).
    #[inline]
    pub(crate) fn finished(&self) {
        #[cfg(feature = "metrics")]
        {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            gauge!(names::QUEUE_DEPTH).decrement(1.0);
        }
    }

    /// The attempt that started at `started` ended in `outcome`.
    #[inline]
    pub(crate) fn attempt_ended(&self, started: AttemptStart, outcome: Outcome) {
        #[cfg(feature = "metrics")]
        {
            if let Some(started) = started.at {
                histogram!(names::ATTEMPT_DURATION).record(started.elapsed().as_secs_f64());
            }
            match outcome {
                Outcome::Ok => counter!(names::ATTEMPTS, "outcome" => "ok"),
                Outcome::Retry => counter!(names::ATTEMPTS, "outcome" => "retry"),
                Outcome::DeadLetter => counter!(names::ATTEMPTS, "outcome" => "dead_letter"),
                Outcome::Refused => counter!(names::ATTEMPTS, "outcome" => "refused"),
            }
            .increment(1);
        }
    }
}

#[cfg(feature = "metrics")]
impl Drop for FastAckMetrics {
    fn drop(&mut self) {
        let left = *self.depth.get_mut();
        if left != 0 {
            gauge!(names::QUEUE_DEPTH).decrement(left as f64);
        }
    }
}
