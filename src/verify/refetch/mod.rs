//! Confirm-by-refetch: before the handler sees a pushed event, ask the
//! provider for the same task and let the event through only if the
//! provider agrees.
//!
//! The provider does not sign its callbacks, so anyone who learns the
//! callback URL can post a "completed" task with links of their choosing.
//! [`Refetch`] takes the [`TaskEvent`](crate::TaskEvent) the payload layer
//! parsed, asks a [`ConfirmTask`] for the authoritative state of that task id
//! (the ready-made `HttpConfirm`, feature `refetch`, calls the provider's
//! `GET {base}/v1/tasks/{id}`), and compares.
//!
//! | outcome | answer | why |
//! |---|---|---|
//! | same id and status (and result URLs, with [`RefetchLayer::compare_urls`]) | the inner service's, with a [`Confirmation`] in the request extensions | confirmed |
//! | the push is final, the provider still shows it pending or processing | `503` + `Retry-After` | the provider's status API may lag its push; its retries (10 s, 30 s, 60 s later) find it agreeing |
//! | the provider is unreachable, answers 5xx or 429, refuses our API key, or does not answer within the timeout (default 5 s) | `503` + `Retry-After` | a transient failure of ours: the provider retries |
//! | the provider does not know the id (404), or shows another final status, another id, other URLs | `403` `not_confirmed` | forged: see below |
//!
//! **A forged push gets a `403`, not a `2xx`.** The status-code policy of
//! this crate gives a 2xx only to an event that was safely accepted, and a
//! 4xx to input that can never succeed; a push the provider's own API
//! contradicts is both never accepted and never going to succeed. For the
//! real provider the two answers are the same (both end its retries, and
//! it has nothing to retry: its API holds another state). A "2xx ignored"
//! would hide nothing from a forger either, who could still tell it from
//! the handler's own answer, while it would hide the attack from access
//! logs and dashboards that count 4xx. The body is generic
//! (`{"error":{"code":"not_confirmed",..}}`) and says nothing of what the
//! provider holds. Every refusal is counted ([`RefetchLayer::stats`]) and
//! logged with `tracing::warn!` naming the task id (ids are validated: no
//! control characters, at most 256 bytes).
//!
//! The one dangerous misconfiguration is a base URL or account that makes
//! the provider answer 404 for real tasks: every push would be refused for
//! good. Check the configuration at startup with `HttpConfirm::fetch` on
//! a task id you know. An API key the provider refuses (401/403) is treated
//! as our fault: `503`, logged as an error.
//!
//! Every request that reaches this layer costs one call on your API key, so
//! someone who can reach it can spend your rate limit (and a `429` from the
//! provider turns real pushes into `503`s). Put the path token and the
//! allowlist in front of it, so only a caller who knows the secret URL gets
//! this far.
//!
//! Refetching costs one API call per push, within the provider's ~10 s
//! wait. Put it before a dedup layer: a forged push then never touches the
//! dedup state, so it cannot claim a real task's id ahead of the real push
//! (the price, a rare duplicate push fetched twice, is small).
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use taskhook::body::BufferedBody;
//! use taskhook::verify::refetch::{ConfirmError, ConfirmTask, Confirmation, RefetchLayer};
//! use taskhook::{PayloadLayer, TaskEvent};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! /// A provider that knows one task, completed.
//! struct Provider;
//!
//! impl ConfirmTask for Provider {
//!     async fn confirm(&self, pushed: &TaskEvent) -> Result<Confirmation, ConfirmError> {
//!         match pushed.id() {
//!             "task_01" => TaskEvent::from_slice(br#"{"id":"task_01","status":"completed"}"#)
//!                 .map(Confirmation::new)
//!                 .map_err(ConfirmError::unavailable),
//!             _ => Err(ConfirmError::not_found()),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Infallible> {
//! let refetch = RefetchLayer::new(Provider)
//!     .timeout(Duration::from_secs(3)) // past it, `503`: the provider retries
//!     .retry_after(Duration::from_secs(30)) // of the `503`s
//!     .compare_urls(false); // the default: id and status must agree, links may differ
//! let counted = refetch.clone(); // shares the counters, for `stats()` later
//! let service = ServiceBuilder::new()
//!     .layer(PayloadLayer::new())
//!     .layer(refetch)
//!     .service(service_fn(|req: Request<BufferedBody>| async move {
//!         let confirmed = req.extensions().get::<Confirmation>().expect("set by Refetch");
//!         println!("confirmed {}", confirmed.event().id());
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//!
//! let real = Request::post("/callback")
//!     .body(r#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#.to_owned())
//!     .unwrap();
//! assert_eq!(service.clone().oneshot(real).await?.status(), StatusCode::OK);
//!
//! let forged = Request::post("/callback")
//!     .body(r#"{"code":200,"data":{"id":"task_99","status":"completed"}}"#.to_owned())
//!     .unwrap();
//! assert_eq!(service.oneshot(forged).await?.status(), StatusCode::FORBIDDEN);
//! let stats = counted.stats();
//! assert_eq!((stats.confirmed, stats.forged), (1, 1));
//! # Ok(()) }
//! ```

mod confirm;
pub mod future;
#[cfg(feature = "refetch")]
mod http;
mod layer;
mod service;

pub use self::confirm::{ConfirmError, ConfirmErrorKind, ConfirmTask, Confirmation};
#[cfg(feature = "refetch")]
pub use self::http::{HttpConfirm, InvalidHttpConfirm};
pub use self::layer::{RefetchLayer, RefetchStats};
pub use self::service::Refetch;
