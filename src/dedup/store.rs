//! The [`DedupStore`] trait: where the dedup layer remembers keys.

use std::future::Future;
use std::time::Duration;

use super::DedupKey;

/// How often the default [`DedupStore::wait`] asks the store again.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The answer of [`DedupStore::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim<T> {
    /// The key was unknown (or its entry had expired): it is now in flight,
    /// owned by the caller, who must [`complete`](DedupStore::complete) or
    /// [`release`](DedupStore::release) it with this token.
    Acquired(T),
    /// The key was processed and is still remembered: a duplicate.
    Done,
    /// Another caller holds a live claim on the key.
    InFlight,
}

/// The answer of [`DedupStore::peek`]: what the store knows of a key, read
/// without changing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Never claimed, or expired, released or forgotten.
    Unknown,
    /// Another caller holds a live claim on the key.
    InFlight,
    /// The key was processed and is still remembered.
    Done,
}

/// Where the dedup layer remembers keys.
///
/// Each key is in one of three states: unknown, in flight (claimed by one
/// caller, for a bounded time), or done (remembered for the store's TTL).
/// The layer drives it like this:
///
/// 1. [`claim`](Self::claim): atomically, an unknown or expired key becomes
///    in flight and the caller gets an owner token; concurrent claims of one
///    key yield exactly one [`Claim::Acquired`].
/// 2. after the inner service answered, [`complete`](Self::complete) (done)
///    or [`release`](Self::release) (unknown again, so a retry runs) with that
///    token. Both only ever touch the caller's own claim: if the claim expired
///    and another caller claimed the key, the other caller's claim is left
///    alone.
/// 3. a caller that got [`Claim::InFlight`] calls [`wait`](Self::wait), then
///    claims again, until the layer's wait bound runs out.
///
/// [`peek`](Self::peek) reads a key's state without claiming it: the
/// [progress layer](crate::progress) asks it whether a task's final event
/// was already accepted.
///
/// An in-flight claim must expire on its own (a crashed process never
/// releases it), after a store-defined claim timeout. The store also owns the
/// TTL of done keys.
///
/// The methods return `impl Future + Send` (not boxed futures) so an
/// implementation can be written with `async fn` and costs no allocation;
/// the price is that the trait is not object safe, so the layer is generic
/// over its store. A Redis store fits this shape with `SET key token NX PX`
/// for `claim` and Lua compare-and-delete / compare-and-set scripts for
/// `release` and `complete`.
///
/// # Example
///
/// A store that forgets nothing and knows no one, to show the shape:
///
/// ```
/// use std::convert::Infallible;
/// use taskhook::dedup::{Claim, DedupKey, DedupStore};
///
/// struct AlwaysNew;
///
/// impl DedupStore for AlwaysNew {
///     type Token = ();
///     type Error = Infallible;
///
///     async fn claim(&self, _key: &DedupKey) -> Result<Claim<()>, Infallible> {
///         Ok(Claim::Acquired(()))
///     }
///     async fn complete(&self, _key: &DedupKey, _token: &()) -> Result<(), Infallible> {
///         Ok(())
///     }
///     async fn release(&self, _key: &DedupKey, _token: &()) -> Result<(), Infallible> {
///         Ok(())
///     }
///     async fn forget(&self, _key: &DedupKey) -> Result<(), Infallible> {
///         Ok(())
///     }
/// }
/// ```
pub trait DedupStore: Send + Sync + 'static {
    /// Proof of ownership of a claim, given by [`claim`](Self::claim) and
    /// handed back to [`complete`](Self::complete) or
    /// [`release`](Self::release).
    type Token: Send + Sync + 'static;

    /// The error of a failed store operation (a backend that is down).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Atomically claims `key` if it is unknown or its entry has expired.
    fn claim(
        &self,
        key: &DedupKey,
    ) -> impl Future<Output = Result<Claim<Self::Token>, Self::Error>> + Send;

    /// Marks `key` done for the store's TTL, unless another caller holds a
    /// live claim on it, and wakes the callers waiting on it.
    fn complete(
        &self,
        key: &DedupKey,
        token: &Self::Token,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Forgets `key` if the claim `token` is still the current one, and wakes
    /// the callers waiting on it.
    fn release(
        &self,
        key: &DedupKey,
        token: &Self::Token,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Forgets `key` if it is done, so the next callback with it is
    /// processed again; a key in flight is left alone (its owner decides).
    ///
    /// This is the way back for an event that was acknowledged and then
    /// failed for good in the background: forget its id from the fast-ack
    /// layer's dead-letter hook and the provider's next push of it runs the
    /// handler again (see [`fast_ack`](crate::fast_ack), "Stacking with
    /// dedup").
    fn forget(&self, key: &DedupKey) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Resolves once the claim on `key` may have ended (completed, released
    /// or expired). Waking early is allowed: the layer claims again after
    /// every wake-up and bounds the total wait itself.
    ///
    /// The default sleeps 100 ms, which turns the layer's
    /// loop into polling; a store that can notify (the moka store, Redis
    /// keyspace notifications) should override it.
    fn wait(&self, key: &DedupKey) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = key;
        async {
            tokio::time::sleep(DEFAULT_POLL_INTERVAL).await;
            Ok(())
        }
    }

    /// Reads the state of `key` without changing it: done, in flight (a
    /// live claim), or unknown. The answer is a snapshot: a claim may start
    /// or end right after it.
    ///
    /// The [progress layer](crate::progress) asks it, with the task id, to
    /// tell a late intermediate event (a regression) from a new one.
    ///
    /// The default claims the key and, when it was acquired, releases it at
    /// once: correct for any store, but two operations, and a concurrent
    /// claim in between sees the key in flight and waits for the release.
    /// A store that can read a key (every store of this crate) should
    /// override it.
    fn peek(&self, key: &DedupKey) -> impl Future<Output = Result<KeyState, Self::Error>> + Send {
        async move {
            Ok(match self.claim(key).await? {
                Claim::Acquired(token) => {
                    self.release(key, &token).await?;
                    KeyState::Unknown
                }
                Claim::Done => KeyState::Done,
                Claim::InFlight => KeyState::InFlight,
            })
        }
    }
}
