//! [`RedisError`]: why a Redis call failed.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Why a call to Redis failed.
///
/// Every kind is transient for the layers: the dedup layer and the fast-ack
/// layer answer `503` with `Retry-After`, so the provider sends the event
/// again.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisError {
    /// Redis did not answer within the connection's timeout.
    Timeout(Duration),
    /// The connection or the command failed (the `redis` crate's error is
    /// the [`source`](StdError::source)).
    Backend(Box<dyn StdError + Send + Sync>),
    /// Redis answered something this crate does not expect (a key of ours
    /// changed by someone else, a server too old).
    Reply(String),
}

impl RedisError {
    pub(crate) fn backend(error: redis::RedisError) -> Self {
        Self::Backend(Box::new(error))
    }

    pub(crate) fn reply(what: impl Into<String>) -> Self {
        Self::Reply(what.into())
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(after) => write!(f, "redis did not answer within {after:?}"),
            Self::Backend(error) => write!(f, "redis failed: {error}"),
            Self::Reply(what) => write!(f, "unexpected answer from redis: {what}"),
        }
    }
}

impl StdError for RedisError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Backend(error) => Some(&**error),
            Self::Timeout(_) | Self::Reply(_) => None,
        }
    }
}
