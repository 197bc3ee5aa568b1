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
//!   `200`, remembering ids in a TTL store ([`backend`]).
//! - [`fast_ack`]: answer `202` once the event is journaled and queued, run
//!   the handler in the background with retries, dead letters, replay and
//!   graceful drain.
//! - [`provider`]: provider profiles, how each async-task API's pushes
//!   read into the one [`TaskEvent`] model ([`provider::Apimart`] by
//!   default; Replicate, fal, OpenAI, Standard Webhooks, KIE, Kling,
//!   midjourney-proxy, or your own).
//! - [`progress`]: for a provider that pushes every change of state, the
//!   intermediate ones to a progress handler (or dropped), regressions
//!   ignored, the final one on to dedup.
//! - [`stack`]: [`CallbackStack`], the layers in the right order around a
//!   handler, in one call.
//! - `verify` (feature `verify`): secret path token, IP allowlist, a static
//!   header secret, confirm-by-refetch, and the providers' signatures
//!   (Standard Webhooks `v1`/`v1a`, fal's Ed25519 with a JWKS, KIE's HMAC).
//! - `forward` (feature `forward`): `Forward`, the service that sends each
//!   event to an app at an upstream URL (the handler under fast-ack, for an
//!   app in any language).
//! - `server` (feature `server`): a hardened HTTP/1.1 and HTTP/2 server
//!   to put the route on.
//! - `metrics` (feature `metrics`): the layers record counters, the queue
//!   depth and latencies through the `metrics` facade, and `MetricsLayer`
//!   counts every answer of the route by status.
//!
//! The provider's sending side (its URL rules, delivery with retries,
//! workloads with duplicates) is a crate of its own, `taskhook-sim`, for
//! tests and benchmarks of a receiver.
//!
//! The status-code policy behind every response the layers write: a 2xx only
//! once the event is safely accepted; `503` with `Retry-After` for every
//! transient failure of ours; a 4xx only for input that can never succeed.
//!
//! # Example
//!
//! The recommended stack on an axum route (feature `axum` for the
//! extractor), built in the right order by [`CallbackStack`]: parse, dedup
//! by task id, acknowledge at once, process in the background.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{handler::HandlerWithoutStateExt, Router};
//! use taskhook::{CallbackStack, TaskEvent};
//!
//! async fn on_callback(event: TaskEvent) {
//!     for url in event.urls() {
//!         // Copy the file before it expires.
//!         println!("{} {} expires at {:?}", event.id(), url.url(), url.expires_at());
//!     }
//! }
//!
//! let (callback, handle) = CallbackStack::new().build(on_callback.into_service());
//! let app: Router = Router::new().route_service("/callback", callback);
//! // `handle`: stats, dead letters, replay, graceful shutdown.
//! # drop(handle);
//! # }
//! ```
//!
//! The layers compose by hand too (payload, then dedup, then fast-ack:
//! [`ServiceBuilderExt`] adds them to a `tower::ServiceBuilder` in that
//! order).
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `axum` | [`TaskEvent`] and [`RawPayload`] as axum extractors |
//! | `verify` | the `verify` layers: path token, IP allowlist, refetch, signatures |
//! | `refetch` | `verify::refetch::HttpConfirm`, a hyper client for confirm-by-refetch, and `verify::HttpJwks`, which fetches fal's signing keys |
//! | `forward` | `forward::Forward`: each event forwarded to an upstream URL over a pooled hyper client |
//! | `redb` | `backend::redb::RedbJournal` (durable fast-ack journal, group commit) and `backend::redb::RedbDedupStore` (done ids across restarts); implies `moka`; needs Rust 1.89 |
//! | `moka` | `backend::MokaStore`, a dedup store on a moka cache (exact LRU); the default `backend::CompactStore` needs no moka |
//! | `redis` | `backend::redis`: `RedisStore` and `RedisJournal`, dedup and queue shared by several replicas |
//! | `server` | `taskhook::server`: a hardened HTTP/1.1 and h2c server (header, idle and request timeouts, a connection cap, graceful shutdown) |
//! | `metrics` | `taskhook::metrics`: the layers record through the `metrics` facade (for a Prometheus `GET /metrics`), and `MetricsLayer` counts every answer by status |
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

pub mod backend;
pub mod body;
mod builder;
pub mod dedup;
mod detach;
pub mod event;
pub mod fast_ack;
#[cfg(feature = "forward")]
#[cfg_attr(docsrs, doc(cfg(feature = "forward")))]
pub mod forward;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
/// Without the feature `metrics`: the layers' recording calls, empty.
#[cfg(not(feature = "metrics"))]
mod metrics {
    pub(crate) mod record;
}
pub mod payload;
pub mod progress;
pub mod provider;
mod response;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
pub mod stack;
#[cfg(feature = "verify")]
#[cfg_attr(docsrs, doc(cfg(feature = "verify")))]
pub mod verify;

pub use self::builder::ServiceBuilderExt;
pub use self::dedup::DedupLayer;
pub use self::event::{TaskEvent, TaskStatus};
pub use self::fast_ack::{FastAckHandle, FastAckLayer};
pub use self::payload::{PayloadLayer, RawPayload};
pub use self::stack::{CallbackService, CallbackStack};

/// The README's examples, compiled and run as doctests.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
