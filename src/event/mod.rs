//! The typed model of a task callback: [`TaskEvent`] and its parts.
//!
//! The provider pushes exactly the body of its "Get Task Status" endpoint, so
//! one parser serves callbacks and polled status alike. The body is usually
//! wrapped in an envelope (`{"code":200,"data":{...}}`); the bare inner object
//! is accepted too.
//!
//! Parsing is lenient where the provider is loose and strict where we must be:
//!
//! - `id` is required and validated (see [`IdError`]): it is the dedup key.
//! - Every other field may be missing. A known field whose JSON type is not
//!   the expected one (say `"progress": "50%"`) does not fail the parse: the
//!   typed accessor returns `None` and the raw value stays readable through
//!   [`TaskEvent::extra`] under its own key.
//! - Unknown fields are kept, never rejected, and readable through
//!   [`TaskEvent::extra`].
//! - `result.<kind>[].url` may be a string or an array of strings; both are
//!   exposed as a list by [`MediaItem::urls`].
//! - `error` may be an object `{code, message, type}` or a plain string.
//!
//! Parsing is a single pass over the body with `serde_json`: no intermediate
//! `serde_json::Value` of the whole document is built.
//!
//! # Example
//!
//! ```
//! use taskhook::{TaskEvent, TaskStatus};
//!
//! let body = br#"{"code":200,"data":{"id":"task_01","status":"completed",
//!     "result":{"images":[{"url":["https://cdn.example/a.png","https://cdn.example/b.png"],
//!                          "expires_at":1763174708}]}}}"#;
//! let event = TaskEvent::from_slice(body)?;
//! assert_eq!(event.id(), "task_01");
//! assert_eq!(event.status(), Some(&TaskStatus::Completed));
//! assert!(event.is_final());
//!
//! let urls: Vec<&str> = event.urls().map(|u| u.url()).collect();
//! assert_eq!(urls, ["https://cdn.example/a.png", "https://cdn.example/b.png"]);
//! assert_eq!(event.urls().next().unwrap().expires_at(), Some(1763174708));
//! # Ok::<(), taskhook::event::PayloadError>(())
//! ```

mod builder;
mod de;
mod error;
mod result;
mod status;
mod task_error;

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};

pub use self::builder::TaskEventBuilder;
pub use self::error::{IdError, PayloadError, PayloadErrorKind};
pub use self::result::{MediaItem, ResultUrl, TaskResult};
pub use self::status::TaskStatus;
pub use self::task_error::TaskError;

/// The longest task id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// A parsed task callback (the provider's task-status object).
///
/// Cheap to clone: the parsed fields live behind an [`Arc`], so the payload
/// layer can put it in request extensions and every later layer, extractor
/// or background worker can hold its own copy.
///
/// # Parsed once, in two steps
///
/// Making an event ([`TaskEvent::from_bytes`], [`TaskEvent::from_slice`])
/// validates the whole body (everything that could make parsing fail is
/// checked there, so a bad body is refused before anyone acknowledges it) and
/// reads the id and the scalar fields: [`id`](Self::id),
/// [`status`](Self::status), [`progress`](Self::progress) and the times. It
/// builds nothing else, so a duplicate that the dedup layer answers, or a
/// handler that only needs the id and status, costs little more than finding
/// the id.
///
/// The rest ([`result`](Self::result), [`error`](Self::error),
/// [`cost`](Self::cost), [`extra`](Self::extra), [`envelope`](Self::envelope))
/// is parsed from the kept body on the first access that needs it, once,
/// and shared by every clone.
#[derive(Clone)]
pub struct TaskEvent {
    inner: Arc<Inner>,
}

struct Inner {
    id: Arc<str>,
    scalars: Scalars,
    /// The body, for the full parse; empty when `fields` was set at once.
    body: Bytes,
    fields: OnceLock<Fields>,
    /// The provider's own spelling of the status, when a profile's
    /// spelling differs from the normalized one.
    raw_status: Option<Box<str>>,
}

/// The scalar fields, read when the event is made.
#[derive(Debug, Clone, Default, PartialEq)]
struct Scalars {
    status: Option<TaskStatus>,
    progress: Option<u8>,
    created: Option<i64>,
    completed: Option<i64>,
    estimated_time: Option<i64>,
    actual_time: Option<i64>,
}

