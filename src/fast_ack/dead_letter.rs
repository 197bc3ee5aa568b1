//! Dead letters: events whose every attempt failed, kept for inspection and
//! replay.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::job::Job;
use super::journal::{Entry, JournalError};

/// How the last attempt on an event failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The inner service answered this status: a `5xx` (retried), or a
    /// `4xx` (the handler refused the event: not retried).
    Status {
        /// The status of the answer.
        status: StatusCode,
        /// The start of the answer's body, at most 512 bytes (lossy UTF-8,
        /// `…` when cut), so that the log and the dead letter say why;
        /// empty when it had none.
        body: String,
    },
    /// The inner service returned an error (its text).
    Error(String),
    /// The inner service panicked (the panic message, when it was a string).
    Panic(String),
}

impl Failure {
    /// A [`Failure::Status`] with `status` and the start of the body.
    pub fn status(status: StatusCode, body: impl Into<String>) -> Self {
        Self::Status {
            status,
            body: body.into(),
        }
    }

    /// The status of the answer, for a [`Failure::Status`].
    pub fn status_code(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Error(_) | Self::Panic(_) => None,
        }
    }

    /// `true` when the handler refused the event with a `4xx`.
    pub fn is_refusal(&self) -> bool {
        self.status_code().is_some_and(|s| s.is_client_error())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { status, body } if body.is_empty() => {
                write!(f, "the handler answered {status}")
            }
            Self::Status { status, body } => write!(f, "the handler answered {status}: {body}"),
            Self::Error(error) => write!(f, "the handler failed: {error}"),
            Self::Panic(message) => write!(f, "the handler panicked: {message}"),
        }
    }
}

/// An event whose last attempt failed: the request, the last failure, the
/// number of attempts and when it gave up.
///
/// Cheap to clone. Listed by
/// [`FastAckHandle::dead_letters`](super::FastAckHandle::dead_letters),
/// sent to [`FastAckBuilder::on_dead_letter`](super::FastAckBuilder::on_dead_letter)
/// and [`FastAckHandle::subscribe_dead_letters`](super::FastAckHandle::subscribe_dead_letters),
/// replayed with [`FastAckHandle::replay`](super::FastAckHandle::replay).
#[derive(Clone)]
pub struct DeadLetter {
    entry: Entry,
    job: Arc<Job>,
    failure: Failure,
    attempts: u32,
    failed_at: SystemTime,
}

impl DeadLetter {
    /// Rebuilds a dead letter from its journal entry, for a durable
    /// [`Journal`](super::journal::Journal) that reads it back at start-up.
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] when the entry's bytes are not an encoded
    /// request.
    pub fn new(
        entry: Entry,
        failure: Failure,
        attempts: u32,
        failed_at: SystemTime,
    ) -> Result<Self, JournalError> {
        let job = Job::from_entry(&entry)?;
        Ok(Self {
            entry,
            job: Arc::new(job),
            failure,
            attempts,
            failed_at,
        })
    }

    pub(crate) fn from_job(job: Job, failure: Failure, failed_at: SystemTime) -> Self {
        let entry = job.record().into_entry(job.seq);
        Self {
            entry,
            attempts: job.attempts,
            job: Arc::new(job),
            failure,
            failed_at,
        }
    }

    pub(crate) fn job(&self) -> &Job {
        &self.job
    }

    /// The journal sequence number of the event.
    pub fn seq(&self) -> u64 {
        self.entry.seq()
    }

    /// The task id, when the payload layer parsed one.
    pub fn task_id(&self) -> Option<&str> {
        self.job.task_id.as_deref()
    }

    /// The journal entry (what a durable journal persists).
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.job.head.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        &self.job.head.uri
    }

    /// The request HTTP version.
    pub fn version(&self) -> Version {
        self.job.head.version
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.job.head.headers
    }

    /// The request body.
    pub fn body(&self) -> &Bytes {
        &self.job.body
    }

    /// How the last attempt failed.
    pub fn failure(&self) -> &Failure {
        &self.failure
    }

    /// The number of attempts made.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When the last attempt failed.
    pub fn failed_at(&self) -> SystemTime {
        self.failed_at
    }

    /// When the event was accepted (see
    /// [`Attempt::received_at`](super::Attempt::received_at)); a replay
    /// keeps this time.
    pub fn received_at(&self) -> SystemTime {
        self.job.head.received_at
    }
}

