//! [`TaskEventBuilder`]: a [`TaskEvent`] made from parts, by a provider
//! profile whose bodies are not in the default shape.

use serde_json::{Map, Value};

use super::result::MediaItem;
use super::{Fields, IdError, PayloadError, TaskError, TaskEvent, TaskResult, TaskStatus};

/// Builds a [`TaskEvent`] from parts: what a
/// [`Profile`](crate::provider::Profile) makes of a body in its provider's
/// own shape, so that every handler reads one model.
///
/// ```
/// use taskhook::{TaskEvent, TaskStatus};
///
/// let event = TaskEvent::builder("pred_1")
///     .status(TaskStatus::Completed)
///     .raw_status("succeeded")
///     .output("images", "https://cdn.example/a.png", Some(1_763_174_708))
///     .build()?;
/// assert_eq!(event.id(), "pred_1");
/// assert_eq!(event.status(), Some(&TaskStatus::Completed));
/// assert_eq!(event.raw_status(), Some("succeeded"));
/// assert_eq!(event.urls().next().unwrap().url(), "https://cdn.example/a.png");
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TaskEventBuilder {
    fields: Fields,
    raw_status: Option<Box<str>>,
}

impl TaskEvent {
    /// Starts an event for the task `id` (checked by
    /// [`build`](TaskEventBuilder::build)).
    pub fn builder(id: impl Into<String>) -> TaskEventBuilder {
        TaskEventBuilder {
            fields: Fields {
                id: id.into(),
                ..Fields::default()
            },
            raw_status: None,
        }
    }
}

impl TaskEventBuilder {
    /// Sets the normalized status.
    pub fn status(mut self, status: TaskStatus) -> Self {
        self.fields.scalars.status = Some(status);
        self
    }

    /// Sets the status as the provider spelled it (`succeeded`, `OK`,
    /// `IN_PROGRESS`), read back by [`TaskEvent::raw_status`].
    pub fn raw_status(mut self, raw: impl Into<String>) -> Self {
        self.raw_status = Some(raw.into().into_boxed_str());
        self
    }

    /// Sets the progress in percent (capped at 100).
    pub fn progress(mut self, percent: u8) -> Self {
        self.fields.scalars.progress = Some(percent.min(100));
        self
    }

    /// Sets when the task was created, in Unix seconds.
    pub fn created(mut self, unix_seconds: i64) -> Self {
        self.fields.scalars.created = Some(unix_seconds);
        self
    }

    /// Sets when the task completed, in Unix seconds.
    pub fn completed(mut self, unix_seconds: i64) -> Self {
        self.fields.scalars.completed = Some(unix_seconds);
        self
    }

    /// Adds a result file of media `kind` (`images`, `videos`, `audios`, or
    /// the provider's own word) with its URL and, if known, when the link
    /// expires (Unix seconds).
    pub fn output(mut self, kind: &str, url: impl Into<String>, expires_at: Option<i64>) -> Self {
        let item = MediaItem {
            urls: vec![url.into()],
            url_was_string: true,
            expires_at,
            extra: Map::new(),
        };
        let result = self.fields.result.get_or_insert_with(TaskResult::default);
        match result.media.iter_mut().find(|(k, _)| k == kind) {
            Some((_, items)) => items.push(item),
            None => result.media.push((kind.to_owned(), vec![item])),
        }
        self
    }

    /// Sets the error of a failed task: its message, and a code if the
    /// provider gave one.
    pub fn error(mut self, message: impl Into<String>, code: Option<Value>) -> Self {
        self.fields.error = Some(TaskError {
            message: Some(message.into()),
            code,
            kind: None,
            extra: Map::new(),
            plain: false,
        });
        self
    }

    /// Keeps a field of the provider's body that the model has no place
    /// for, read back by [`TaskEvent::extra`].
    pub fn extra(mut self, key: impl Into<String>, value: Value) -> Self {
        self.fields.extra.insert(key.into(), value);
        self
    }

    /// Makes the event.
    ///
    /// # Errors
    ///
    /// [`PayloadErrorKind::InvalidId`](super::PayloadErrorKind::InvalidId)
    /// when the id is empty, too long or holds a control character (see
    /// [`IdError::check`]).
    pub fn build(self) -> Result<TaskEvent, PayloadError> {
        IdError::check(&self.fields.id).map_err(PayloadError::id)?;
        Ok(TaskEvent::from_parts(self.fields, self.raw_status))
    }
}
