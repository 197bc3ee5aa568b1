//! A durable journal and dedup store in a redb file (feature
//! `redb`): nothing acknowledged is lost when the process dies.
//!
//! - [`RedbJournal`]: the fast-ack [`Journal`](crate::fast_ack::journal::Journal).
//!   The layer answers `2xx` only once the event's append is committed with
//!   a disk sync; concurrent appends share one transaction and one sync
//!   (group commit). Pending entries are replayed in order at start-up,
//!   processed ones are deleted, dead letters persist. It deduplicates by
//!   task id: a task id pending in the file, or processed within the last
//!   24 h, is answered `200` duplicate, also after a restart, whatever
//!   dedup store is in front.
//! - [`RedbDedupStore`] (optional): the dedup layer's
//!   [`DedupStore`](crate::dedup::DedupStore), a [`MokaStore`](crate::backend::MokaStore) in
//!   front with the done task ids kept in the same file: it answers a known
//!   done id before the journal append and keeps the in-flight claims.
//!
//! # What redb guarantees, and what the journal adds
//!
//! redb is an embedded, pure-Rust key-value store with ACID transactions
//! over a copy-on-write B-tree. A durable commit (`Durability::Immediate`)
//! writes the new pages with their XXH3-128 checksums (a Merkle tree up to
//! the commit slot), flips the primary commit slot and calls `fsync` once;
//! when `commit` returns, the data is on disk. A crash or power loss during
//! a commit leaves a torn write behind: on the next open redb finds the
//! primary slot's checksums wrong and falls back to the previous commit,
//! which holds everything acknowledged before (the torn commit was never
//! acknowledged: its `fsync` had not returned). It assumes, like SQLite,
//! that a synced write is durable and that a write does not damage bytes
//! outside its range.
//!
//! redb does not verify checksums on every read. So on open the journal
//! runs redb's integrity check (every page against its checksum) and
//! decodes every entry and dead letter; a file damaged in any other way
//! than a torn commit (truncated, bytes flipped, not a journal) is an error,
//! [`JournalError::Corrupt`](crate::fast_ack::journal::JournalError::Corrupt) or
//! [`JournalError::Io`](crate::fast_ack::journal::JournalError::Io), rather than a
//! journal that silently lost acknowledged entries.
//!
//! # Example
//!
//! payload → dedup → fast-ack → handler. The default dedup store is
//! enough: the journal remembers processed task ids across restarts.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use taskhook::backend::redb::RedbJournal;
//! use taskhook::body::BufferedBody;
//! use taskhook::fast_ack::FastAckLayer;
//! use taskhook::{DedupLayer, PayloadLayer};
//! use tower::{service_fn, ServiceBuilder};
//!
//! # let dir = std::env::temp_dir().join(format!("taskhook-doc-mod0-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let journal = RedbJournal::open(dir.join("journal.redb")).expect("journal opens");
//! let (fast_ack, _handle) = FastAckLayer::builder().journal(journal).build();
//! let service = ServiceBuilder::new()
//!     .layer(PayloadLayer::new())
//!     .layer(DedupLayer::new())
//!     .layer(fast_ack)
//!     .service(service_fn(|_req: Request<BufferedBody>| async {
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//! # drop(service); std::fs::remove_dir_all(&dir).unwrap();
//! ```
//!
//! With both stores on one file, so a known done id is answered before
//! the journal append:
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use taskhook::backend::{redb::{RedbDedupStore, RedbJournal}, MokaStore};
//! use taskhook::body::BufferedBody;
//! use taskhook::fast_ack::FastAckLayer;
//! use taskhook::{DedupLayer, PayloadLayer};
//! use tower::{service_fn, ServiceBuilder};
//!
//! # let dir = std::env::temp_dir().join(format!("taskhook-doc-mod-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let journal = RedbJournal::open(dir.join("journal.redb")).expect("journal opens");
//! let dedup = RedbDedupStore::new(journal.clone(), MokaStore::new());
//! let (fast_ack, _handle) = FastAckLayer::builder().journal(journal).build();
//! let service = ServiceBuilder::new()
//!     .layer(PayloadLayer::new())
//!     .layer(DedupLayer::with_store(dedup))
//!     .layer(fast_ack)
//!     .service(service_fn(|_req: Request<BufferedBody>| async {
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//! # drop(service); std::fs::remove_dir_all(&dir).unwrap();
//! ```

mod codec;
mod faults;
mod journal;
mod store;
mod writer;

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use self::faults::FaultInjection;
pub use self::journal::{RedbJournal, RedbJournalBuilder, RedbStats};
pub use self::store::{RedbDedupStore, RedbToken};
