//! Redis: dedup and the fast-ack queue shared by several replicas (feature
//! `redis`).
//!
//! Behind a load balancer, the provider's retry or duplicate push of a task
//! lands on any replica; an in-process store cannot see it. This backend
//! keeps that state in the Redis your replicas share:
//!
//! - [`RedisStore`]: the [`DedupStore`](crate::dedup::DedupStore) of the
//!   [`DedupLayer`](crate::DedupLayer). Claims are one atomic script
//!   (`SET NX PX` with a random owner token); complete and release only
//!   touch the caller's own claim; done keys live for the TTL.
//! - [`RedisJournal`]: the [`Journal`](crate::fast_ack::journal::Journal) of the
//!   [`FastAckLayer`](crate::FastAckLayer), on a Redis stream with one
//!   consumer group: the task id is claimed and the event appended in one
//!   script, so one task id is accepted once across replicas; the entries
//!   of a replica that died are taken over (`XAUTOCLAIM`); entries
//!   delivered too many times go to a dead-letter stream. Delivery is at
//!   least once: see [`RedisJournal`].
//! - [`RedisConnection`]: the connection both share. It reconnects on its
//!   own, and bounds every call (2 s by default).
//!
//! Needs Redis 6.2 or later (`XAUTOCLAIM`); tested with 7.0.
//!
//! Redis unreachable or slow: every call fails within the timeout with a
//! [`RedisError`], and the layers answer `503` with `Retry-After`, never a
//! `2xx`; the provider retries, and once Redis is back the calls succeed
//! again.
//!
//! # Durability
//!
//! A `2xx` is only as safe as Redis keeps what it was told. For the journal,
//! run Redis with `appendonly yes` and `appendfsync always`: every write is
//! on disk before Redis answers, so an event answered `2xx` survives a
//! crash of Redis or of its machine. `appendfsync everysec` (Redis' default
//! with AOF) is much faster but may lose the last second of writes on a
//! power loss or kernel crash: events answered `2xx` in that second, and
//! the dedup state of that second. Without AOF (RDB snapshots only) Redis
//! loses everything since the last snapshot: do not use it for the
//! journal. Set `maxmemory-policy noeviction`: an evicting Redis may drop
//! a queued event or a claim.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use taskhook::backend::redis::{RedisConnection, RedisJournal, RedisStore};
//! use taskhook::{DedupLayer, FastAckLayer, PayloadLayer};
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), taskhook::backend::redis::RedisError> {
//! let redis = RedisConnection::builder("redis://127.0.0.1:6379/")
//!     .timeout(Duration::from_secs(2))
//!     .connect()
//!     .await?;
//! let journal = RedisJournal::builder(redis.clone()).build().await?;
//! let (fast_ack, handle) = FastAckLayer::builder().journal(journal).build();
//! let stack = ServiceBuilder::new()
//!     .layer(PayloadLayer::new())
//!     .layer(DedupLayer::with_store(RedisStore::new(redis)))
//!     .layer(fast_ack);
//! # let _ = (stack, handle); Ok(()) }
//! ```

mod connection;
mod error;
mod journal;
mod scripts;
mod store;
mod token;

pub use self::connection::{RedisConnection, RedisConnectionBuilder};
pub use self::error::RedisError;
pub use self::journal::{RedisJournal, RedisJournalBuilder};
pub use self::store::{RedisStore, RedisStoreBuilder, RedisToken};

/// The default prefix of every key: `taskhook`.
pub(crate) const DEFAULT_PREFIX: &str = "taskhook";
