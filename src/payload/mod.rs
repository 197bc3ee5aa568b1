//! Buffer the callback body (bounded), parse it once into a
//! [`TaskEvent`](crate::TaskEvent), and hand both to the inner service.
//!
//! [`PayloadLayer`] is the first layer of the stack on a callback route. For
//! each request it:
//!
//! 1. answers a method other than `POST` with `405` and `Allow: POST`, and
//!    a declared `Content-Length` over the limit (default 256 KiB) with
//!    `413`. The `Content-Type` is not looked at: the body decides (a
//!    provider that labels its JSON as a form, as `curl -d` does, must not
//!    lose its callbacks to a `4xx`);
//! 2. collects the body, with or without `Content-Length`, stopping with
//!    `413` as soon as it passes the limit (the excess is never buffered);
//! 3. parses it with [`TaskEvent::from_bytes`](crate::TaskEvent::from_bytes),
//!    without copying it: malformed JSON (anywhere in the body), invalid
//!    UTF-8, nesting too deep, a body that is not an object, or a bad task
//!    id get `400`. The whole body is validated here, but only the id and
//!    the scalar fields are read; the rest of the event is parsed on its
//!    first use, so a duplicate answered by the dedup layer never pays for
//!    it (see [`TaskEvent`](crate::TaskEvent#parsed-once-in-two-steps));
//! 4. inserts the [`TaskEvent`](crate::TaskEvent) and the
//!    [`RawPayload`] into the request extensions and calls
//!    the inner service with a [`BufferedBody`](crate::body::BufferedBody)
//!    that still holds the whole body.
//!
//! A request that already carries a [`TaskEvent`](crate::TaskEvent) and a
//! [`RawPayload`] (a payload layer further out read it, so that a
//! signature layer could check the body before a stack such as
//! [`CallbackStack`](crate::CallbackStack), which has its own) is passed on
//! as it is: the body is read and parsed once.
//!
//! Rejections carry a small JSON body: `{"error":{"code":"..","message":".."}}`.
//! A body that fails while being read (a reset connection, a read timeout of
//! an outer layer) is our transient problem, not bad input: `503` with
//! `Retry-After`, so the provider retries. A length-limit error raised by an
//! outer `RequestBodyLimit` is still a `413`.
//!
//! With the `axum` feature, [`TaskEvent`](crate::TaskEvent) and
//! [`RawPayload`] are extractors.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use taskhook::{body::BufferedBody, PayloadLayer, TaskEvent};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Infallible> {
//! let service = ServiceBuilder::new()
//!     .layer(
//!         PayloadLayer::new()
//!             .limit(64 * 1024) // larger bodies get `413`
//!             .parse_in_full(false), // the default: the rest of the event on first use
//!     )
//!     .service(service_fn(|req: Request<BufferedBody>| async move {
//!         let event = req.extensions().get::<TaskEvent>().expect("set by PayloadLayer");
//!         println!("task {} is {:?}", event.id(), event.status());
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//!
//! let ok = Request::post("/callback")
//!     .body(r#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#.to_owned())
//!     .unwrap();
//! assert_eq!(service.clone().oneshot(ok).await?.status(), StatusCode::OK);
//!
//! let bad = Request::post("/callback").body("{not json".to_owned()).unwrap();
//! assert_eq!(service.oneshot(bad).await?.status(), StatusCode::BAD_REQUEST);
//! # Ok(()) }
//! ```

#[cfg(feature = "axum")]
mod extract;
pub mod future;
mod layer;
mod parse;
mod raw;
mod service;

#[cfg(feature = "axum")]
pub use self::extract::MissingPayload;
pub use self::layer::PayloadLayer;
pub use self::raw::RawPayload;
pub use self::service::Payload;