/// All fields of a task-status object: the full parse.
#[derive(Debug, Clone, Default, PartialEq)]
struct Fields {
    id: String,
    scalars: Scalars,
    result: Option<TaskResult>,
    error: Option<TaskError>,
    cost: Option<Value>,
    credits_cost: Option<Value>,
    extra: Map<String, Value>,
    envelope: Option<Map<String, Value>>,
}

impl TaskEvent {
    /// Parses a callback body, with or without the `{"code":..,"data":{..}}`
    /// envelope (copying it; [`TaskEvent::from_bytes`] takes it without a
    /// copy).
    ///
    /// ```
    /// use taskhook::{event::PayloadErrorKind, TaskEvent, event::IdError};
    ///
    /// let bare = TaskEvent::from_slice(br#"{"id":"t1","status":"failed","error":"timeout"}"#)?;
    /// assert_eq!(bare.error().unwrap().message(), Some("timeout"));
    ///
    /// let err = TaskEvent::from_slice(br#"{"code":200,"data":{"status":"completed"}}"#).unwrap_err();
    /// assert_eq!(err.kind(), &PayloadErrorKind::InvalidId(IdError::Missing));
    /// # Ok::<(), taskhook::event::PayloadError>(())
    /// ```
    pub fn from_slice(body: &[u8]) -> Result<Self, PayloadError> {
        Self::from_bytes(Bytes::copy_from_slice(body))
    }

