//! [`RedisJournalBuilder`]: the settings of a [`RedisJournal`], and
//! building one.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;

use super::{Inner, RedisJournal, Scripts};
use crate::backend::redis::scripts;
use crate::backend::redis::token::random_hex;
use crate::backend::redis::{RedisConnection, RedisError};

/// Builds a [`RedisJournal`].
///
/// ```no_run
/// use std::time::Duration;
/// use taskhook::backend::redis::{RedisConnection, RedisJournal};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), taskhook::backend::redis::RedisError> {
/// let redis = RedisConnection::connect("redis://127.0.0.1:6379/").await?;
/// let journal = RedisJournal::builder(redis)
///     .prefix("orders")
///     .consumer("orders-7c9f")
///     .claim_idle(Duration::from_secs(120))
///     .max_deliveries(3)
///     .build()
///     .await?;
/// # let _ = journal; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisJournalBuilder {
    // `pub(super)`: `RedisJournal::builder` sets the defaults.
    pub(super) redis: RedisConnection,
    pub(super) prefix: String,
    pub(super) consumer: Option<String>,
    pub(super) claim_idle: Duration,
    pub(super) take_over_interval: Option<Duration>,
    pub(super) max_deliveries: u32,
    pub(super) time_to_live: Duration,
}

impl RedisJournalBuilder {
    /// Sets the prefix of every key (default `taskhook`): the replicas of
    /// one receiver share it.
    ///
    /// ```no_run
    /// # use taskhook::backend::redis::{RedisConnection, RedisJournal};
    /// # async fn f(redis: RedisConnection) {
    /// let builder = RedisJournal::builder(redis).prefix("orders");
    /// # }
    /// ```
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets this replica's consumer name (default: unique per journal).
    /// A name that stays the same across restarts (a StatefulSet pod name)
    /// lets a restarted replica pick up its own pending entries at once
    /// instead of waiting for another replica to take them over; two live
    /// replicas must never share one. Entries picked up this way are not
    /// checked against [`max_deliveries`](Self::max_deliveries) (only a
    /// takeover is): an entry that crashes its replica at every start
    /// comes back at every restart, until another replica takes it over.
    ///
    /// ```no_run
    /// # use taskhook::backend::redis::{RedisConnection, RedisJournal};
    /// # async fn f(redis: RedisConnection) {
    /// let builder = RedisJournal::builder(redis).consumer("receiver-0");
    /// # }
    /// ```
    #[must_use]
    pub fn consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = Some(consumer.into());
        self
    }

    /// Sets how long an entry may sit without a heartbeat of its replica
    /// before another replica takes it over (default 60 s).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use taskhook::backend::redis::{RedisConnection, RedisJournal};
    /// # async fn f(redis: RedisConnection) {
    /// let builder = RedisJournal::builder(redis).claim_idle(Duration::from_secs(30));
    /// # }
    /// ```
    #[must_use]
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.claim_idle = idle.max(Duration::from_millis(1));
        self
    }

    /// Sets how often the layer sends the heartbeat and looks for entries
    /// to take over (default a quarter of [`claim_idle`](Self::claim_idle)).
    /// Keep it well below `claim_idle`.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use taskhook::backend::redis::{RedisConnection, RedisJournal};
    /// # async fn f(redis: RedisConnection) {
    /// let builder = RedisJournal::builder(redis).take_over_interval(Duration::from_secs(5));
    /// # }
    /// ```
    #[must_use]
    pub fn take_over_interval(mut self, interval: Duration) -> Self {
        self.take_over_interval = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// Sets the number of deliveries after which an entry is dead-lettered
    /// instead of taken over again (default 5).
    ///
    /// ```no_run
    /// # use taskhook::backend::redis::{RedisConnection, RedisJournal};
    /// # async fn f(redis: RedisConnection) {
    /// let builder = RedisJournal::builder(redis).max_deliveries(3);
    /// # }
    /// ```
    #[must_use]
    pub fn max_deliveries(mut self, deliveries: u32) -> Self {
        self.max_deliveries = deliveries.max(1);
        self
    }

    /// Sets how long a processed task id is remembered, so a duplicate push
    /// is answered as a duplicate (default 24 h).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use taskhook::backend::redis::{RedisConnection, RedisJournal};
    /// # async fn f(redis: RedisConnection) {
    /// let builder = RedisJournal::builder(redis).time_to_live(Duration::from_secs(3600));
    /// # }
    /// ```
    #[must_use]
    pub fn time_to_live(mut self, time_to_live: Duration) -> Self {
        self.time_to_live = time_to_live;
        self
    }

    /// Builds the journal and creates its stream and consumer group when
    /// missing.
    ///
    /// # Errors
    ///
    /// When Redis fails or does not answer in time.
    pub async fn build(self) -> Result<RedisJournal, RedisError> {
        let base = format!("{}:journal", self.prefix);
        let journal = RedisJournal {
            inner: Arc::new(Inner {
                redis: self.redis,
                consumer: self.consumer.unwrap_or_else(|| {
                    format!("taskhook-{}-{}", std::process::id(), &random_hex()[..12])
                }),
                stream: base.clone().into_bytes(),
                seq_key: format!("{base}:seq").into_bytes(),
                dead_stream: format!("{base}:dead").into_bytes(),
                dead_index: format!("{base}:dead:index").into_bytes(),
                id_prefix: format!("{base}:id:"),
                claim_idle: self.claim_idle,
                take_over_interval: self
                    .take_over_interval
                    .unwrap_or(self.claim_idle / 4)
                    .max(Duration::from_millis(1)),
                max_deliveries: self.max_deliveries,
                time_to_live: self.time_to_live,
                scripts: Scripts {
                    append: Script::new(scripts::APPEND),
                    finish: Script::new(scripts::FINISH),
                    dead_letter: Script::new(scripts::DEAD_LETTER),
                    remove_dead_letter: Script::new(scripts::REMOVE_DEAD_LETTER),
                    heartbeat: Script::new(scripts::HEARTBEAT),
                    take_over: Script::new(scripts::TAKE_OVER),
                },
                held: Mutex::new(BTreeSet::new()),
                cursor: Mutex::new("0-0".to_owned()),
                deferred: Mutex::new(Vec::new()),
            }),
        };
        journal.create_group().await?;
        Ok(journal)
    }
}
