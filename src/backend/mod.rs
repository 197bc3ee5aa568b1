//! Stores behind the layers: each backend implements the traits of every
//! layer it serves.
//!
//! - [`moka`]: [`MokaStore`], in process memory, the default
//!   [`DedupStore`](crate::dedup::DedupStore).
//! - `redb` (feature `redb`): `RedbJournal`, a durable fast-ack journal with
//!   group commit, and `RedbDedupStore`, moka in front of done ids kept on
//!   disk.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use taskhook::backend::MokaStore;
//! use taskhook::{DedupLayer, PayloadLayer};
//! use tower::ServiceBuilder;
//!
//! let store = MokaStore::builder()
//!     .max_capacity(100_000)
//!     .time_to_live(Duration::from_secs(6 * 3600))
//!     .build();
//! let stack = ServiceBuilder::new()
//!     .layer(PayloadLayer::new())
//!     .layer(DedupLayer::with_store(store));
//! # let _ = stack;
//! ```

pub mod moka;
#[cfg(feature = "redb")]
#[cfg_attr(docsrs, doc(cfg(feature = "redb")))]
pub mod redb;

pub use self::moka::{MokaStore, MokaStoreBuilder, MokaToken};
#[cfg(feature = "redb")]
pub use self::redb::{RedbDedupStore, RedbJournal, RedbJournalBuilder, RedbStats, RedbToken};
