//! [`RedisStore`]: the dedup store shared by every replica.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::token::random_hex;
use super::{RedisConnection, RedisError, DEFAULT_PREFIX};
use crate::backend::defaults::{DEFAULT_CLAIM_TIMEOUT, DEFAULT_TIME_TO_LIVE};
use crate::dedup::{Claim, DedupKey, DedupStore, KeyState};

/// The value of a done key. Claims hold `t:` and a random token, so they
/// never equal it.
const DONE: &str = "d";

/// Claims a key in one step: `SET NX PX`, and when the key exists, tells a
/// done key from a live claim. 1 acquired, 2 done, 3 in flight.
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[3] then
  return 2
end
return 3
";

/// Marks a key done unless another caller holds a live claim on it.
const COMPLETE: &str = r"
local value = redis.call('GET', KEYS[1])
if value == false or value == ARGV[1] or value == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Deletes a key only if it still holds the caller's claim.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Deletes a key only if it is done (a claim is its owner's business).
const FORGET: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A [`DedupStore`] on Redis, shared by every replica of a receiver.
///
/// Each key is one Redis string, `<prefix>:dedup:<key>`:
///
/// - **claim**: one Lua script runs `SET key token NX PX claim_timeout` and,
///   when the key exists, reads it to tell a done key from a live claim. It
///   runs atomically in Redis: of any number of concurrent claims of one
///   key, on any replica, exactly one is acquired.
/// - **complete** / **release**: compare-and-set / compare-and-delete
///   scripts that only touch the caller's own claim (its random 128-bit
///   token); a claim that expired and was taken by another caller is left
///   alone. **forget** deletes a key only if it is done. **peek** is a
///   plain `GET`.
/// - **done** keys expire after the [time to live](RedisStoreBuilder::time_to_live)
///   (default 24 h), **claims** after the
///   [claim timeout](RedisStoreBuilder::claim_timeout) (default 60 s), both
///   by Redis itself (`PX`), so a replica that dies holding a claim never
///   blocks the key for good.
/// - **wait** polls (the trait's default, every 100 ms).
///
/// A failed or timed-out call is a [`RedisError`]: the dedup layer answers
/// `503` with `Retry-After` (never a `2xx`) unless it was told to
/// [fail open](crate::DedupLayer::fail_open).
///
/// Clones share the connection.
///
/// ```no_run
/// use std::time::Duration;
/// use taskhook::backend::redis::{RedisConnection, RedisStore};
/// use taskhook::{DedupLayer, PayloadLayer};
/// use tower::ServiceBuilder;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), taskhook::backend::redis::RedisError> {
/// let redis = RedisConnection::connect("redis://127.0.0.1:6379/").await?;
/// let store = RedisStore::builder(redis)
///     .time_to_live(Duration::from_secs(6 * 3600))
///     .build();
/// let stack = ServiceBuilder::new()
///     .layer(PayloadLayer::new())
///     .layer(DedupLayer::with_store(store));
/// # let _ = stack; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisConnection,
    prefix: String,
    time_to_live: Duration,
    claim_timeout: Duration,
    claim: Script,
    complete: Script,
    release: Script,
    forget: Script,
}

/// The owner token of a [`RedisStore`] claim: a random 128-bit value.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisToken(Box<str>);

impl fmt::Debug for RedisToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisToken").field(&self.0).finish()
    }
}

impl RedisStore {
    /// A store on `redis` with the default settings: prefix `taskhook`,
    /// 24 h TTL, 60 s claim timeout.
    pub fn new(redis: RedisConnection) -> Self {
        Self::builder(redis).build()
    }

    /// A builder to change the settings.
    pub fn builder(redis: RedisConnection) -> RedisStoreBuilder {
        RedisStoreBuilder {
            redis,
            prefix: DEFAULT_PREFIX.to_owned(),
            time_to_live: DEFAULT_TIME_TO_LIVE,
            claim_timeout: DEFAULT_CLAIM_TIMEOUT,
        }
    }

    fn key(&self, key: &DedupKey) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.inner.prefix.len() + 7 + key.as_str().len());
        out.extend_from_slice(self.inner.prefix.as_bytes());
        out.extend_from_slice(b":dedup:");
        out.extend_from_slice(key.as_str().as_bytes());
        out
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("time_to_live", &self.inner.time_to_live)
            .field("claim_timeout", &self.inner.claim_timeout)
            .finish_non_exhaustive()
    }
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, i64::MAX as u64 / 2)
}

impl DedupStore for RedisStore {
    type Token = RedisToken;
    type Error = RedisError;

