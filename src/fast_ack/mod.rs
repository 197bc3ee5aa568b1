//! Answer `202 Accepted` in milliseconds, process in the background, lose
//! nothing.
//!
//! The provider waits about 10 seconds for a `2xx` and asks receivers to
//! accept and enqueue first, then process. [`FastAckLayer`] does that. For
//! each request it:
//!
//! 1. takes the body from the [`RawPayload`](crate::RawPayload) extension:
//!    the [`PayloadLayer`](crate::PayloadLayer) must be in front (without it
//!    the answer is `500 payload_layer_missing`, our programming error, so the
//!    provider retries);
//! 2. reserves a slot in the bounded queue: none free, `503 queue_full` with
//!    `Retry-After`, and nothing is written anywhere;
//! 3. appends the request (method, URI, version, headers, body) to the
//!    [`Journal`](journal::Journal) and waits for it: an error is
//!    `503 journal_unavailable` (a journal that also deduplicates may answer
//!    [`Appended::Duplicate`](journal::Appended::Duplicate): `200` with
//!    `{"status":"duplicate"}` and `taskhook-duplicate: journaled`);
//! 4. puts the job in the reserved slot and answers `202 Accepted` with
//!    `{"status":"accepted","id":"..","seq":N}`.
//!
//! Reserving before appending means the queue cannot turn out full after
//! the journal said yes, so no entry is ever left claiming an acceptance
//! that was answered `503`. Steps 3 and 4 run in the request's own future,
//! but a client that goes away mid-append does not cancel them: the rest
//! moves onto a task of its own, so no entry is left journaled and not
//! queued.
//!
//! The `202` never waits for the inner service. A pool of workers (see
//! [`FastAckBuilder::concurrency`]) runs it on each job with a fresh
//! `Request<BufferedBody>` made of what the journal keeps (see [What the
//! handler sees](#what-the-handler-sees)), in the span of the request that
//! was accepted:
//!
//! - a `1xx`, `2xx` or `3xx` answer finishes the event: it is
//!   [complete](journal::Journal::complete) in the journal and counted `processed`;
//! - a `4xx` is the handler refusing an event the provider was told is safe
//!   (an extractor's rejection, a validation error): not retried (the answer
//!   would be the same), counted `refused`, never `processed`, and kept as a
//!   [`DeadLetter`] to replay once the handler is fixed
//!   ([`FastAckBuilder::dead_letter_refusals`] turns that off);
//! - a `5xx`, an `Err` or a panic fails the attempt: it is retried after an
//!   exponential backoff with full jitter ([`RetryPolicy`]; no sooner than
//!   a `5xx`'s `Retry-After`, see [`ResponseStatus::retry_after`]), and after the
//!   last attempt it becomes a [`DeadLetter`]: kept (bounded) with the
//!   request, the last [`Failure`] (with the first 512 bytes of the answer's
//!   body, which say why) and the attempt count, recorded in the journal,
//!   sent to [`FastAckBuilder::on_dead_letter`] and to
//!   [`FastAckHandle::subscribe_dead_letters`]. [`FastAckHandle::replay`]
//!   sends it through the journal and the queue again.
//!
//! The capacity bounds every event accepted and not finished: queued,
//! running, and waiting for a retry, so a handler that is down cannot make
//! memory grow without bound; new events get `503` until it recovers.
//!
//! At start-up the workers first run the journal's
//! [pending](journal::Journal::pending) entries (accepted before a restart and not
//! finished), in order of arrival; until those are queued, new events get
//! `503 starting`. [`FastAckHandle::shutdown`] stops intake (`503
//! shutting_down`), drains the queue, the running attempts and the retries
//! up to a deadline, [syncs](journal::Journal::sync) the journal and reports what was
//! left; what is left stays pending in the journal.
//!
//! # What the handler sees
//!
//! Every attempt, on an event accepted a moment ago or read back from the
//! journal after a restart, gets the same request: the method, URI
//! (as this layer saw it: after an axum `nest`, without the prefix),
//! version, headers and body that were accepted, and in its extensions the
//! [`TaskEvent`](crate::TaskEvent), the [`RawPayload`](crate::RawPayload)
//! and the [`Attempt`] (sequence number, attempt number, task id, and
//! when the event was accepted, journaled with it). Nothing
//! else: the other extensions of the accepted request cannot be journaled,
//! so they are not passed on live either, and a handler that depends on
//! one fails on its first call (a `5xx` or `4xx` whose body the dead letter
//! keeps) instead of after the next crash. So a handler may extract:
//!
//! - the event, the raw body, `Json<T>`, `Bytes`, `String`, the headers,
//!   `Method`, `Uri`, `Query<T>`, `Extension<Attempt>`, and `State` (with
//!   axum's `Handler::with_state`: the state belongs to the service, not to
//!   the request);
//! - `Path<T>` only when the router that matches the path runs **inside**
//!   the stack, so that it matches the journaled URI on every attempt:
//!   `CallbackStack::new().build(Router::new().route("/t/{tenant}/callback",
//!   post(handler)))`, mounted with `route_service("/t/{tenant}/callback", ..)`;
//! - not `ConnectInfo`, `MatchedPath`, `OriginalUri`, nor what an outer
//!   layer put in the extensions (an authenticated user, a request id):
//!   copy what the handler needs into a header in front of the stack, or
//!   decide on it in front of the stack (as the verification layers do).
//!
//! With the default [`MemoryJournal`](journal::MemoryJournal) an event
//! answered `2xx` is lost if the process dies before it is processed. A
//! durable journal closes that gap: [`journal`] says what a journal must
//! guarantee and how this layer calls it (in batches, concurrently, so that
//! it can commit many events with one disk sync).
//!
//! # Tracing
//!
//! The workers run in the span that was current where the layer made its
//! service, and each attempt in a span `fast_ack.attempt` (fields `seq`,
//! `task_id`, `attempt`), a child of the span of the request that was
//! accepted. That span is at `DEBUG` level, as tower-http's request spans
//! are, under its own target `taskhook::fast_ack::attempt`: a subscriber
//! at `INFO` does not pay for a span per event (a span per event that a
//! `tracing_subscriber::fmt` subscriber at `INFO` records costs a
//! noticeable share of the whole stack's time per event; `BENCHMARKS.md`,
//! "The whole stack in-process"). To
//! have every log line of the handler carry the task id, enable it alone,
//! for example with the filter `info,taskhook::fast_ack::attempt=debug`.
//! The layer's own warnings and errors about an event (a failed attempt, a
//! refusal, a dead letter) carry its `seq` and `task_id` either way.
//!
//! # Stacking with dedup
//!
//! The recommended stack is payload → dedup → fast-ack → handler:
//!
//! - dedup in front of fast-ack sees fast-ack's `202` and records the task
//!   id as done, so the provider's rare duplicate push is answered as a
//!   duplicate without being journaled or queued twice;
//! - when the handler later fails for good in the background, the dedup
//!   store still says "done" (it saw a `2xx`), so a duplicate push is
//!   absorbed. The event is not lost: it is a dead letter, in memory and in
//!   the journal, and replaying it ([`FastAckHandle::replay`]) is how it
//!   gets processed;
//! - to let the provider's next push through instead, forget the task id
//!   in the dedup store ([`DedupStore::forget`](crate::dedup::DedupStore::forget))
//!   from [`FastAckBuilder::on_dead_letter`] ([`DeadLetter::task_id`]).
//!
//! Both paths are tested with the real layers in `tests/stack`.
//!
//! The other order (fast-ack in front of dedup) would make the dedup
//! decision in the background, after the `2xx`, and journal every
//! duplicate: use the order above ([`CallbackStack`](crate::CallbackStack)
//! builds it).
//!
//! # axum
//!
//! A [`FastAckLayer`] runs one handler. axum's `MethodRouter::layer` and
//! `Router::layer` apply a layer to every endpoint, the method-not-allowed
//! fallback included, so they take only layers that are `Clone`, and a
//! `FastAckLayer` is not: build the stack as a service
//! ([`CallbackStack`](crate::CallbackStack), or the layers applied to a
//! single service as below) and mount it with `route_service`.
//!
//! ```compile_fail
//! # #[cfg(feature = "axum")] {
//! use axum::{routing::post, Router};
//! use taskhook::fast_ack::FastAckLayer;
//!
//! // Does not compile: `FastAckLayer` is not `Clone`.
//! let app: Router = Router::new().route("/callback", post(|| async {}).layer(FastAckLayer::new()));
//! # }
//! # #[cfg(not(feature = "axum"))] compile_error!("needs axum");
//! ```
//!
//! ```compile_fail
//! # #[cfg(feature = "axum")] {
//! use axum::{routing::get, Router};
//! use taskhook::fast_ack::FastAckLayer;
//!
//! // Does not compile either: `Router::layer` would run it on every route.
//! let app: Router = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(FastAckLayer::new());
//! # }
//! # #[cfg(not(feature = "axum"))] compile_error!("needs axum");
//! ```
//!
//! A service made by a second `layer` call on one layer (through a
//! reference) answers `500 fast_ack_layer_reused`, and that call logs an
//! `ERROR` when the app is built.
//!
//! The other order (fast-ack in front of dedup) is detected too: the dedup
//! layer answers every attempt `500 dedup_behind_fast_ack` (and logs an
//! `ERROR`), so the events are dead letters to replay once the order is
//! fixed, never run without deduplication.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use taskhook::body::BufferedBody;
//! use taskhook::fast_ack::{FastAckLayer, RetryPolicy};
//! use taskhook::fast_ack::journal::MemoryJournal;
//! use taskhook::{PayloadLayer, TaskEvent};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Infallible> {
//! let (fast_ack, handle) = FastAckLayer::builder()
//!     .journal(MemoryJournal::new()) // the default; a durable one survives a crash
//!     .capacity(10_000) // events held at once (queued, running, awaiting a retry)
//!     .concurrency(8) // workers
//!     .retry(RetryPolicy::new().attempts(5).base_delay(Duration::from_secs(1)))
//!     .retry_after(Duration::from_secs(30)) // of the `503`s
//!     .dead_letter_capacity(100)
//!     .dead_letter_refusals(true) // the default: a handler's `4xx` is a dead letter
//!     .on_dead_letter(|letter| {
//!         eprintln!("task {:?} failed for good: {}", letter.task_id(), letter.failure());
//!     })
//!     .build();
//!
//! let service = ServiceBuilder::new()
//!     .layer(PayloadLayer::new())
//!     .layer(fast_ack)
//!     .service(service_fn(|req: Request<BufferedBody>| async move {
//!         let event = req.extensions().get::<TaskEvent>().expect("set by PayloadLayer");
//!         println!("processing {}", event.id()); // copy the results, ...
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//! handle.started().await;
//!
//! let req = Request::post("/callback")
//!     .body(r#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#.to_owned())
//!     .unwrap();
//! assert_eq!(service.oneshot(req).await?.status(), StatusCode::ACCEPTED);
//!
//! // On SIGTERM: stop intake and drain.
//! let report = handle.shutdown(Duration::from_secs(20)).await;
//! assert!(report.drained);
//! assert_eq!(handle.stats().processed, 1);
//! # Ok(()) }
//! ```
//!
//! With axum, mount the stack as one service:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{handler::HandlerWithoutStateExt, Router};
//! use taskhook::{fast_ack::FastAckLayer, PayloadLayer, TaskEvent};
//! use tower::ServiceBuilder;
//!
//! async fn on_callback(event: TaskEvent) {
//!     println!("processing {}", event.id());
//! }
//!
//! let service = ServiceBuilder::new()
//!     .layer(PayloadLayer::new())
//!     .layer(FastAckLayer::new())
//!     .service(on_callback.into_service());
//! let app: Router = Router::new().route_service("/callback", service);
//! # }
//! ```

mod dead_letter;
pub mod future;
mod handle;
mod job;
pub mod journal;
mod layer;
mod queue;
mod retry;
mod service;
mod shared;
mod unwind;
mod worker;

pub use self::dead_letter::{DeadLetter, Failure};
pub use self::handle::{FastAckHandle, ReplayError, ShutdownReport, Stats};
pub use self::job::Attempt;
pub use self::layer::{FastAckBuilder, FastAckLayer};
pub use self::retry::RetryPolicy;
pub use self::service::{FastAck, ResponseStatus};
pub(crate) use self::shared::Refusal;