    /// Parses a callback body held in [`Bytes`], keeping a reference to it
    /// (no copy) for the fields parsed on first access.
    ///
    /// Every error is found here: an event once made always parses in full.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use taskhook::{event::PayloadErrorKind, TaskEvent, TaskStatus};
    ///
    /// let body = Bytes::from_static(br#"{"code":200,"data":{"id":"t1","status":"completed"}}"#);
    /// let event = TaskEvent::from_bytes(body)?;
    /// assert_eq!((event.id(), event.status()), ("t1", Some(&TaskStatus::Completed)));
    ///
    /// // A fault anywhere in the body, even in a field nobody reads, is an error now.
    /// let bad = Bytes::from_static(br#"{"id":"t1","note":"\ud800"}"#);
    /// assert_eq!(TaskEvent::from_bytes(bad).unwrap_err().kind(), &PayloadErrorKind::Syntax);
    /// # Ok::<(), taskhook::event::PayloadError>(())
    /// ```
    pub fn from_bytes(body: Bytes) -> Result<Self, PayloadError> {
        // UTF-8 is checked once, over the whole body, so that the parser
        // need not check it string by string. A body that is not UTF-8
        // cannot parse: parse it anyway, for the error it gets.
        let light: de::Light = match std::str::from_utf8(&body) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(&body),
        }
        .map_err(|e| PayloadError::json(e, &body))?;
        let (id, scalars) = light.into_head().map_err(PayloadError::id)?;
        Ok(Self {
            inner: Arc::new(Inner {
                id,
                scalars,
                body,
                fields: OnceLock::new(),
                raw_status: None,
            }),
        })
    }

    /// Parses a callback body held in [`Bytes`] in full at once: one pass
    /// that builds every field, instead of the light pass of
    /// [`TaskEvent::from_bytes`] now and the rest on first access.
    ///
    /// It accepts exactly the bodies `from_bytes` accepts, with the same
    /// errors, and reads the same event. Choose it when the whole event is
    /// always read (a handler that reads every result): one pass costs less
    /// than the light pass and the full parse one after the other. The
    /// payload layer uses it with [`PayloadLayer::parse_in_full`](crate::PayloadLayer::parse_in_full).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use taskhook::TaskEvent;
    ///
    /// let body = Bytes::from_static(br#"{"id":"t1","result":{"images":[{"url":"https://cdn.example/a.png"}]}}"#);
    /// let event = TaskEvent::from_bytes_in_full(body.clone())?;
    /// assert_eq!(event, TaskEvent::from_bytes(body)?);
    /// assert_eq!(event.urls().next().unwrap().url(), "https://cdn.example/a.png");
    /// # Ok::<(), taskhook::event::PayloadError>(())
    /// ```
    pub fn from_bytes_in_full(body: Bytes) -> Result<Self, PayloadError> {
        parse_fields(&body).map(Self::from_fields)
    }

    /// An event whose full parse is already done.
    fn from_fields(fields: Fields) -> Self {
        Self::from_parts(fields, None)
    }

    /// An event made of its parts (the id already checked).
    fn from_parts(fields: Fields, raw_status: Option<Box<str>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: Arc::from(fields.id.as_str()),
                scalars: fields.scalars.clone(),
                body: Bytes::new(),
                fields: OnceLock::from(fields),
                raw_status,
            }),
        }
    }

    /// The full parse, done on the first call.
    fn fields(&self) -> &Fields {
        self.inner.fields.get_or_init(|| self.inner.parse_fields())
    }

    /// The task id: the provider's unique key for the task, and the dedup key.
    ///
    /// Guaranteed non-empty, at most [`MAX_ID_LEN`] bytes, without control
    /// characters.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The id, shared: for keys and jobs that outlive the event, without a
    /// copy.
    pub(crate) fn shared_id(&self) -> &Arc<str> {
        &self.inner.id
    }

    /// The task status, if the body had one as a string.
    pub fn status(&self) -> Option<&TaskStatus> {
        self.inner.scalars.status.as_ref()
    }

    /// The status as the provider spelled it: the same word as
    /// [`status`](Self::status) for the default provider, the provider's own
    /// (`succeeded`, `OK`, `IN_PROGRESS`) for an event a
    /// [`Profile`](crate::provider::Profile) normalized.
    pub fn raw_status(&self) -> Option<&str> {
        self.inner
            .raw_status
            .as_deref()
            .or_else(|| self.status().map(TaskStatus::as_str))
    }

    /// `true` if the status is final (`completed`, `failed` or `cancelled`).
    ///
    /// The provider only pushes final states; a push with another status is
    /// unexpected input, not an error to retry.
    pub fn is_final(&self) -> bool {
        self.status().is_some_and(TaskStatus::is_final)
    }

    /// Progress in percent (0 to 100).
    pub fn progress(&self) -> Option<u8> {
        self.inner.scalars.progress
    }

    /// The result object, present when the task completed.
    pub fn result(&self) -> Option<&TaskResult> {
        self.fields().result.as_ref()
    }

    /// Every result URL of every media kind, in document order, with its
    /// media kind and expiry.
    ///
    /// ```
    /// # use taskhook::TaskEvent;
    /// let event = TaskEvent::from_slice(br#"{"id":"t","result":{
    ///     "videos":[{"url":"https://cdn.example/v.mp4","expires_at":10}],
    ///     "audios":[{"url":["https://cdn.example/a.mp3"]}]}}"#)?;
    /// let all: Vec<(&str, &str, Option<i64>)> =
    ///     event.urls().map(|u| (u.kind(), u.url(), u.expires_at())).collect();
    /// assert_eq!(all, [
    ///     ("videos", "https://cdn.example/v.mp4", Some(10)),
    ///     ("audios", "https://cdn.example/a.mp3", None),
    /// ]);
    /// # Ok::<(), taskhook::event::PayloadError>(())
    /// ```
    pub fn urls(&self) -> impl Iterator<Item = ResultUrl<'_>> + '_ {
        self.result().into_iter().flat_map(TaskResult::urls)
    }

    /// When the task was created, in Unix seconds.
    pub fn created(&self) -> Option<i64> {
        self.inner.scalars.created
    }

    /// When the task completed, in Unix seconds (only when completed).
    pub fn completed(&self) -> Option<i64> {
        self.inner.scalars.completed
    }

    /// The provider's estimate of the task's duration, in seconds.
    pub fn estimated_time(&self) -> Option<i64> {
        self.inner.scalars.estimated_time
    }

    /// The task's actual duration, in seconds.
    pub fn actual_time(&self) -> Option<i64> {
        self.inner.scalars.actual_time
    }

    /// The error of a failed task, object or plain string.
    pub fn error(&self) -> Option<&TaskError> {
        self.fields().error.as_ref()
    }

    /// The task's cost, from a JSON number or a numeric string.
    pub fn cost(&self) -> Option<f64> {
        self.fields()
            .cost
            .as_ref()
            .and_then(number_or_numeric_string)
    }

    /// The task's cost in credits, from a JSON number or a numeric string.
    pub fn credits_cost(&self) -> Option<f64> {
        self.fields()
            .credits_cost
            .as_ref()
            .and_then(number_or_numeric_string)
    }

    /// Fields of the task object this crate does not model, and known fields
    /// whose JSON type was unexpected, under their own keys.
    ///
    /// ```
    /// # use taskhook::TaskEvent;
    /// let event = TaskEvent::from_slice(br#"{"id":"t","model":"m-3","progress":"half"}"#)?;
    /// assert_eq!(event.extra()["model"], "m-3");
    /// assert_eq!(event.progress(), None);
    /// assert_eq!(event.extra()["progress"], "half");
    /// # Ok::<(), taskhook::event::PayloadError>(())
    /// ```
    pub fn extra(&self) -> &Map<String, Value> {
        &self.fields().extra
    }

    /// The envelope's own fields (such as `code`), if the body was wrapped.
    pub fn envelope(&self) -> Option<&Map<String, Value>> {
        self.fields().envelope.as_ref()
    }
}

