//! A hardened HTTP server for the callback route (feature `server`): HTTP/1.1
//! and HTTP/2 on one port, with timeouts against slow and idle clients, a
//! cap on connections, and graceful shutdown.
//!
//! `axum::serve` has no knobs for timeouts, and a bare hyper server waits
//! for ever for a client that sends half a header. [`serve`] runs any
//! `tower::Service<http::Request<hyper::body::Incoming>>` answering
//! `http::Response<B>` (an axum `Router` directly) on a
//! `tokio::net::TcpListener`, with hyper-util's automatic connection
//! builder and tokio's timer:
//!
//! - **HTTP/1.1 and HTTP/2 over cleartext** (h2c with prior knowledge) on
//!   the same port, told apart by the HTTP/2 connection preface; no TLS and
//!   no `Upgrade: h2c` (put a TLS-terminating proxy in front for `https`).
//! - **Header timeout** ([`ServerLimits::header_timeout`], 5 s): a client
//!   must send its request's header within it, and a connection without a
//!   request in flight for that long is closed. For HTTP/1 it is hyper's
//!   header-read timeout (so also the keep-alive idle timeout). HTTP/2 has
//!   no header timeout in hyper: a connection idle for that long gets a
//!   `GOAWAY` and closes once the client acknowledges it, and keep-alive
//!   pings close a connection whose peer stops answering (see the setter).
//! - **Connection cap** ([`ServerLimits::max_connections`], 1024): a slot
//!   is taken before `accept`, so connections over the cap wait in the
//!   kernel's backlog instead of holding memory here.
//! - **Request timeout** ([`ServerLimits::request_timeout`], 30 s): from the
//!   end of the header to the response head, body included, else `503`
//!   with `Retry-After` and `{"error":{"code":"request_timeout",..}}`, the
//!   answer a provider retries.
//! - **Graceful shutdown** ([`Serve::with_graceful_shutdown`], bounded by
//!   [`ServerLimits::shutdown_timeout`], default unbounded): stop
//!   accepting, let open connections finish, then return.
//! - A failed `accept` (out of file descriptors) is logged and retried
//!   after 50 ms, never in a busy loop.
//!
//! # Example
//!
//! The crate's stack behind `POST /callback`, on a free loopback port,
//! shut down from another task:
//!
//! ```
//! # #[cfg(feature = "axum")]
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//!
//! use axum::{handler::HandlerWithoutStateExt, Router};
//! use taskhook::server::{serve, ServerLimits};
//! use taskhook::{CallbackStack, TaskEvent};
//! use tokio::net::TcpListener;
//!
//! async fn on_callback(event: TaskEvent) {
//!     println!("task {} is done", event.id());
//! }
//!
//! let (callback, handle) = CallbackStack::new().build(on_callback.into_service());
//! let app = Router::new().route_service("/callback", callback);
//!
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! println!("listening on {}", listener.local_addr()?);
//! let limits = ServerLimits::new()
//!     .header_timeout(Duration::from_secs(5))
//!     .request_timeout(Duration::from_secs(30))
//!     .shutdown_timeout(Duration::from_secs(10));
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(async move {
//!     serve(listener, app, limits)
//!         .with_graceful_shutdown(async {
//!             let _ = stopped.await;
//!         })
//!         .await
//! });
//!
//! // ... until SIGTERM: drain the queue first (the server answers `503`
//! // meanwhile), then close the server.
//! handle.shutdown(Duration::from_secs(25)).await;
//! let _ = stop.send(());
//! server.await??;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "axum"))]
//! # fn main() {}
//! ```

mod limits;
mod serve;
mod service;

pub use self::limits::ServerLimits;
pub use self::serve::{serve, Serve, ServeFuture};
