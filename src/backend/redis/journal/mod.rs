//! [`RedisJournal`]: the fast-ack journal on a Redis stream, shared by every
//! replica.

mod builder;
mod reply;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{Script, Value};

use super::store::millis;
use super::{RedisConnection, RedisError, DEFAULT_PREFIX};
use crate::backend::defaults::DEFAULT_TIME_TO_LIVE;
use crate::fast_ack::journal::{Appended, BoxFuture, Entry, Journal, JournalError, Record};
use crate::fast_ack::{DeadLetter, Failure};

use self::reply::{entry_id, parse_dead_letter, parse_entry, stream_entries, string};

pub use self::builder::RedisJournalBuilder;

/// The default idle time after which another replica takes over an entry:
/// 60 s.
pub(crate) const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(60);

/// The default number of deliveries after which an entry is dead-lettered
/// instead of taken over once more: 5.
pub(crate) const DEFAULT_MAX_DELIVERIES: u32 = 5;

/// The consumer group every replica joins.
const GROUP: &str = "taskhook";

/// Entries handled by one script call.
const BATCH: usize = 256;

/// A fast-ack [`Journal`] on a Redis stream, shared by several replicas.
///
/// # How it maps onto the fast-ack layer
///
/// Every replica runs its own [`FastAckLayer`](crate::FastAckLayer) (its
/// own in-process queue and workers) on one journal, under its own
/// *consumer* name in one consumer group (`XREADGROUP`):
///
/// - **append**: one Lua script claims the task id (`<prefix>:journal:id:<id>`,
///   when the payload had one), gives the entry the next sequence number
///   (stream id `<seq>-0`), `XADD`s it and reads it into this replica's
///   pending list (`XREADGROUP`), atomically. A task id that is queued or
///   done answers [`Appended::Duplicate`] (the layer answers `200`
///   duplicate): across every replica, one task id is appended once.
/// - the replica that appended runs the entry from its in-process queue;
///   **complete** `XACK`s and `XDEL`s it and marks the task id done for the
///   [time to live](RedisJournalBuilder::time_to_live) (default 24 h);
///   **withdraw** (appended, not queued) forgets the task id instead.
/// - **heartbeat and takeover**: the layer calls
///   [`take_over`](Journal::take_over) every
///   [`take_over_interval`](RedisJournalBuilder::take_over_interval). The
///   journal first resets the idle time of the entries this replica holds
///   (`XCLAIM .. JUSTID`, only those still in its own pending list), then
///   takes over, with `XAUTOCLAIM`, entries idle longer than
///   [`claim_idle`](RedisJournalBuilder::claim_idle) (default 60 s): the
///   entries of a replica that died or stopped.
/// - **too many deliveries**: an entry taken over when it has already been
///   delivered more than [`max_deliveries`](RedisJournalBuilder::max_deliveries)
///   times (default 5: it keeps killing the replicas that take it) goes to
///   the dead-letter stream instead.
/// - **dead letters**: events the layer gave up on, and those, go to
///   `<prefix>:journal:dead` (a stream, indexed by sequence number); their
///   task id is forgotten, so a [replay](crate::FastAckHandle::replay) or
///   the provider's next push can run them again.
/// - **Redis down**: a completion or dead letter that fails is retried
///   before each heartbeat (the entry stays held meanwhile, so nobody runs
///   it again); a failed append is answered `503`.
/// - **pending** (at start-up): this consumer's own pending entries (a
///   replica restarted under the same [`consumer`](RedisJournalBuilder::consumer)
///   name), entries never delivered, and a full takeover pass.
///
/// # Delivery semantics
///
/// At least once. Every `2xx` answered is backed by an entry in the stream
/// (as durable as Redis is configured: see the module docs). The handler
/// runs once per task id, except when a crash forces a redelivery: a replica
/// that dies (or stalls longer than `claim_idle`) after its handler ran and
/// before the `XACK` has its entry taken over and run again by another
/// replica. Make the handler idempotent, or keep `claim_idle` well above
/// your slowest handler run plus the retries' backoff.
///
/// Redis Cluster is not supported: the scripts touch task-id keys they
/// compute, so every key must live on one primary.
///
/// ```no_run
/// use taskhook::backend::redis::{RedisConnection, RedisJournal};
/// use taskhook::{FastAckLayer, PayloadLayer};
/// use tower::ServiceBuilder;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), taskhook::backend::redis::RedisError> {
/// let redis = RedisConnection::connect("redis://127.0.0.1:6379/").await?;
/// let journal = RedisJournal::builder(redis).build().await?;
/// let (fast_ack, handle) = FastAckLayer::builder().journal(journal).build();
/// let stack = ServiceBuilder::new()
///     .layer(PayloadLayer::new())
///     .layer(fast_ack);
/// # let _ = (stack, handle); Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisJournal {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisConnection,
    consumer: String,
    stream: Vec<u8>,
    seq_key: Vec<u8>,
    dead_stream: Vec<u8>,
    dead_index: Vec<u8>,
    id_prefix: String,
    claim_idle: Duration,
    take_over_interval: Duration,
    max_deliveries: u32,
    time_to_live: Duration,
    scripts: Scripts,
    /// The sequence numbers this replica holds (appended or taken over,
    /// not yet finished): the ones the heartbeat keeps alive.
    held: Mutex<BTreeSet<u64>>,
    /// Where the next `XAUTOCLAIM` scan starts.
    cursor: Mutex<String>,
    /// Completions and dead letters that failed (Redis was down), retried
    /// before each heartbeat. Their entries stay held meanwhile, so no
    /// other replica runs them again.
    deferred: Mutex<Vec<Deferred>>,
}

