//! [`TaskStatus`]: the status of a task, as the provider spells it.

use std::fmt;

/// The status of a task.
///
/// Unknown values do not fail parsing: they are kept in [`TaskStatus::Other`].
///
/// ```
/// use taskhook::TaskStatus;
///
/// assert_eq!(TaskStatus::from("completed"), TaskStatus::Completed);
/// assert!(TaskStatus::Failed.is_final());
/// assert!(!TaskStatus::Processing.is_final());
/// assert_eq!(TaskStatus::from("paused").as_str(), "paused");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskStatus {
    /// `pending`: queued at the provider.
    Pending,
    /// `submitted`: accepted by the provider.
    Submitted,
    /// `processing`: running.
    Processing,
    /// `completed`: finished with a result.
    Completed,
    /// `failed`: finished with an error.
    Failed,
    /// `cancelled`: stopped before it finished.
    Cancelled,
    /// Any other value, kept as it was sent.
    Other(Box<str>),
}

impl TaskStatus {
    /// The status as the provider spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Submitted => "submitted",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Other(other) => other,
        }
    }

    /// `true` for the final states: completed, failed and cancelled.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// `true` for [`TaskStatus::Completed`].
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Completed)
    }

    fn known(value: &str) -> Option<Self> {
        Some(match value {
            "pending" => Self::Pending,
            "submitted" => Self::Submitted,
            "processing" => Self::Processing,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

impl From<&str> for TaskStatus {
    fn from(value: &str) -> Self {
        Self::known(value).unwrap_or_else(|| Self::Other(value.into()))
    }
}

impl From<String> for TaskStatus {
    fn from(value: String) -> Self {
        Self::known(&value).unwrap_or_else(|| Self::Other(value.into_boxed_str()))
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
