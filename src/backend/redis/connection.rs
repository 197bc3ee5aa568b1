//! [`RedisConnection`]: one self-healing connection, shared by the store and
//! the journal, with a bound on every call.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, ScriptInvocation};

use super::RedisError;

/// The default bound on every Redis call: 2 s.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to one Redis server, shared by a
/// [`RedisStore`](super::RedisStore) and a
/// [`RedisJournal`](super::RedisJournal).
///
/// - **Reconnects on its own**: built on the `redis` crate's connection
///   manager, which opens a new connection after a failed call; the calls in
///   between fail (and the layers answer `503` with `Retry-After`).
/// - **Bounded**: every call is wrapped in a timeout
///   ([`timeout`](RedisConnectionBuilder::timeout), default 2 s) and fails
///   with [`RedisError::Timeout`] past it, so no request waits on a Redis
///   that does not answer.
///
/// Clones share the connection (Redis pipelines the calls of every clone on
/// it).
///
/// ```no_run
/// use std::time::Duration;
/// use taskhook::backend::redis::RedisConnection;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), taskhook::backend::redis::RedisError> {
/// let redis = RedisConnection::builder("redis://127.0.0.1:6379/")
///     .timeout(Duration::from_millis(500))
///     .connect()
///     .await?;
/// # let _ = redis; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisConnection {
    manager: ConnectionManager,
    timeout: Duration,
}

impl RedisConnection {
    /// Connects to `url` (`redis://host:port/db`) with the default settings.
    ///
    /// # Errors
    ///
    /// When the URL is invalid, or Redis cannot be reached within the
    /// timeout.
    pub async fn connect(url: &str) -> Result<Self, RedisError> {
        Self::builder(url).connect().await
    }

    /// A builder to change the settings.
    pub fn builder(url: impl Into<String>) -> RedisConnectionBuilder {
        RedisConnectionBuilder {
            url: url.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The bound on every call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs a prepared script, within the timeout.
    pub(crate) async fn eval<T: redis::FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        let mut manager = self.manager.clone();
        self.bounded(async move { invocation.invoke_async(&mut manager).await })
            .await
    }

    /// Runs one command, within the timeout.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut manager = self.manager.clone();
        self.bounded(async move { cmd.query_async(&mut manager).await })
            .await
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(RedisError::backend(error)),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        }
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisConnection`].
///
/// ```no_run
/// use std::time::Duration;
/// use taskhook::backend::redis::RedisConnection;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), taskhook::backend::redis::RedisError> {
/// let redis = RedisConnection::builder("redis://127.0.0.1:6379/")
///     .timeout(Duration::from_secs(1))
///     .connect()
///     .await?;
/// assert_eq!(redis.timeout(), Duration::from_secs(1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisConnectionBuilder {
    url: String,
    timeout: Duration,
}

impl RedisConnectionBuilder {
    /// Sets the bound on every call, connecting included (default 2 s).
    /// Keep it well below the provider's 10 s wait, so that a Redis that
    /// does not answer turns into a `503` the provider retries.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook::backend::redis::RedisConnection;
    ///
    /// let builder = RedisConnection::builder("redis://127.0.0.1/").timeout(Duration::from_millis(800));
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Connects.
    ///
    /// # Errors
    ///
    /// When the URL is invalid, or Redis cannot be reached within the
    /// timeout.
    pub async fn connect(self) -> Result<RedisConnection, RedisError> {
        let client = redis::Client::open(self.url.as_str()).map_err(RedisError::backend)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(self.timeout)
            .set_connection_timeout(self.timeout)
            .set_number_of_retries(2)
            .set_max_delay(self.timeout.as_millis().min(u128::from(u64::MAX)) as u64);
        let connect = ConnectionManager::new_with_config(client, config);
        let manager = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(manager)) => manager,
            Ok(Err(error)) => return Err(RedisError::backend(error)),
            Err(_) => return Err(RedisError::Timeout(self.timeout)),
        };
        Ok(RedisConnection {
            manager,
            timeout: self.timeout,
        })
    }
}