/// A write to retry once Redis answers again.
enum Deferred {
    Complete(u64),
    DeadLetter(DeadLetter),
}

struct Scripts {
    append: Script,
    finish: Script,
    dead_letter: Script,
    remove_dead_letter: Script,
    heartbeat: Script,
    take_over: Script,
}

impl RedisJournal {
    /// A builder for a journal on `redis`.
    pub fn builder(redis: RedisConnection) -> RedisJournalBuilder {
        RedisJournalBuilder {
            redis,
            prefix: DEFAULT_PREFIX.to_owned(),
            consumer: None,
            claim_idle: DEFAULT_CLAIM_IDLE,
            take_over_interval: None,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            time_to_live: DEFAULT_TIME_TO_LIVE,
        }
    }

    /// This replica's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.inner.consumer
    }

    /// The number of entries this replica holds (appended or taken over,
    /// not finished).
    pub fn held(&self) -> usize {
        self.held_set().len()
    }

    /// The number of entries in the stream not yet acknowledged, by every
    /// replica (`XPENDING` summary).
    ///
    /// # Errors
    ///
    /// When Redis fails or does not answer in time.
    pub async fn pending_count(&self) -> Result<u64, RedisError> {
        let inner = &self.inner;
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(&inner.stream).arg(GROUP);
        let reply: Value = inner.redis.query(&cmd).await?;
        match reply {
            Value::Array(items) => match items.first() {
                Some(Value::Int(count)) => Ok(u64::try_from(*count).unwrap_or(0)),
                _ => Err(RedisError::reply("XPENDING summary without a count")),
            },
            _ => Err(RedisError::reply("XPENDING answered no summary")),
        }
    }

    fn held_set(&self) -> MutexGuard<'_, BTreeSet<u64>> {
        // A set of integers is valid after any panic.
        self.inner.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deferred(&self) -> MutexGuard<'_, Vec<Deferred>> {
        self.inner
            .deferred
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Retries the deferred writes; keeps those that fail again.
    async fn retry_deferred(&self) -> Result<(), RedisError> {
        let deferred = std::mem::take(&mut *self.deferred());
        let mut outcome = Ok(());
        let mut left = Vec::new();
        for write in deferred {
            if outcome.is_err() {
                left.push(write);
                continue;
            }
            let result = match &write {
                Deferred::Complete(seq) => self.finish(*seq, "done").await,
                Deferred::DeadLetter(letter) => self.record_dead_letter(letter).await,
            };
            if let Err(error) = result {
                outcome = Err(error);
                left.push(write);
            }
        }
        self.deferred().extend(left);
        outcome
    }

    fn cursor(&self) -> MutexGuard<'_, String> {
        self.inner.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn create_group(&self) -> Result<(), RedisError> {
        let inner = &self.inner;
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(&inner.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match inner.redis.query::<Value>(&cmd).await {
            Ok(_) => Ok(()),
            Err(error) if error.to_string().contains("BUSYGROUP") => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn append_record(&self, record: &Record) -> Result<Appended, RedisError> {
        let inner = &self.inner;
        let mut invocation = inner.scripts.append.key(&inner.stream);
        invocation.key(&inner.seq_key);
        if let Some(task) = record.task_id() {
            invocation.key(format!("{}{task}", inner.id_prefix));
        }
        invocation
            .arg(GROUP)
            .arg(&inner.consumer)
            .arg(record.task_id().unwrap_or(""))
            .arg(record.bytes().as_ref())
            .arg(millis(inner.time_to_live));
        let seq = match inner.redis.eval::<i64>(&invocation).await {
            // Redis lost the group (restarted without persistence): make it
            // again and retry once.
            Err(error) if error.to_string().contains("NOGROUP") => {
                self.create_group().await?;
                inner.redis.eval::<i64>(&invocation).await?
            }
            other => other?,
        };
        if seq < 0 {
            return Ok(Appended::Duplicate);
        }
        let seq = u64::try_from(seq).map_err(|_| RedisError::reply("negative sequence"))?;
        self.held_set().insert(seq);
        Ok(Appended::Seq(seq))
    }

    async fn finish(&self, seq: u64, mode: &str) -> Result<(), RedisError> {
        let inner = &self.inner;
        let mut invocation = inner.scripts.finish.key(&inner.stream);
        invocation
            .arg(GROUP)
            .arg(seq)
            .arg(&inner.id_prefix)
            .arg(mode)
            .arg(millis(inner.time_to_live));
        inner.redis.eval::<i64>(&invocation).await?;
        self.held_set().remove(&seq);
        Ok(())
    }

    async fn record_dead_letter(&self, letter: &DeadLetter) -> Result<(), RedisError> {
        let inner = &self.inner;
        let (kind, reason) = match letter.failure() {
            // "<code> <start of the body>"
            Failure::Status { status, body } => ("status", format!("{} {body}", status.as_u16())),
            Failure::Error(error) => ("error", error.clone()),
            Failure::Panic(message) => ("panic", message.clone()),
        };
        let at = letter
            .failed_at()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let mut invocation = inner.scripts.dead_letter.key(&inner.stream);
        invocation.key(&inner.dead_stream).key(&inner.dead_index);
        invocation
            .arg(GROUP)
            .arg(letter.seq())
            .arg(&inner.id_prefix)
            .arg(letter.task_id().unwrap_or(""))
            .arg(letter.entry().bytes().as_ref())
            .arg(kind)
            .arg(reason)
            .arg(letter.attempts())
            .arg(u64::try_from(at).unwrap_or(u64::MAX));
        inner.redis.eval::<i64>(&invocation).await?;
        self.held_set().remove(&letter.seq());
        Ok(())
    }

    async fn heartbeat(&self) -> Result<(), RedisError> {
        let held: Vec<u64> = self.held_set().iter().copied().collect();
        let inner = &self.inner;
        for chunk in held.chunks(BATCH) {
            let mut invocation = inner.scripts.heartbeat.key(&inner.stream);
            invocation.arg(GROUP).arg(&inner.consumer);
            for seq in chunk {
                invocation.arg(format!("{seq}-0"));
            }
            let lost: Vec<String> = inner.redis.eval(&invocation).await?;
            if !lost.is_empty() {
                // Taken over by another replica (this one stalled longer
                // than the idle bound) or finished elsewhere: this replica
                // still runs its copy, at least once.
                tracing::warn!(
                    count = lost.len(),
                    "journal entries held here were taken over by another replica"
                );
            }
        }
        Ok(())
    }

    /// One `XAUTOCLAIM` pass of at most `count` entries from the cursor.
    /// Answers the entries taken (not already held here) and whether the
    /// scan reached the end of the pending list.
    async fn take_over_pass(&self, count: usize) -> Result<(Vec<Entry>, bool), RedisError> {
        let inner = &self.inner;
        let cursor = self.cursor().clone();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let mut invocation = inner.scripts.take_over.key(&inner.stream);
        invocation.key(&inner.dead_stream).key(&inner.dead_index);
        invocation
            .arg(GROUP)
            .arg(&inner.consumer)
            .arg(millis(inner.claim_idle))
            .arg(count.max(1))
            .arg(inner.max_deliveries)
            .arg(&inner.id_prefix)
            .arg(u64::try_from(now).unwrap_or(u64::MAX))
            .arg(&cursor);
        let reply: Value = inner.redis.eval(&invocation).await?;
        let Value::Array(mut parts) = reply else {
            return Err(RedisError::reply("takeover answered no array"));
        };
        if parts.len() != 3 {
            return Err(RedisError::reply("takeover answered a wrong shape"));
        }
        let dead = parts.pop().unwrap_or(Value::Nil);
        let taken = parts.pop().unwrap_or(Value::Nil);
        let next = string(parts.pop().as_ref()).unwrap_or_else(|| "0-0".to_owned());
        let done = next == "0-0";
        *self.cursor() = next;
        if let Value::Array(dead) = dead {
            for seq in dead {
                tracing::error!(
                    seq = string(Some(&seq)),
                    max_deliveries = inner.max_deliveries,
                    "journal entry delivered too many times; moved to the dead-letter stream"
                );
            }
        }
        let mut entries = Vec::new();
        if let Value::Array(taken) = taken {
            let mut held = self.held_set();
            for item in &taken {
                let entry = parse_entry(item)?;
                if held.insert(entry.seq()) {
                    entries.push(entry);
                }
            }
        }
        Ok((entries, done))
    }

    /// Reads this consumer's history (`id` = "0") or the entries never
    /// delivered (`id` = ">"), every page.
    async fn read_group(&self, from_history: bool) -> Result<Vec<Entry>, RedisError> {
        let inner = &self.inner;
        let mut entries = Vec::new();
        let mut last = "0".to_owned();
        loop {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(GROUP)
                .arg(&inner.consumer)
                .arg("COUNT")
                .arg(BATCH)
                .arg("STREAMS")
                .arg(&inner.stream)
                .arg(if from_history { last.as_str() } else { ">" });
            let reply: Value = inner.redis.query(&cmd).await?;
            let page = stream_entries(reply)?;
            if page.is_empty() {
                return Ok(entries);
            }
            for item in &page {
                let id = entry_id(item)?;
                last = id.clone();
                match item {
                    Value::Array(parts) if matches!(parts.get(1), Some(Value::Array(_))) => {
                        entries.push(parse_entry(item)?);
                    }
                    // Deleted from the stream while pending: nothing to run.
                    _ => {
                        let mut ack = redis::cmd("XACK");
                        ack.arg(&inner.stream).arg(GROUP).arg(&id);
                        inner.redis.query::<Value>(&ack).await?;
                    }
                }
            }
        }
    }

    async fn load_pending(&self) -> Result<Vec<Entry>, RedisError> {
        let mut entries = self.read_group(true).await?;
        entries.extend(self.read_group(false).await?);
        *self.cursor() = "0-0".to_owned();
        {
            let mut held = self.held_set();
            entries.retain(|entry| held.insert(entry.seq()));
        }
        loop {
            let (taken, done) = self.take_over_pass(BATCH).await?;
            entries.extend(taken);
            if done {
                break;
            }
        }
        entries.sort_by_key(Entry::seq);
        Ok(entries)
    }

    async fn load_dead_letters(&self) -> Result<Vec<DeadLetter>, RedisError> {
        let inner = &self.inner;
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&inner.dead_stream).arg("-").arg("+");
        let reply: Value = inner.redis.query(&cmd).await?;
        let Value::Array(items) = reply else {
            return Err(RedisError::reply("XRANGE answered no array"));
        };
        let mut letters = Vec::with_capacity(items.len());
        for item in &items {
            match parse_dead_letter(item) {
                Ok(letter) => letters.push(letter),
                Err(error) => {
                    tracing::error!(%error, "skipping a dead letter that cannot be decoded")
                }
            }
        }
        letters.sort_by_key(DeadLetter::seq);
        Ok(letters)
    }
}

impl fmt::Debug for RedisJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RedisJournal")
            .field("consumer", &inner.consumer)
            .field("stream", &String::from_utf8_lossy(&inner.stream))
            .field("claim_idle", &inner.claim_idle)
            .field("take_over_interval", &inner.take_over_interval)
            .field("max_deliveries", &inner.max_deliveries)
            .field("time_to_live", &inner.time_to_live)
            .field("held", &self.held_set().len())
            .finish_non_exhaustive()
    }
}

