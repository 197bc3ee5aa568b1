use std::fmt;
use std::future::Future;

use crate::TaskEvent;

/// Fetches the authoritative state of a pushed task, for
/// [`Refetch`](super::Refetch).
///
/// `HttpConfirm` (feature `refetch`) asks the
/// provider's `GET /v1/tasks/{id}`; implement this for another transport or
/// another provider. The layer bounds every call with its own timeout, so an
/// implementation need not.
///
/// ```
/// use taskhook::verify::refetch::{ConfirmError, ConfirmTask, Confirmation};
/// use taskhook::TaskEvent;
///
/// /// Knows one task, completed.
/// struct OneTask;
///
/// impl ConfirmTask for OneTask {
///     async fn confirm(&self, pushed: &TaskEvent) -> Result<Confirmation, ConfirmError> {
///         if pushed.id() != "task_01" {
///             return Err(ConfirmError::not_found());
///         }
///         let event = TaskEvent::from_slice(br#"{"id":"task_01","status":"completed"}"#)
///             .map_err(ConfirmError::unavailable)?;
///         Ok(Confirmation::new(event))
///     }
/// }
/// ```
pub trait ConfirmTask: Send + Sync + 'static {
    /// The provider's current state of the task `pushed` names (by its
    /// [`id`](TaskEvent::id)).
    fn confirm(
        &self,
        pushed: &TaskEvent,
    ) -> impl Future<Output = Result<Confirmation, ConfirmError>> + Send;
}

/// The provider's authoritative state of a task, as fetched.
///
/// [`Refetch`](super::Refetch) puts it in the request extensions when it
/// agrees with the push: a handler that wants links no forger chose reads
/// them from [`Confirmation::event`].
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    event: TaskEvent,
}

impl Confirmation {
    /// Wraps the fetched state.
    pub fn new(event: TaskEvent) -> Self {
        Self { event }
    }

    /// The fetched state.
    pub fn event(&self) -> &TaskEvent {
        &self.event
    }

    /// Consumes `self`, returning the fetched state.
    pub fn into_event(self) -> TaskEvent {
        self.event
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a [`ConfirmTask`] could not confirm a task.
#[derive(Debug)]
pub struct ConfirmError {
    kind: ConfirmErrorKind,
    source: Option<BoxError>,
}

/// The kind of a [`ConfirmError`]: decides the answer to the push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfirmErrorKind {
    /// The provider does not know the task: the push is forged (`403`).
    NotFound,
    /// The provider could not be asked or did not answer usefully (down,
    /// 5xx, rate limited, a timeout, an unreadable answer): `503` with
    /// `Retry-After`, the provider retries the push.
    Unavailable,
    /// The provider refused our credentials (401/403): our misconfiguration,
    /// logged as an error, and `503` so the push is retried once it is
    /// fixed.
    Unauthorized,
}

impl ConfirmError {
    /// The provider does not know the task.
    pub fn not_found() -> Self {
        Self {
            kind: ConfirmErrorKind::NotFound,
            source: None,
        }
    }

    /// The provider could not be asked; `source` says why.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self {
            kind: ConfirmErrorKind::Unavailable,
            source: Some(source.into()),
        }
    }

    /// The provider refused our credentials.
    pub fn unauthorized() -> Self {
        Self {
            kind: ConfirmErrorKind::Unauthorized,
            source: None,
        }
    }

    /// The kind of error.
    pub fn kind(&self) -> ConfirmErrorKind {
        self.kind
    }
}

impl fmt::Display for ConfirmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ConfirmErrorKind::NotFound => f.write_str("the provider does not know the task"),
            ConfirmErrorKind::Unavailable => match &self.source {
                Some(source) => write!(f, "the provider could not be asked: {source}"),
                None => f.write_str("the provider could not be asked"),
            },
            ConfirmErrorKind::Unauthorized => f.write_str("the provider refused our API key"),
        }
    }
}

impl std::error::Error for ConfirmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