    async fn claim(&self, key: &DedupKey) -> Result<Claim<RedisToken>, RedisError> {
        let token = format!("t:{}", random_hex());
        let inner = &self.inner;
        let mut invocation = inner.claim.key(self.key(key));
        invocation
            .arg(&token)
            .arg(millis(inner.claim_timeout))
            .arg(DONE);
        match inner.redis.eval::<i64>(&invocation).await? {
            1 => Ok(Claim::Acquired(RedisToken(token.into()))),
            2 => Ok(Claim::Done),
            3 => Ok(Claim::InFlight),
            other => Err(RedisError::reply(format!("claim answered {other}"))),
        }
    }

    async fn complete(&self, key: &DedupKey, token: &RedisToken) -> Result<(), RedisError> {
        let inner = &self.inner;
        let mut invocation = inner.complete.key(self.key(key));
        invocation
            .arg(&*token.0)
            .arg(millis(inner.time_to_live))
            .arg(DONE);
        inner.redis.eval::<i64>(&invocation).await?;
        Ok(())
    }

    async fn release(&self, key: &DedupKey, token: &RedisToken) -> Result<(), RedisError> {
        let inner = &self.inner;
        let mut invocation = inner.release.key(self.key(key));
        invocation.arg(&*token.0);
        inner.redis.eval::<i64>(&invocation).await?;
        Ok(())
    }

    async fn forget(&self, key: &DedupKey) -> Result<(), RedisError> {
        let inner = &self.inner;
        let mut invocation = inner.forget.key(self.key(key));
        invocation.arg(DONE);
        inner.redis.eval::<i64>(&invocation).await?;
        Ok(())
    }
    async fn peek(&self, key: &DedupKey) -> Result<KeyState, RedisError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        let value: Option<String> = self.inner.redis.query(&cmd).await?;
        Ok(match value.as_deref() {
            None => KeyState::Unknown,
            Some(DONE) => KeyState::Done,
            // A claim (`t:` and its token): Redis expires it by itself.
            Some(_) => KeyState::InFlight,
        })
    }
}

/// Builds a [`RedisStore`].
///
/// ```no_run
/// use std::time::Duration;
/// use taskhook::backend::redis::{RedisConnection, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), taskhook::backend::redis::RedisError> {
/// let redis = RedisConnection::connect("redis://127.0.0.1:6379/").await?;
/// let store = RedisStore::builder(redis)
///     .prefix("billing-hooks")
///     .time_to_live(Duration::from_secs(3600))
///     .claim_timeout(Duration::from_secs(30))
///     .build();
/// # let _ = store; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder {
    redis: RedisConnection,
    prefix: String,
    time_to_live: Duration,
    claim_timeout: Duration,
}

impl RedisStoreBuilder {
    /// Sets the prefix of every key (default `taskhook`): the replicas of
    /// one receiver share it, different receivers on one Redis do not.
    ///
    /// ```no_run
    /// # use taskhook::backend::redis::{RedisConnection, RedisStore};
    /// # async fn f(redis: RedisConnection) {
    /// let store = RedisStore::builder(redis).prefix("orders").build();
    /// # }
    /// ```
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets how long a done key is remembered (default 24 h).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use taskhook::backend::redis::{RedisConnection, RedisStore};
    /// # async fn f(redis: RedisConnection) {
    /// let store = RedisStore::builder(redis).time_to_live(Duration::from_secs(3600)).build();
    /// # }
    /// ```
    #[must_use]
    pub fn time_to_live(mut self, time_to_live: Duration) -> Self {
        self.time_to_live = time_to_live;
        self
    }

    /// Sets how long a claim lives if its owner never completes or releases
    /// it (default 60 s): longer than your slowest handler, or a duplicate
    /// runs beside it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use taskhook::backend::redis::{RedisConnection, RedisStore};
    /// # async fn f(redis: RedisConnection) {
    /// let store = RedisStore::builder(redis).claim_timeout(Duration::from_secs(30)).build();
    /// # }
    /// ```
    #[must_use]
    pub fn claim_timeout(mut self, claim_timeout: Duration) -> Self {
        self.claim_timeout = claim_timeout;
        self
    }

    /// Builds the store.
    pub fn build(self) -> RedisStore {
        RedisStore {
            inner: Arc::new(Inner {
                redis: self.redis,
                prefix: self.prefix,
                time_to_live: self.time_to_live,
                claim_timeout: self.claim_timeout,
                claim: Script::new(CLAIM),
                complete: Script::new(COMPLETE),
                release: Script::new(RELEASE),
                forget: Script::new(FORGET),
            }),
        }
    }
}
