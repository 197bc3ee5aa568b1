//! A simulator of the provider's sending side: the callback URL rule, the
//! URL checks, delivery with the provider's timeout and retries, and a
//! workload with fault injection. For demos, end-to-end tests and
//! benchmarks of a receiver ([taskhook]'s, or yours in any language).
//!
//! It plays APIMart by default, and any [`Provider`] on request:
//! Replicate, fal, OpenAI, a generic Standard Webhooks sender, KIE, Kling
//! and midjourney-proxy, each with its body shape, its intermediate events,
//! its retry schedule and what a `4xx` means to it, signed by the scheme of
//! your choice ([`Signing`]; the formats alone in [`sign`]).
//!
//! - [`callback_url`] builds `<base>/callback` from the `webhook` base URL,
//!   as the provider does (one slash, query kept, fragment dropped).
//! - [`UrlPolicy`] checks a callback URL by the provider's rules: http/https,
//!   port 80/443, not the provider's domain, no loopback, private,
//!   link-local, unique-local, CGNAT, ... address, in any numeric or
//!   IPv4-in-IPv6 form, also after resolving. Its
//!   [`allow_loopback_for_local_testing`](UrlPolicy::allow_loopback_for_local_testing)
//!   lets a local test reach `127.0.0.1:<port>`.
//! - [`Sender`] pushes one payload: HTTP/1.1 `POST`, JSON, a 10 s timeout;
//!   a 5xx, a timeout or a connection error is retried after 10 s, 30 s and
//!   60 s; a 4xx gives up at once; every [`Attempt`] is recorded. Other
//!   providers' timings and `4xx` rules are their
//!   [`Schedule::for_provider`]. A [`Schedule`] scales all of it by a time
//!   factor, and it all runs on tokio time, so tests run it under
//!   `tokio::time::pause`.
//! - [`Workload`] generates [`Task`]s like the provider's samples (image
//!   with `url` a string or an array, video, audio, failed with an error
//!   object or a string, cancelled; see [`Mix`]) from a seed, with
//!   duplicate pushes: immediate, concurrent, or later ([`DuplicateKind`]);
//!   for a provider that pushes every change, with its intermediate events
//!   ([`Task::intermediates`]) and, as a fault, an intermediate event pushed
//!   again after the final one ([`Workload::late_intermediate`]).
//! - [`Simulator`] runs tasks against a base URL with bounded concurrency
//!   and returns a [`Report`]: every push of every task, a [`Summary`] of
//!   counts, ack [`Latencies`] and throughput. [`Progress`] is a live view
//!   for a progress bar.
//!
//! [taskhook]: https://docs.rs/taskhook
//!
//! # Decisions where the provider's docs are silent
//!
//! - The query of the base URL is kept after `/callback`; a fragment is
//!   dropped; `/callback` is appended even to a base that ends with it.
//! - Port 80 and 443 are both allowed with both schemes; user information
//!   (`user@host`) is refused; a host name is refused if *any* address it
//!   resolves to is not public, and the sender connects only to the
//!   addresses checked (no second lookup).
//! - A retry delay counts from the end of the failed attempt (a timed-out
//!   attempt is retried 10 s + 10 s after it started).
//! - Only 2xx delivers and only 4xx gives up; every other answer (a 3xx,
//!   redirects not followed) is a failure and retried like a 5xx.
//! - Duplicates are full pushes with their own retries.
//! - The simulator speaks plain HTTP/1.1: `https` URLs pass the rules, but
//!   [`Simulator::connect`] refuses them.
//! - The callback URL rule and checks are APIMart's for every provider
//!   (pass the URL you want as the base; `/callback` is appended).
//! - A task's events are pushed one after the other, each as soon as the
//!   previous push has ended (no processing time between them).
//! - Signature timestamps are taken at each attempt from the tokio clock,
//!   mapped to the wall clock at the sender's start
//!   ([`Simulator::wall_clock`]).
//!
//! Everything waits on tokio time: under `tokio::time::pause`, with the
//! receiver on loopback in the same runtime, a push that uses all its
//! retries (about 100 s) completes in milliseconds.
//!
//! # Example
//!
//! A receiver on loopback (the payload layer in front of a handler, built
//! with `ServiceBuilder`) and a simulator run against it at 1/100 of the
//! provider's timing:
//!
//! ```
//! use axum::{routing::post, Router};
//! use taskhook_sim::{Schedule, Simulator, UrlPolicy, Workload};
//! use taskhook::{PayloadLayer, TaskEvent};
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! async fn on_callback(event: TaskEvent) {
//!     println!("{} {:?}", event.id(), event.status());
//! }
//! let app = Router::new().route(
//!     "/hooks/callback",
//!     post(on_callback).layer(ServiceBuilder::new().layer(PayloadLayer::new())),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let base = format!("http://{}/hooks", listener.local_addr()?);
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! let simulator = Simulator::new()
//!     .url_policy(UrlPolicy::new().allow_loopback_for_local_testing())
//!     .schedule(Schedule::provider().time_factor(0.01));
//! let workload = Workload::new(50).seed(1).immediate_duplicates(0.1);
//! let report = simulator.run(&base, &workload).await?;
//!
//! let summary = report.summary();
//! assert_eq!(summary.tasks, 50);
//! assert_eq!(summary.delivered, summary.pushes);
//! assert_eq!(summary.tasks_undelivered, 0);
//! println!("ack p99 {:?}", report.ack_latencies().p99());
//! # Ok(()) }
//! ```

mod delivery;
mod payloads;
mod provider;
mod report;
pub mod sign;
mod simulator;
mod url;
mod workload;

pub use self::delivery::{
    Attempt, AttemptResult, ClientErrors, Outcome, Push, PushKind, Schedule, Sender,
};
pub use self::provider::{Provider, UnknownProvider};
pub use self::report::{Latencies, Report, Summary, TaskRecord};
pub use self::sign::Signing;
pub use self::simulator::{Progress, RunError, Simulator};
pub use self::url::{callback_url, classify, AddressKind, UrlError, UrlPolicy, PROVIDER_DOMAIN};
pub use self::workload::{DuplicateKind, Event, InvalidPayload, Mix, Task, TaskKind, Workload};
