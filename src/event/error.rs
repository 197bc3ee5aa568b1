use std::fmt;

/// Why a callback body could not be parsed into a [`TaskEvent`](crate::TaskEvent).
///
/// Every kind is input that can never succeed, so the payload layer answers
/// each with `400 Bad Request`.
#[derive(Debug)]
pub struct PayloadError {
    kind: PayloadErrorKind,
    source: Option<serde_json::Error>,
}

/// The kind of a [`PayloadError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadErrorKind {
    /// The body is not well-formed JSON (including a truncated body).
    Syntax,
    /// A string in the body is not valid UTF-8.
    InvalidUtf8,
    /// The body nests deeper than `serde_json` allows (128 levels).
    TooDeep,
    /// The body is JSON, but not an object.
    NotAnObject,
    /// The task id is missing or unusable.
    InvalidId(IdError),
    /// Valid JSON, but not in the provider's shape (a field the profile
    /// needs is missing or of the wrong type), with the reason.
    Shape(Box<str>),
}

/// What is wrong with a task id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// No `id` field.
    Missing,
    /// `id` is not a string.
    NotString,
    /// `id` is the empty string.
    Empty,
    /// `id` is longer than [`MAX_ID_LEN`](crate::event::MAX_ID_LEN) bytes.
    TooLong,
    /// `id` contains a control character (CR, LF, NUL, ...).
    ControlCharacter,
}

impl IdError {
    /// Checks a task id against the rules of [`TaskEvent::id`](crate::TaskEvent::id).
    ///
    /// ```
    /// use taskhook::event::IdError;
    /// assert_eq!(IdError::check("task_01"), Ok(()));
    /// assert_eq!(IdError::check("a\r\nb"), Err(IdError::ControlCharacter));
    /// ```
    pub fn check(id: &str) -> Result<(), IdError> {
        if id.is_empty() {
            Err(IdError::Empty)
        } else if id.len() > super::MAX_ID_LEN {
            Err(IdError::TooLong)
        } else if id.chars().any(char::is_control) {
            Err(IdError::ControlCharacter)
        } else {
            Ok(())
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            IdError::Missing => "the task id is missing",
            IdError::NotString => "the task id is not a string",
            IdError::Empty => "the task id is empty",
            IdError::TooLong => "the task id is longer than 256 bytes",
            IdError::ControlCharacter => "the task id contains a control character",
        }
    }
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for IdError {}

impl PayloadError {
    pub(super) fn json(error: serde_json::Error, body: &[u8]) -> Self {
        use serde_json::error::Category;
        // Only on the error path: classify without slowing down good bodies.
        let kind = match error.classify() {
            Category::Data => PayloadErrorKind::NotAnObject,
            _ if std::str::from_utf8(body).is_err() => PayloadErrorKind::InvalidUtf8,
            _ if error.to_string().starts_with("recursion limit exceeded") => {
                PayloadErrorKind::TooDeep
            }
            _ => PayloadErrorKind::Syntax,
        };
        Self {
            kind,
            source: Some(error),
        }
    }

    /// A body that is valid JSON but not in the provider's shape, for a
    /// [`Profile`](crate::provider::Profile) that cannot read it.
    ///
    /// ```
    /// use taskhook::event::{PayloadError, PayloadErrorKind};
    ///
    /// let error = PayloadError::shape("no `request_id`");
    /// assert_eq!(error.code(), "unexpected_shape");
    /// assert_eq!(error.kind(), &PayloadErrorKind::Shape("no `request_id`".into()));
    /// ```
    pub fn shape(reason: impl Into<String>) -> Self {
        Self {
            kind: PayloadErrorKind::Shape(reason.into().into_boxed_str()),
            source: None,
        }
    }

    /// The error of a body `serde_json` could not parse, classified as
    /// the payload layer does (syntax, UTF-8, nesting, not an object).
    ///
    /// ```
    /// use taskhook::event::{PayloadError, PayloadErrorKind};
    ///
    /// let body = b"{not json";
    /// let error = serde_json::from_slice::<serde_json::Value>(body).unwrap_err();
    /// assert_eq!(PayloadError::from_json(error, body).kind(), &PayloadErrorKind::Syntax);
    /// ```
    pub fn from_json(error: serde_json::Error, body: &[u8]) -> Self {
        Self::json(error, body)
    }

    pub(super) fn id(error: IdError) -> Self {
        Self {
            kind: PayloadErrorKind::InvalidId(error),
            source: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &PayloadErrorKind {
        &self.kind
    }

    /// A short, stable, machine-readable code for the error (used in the
    /// payload layer's JSON error bodies).
    pub fn code(&self) -> &'static str {
        match self.kind {
            PayloadErrorKind::Syntax => "malformed_json",
            PayloadErrorKind::InvalidUtf8 => "invalid_utf8",
            PayloadErrorKind::TooDeep => "nesting_too_deep",
            PayloadErrorKind::NotAnObject => "not_an_object",
            PayloadErrorKind::InvalidId(_) => "invalid_id",
            PayloadErrorKind::Shape(_) => "unexpected_shape",
        }
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.source) {
            (PayloadErrorKind::InvalidId(id), _) => fmt::Display::fmt(id, f),
            (PayloadErrorKind::Shape(reason), _) => write!(f, "unexpected body: {reason}"),
            (PayloadErrorKind::InvalidUtf8, _) => f.write_str("the body is not valid UTF-8"),
            (PayloadErrorKind::TooDeep, _) => f.write_str("the body nests too deeply"),
            (PayloadErrorKind::NotAnObject, Some(e)) => {
                write!(f, "the body is not a task object: {e}")
            }
            (_, Some(e)) => write!(f, "the body is not valid JSON: {e}"),
            (_, None) => f.write_str("the body is not valid JSON"),
        }
    }
}

impl std::error::Error for PayloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            PayloadErrorKind::InvalidId(id) => Some(id),
            _ => self.source.as_ref().map(|e| e as _),
        }
    }
}
