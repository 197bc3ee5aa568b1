//! [`serve`]: the accept loop, one task per connection, graceful shutdown.

use std::fmt;
use std::future::{Future, IntoFuture, Pending};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::BoxError;
use tower_service::Service;

use super::limits::ServerLimits;
use super::service::{Activity, Handler};

/// How long to wait after a failed `accept` (out of file descriptors, a
/// connection reset in the backlog) before the next one: retrying at once
/// would spin on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `service` on `listener` over HTTP/1.1 and HTTP/2 (cleartext,
/// prior knowledge) within `limits`.
///
/// The returned [`Serve`] does nothing until awaited; it runs until the
/// signal given to [`Serve::with_graceful_shutdown`] resolves (without one,
/// for ever). Each connection runs on a task of its own (`tokio::spawn`),
/// calling a clone of `service` for each request; an `Err` from the service
/// closes the connection (HTTP/1) or resets the stream (HTTP/2). The
/// request extensions carry the peer's address as
/// `axum::extract::ConnectInfo<SocketAddr>` (feature `axum`) and as
/// `verify::PeerAddr` (feature `verify`), so axum's `ConnectInfo` extractor
/// and the IP allowlist work.
///
/// See the [module docs](super) for an example and for what each limit
/// does.
pub fn serve<S, B>(listener: TcpListener, service: S, limits: ServerLimits) -> Serve<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Serve {
        listener,
        service,
        limits,
        signal: std::future::pending(),
    }
}

/// A server ready to run: await it (it is [`IntoFuture`]). Made by
/// [`serve`].
///
/// Its output is an [`io::Error`] of kind
/// [`InvalidInput`](io::ErrorKind::InvalidInput) at once for limits that
/// cannot work (see [`ServerLimits`]); otherwise `Ok(())` once it has shut
/// down. A failed `accept` is logged (`tracing`, level `warn`) and retried
/// after a short pause, never returned: a server out of file descriptors
/// recovers when some close.
#[must_use = "a server does nothing unless `.await`ed"]
pub struct Serve<S, F = Pending<()>> {
    listener: TcpListener,
    service: S,
    limits: ServerLimits,
    signal: F,
}

impl<S> Serve<S> {
    /// Shuts the server down gracefully once `signal` resolves: it stops
    /// accepting (the listener is closed, so new connections are refused),
    /// asks each open connection to finish (an idle HTTP/1 connection
    /// closes at once, a busy one after its answer; an HTTP/2 connection
    /// gets a `GOAWAY` and finishes its streams), waits for them, for at
    /// most [`ServerLimits::shutdown_timeout`] if set, and then resolves.
    ///
    /// ```no_run
    /// # async fn run(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    /// use taskhook::server::{serve, ServerLimits};
    ///
    /// serve(listener, app, ServerLimits::new())
    ///     .with_graceful_shutdown(async {
    ///         let _ = tokio::signal::ctrl_c().await;
    ///     })
    ///     .await
    /// # }
    /// ```
    pub fn with_graceful_shutdown<F>(self, signal: F) -> Serve<S, F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Serve {
            listener: self.listener,
            service: self.service,
            limits: self.limits,
            signal,
        }
    }
}

impl<S, F> Serve<S, F> {
    /// The address the listener is bound to (with the real port when it was
    /// bound to port `0`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl<S, F> fmt::Debug for Serve<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<S, B, F> IntoFuture for Serve<S, F>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    type Output = io::Result<()>;
    type IntoFuture = ServeFuture;

    fn into_future(self) -> ServeFuture {
        ServeFuture(Box::pin(run(
            self.listener,
            self.service,
            self.limits,
            self.signal,
        )))
    }
}

/// The future of a running [`Serve`].
///
/// Dropping it stops accepting; the connections already open go on to
/// their natural end (the idle timeout still applies).
#[must_use = "a server does nothing unless `.await`ed"]
pub struct ServeFuture(Pin<Box<dyn Future<Output = io::Result<()>> + Send>>);

impl Future for ServeFuture {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for ServeFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeFuture").finish_non_exhaustive()
    }
}

/// What the server tells its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Finish what is in flight, then close.
    Draining,
    /// The shutdown timeout ran out: close now.
    Closing,
}

async fn run<S, B, F>(
    listener: TcpListener,
    service: S,
    limits: ServerLimits,
    signal: F,
) -> io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    limits.check()?;
    let builder = Arc::new(builder(&limits));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection task holds a receiver: `closed()` resolves once the
    // last one has ended.
    let (phase, _) = watch::channel(Phase::Serving);
    let mut signal = pin!(signal);
    loop {
        // A slot before `accept`: with none free the connection waits in
        // the kernel's backlog rather than in our memory.
        let permit = tokio::select! {
            () = &mut signal => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                // Never closed.
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(
            Arc::clone(&builder),
            stream,
            peer,
            service.clone(),
            limits.clone(),
            phase.subscribe(),
            permit,
        ));
    }
    // Closing the listener refuses new connections (and resets those left
    // in the backlog) while the open ones finish.
    drop(listener);
    phase.send_replace(Phase::Draining);
    if let Some(bound) = limits.shutdown_timeout {
        if tokio::time::timeout(bound, phase.closed()).await.is_err() {
            tracing::debug!(
                open = phase.receiver_count(),
                "shutdown timeout: closing the connections left"
            );
            phase.send_replace(Phase::Closing);
        }
    }
    phase.closed().await;
    Ok(())
}

/// The connection builder: HTTP/1.1 and HTTP/2 on one port, told apart by
/// the HTTP/2 preface, with hyper's timers on tokio.
fn builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout);
    builder
}

/// Serves one connection until it ends, is idle too long, or the server
/// tells it to close; then frees its slot.
async fn connection<S, B>(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    peer: SocketAddr,
    service: S,
    limits: ServerLimits,
    mut phase: watch::Receiver<Phase>,
    permit: OwnedSemaphorePermit,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let activity = Arc::new(Activity::default());
    let handler = Handler {
        inner: service,
        peer,
        request_timeout: limits.request_timeout,
        activity: Arc::clone(&activity),
    };
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), handler));
    // Covers what hyper's header timeout does not: the bytes read to tell
    // HTTP/1 from HTTP/2, and HTTP/2 connections without a request.
    let mut idle = pin!(activity.idle(limits.header_timeout));
    let mut finishing = false;
    let mut watching = true;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                // A timeout, a client that left, a protocol error.
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection closed");
                }
                break;
            }
            () = &mut idle, if !finishing => {
                tracing::debug!(%peer, "idle connection closed");
                finishing = true;
                conn.as_mut().graceful_shutdown();
            }
            changed = phase.changed(), if watching => {
                // An error: the server's future was dropped; serve on.
                watching = changed.is_ok();
                match *phase.borrow_and_update() {
                    Phase::Serving => {}
                    Phase::Draining if finishing => {}
                    Phase::Draining => {
                        finishing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Phase::Closing => break,
                }
            }
        }
    }
    drop(permit);
}
