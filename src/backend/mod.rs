//! Stores behind the layers: each backend implements the traits of every
//! layer it serves.
//!
//! - [`CompactStore`], in process memory, the default
//!   [`DedupStore`](crate::dedup::DedupStore): a sharded table of 24-byte
//!   entries, about 52 bytes per remembered id at 1,000,000 ids.
//! - `MokaStore` (feature `moka`), in process memory, on a moka cache: exact LRU
//!   eviction, about 400 bytes per remembered id and 5 to 30 times slower
//!   (`BENCHMARKS.md`).
//! - `redis` (feature `redis`): `RedisStore` and `RedisJournal`, shared by
//!   several replicas.
//! - `redb` (feature `redb`): `RedbJournal`, a durable fast-ack journal with
//!   group commit, and `RedbDedupStore`, moka in front of done ids kept on
//!   disk.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use taskhook::backend::CompactStore;
//! use taskhook::{DedupLayer, PayloadLayer};
//! use tower::ServiceBuilder;
//!
//! let store = CompactStore::builder()
//!     .max_capacity(100_000)
//!     .time_to_live(Duration::from_secs(6 * 3600))
//!     .build();
//! let stack = ServiceBuilder::new()
//!     .layer(PayloadLayer::new())
//!     .layer(DedupLayer::with_store(store));
//! # let _ = stack;
//! ```

mod compact;
mod defaults;
mod hash;
mod maintenance;
#[cfg(feature = "moka")]
mod moka;
#[cfg(feature = "redb")]
#[cfg_attr(docsrs, doc(cfg(feature = "redb")))]
pub mod redb;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use self::compact::{CompactStore, CompactStoreBuilder, CompactToken};
#[cfg(feature = "moka")]
#[cfg_attr(docsrs, doc(cfg(feature = "moka")))]
pub use self::moka::{MokaStore, MokaStoreBuilder, MokaToken};
