//! [`ServerLimits`]: the server's bounds on slow, idle and numerous clients.

use std::io;
use std::time::Duration;

use tokio::sync::Semaphore;

/// The bounds [`serve`](super::serve) puts on its clients.
///
/// Each setter states its default; [`ServerLimits::new`] (or
/// [`Default`]) gives them all. A value that cannot work (a zero timeout,
/// no connection at all) makes the server's future fail at once with
/// [`io::ErrorKind::InvalidInput`] instead of serving badly.
///
/// ```
/// use std::time::Duration;
/// use taskhook::server::ServerLimits;
///
/// let limits = ServerLimits::new()
///     .header_timeout(Duration::from_secs(2))
///     .max_connections(256)
///     .request_timeout(Duration::from_secs(15))
///     .shutdown_timeout(Duration::from_secs(10));
/// # drop(limits);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    pub(super) header_timeout: Duration,
    pub(super) max_connections: usize,
    pub(super) request_timeout: Duration,
    pub(super) shutdown_timeout: Option<Duration>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            max_connections: 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: None,
        }
    }
}

impl ServerLimits {
    /// The defaults: a 5 s header timeout, 1024 connections, a 30 s request
    /// timeout, and a graceful shutdown that waits for every connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a connection may go without a request in flight: from the
    /// moment it is accepted, and from the end of each answer. Default: 5
    /// seconds.
    ///
    /// - Before the first request the server reads the first bytes to tell
    ///   HTTP/1 from HTTP/2; a client that sends nothing, or only part of a
    ///   request's header, is disconnected after this time, without an
    ///   answer.
    /// - HTTP/1: this is also hyper's header-read timeout, which hyper
    ///   applies again while a keep-alive connection waits for its next
    ///   request; so it is the idle keep-alive timeout as well.
    /// - HTTP/2 has no header-read timeout in hyper. The same rule stands
    ///   in for it: a connection with no request in flight for this long
    ///   gets a `GOAWAY` and is closed once the client acknowledges it (a
    ///   stream still sending its response is never cut). The server also
    ///   pings a connection that has sent nothing for `header_timeout`, and
    ///   closes it when the ping is not answered within another
    ///   `header_timeout`: a peer that vanished, or one that never
    ///   acknowledges the `GOAWAY`, is gone after about three times this
    ///   value.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskhook::server::ServerLimits;
    /// let limits = ServerLimits::new().header_timeout(Duration::from_secs(2));
    /// # drop(limits);
    /// ```
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// At most this many connections are served at once. Default: 1024.
    ///
    /// The server takes a slot before it calls `accept`: with none free,
    /// the next connections wait in the kernel's listen backlog (they cost
    /// no memory here) until one closes, and the idle timeout (see
    /// [`header_timeout`](Self::header_timeout)) frees slots held by silent
    /// clients. One HTTP/2 connection carries up to hyper's default of 200
    /// requests at once.
    ///
    /// ```
    /// # use taskhook::server::ServerLimits;
    /// let limits = ServerLimits::new().max_connections(256);
    /// # drop(limits);
    /// ```
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// A request must be answered within this time, counted from the end
    /// of its header: waiting for the service to be ready, reading the body
    /// and producing the response head all count (streaming the response
    /// body does not). Default: 30 seconds.
    ///
    /// Past it the request is answered `503 Service Unavailable` with
    /// `Retry-After: 5` and `{"error":{"code":"request_timeout",..}}`, the
    /// crate's usual answer to a transient failure, so a provider retries
    /// rather than giving up; the service's future is dropped. With the
    /// crate's stack the answer comes once the event is queued, so this
    /// bounds a client that stalls in its body, not the handler.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskhook::server::ServerLimits;
    /// let limits = ServerLimits::new().request_timeout(Duration::from_secs(15));
    /// # drop(limits);
    /// ```
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// After the shutdown signal (see
    /// [`Serve::with_graceful_shutdown`](super::Serve::with_graceful_shutdown)),
    /// open connections have this long to finish; those left are then
    /// closed. Default: none, the server waits for every connection.
    ///
    /// Waiting is bounded anyway: an idle connection closes at once, a
    /// request within [`request_timeout`](Self::request_timeout). What this
    /// bounds is a response body that streams for longer, or a client that
    /// reads it slowly.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskhook::server::ServerLimits;
    /// let limits = ServerLimits::new().shutdown_timeout(Duration::from_secs(10));
    /// # drop(limits);
    /// ```
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// Refuses values that cannot work.
    pub(super) fn check(&self) -> io::Result<()> {
        let invalid = |message: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        if self.header_timeout.is_zero() {
            return invalid("ServerLimits: the header timeout must not be zero");
        }
        if self.request_timeout.is_zero() {
            return invalid("ServerLimits: the request timeout must not be zero");
        }
        if self.max_connections == 0 {
            return invalid("ServerLimits: max_connections must be at least 1");
        }
        if self.max_connections > Semaphore::MAX_PERMITS {
            return invalid("ServerLimits: max_connections is too large");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_cannot_work_are_refused() {
        assert!(ServerLimits::new().check().is_ok());
        let zero = Duration::ZERO;
        for limits in [
            ServerLimits::new().header_timeout(zero),
            ServerLimits::new().request_timeout(zero),
            ServerLimits::new().max_connections(0),
            ServerLimits::new().max_connections(usize::MAX),
        ] {
            let error = limits.check().unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{limits:?}");
        }
        // Closing at once is a valid choice.
        assert!(ServerLimits::new().shutdown_timeout(zero).check().is_ok());
    }
}
