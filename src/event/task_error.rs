//! [`TaskError`]: the error of a failed task, as the provider sent it.

use std::fmt;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};

/// The error of a failed task: an object `{code, message, type}` or a plain
/// string (then only [`TaskError::message`] is set).
///
/// ```
/// # use taskhook::TaskEvent;
/// let event = TaskEvent::from_slice(br#"{"id":"t","error":{"code":400,"message":"content rejected","type":"invalid_request_error"}}"#)?;
/// let error = event.error().unwrap();
/// assert_eq!(error.message(), Some("content rejected"));
/// assert_eq!(error.kind(), Some("invalid_request_error"));
/// assert_eq!(error.code().and_then(|c| c.as_i64()), Some(400));
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskError {
    // `pub(super)`: the parser (`de.rs`) fills them in.
    pub(super) message: Option<String>,
    pub(super) code: Option<Value>,
    pub(super) kind: Option<String>,
    pub(super) extra: Map<String, Value>,
    pub(super) plain: bool,
}

impl TaskError {
    /// The error message (the whole string for a plain-string error).
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The error code: a number or a string, as sent.
    pub fn code(&self) -> Option<&Value> {
        self.code.as_ref()
    }

    /// The error's `type` field.
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    /// `true` if the error was sent as a plain string.
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// Other fields of an error object.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.message) {
            (Some(kind), Some(message)) => write!(f, "{kind}: {message}"),
            (None, Some(message)) => f.write_str(message),
            (Some(kind), None) => f.write_str(kind),
            (None, None) => f.write_str("task failed"),
        }
    }
}

impl Serialize for TaskError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.plain {
            return serializer.serialize_str(self.message.as_deref().unwrap_or_default());
        }
        let mut map = serializer.serialize_map(None)?;
        if let Some(code) = &self.code {
            map.serialize_entry("code", code)?;
        }
        if let Some(message) = &self.message {
            map.serialize_entry("message", message)?;
        }
        if let Some(kind) = &self.kind {
            map.serialize_entry("type", kind)?;
        }
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}
