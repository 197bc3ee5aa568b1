//! Several events per task: final states to the handler once, intermediate
//! states to an optional progress handler, regressions ignored.
//!
//! Some providers push every change of a task's state (Replicate, Kling,
//! Luma, MiniMax, midjourney-proxy: queued, processing, 40 %, succeeded;
//! their profiles say [`Events::EveryChange`](crate::provider::Events)).
//! Deduplicating those by task id alone would run the handler on the first
//! intermediate push and answer the final one as a duplicate: the result
//! would be lost. [`ProgressLayer`] sits between the
//! [`PayloadLayer`](crate::PayloadLayer) and the
//! [`DedupLayer`](crate::DedupLayer), reads the parsed
//! [`TaskEvent`](crate::TaskEvent), and sorts the pushes:
//!
//! | push | what the layer does |
//! |---|---|
//! | final ([`is_final`](crate::TaskEvent::is_final): completed, failed, cancelled) | passes it on: dedup by task id, so the handler runs once per task, with its final state; another final state later (failed after succeeded) is a duplicate |
//! | intermediate, no progress handler (the default) | `200` with `taskhook-ignored: intermediate`, dropped |
//! | intermediate, the task's final event done or in flight in the dedup store | a regression: `200` with `taskhook-ignored: regression`; neither handler sees it |
//! | intermediate, its state already handled | `200` with `taskhook-duplicate: progress` |
//! | intermediate, a new state | the progress handler runs; `200` with `{"status":"progress","id":..}` |
//!
//! and answers by itself:
//!
//! - `200` with `taskhook-ignored: progress_failed` when the progress
//!   handler fails ([below](#when-the-progress-handler-fails) for why);
//! - `503` with `Retry-After` (default 10 s,
//!   [`retry_after`](ProgressLayer::retry_after)) when the dedup store
//!   cannot be read: the regression check cannot be skipped, or a finished
//!   task could be reported as running again;
//! - `500` when no [`TaskEvent`](crate::TaskEvent) is in the extensions
//!   (the payload layer is missing in front of it), as the dedup layer does.
//!
//! Every push whose normalized status is not final is intermediate: a
//! status the profile left as [`TaskStatus::Other`](crate::TaskStatus::Other),
//! or no status at all, too. The [profile](crate::provider) decides what is
//! final, so it must map each final word of its provider to
//! `Completed`, `Failed` or `Cancelled`.
//!
//! Without a progress handler nothing is asked of any store: every
//! intermediate push, a regression too, is answered `200` with
//! `taskhook-ignored: intermediate` (no handler would see it either way).
//!
//! # One state, once
//!
//! The progress handler gets each state of a task once: the key of a
//! state is the task id, the provider's own status
//! ([`raw_status`](crate::TaskEvent::raw_status)) and the progress percent
//! when the push carries one. The percent is part of the state: for
//! midjourney-proxy, `IN_PROGRESS` at 10 % and at 20 % are two pieces of
//! news for a progress bar. A provider that pushes one status several
//! times without a percent (Replicate's `processing` with new logs)
//! reaches the progress handler once per status.
//!
//! The states are remembered in a small [`CompactStore`](crate::backend::CompactStore)
//! of this process (100,000 states for an hour by default,
//! [`state_store`](ProgressLayer::state_store)): two replicas may each hand
//! one state to their progress handler. A state is remembered once the
//! handler succeeded; while it runs, a re-push of the same state is a
//! duplicate too.
//!
//! # Regressions
//!
//! Pushes can cross in the network: a `processing` may arrive after the
//! `succeeded` it preceded. The layer asks the dedup layer's store
//! ([`DedupStore::peek`](crate::dedup::DedupStore::peek)), with the key the
//! dedup layer gives the event (keep the default, [`ById`](crate::dedup::ById):
//! a key that depends on the status, such as
//! [`ByIdAndStatus`](crate::dedup::ByIdAndStatus), would never find the
//! final event's). Done means the final event was accepted: behind
//! fast-ack, journaled and queued, whether or not the handler ran yet; in
//! flight means it is being accepted right now. Either way the
//! intermediate push is ignored.
//!
//! The answer is a snapshot: an intermediate push that arrives while its
//! final one is not yet claimed still reaches the progress handler, even if
//! the final one overtakes it a moment later. So the progress handler must
//! take states as advice (never set a finished task back to running in its
//! own records). The check knows what the dedup store knows: after a
//! restart the in-memory stores forget, a durable one
//! (`RedbDedupStore`, `RedisStore`) does not.
//!
//! # When the progress handler fails
//!
//! It is logged at `WARN`, the state is forgotten (a re-push of it runs the
//! handler again), and the push is answered `200` with
//! `taskhook-ignored: progress_failed`, not `503`:
//!
//! - an intermediate state is advice that the next push supersedes; the
//!   result is in the final event, and the final event never goes through
//!   the progress handler, so its failure cannot lose a result;
//! - the providers that push every change do not retry intermediate pushes
//!   (Replicate retries only the terminal event, midjourney-proxy retries
//!   nothing): a `503` would buy no second chance, and one that did retry
//!   would deliver a stale state, after newer ones.
//!
//! taskhook does not journal intermediate events: a progress handler that
//! must keep every state should write it somewhere durable itself.
//!
//! The progress handler runs inside the request (the provider waits for
//! the answer): keep it short, such as a row update or a send on a channel.
//! If it panics, a drop guard forgets the state and the panic goes on, as
//! with the dedup layer's inner service.
//!
//! # Order
//!
//! payload → progress → dedup → fast-ack → handler.
//! [`CallbackStack::profile`](crate::CallbackStack::profile) builds it for
//! a profile that pushes every change. Behind the dedup layer it could not
//! work: dedup would run the first intermediate push as the task's one
//! event.
//!
//! # Example
//!
//! A provider of its own ([`Profile`](crate::provider::Profile)) that
//! pushes every change, through the whole stack:
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{HeaderMap, Request, Response, StatusCode};
//! use taskhook::body::BufferedBody;
//! use taskhook::event::PayloadError;
//! use taskhook::progress::IGNORED_HEADER;
//! use taskhook::provider::{Events, Profile};
//! use taskhook::{CallbackStack, TaskEvent, TaskStatus};
//! use tower::{service_fn, ServiceExt};
//!
//! /// `{"id":"t1","status":"processing","progress":40}`, at every change.
//! #[derive(Debug)]
//! struct Acme;
//!
//! impl Profile for Acme {
//!     fn name(&self) -> &str {
//!         "acme"
//!     }
//!
//!     fn parse(&self, body: &Bytes, _headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
//!         let json: serde_json::Value =
//!             serde_json::from_slice(body).map_err(|e| PayloadError::from_json(e, body))?;
//!         let id = json["id"].as_str().ok_or_else(|| PayloadError::shape("no `id`"))?;
//!         let raw = json["status"].as_str().unwrap_or_default();
//!         let status = match raw {
//!             "queued" => TaskStatus::Pending,
//!             "succeeded" => TaskStatus::Completed,
//!             "failed" => TaskStatus::Failed,
//!             _ => TaskStatus::Processing,
//!         };
//!         let mut event = TaskEvent::builder(id).status(status).raw_status(raw);
//!         if let Some(percent) = json["progress"].as_u64().and_then(|p| u8::try_from(p).ok()) {
//!             event = event.progress(percent);
//!         }
//!         event.build()
//!     }
//!
//!     fn events(&self) -> Events {
//!         Events::EveryChange
//!     }
//!
//!     fn retry_horizon(&self) -> Duration {
//!         Duration::from_secs(60)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Infallible> {
//! let states = Arc::new(Mutex::new(Vec::new()));
//! let on_progress = {
//!     let states = states.clone();
//!     move |event: TaskEvent| {
//!         let states = states.clone();
//!         async move {
//!             let state = format!("{} {:?}", event.raw_status().unwrap_or("?"), event.progress());
//!             states.lock().unwrap().push(state);
//!         }
//!     }
//! };
//! let handler = service_fn(|req: Request<BufferedBody>| async move {
//!     let event = req.extensions().get::<TaskEvent>().expect("set by the stack");
//!     assert_eq!(event.status(), Some(&TaskStatus::Completed));
//!     Ok::<_, Infallible>(Response::new(String::new()))
//! });
//! let (service, handle) = CallbackStack::new()
//!     .profile(Acme)
//!     .on_progress(on_progress)
//!     .build(handler);
//! handle.started().await;
//!
//! let push = |body: &str| Request::post("/callback").body(body.to_owned()).unwrap();
//! for body in [
//!     r#"{"id":"t1","status":"queued"}"#,
//!     r#"{"id":"t1","status":"processing","progress":40}"#,
//!     r#"{"id":"t1","status":"processing","progress":40}"#, // again: a duplicate
//! ] {
//!     assert_eq!(service.clone().oneshot(push(body)).await?.status(), StatusCode::OK);
//! }
//! let done = service.clone().oneshot(push(r#"{"id":"t1","status":"succeeded"}"#)).await?;
//! assert_eq!(done.status(), StatusCode::ACCEPTED);
//!
//! // A push that crossed the final one in the network.
//! let late = service.oneshot(push(r#"{"id":"t1","status":"processing","progress":90}"#)).await?;
//! assert_eq!(late.status(), StatusCode::OK);
//! assert_eq!(late.headers()[&IGNORED_HEADER], "regression");
//!
//! handle.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(handle.stats().processed, 1);
//! assert_eq!(*states.lock().unwrap(), ["queued None", "processing Some(40)"]);
//! # Ok(()) }
//! ```
//!
//! By hand, the layer is made from the dedup layer it reads:
//!
//! ```
//! use taskhook::fast_ack::FastAckLayer;
//! use taskhook::progress::ProgressLayer;
//! use taskhook::{DedupLayer, PayloadLayer, TaskEvent};
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dedup = DedupLayer::new();
//! let progress = ProgressLayer::new(&dedup).on_progress(|event: TaskEvent| async move {
//!     println!("{} is {:?}", event.id(), event.raw_status());
//! });
//! let (fast_ack, handle) = FastAckLayer::builder().build();
//! let stack = ServiceBuilder::new()
//!     .layer(PayloadLayer::new()) // `.profile(..)`: one that pushes every change
//!     .layer(progress)
//!     .layer(dedup)
//!     .layer(fast_ack);
//! # drop((stack, handle));
//! # }
//! ```

pub mod future;
mod handler;
mod layer;
mod service;
mod stats;

pub use self::handler::{BoxError, Discard, ProgressHandler, ProgressOutcome, ServiceHandler};
pub use self::layer::ProgressLayer;
pub use self::service::Progress;
pub use self::stats::ProgressStats;
pub use crate::response::IGNORED_HEADER;
