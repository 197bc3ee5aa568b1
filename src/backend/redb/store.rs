//! [`RedbDedupStore`]: moka in front of the done task ids kept in the
//! journal's file.

use std::fmt;

use super::RedbJournal;
use crate::backend::{MokaStore, MokaToken};
use crate::dedup::{Claim, DedupKey, DedupStore, KeyState};
use crate::fast_ack::journal::JournalError;

/// A [`DedupStore`] that remembers done task ids across restarts: a
/// [`MokaStore`] in front (the fast path, and the in-flight claims), the
/// done ids in the [`RedbJournal`]'s file behind it.
///
/// Not needed for durability: the [`RedbJournal`] itself deduplicates by
/// task id (a pending or done task id is answered `200` duplicate by the
/// fast-ack layer, across restarts), so behind the default dedup store a
/// duplicate pushed after a restart is absorbed already. This store still
/// earns its place as the dedup layer's store: it answers a task id known
/// to be done *before* the journal append (one read instead of a write
/// through the group commit), and its in-flight claims make a concurrent
/// duplicate wait for the first one's answer. The journal and this store
/// keep done ids in one table: with the default key ([`ById`]), a dedup key
/// is the task id, so each sees what the other marked done.
///
/// [`ById`]: crate::dedup::ById
///
/// - [`claim`](DedupStore::claim) asks moka first: done or in flight there
///   is the answer. A key moka does not know (after a restart, or evicted)
///   is looked up in the file; if it is done there and not expired, moka
///   learns it and the answer is [`Claim::Done`].
/// - [`complete`](DedupStore::complete) marks the key done in moka and
///   writes it to the file with its expiry (now + moka's TTL), sharing the
///   journal's group commit, and completes once that commit is synced. So
///   behind the dedup layer, every id answered `2xx` is on disk before the
///   answer leaves, and its duplicate pushed after a crash is absorbed.
/// - [`forget`](DedupStore::forget) removes the key from both (for the
///   dead-letter hook: the provider's next push runs the handler again).
///   The journal forgets a dead-lettered task id in the file by itself,
///   this key with it when they are the same; moka's copy is the hook's
///   to forget.
/// - [`peek`](DedupStore::peek) asks moka, then the file, and changes
///   neither.
/// - [`release`](DedupStore::release) and [`wait`](DedupStore::wait) are
///   moka's: in-flight claims live in memory only, and a restart forgets
///   them, which is right (a claim's owner died with the process).
///
/// Expired ids are purged from the file a few hundred per commit. In-flight
/// claims are per process, as with [`MokaStore`]: for replicas use a shared
/// store (Redis).
///
/// ```
/// use std::time::Duration;
/// use taskhook::backend::{redb::{RedbDedupStore, RedbJournal}, MokaStore};
/// use taskhook::fast_ack::FastAckLayer;
/// use taskhook::{DedupLayer, PayloadLayer};
/// use tower::ServiceBuilder;
///
/// # let dir = std::env::temp_dir().join(format!("taskhook-doc-store-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let journal = RedbJournal::open(dir.join("journal.redb")).unwrap();
/// let store = RedbDedupStore::new(
///     journal.clone(),
///     MokaStore::builder().time_to_live(Duration::from_secs(6 * 3600)).build(),
/// );
/// let (fast_ack, handle) = FastAckLayer::builder().journal(journal).build();
/// let stack = ServiceBuilder::new()
///     .layer(PayloadLayer::new())
///     .layer(DedupLayer::with_store(store))
///     .layer(fast_ack);
/// # drop((stack, handle)); std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone)]
pub struct RedbDedupStore {
    journal: RedbJournal,
    moka: MokaStore,
}

impl RedbDedupStore {
    /// Layers `moka` over the done ids kept in `journal`'s file. Keys are
    /// remembered on disk for moka's time-to-live.
    pub fn new(journal: RedbJournal, moka: MokaStore) -> Self {
        Self { journal, moka }
    }

    /// The journal holding the done ids.
    pub fn journal(&self) -> &RedbJournal {
        &self.journal
    }

    /// The moka store in front.
    pub fn moka(&self) -> &MokaStore {
        &self.moka
    }
}

impl fmt::Debug for RedbDedupStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbDedupStore")
            .field("journal", &self.journal.path())
            .field("moka", &self.moka)
            .finish()
    }
}

/// The owner token of a [`RedbDedupStore`] claim.
#[derive(Debug)]
pub struct RedbToken(MokaToken);

impl DedupStore for RedbDedupStore {
    type Token = RedbToken;
    type Error = JournalError;

    async fn claim(&self, key: &DedupKey) -> Result<Claim<RedbToken>, JournalError> {
        let token = match self.moka.claim(key).await {
            Ok(Claim::Acquired(token)) => token,
            Ok(Claim::Done) => return Ok(Claim::Done),
            Ok(Claim::InFlight) => return Ok(Claim::InFlight),
            Err(never) => match never {},
        };
        match self.journal.is_done(key.as_str()).await {
            Ok(false) => Ok(Claim::Acquired(RedbToken(token))),
            Ok(true) => {
                // Done before a restart (or evicted from memory): moka
                // learns it, and waiters on this claim wake to "done".
                let Ok(()) = self.moka.complete(key, &token).await;
                Ok(Claim::Done)
            }
            Err(error) => {
                let Ok(()) = self.moka.release(key, &token).await;
                Err(error)
            }
        }
    }

    async fn complete(&self, key: &DedupKey, token: &RedbToken) -> Result<(), JournalError> {
        let Ok(()) = self.moka.complete(key, &token.0).await;
        self.journal
            .mark_done(key.as_str(), self.moka.time_to_live())
            .await
    }

    async fn release(&self, key: &DedupKey, token: &RedbToken) -> Result<(), JournalError> {
        let Ok(()) = self.moka.release(key, &token.0).await;
        Ok(())
    }

    async fn forget(&self, key: &DedupKey) -> Result<(), JournalError> {
        let Ok(()) = self.moka.forget(key).await;
        self.journal.forget_done(key.as_str()).await
    }

    async fn wait(&self, key: &DedupKey) -> Result<(), JournalError> {
        let Ok(()) = self.moka.wait(key).await;
        Ok(())
    }
    async fn peek(&self, key: &DedupKey) -> Result<KeyState, JournalError> {
        match self.moka.peek(key).await {
            Ok(KeyState::Unknown) => {}
            Ok(known) => return Ok(known),
            Err(never) => match never {},
        }
        // Not in memory (after a restart, or evicted): done in the file?
        Ok(if self.journal.is_done(key.as_str()).await? {
            KeyState::Done
        } else {
            KeyState::Unknown
        })
    }
}
