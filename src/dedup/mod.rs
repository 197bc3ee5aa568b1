//! Run the handler once per task id: absorb duplicate pushes without ever
//! turning a retry into a lost event.
//!
//! [`DedupLayer`] sits behind the [`PayloadLayer`](crate::PayloadLayer) and
//! reads the parsed [`TaskEvent`](crate::TaskEvent) from the request
//! extensions. A [`KeyExtractor`] turns it into a [`DedupKey`] (by default
//! the task id, [`ById`]). Each key is unknown, in flight, or done, in a
//! [`DedupStore`] (by default a [`CompactStore`](crate::backend::CompactStore) in memory):
//!
//! | key | what the layer does |
//! |---|---|
//! | unknown (or expired) | claims it in flight and calls the inner service |
//! | done | answers `200` at once with `taskhook-duplicate: done`, without calling the inner service |
//! | in flight | waits for the first request's outcome, at most [`wait_timeout`](DedupLayer::wait_timeout) (default 5 s): done, `200` as above; released, this request claims and runs; still in flight, `503` with `Retry-After` |
//!
//! Once the inner service answered:
//!
//! | inner answer | key becomes |
//! |---|---|
//! | 2xx | done, for the store's TTL (default 24 h) |
//! | 4xx | done by default: the provider never retries a 4xx, so only a rare duplicate push could run it again, for the same 4xx ([`remember_client_errors`](DedupLayer::remember_client_errors)`(false)` releases it instead) |
//! | 5xx, any other status, or an error | released: the provider's retry runs |
//! | the handler panics | released, by a drop guard |
//!
//! The inner call runs in the request's own future (no task is spawned), but
//! it is never cancelled by the client: when the response future is dropped
//! before the handler answered (the client went away, a timeout layer
//! outside gave up), the call moves onto a task of its own, runs to the end
//! and its outcome is recorded as above. The inner service may already have
//! accepted the event (the fast-ack layer finishes an accept whose response
//! future was dropped), so releasing the key then would let the provider's
//! retry process the event a second time; instead the retry waits for the
//! outcome like any duplicate in flight.
//!
//! Nothing leaves a key in flight for good: a claim also expires on its own
//! after the store's claim timeout (default 60 s), for a handler that hangs
//! or a release that could not run.
//!
//! The layer answers by itself:
//!
//! - `200` with `taskhook-duplicate: done` and `{"status":"duplicate","id":..}` for a
//!   duplicate of a done key ([`DUPLICATE_HEADER`]);
//! - `503` with `Retry-After` (default 10 s,
//!   [`retry_after`](DedupLayer::retry_after)) when the key is still in
//!   flight after the wait bound, or when the store fails. With
//!   [`fail_open`](DedupLayer::fail_open)`(true)` a store failure calls the
//!   inner service without deduplication instead: an explicit opt-in,
//!   because it trades "never twice" for availability;
//! - `500` when no [`TaskEvent`](crate::TaskEvent) is in the extensions:
//!   [`PayloadLayer`](crate::PayloadLayer) is missing in front of this layer,
//!   our programming error (a 4xx would make the provider give up).
//!
//! # Observability
//!
//! [`DedupLayer::stats`] (and [`Dedup::stats`]) read a [`DedupStats`]
//! snapshot of the counters shared by the layer, its clones and every
//! service it makes. `tracing` events at `debug` level (`warn` for
//! store failures) carry the task id as the `id` field and the key as `key`:
//! `dedup: claimed`, `dedup: duplicate of a processed callback`,
//! `dedup: in flight elsewhere, waiting`, `dedup: released` (with a `reason`),
//! `dedup: done`. With the feature `metrics`, each duplicate answered is
//! also counted in `taskhook_duplicates_total` (`kind="done"`, or
//! `kind="in_flight"` for a `503` after the wait bound; see
//! `taskhook::metrics`).
//!
//! # Stores and time
//!
//! The [`DedupStore`] trait (claim / complete / release / wait, and peek) has a
//! Redis-shaped contract: claims are atomic, owned through a token, and
//! expire on their own. The in-process stores, the default
//! [`CompactStore`](crate::backend::CompactStore) and the `MokaStore`
//! (feature `moka`), both in [`backend`](crate::backend), measure deadlines on
//! [`tokio::time::Instant`], so `tokio::time::pause` and `advance` drive TTLs
//! and claim timeouts in tests. The layer needs a
//! tokio runtime (timers, and a task for a call whose client left).
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use taskhook::body::BufferedBody;
//! use taskhook::dedup::{ById, DUPLICATE_HEADER};
//! use taskhook::{DedupLayer, PayloadLayer, TaskEvent};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Infallible> {
//! let dedup = DedupLayer::new()
//!     .key(ById) // the default; `ByIdAndStatus` keys on the status too
//!     .wait_timeout(Duration::from_secs(2)) // for an in-flight duplicate, then `503`
//!     .retry_after(Duration::from_secs(30)) // of the `503`s
//!     .remember_client_errors(true) // the default: a `4xx` marks the id done
//!     .fail_open(false); // the default: a store failure is `503`, not a second run
//! let counted = dedup.clone(); // shares the counters, for `stats()` later
//! let service = ServiceBuilder::new()
//!     .layer(PayloadLayer::new())
//!     .layer(dedup)
//!     .service(service_fn(|req: Request<BufferedBody>| async move {
//!         let event = req.extensions().get::<TaskEvent>().expect("set by PayloadLayer");
//!         println!("processing task {}", event.id());
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//!
//! let push = || {
//!     Request::post("/callback")
//!         .body(r#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#.to_owned())
//!         .unwrap()
//! };
//! let first = service.clone().oneshot(push()).await?;
//! assert_eq!(first.status(), StatusCode::OK);
//! assert!(first.headers().get(&DUPLICATE_HEADER).is_none());
//!
//! let again = service.oneshot(push()).await?;
//! assert_eq!(again.status(), StatusCode::OK);
//! assert_eq!(again.headers()[&DUPLICATE_HEADER], "done");
//! let stats = counted.stats();
//! assert_eq!((stats.first, stats.duplicate_done), (1, 1));
//! # Ok(()) }
//! ```

pub mod future;
mod key;
mod layer;
mod service;
mod stats;
mod store;

pub use self::key::{ById, ByIdAndStatus, DedupKey, KeyExtractor};
pub use self::layer::DedupLayer;
pub use self::service::Dedup;
pub use self::stats::DedupStats;
pub use self::store::{Claim, DedupStore, KeyState};
pub use crate::response::DUPLICATE_HEADER;
