//! Tower layers for *receiving* webhook callbacks from asynchronous task APIs.
//!
//! A generation API (images, video, audio) POSTs the task-status JSON to
//! `<base>/callback` when a task reaches a final state. It retries a 5xx or a
//! missing answer (after 10 s, 30 s and 60 s) and gives up for good on a 4xx,
//! and rarely pushes the same task twice. This crate makes a callback route
//! correct under those rules:
//!
//! - [`payload`]: buffer (bounded) and parse the body once into a typed
//!   [`TaskEvent`], put it in the request extensions.
//! - [`dedup`]: run the handler once per task id and answer duplicates
//!   `200`, remembering ids in a moka TTL store ([`backend`]).
//! - `verify` (feature `verify`): secret path token, IP allowlist,
//!   confirm-by-refetch and Standard Webhooks signatures.
//! - `sim` (feature `sim`): a simulator of the provider's sending side, for demos, end-to-end tests and benchmarks.
//! - [`fast_ack`]: answer `202` once the event is journaled and queued, run the handler in the background with retries and dead letters.
//!
//! The status-code policy behind every response the layers write: a 2xx only
//! once the event is safely accepted; `503` with `Retry-After` for every
//! transient failure of ours; a 4xx only for input that can never succeed.
//!
//! # Example
//!
//! An axum route with the payload layer (feature `axum` for the extractor):
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{routing::post, Router};
//! use taskhook::{PayloadLayer, TaskEvent};
//!
//! async fn on_callback(event: TaskEvent) {
//!     for url in event.urls() {
//!         println!("{} {} expires at {:?}", event.id(), url.url(), url.expires_at());
//!     }
//! }
//!
//! let app: Router = Router::new().route(
//!     "/callback",
//!     post(on_callback).layer(PayloadLayer::new()),
//! );
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `axum` | [`TaskEvent`] and [`RawPayload`] as axum extractors |
//! | `verify` | the `verify` layers: path token, IP allowlist, refetch, signatures |
//! | `refetch` | `verify::refetch::HttpConfirm`, a hyper client for confirm-by-refetch |
//! | `sim` | `taskhook::sim`: the provider's sending side (URL rules, delivery with retries, fault injection) |
//! | `redb` | `backend::RedbJournal` (durable fast-ack journal, group commit) and `backend::RedbDedupStore` (done ids across restarts); needs Rust 1.89 |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
pub mod body;
pub mod dedup;
pub mod event;
pub mod fast_ack;
pub mod payload;
mod response;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
#[cfg(feature = "verify")]
#[cfg_attr(docsrs, doc(cfg(feature = "verify")))]
pub mod verify;

pub use self::backend::MokaStore;
#[cfg(feature = "redb")]
pub use self::backend::{RedbDedupStore, RedbJournal};
pub use self::dedup::{Dedup, DedupLayer, DedupMetrics, DedupStore};
pub use self::event::{IdError, PayloadError, PayloadErrorKind, TaskEvent, TaskStatus};
pub use self::fast_ack::{FastAck, FastAckHandle, FastAckLayer};
pub use self::payload::{Payload, PayloadLayer, RawPayload};
#[cfg(feature = "verify")]
pub use self::verify::{IpAllowLayer, PathTokenLayer, RefetchLayer, StandardWebhooksLayer};