/// The full parse of a body, in one pass.
fn parse_fields(body: &[u8]) -> Result<Fields, PayloadError> {
    // As in the light pass: UTF-8 checked once, over the whole body.
    let parsed: de::Parsed = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
    .map_err(|e| PayloadError::json(e, body))?;
    parsed.into_fields().map_err(PayloadError::id)
}

impl Inner {
    /// The full parse of the body the light pass validated.
    fn parse_fields(&self) -> Fields {
        match parse_fields(&self.body) {
            Ok(fields) => fields,
            // Unreachable by construction (both passes visit every value
            // the same way; the fuzz target `payload` checks it): keep what
            // the light pass read rather than panic.
            Err(error) => {
                tracing::error!(id = %self.id, %error, "a validated callback body failed its full parse");
                Fields {
                    id: self.id.to_string(),
                    scalars: self.scalars.clone(),
                    ..Fields::default()
                }
            }
        }
    }
}

/// Compares the whole events (parsing both in full).
impl PartialEq for TaskEvent {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.fields() == other.fields()
    }
}

/// Shows the whole event (parsing it in full).
impl fmt::Debug for TaskEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Fields {
            id,
            scalars:
                Scalars {
                    status,
                    progress,
                    created,
                    completed,
                    estimated_time,
                    actual_time,
                },
            result,
            error,
            cost,
            credits_cost,
            extra,
            envelope,
        } = self.fields();
        f.debug_struct("TaskEvent")
            .field("id", id)
            .field("status", status)
            .field("progress", progress)
            .field("result", result)
            .field("created", created)
            .field("completed", completed)
            .field("estimated_time", estimated_time)
            .field("actual_time", actual_time)
            .field("error", error)
            .field("cost", cost)
            .field("credits_cost", credits_cost)
            .field("extra", extra)
            .field("envelope", envelope)
            .finish()
    }
}

/// Serializes the task object (without the envelope), keeping unknown fields.
impl Serialize for TaskEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields().serialize(serializer)
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if !self.id.is_empty() {
            map.serialize_entry("id", &self.id)?;
        }
        let scalars = &self.scalars;
        if let Some(status) = &scalars.status {
            map.serialize_entry("status", status.as_str())?;
        }
        if let Some(progress) = scalars.progress {
            map.serialize_entry("progress", &progress)?;
        }
        if let Some(result) = &self.result {
            map.serialize_entry("result", result)?;
        }
        for (key, value) in [
            ("created", scalars.created),
            ("completed", scalars.completed),
            ("estimated_time", scalars.estimated_time),
            ("actual_time", scalars.actual_time),
        ] {
            if let Some(value) = value {
                map.serialize_entry(key, &value)?;
            }
        }
        if let Some(error) = &self.error {
            map.serialize_entry("error", error)?;
        }
        if let Some(cost) = &self.cost {
            map.serialize_entry("cost", cost)?;
        }
        if let Some(credits_cost) = &self.credits_cost {
            map.serialize_entry("credits_cost", credits_cost)?;
        }
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

fn number_or_numeric_string(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