/// The JSON of a dead letter for an admin route or a log: `seq`, `task_id`
/// (or `null`), `attempts`, `failure` (`{"kind":"status","status":500,
/// "body":".."}`, `{"kind":"error","message":".."}` or
/// `{"kind":"panic","message":".."}`), `failed_at_ms` and `received_at_ms`
/// (milliseconds since the Unix epoch), `method`, `uri`, and `payload`: the body as JSON (the
/// payload layer validated it), or as a string when it is not JSON.
/// Headers are left out: they may carry secrets.
impl Serialize for DeadLetter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let millis = |time: SystemTime| {
            time.duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        };
        let payload = serde_json::from_slice::<serde_json::Value>(self.body())
            .unwrap_or_else(|_| String::from_utf8_lossy(self.body()).into_owned().into());
        let mut map = serializer.serialize_struct("DeadLetter", 9)?;
        map.serialize_field("seq", &self.seq())?;
        map.serialize_field("task_id", &self.task_id())?;
        map.serialize_field("attempts", &self.attempts)?;
        map.serialize_field("failure", &self.failure)?;
        map.serialize_field("failed_at_ms", &millis(self.failed_at))?;
        map.serialize_field("received_at_ms", &millis(self.received_at()))?;
        map.serialize_field("method", self.method().as_str())?;
        map.serialize_field("uri", &self.uri().to_string())?;
        map.serialize_field("payload", &payload)?;
        map.end()
    }
}

impl Serialize for Failure {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Status { status, body } => {
                let mut map = serializer.serialize_struct("Failure", 3)?;
                map.serialize_field("kind", "status")?;
                map.serialize_field("status", &status.as_u16())?;
                map.serialize_field("body", body)?;
                map.end()
            }
            Self::Error(message) | Self::Panic(message) => {
                let mut map = serializer.serialize_struct("Failure", 2)?;
                let kind = if matches!(self, Self::Error(_)) {
                    "error"
                } else {
                    "panic"
                };
                map.serialize_field("kind", kind)?;
                map.serialize_field("message", message)?;
                map.end()
            }
        }
    }
}

impl fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("seq", &self.seq())
            .field("task_id", &self.task_id())
            .field("failure", &self.failure)
            .field("attempts", &self.attempts)
            .field("failed_at", &self.failed_at)
            .finish()
    }
}

/// The dead letters in memory: bounded, the oldest dropped when full.
#[derive(Debug)]
pub(crate) struct DeadLetters {
    capacity: usize,
    letters: Mutex<VecDeque<DeadLetter>>,
}

impl DeadLetters {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            letters: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<DeadLetter>> {
        // Every update is a single push or remove: never half-done.
        self.letters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `letter`; returns the letters dropped to make room.
    pub(crate) fn push(&self, letter: DeadLetter) -> Vec<DeadLetter> {
        let mut letters = self.lock();
        if let Some(pos) = letters.iter().position(|l| l.seq() == letter.seq()) {
            letters.remove(pos);
        }
        letters.push_back(letter);
        let excess = letters.len().saturating_sub(self.capacity);
        letters.drain(..excess).collect()
    }

    pub(crate) fn list(&self) -> Vec<DeadLetter> {
        self.lock().iter().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn get(&self, seq: u64) -> Option<DeadLetter> {
        self.lock().iter().find(|l| l.seq() == seq).cloned()
    }

    pub(crate) fn remove(&self, seq: u64) -> Option<DeadLetter> {
        let mut letters = self.lock();
        let pos = letters.iter().position(|l| l.seq() == seq)?;
        letters.remove(pos)
    }
}
