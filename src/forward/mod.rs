//! Forward each accepted event to an app at an upstream URL, in any
//! language: the inner service under fast-ack.
//!
//! [`Forward`] sends the request it is given to one configured URL over a
//! pooled HTTP/1.1 client (hyper-util's). Under
//! [`FastAckLayer`](crate::fast_ack::FastAckLayer) (or as the handler of a
//! [`CallbackStack`](crate::CallbackStack)) the provider is answered `202`
//! in milliseconds, and the app gets each task once, retried while it is
//! down, with fast-ack's journal, backoff and dead letters.
//!
//! # What the upstream gets
//!
//! - The method and the **body bytes exactly as the provider sent them**
//!   (fast-ack journals them; nothing is parsed and written again).
//! - The provider's headers, minus the hop-by-hop ones (`Connection` and
//!   every header it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
//!   `Transfer-Encoding`, `Upgrade`), `Expect` (the body is complete), and
//!   any `taskhook-*` header the provider's request carried (so the app can
//!   trust these). `Host` is the upstream's, `Content-Length` the body's.
//! - [`TASK_ID_HEADER`] (`taskhook-task-id`), [`ATTEMPT_HEADER`]
//!   (`taskhook-attempt`: `1`, `2`, ...) and [`RECEIVED_AT_HEADER`]
//!   (`taskhook-received-at`: when fast-ack accepted the event, RFC 3339
//!   UTC, the same on every attempt and after a restart). Outside fast-ack
//!   (no [`Attempt`](crate::fast_ack::Attempt) in the extensions) the
//!   attempt is `1` and the time is now.
//! - The extra headers of [`ForwardBuilder::header`] (`Authorization`, ...),
//!   in place of the provider's of the same name.
//!
//! It goes to the upstream URL as configured (its path and query): the
//! path the provider called, a secret path token included, is not passed
//! on. The app should answer quickly and do slow work after answering, or
//! raise the [timeout](ForwardBuilder::timeout).
//!
//! # Answers
//!
//! What the upstream answers decides what fast-ack does:
//!
//! | the upstream | `Forward` answers | fast-ack |
//! |---|---|---|
//! | `2xx` | that status, with the start of the body | done |
//! | `4xx` other than `408`, `429` | that status, with the start of the body | a dead letter at once, not retried (`FastAckBuilder::dead_letter_refusals`) |
//! | the same with [`retry_client_errors(true)`](ForwardBuilder::retry_client_errors) | `503 upstream_status` | retried |
//! | `5xx`, `408`, `429`, `1xx`, `3xx` (a redirect is not followed) | `503 upstream_status`, with the upstream's `Retry-After` if it sent one | retried, not before that `Retry-After` |
//! | no answer within the timeout | `503 upstream_timeout` | retried |
//! | no connection (refused, no route) | `503 upstream_unreachable` | retried |
//! | the connection fails mid-exchange (reset, closed) | `503 upstream_connection_error` | retried |
//!
//! Each `503` body is `{"error":{"code":..,"message":..}}`, the message
//! naming the cause (the upstream's status and the start of its body, the
//! connection error), which fast-ack keeps in the attempt's log line and in
//! the dead letter. Retries follow fast-ack's
//! [`RetryPolicy`](crate::fast_ack::RetryPolicy): its attempts, its backoff,
//! and no sooner than the upstream's `Retry-After` (capped by
//! [`RetryPolicy::max_retry_after`](crate::fast_ack::RetryPolicy::max_retry_after)).
//! Delivery is at least once (an upstream that answers after the timeout
//! has fired gets the event again): the app dedups by `taskhook-task-id`.
//!
//! # Limits
//!
//! At most [`concurrency`](ForwardBuilder::concurrency) forwards run at once
//! (16 by default, across every clone); the others wait their turn, and
//! the [timeout](ForwardBuilder::timeout) (30 s by default) starts only
//! once a forward has its turn. It covers the connection, the request and
//! the answer's head; the answer's body is read (up to 64 KiB, for the
//! connection to go back to the pool) until the same deadline.
//!
//! # Example
//!
//! The whole receiver: the provider's callbacks acknowledged at once, each
//! task forwarded once to the app.
//!
//! ```
//! use std::time::Duration;
//! use axum::{body::Bytes, http::HeaderMap, routing::post, Router};
//! use taskhook::forward::Forward;
//! use taskhook::CallbackStack;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The app (a stand-in here, in the same process: any HTTP server will do).
//! let (tx, mut received) = tokio::sync::mpsc::unbounded_channel();
//! let app = Router::new().route(
//!     "/callback",
//!     post(move |headers: HeaderMap, body: Bytes| async move {
//!         let _ = tx.send((headers, body));
//!     }),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let upstream = format!("http://{}/callback", listener.local_addr()?);
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! let forward = Forward::builder(upstream)
//!     .timeout(Duration::from_secs(10))
//!     .concurrency(16)
//!     .build()?;
//! let (callback, handle) = CallbackStack::new().build(forward);
//! // With axum: `Router::new().route_service("/callback", callback)`.
//! handle.started().await;
//!
//! let body = r#"{"code":200, "data":{"id":"task_01","status":"completed"}}"#;
//! let push = http::Request::post("/callback").body(body.to_owned())?;
//! assert_eq!(callback.oneshot(push).await?.status(), 202);
//!
//! let (headers, forwarded) = received.recv().await.unwrap();
//! assert_eq!(forwarded, body.as_bytes()); // byte for byte
//! assert_eq!(headers["taskhook-task-id"], "task_01");
//! assert_eq!(headers["taskhook-attempt"], "1");
//! assert!(headers.contains_key("taskhook-received-at"));
//!
//! assert!(handle.shutdown(Duration::from_secs(5)).await.drained);
//! assert_eq!(handle.stats().processed, 1);
//! # Ok(())
//! # }
//! ```

mod builder;
pub mod future;
mod headers;
mod service;

pub use self::builder::{ForwardBuilder, InvalidForward};
pub use self::headers::{ATTEMPT_HEADER, RECEIVED_AT_HEADER, TASK_ID_HEADER};
pub use self::service::{Forward, ForwardBody};
