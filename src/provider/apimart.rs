//! [`Apimart`]: the default provider.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use super::{ClientErrors, Profile};
use crate::event::PayloadError;
use crate::TaskEvent;

/// APIMart, the default profile: the task-status object
/// (`{"code":200,"data":{"id",...}}`, or bare), final states only,
/// unsigned, 3 retries over about 100 s, and a `4xx` makes it give up.
///
/// It parses with [`TaskEvent::from_bytes`] (or
/// [`from_bytes_in_full`](TaskEvent::from_bytes_in_full) with
/// [`parse_in_full`](Self::parse_in_full)).
///
/// ```
/// use bytes::Bytes;
/// use http::HeaderMap;
/// use taskhook::provider::{Apimart, Profile};
///
/// let body = Bytes::from_static(br#"{"code":200,"data":{"id":"task_1","status":"completed"}}"#);
/// let event = Apimart::new().parse(&body, &HeaderMap::new())?;
/// assert_eq!(event.id(), "task_1");
/// assert!(event.is_final());
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Apimart {
    in_full: bool,
}

impl Apimart {
    /// The profile, parsing the rest of the event on its first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets whether the body is parsed in full at once (default `false`:
    /// the id and the scalar fields now, the rest on first use).
    #[must_use]
    pub fn parse_in_full(mut self, in_full: bool) -> Self {
        self.in_full = in_full;
        self
    }
}

impl Profile for Apimart {
    fn name(&self) -> &str {
        "apimart"
    }

    fn parse(&self, body: &Bytes, _headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
        if self.in_full {
            TaskEvent::from_bytes_in_full(body.clone())
        } else {
            TaskEvent::from_bytes(body.clone())
        }
    }

    fn client_errors(&self) -> ClientErrors {
        ClientErrors::GiveUp
    }

    /// 10 + 30 + 60 s of backoff, each attempt up to 10 s.
    fn retry_horizon(&self) -> Duration {
        Duration::from_secs(10 + 30 + 60 + 4 * 10)
    }
}