fn unavailable(error: RedisError) -> JournalError {
    JournalError::unavailable(error)
}

impl Journal for RedisJournal {
    fn append(&self, records: Vec<Record>) -> BoxFuture<'_, Result<Vec<Appended>, JournalError>> {
        Box::pin(async move {
            let mut appended = Vec::with_capacity(records.len());
            for record in &records {
                match self.append_record(record).await {
                    Ok(outcome) => appended.push(outcome),
                    Err(error) => {
                        // Take back what this batch appended: nothing of it
                        // is answered 2xx.
                        for outcome in appended {
                            if let Appended::Seq(seq) = outcome {
                                let _ = self.finish(seq, "withdraw").await;
                            }
                        }
                        return Err(unavailable(error));
                    }
                }
            }
            Ok(appended)
        })
    }

    fn append_one(&self, record: Record) -> BoxFuture<'_, Result<Appended, JournalError>> {
        Box::pin(async move { self.append_record(&record).await.map_err(unavailable) })
    }

    fn complete(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            self.finish(seq, "done").await.map_err(|error| {
                // Retried before the next heartbeat; held meanwhile, so the
                // event does not run again.
                self.deferred().push(Deferred::Complete(seq));
                unavailable(error)
            })
        })
    }

    fn withdraw(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            self.finish(seq, "withdraw").await.map_err(|error| {
                // Not retried: the provider's retry may already have been
                // answered as a duplicate of this entry, so it must run.
                // No longer held, it is taken over once idle and run.
                self.held_set().remove(&seq);
                unavailable(error)
            })
        })
    }

    fn pending(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        Box::pin(async move {
            self.create_group().await.map_err(unavailable)?;
            self.load_pending().await.map_err(unavailable)
        })
    }

    fn dead_letter(&self, letter: &DeadLetter) -> BoxFuture<'_, Result<(), JournalError>> {
        let letter = letter.clone();
        Box::pin(async move {
            self.record_dead_letter(&letter).await.map_err(|error| {
                self.deferred().push(Deferred::DeadLetter(letter));
                unavailable(error)
            })
        })
    }

    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, JournalError>> {
        Box::pin(async move { self.load_dead_letters().await.map_err(unavailable) })
    }

    fn remove_dead_letter(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let mut invocation = inner.scripts.remove_dead_letter.key(&inner.dead_stream);
            invocation.key(&inner.dead_index).arg(seq);
            inner
                .redis
                .eval::<i64>(&invocation)
                .await
                .map(drop)
                .map_err(unavailable)
        })
    }

    fn take_over_interval(&self) -> Option<Duration> {
        Some(self.inner.take_over_interval)
    }

    fn take_over(&self, max: usize) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        Box::pin(async move {
            self.retry_deferred().await.map_err(unavailable)?;
            self.heartbeat().await.map_err(unavailable)?;
            if max == 0 {
                return Ok(Vec::new());
            }
            let (entries, _) = self
                .take_over_pass(max.min(BATCH))
                .await
                .map_err(unavailable)?;
            Ok(entries)
        })
    }
}
