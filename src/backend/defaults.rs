//! The defaults every dedup store shares ([`CompactStore`](super::CompactStore),
//! [`MokaStore`](super::MokaStore), `RedisStore`, `RedbDedupStore`), and the
//! done-id time to live of the journals. Each is stated in
//! the docs of its setter.

use std::time::Duration;

/// The default number of keys remembered: 1,000,000.
pub(crate) const DEFAULT_MAX_CAPACITY: u64 = 1_000_000;

/// The default time a done key is remembered: 24 h, far beyond the
/// provider's 2-minute retry window (a duplicate push can come much later).
pub(crate) const DEFAULT_TIME_TO_LIVE: Duration = Duration::from_secs(24 * 60 * 60);

/// The default time after which an in-flight claim expires on its own: 60 s.
pub(crate) const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(60);

/// The default period of the maintenance task: 1 s.
pub(crate) const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);
