use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Uri};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Semaphore;

use super::headers::is_not_forwarded;
use super::service::{Forward, Shared};

/// The default of [`ForwardBuilder::timeout`].
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The default of [`ForwardBuilder::concurrency`].
const DEFAULT_CONCURRENCY: usize = 16;

/// The settings of a [`Forward`]; [`build`](Self::build) checks them and
/// makes the service (and its connection pool).
///
/// ```
/// use std::time::Duration;
/// use http::header::{HeaderValue, AUTHORIZATION};
/// use taskhook::forward::Forward;
///
/// let forward = Forward::builder("http://127.0.0.1:8000/callback")
///     .timeout(Duration::from_secs(10))
///     .concurrency(32)
///     .header(AUTHORIZATION, HeaderValue::from_static("Bearer s3cr3t"))
///     .retry_client_errors(false) // the default: an app's 4xx is final
///     .build()?;
/// assert!(!format!("{forward:?}").contains("s3cr3t"));
/// # Ok::<(), taskhook::forward::InvalidForward>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct ForwardBuilder {
    upstream: String,
    timeout: Duration,
    concurrency: usize,
    headers: HeaderMap,
    retry_client_errors: bool,
}

impl ForwardBuilder {
    /// Settings to forward to `upstream`, an absolute `http://` URL
    /// (`http://127.0.0.1:8000/callback`; a query is kept), with the
    /// defaults: a 30 s timeout, 16 forwards at once, no extra headers, an
    /// app's `4xx` final.
    pub fn new(upstream: impl Into<String>) -> Self {
        Self {
            upstream: upstream.into(),
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            headers: HeaderMap::new(),
            retry_client_errors: false,
        }
    }

    /// Sets how long one forward may take, from the connection (or a pooled
    /// one) to the upstream's answer (default 30 s). It starts once the
    /// forward has its place under the [`concurrency`](Self::concurrency)
    /// cap: waiting for the cap does not count. An upstream that does not
    /// answer in time is a failed attempt (`503 upstream_timeout`), retried.
    /// It must not be zero.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use taskhook::forward::Forward;
    /// let builder = Forward::builder("http://app:8000/hook").timeout(Duration::from_secs(5));
    /// # drop(builder);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many forwards run at once, across every clone of the
    /// service (at least 1: `0` is read as `1`; the default is 16). The
    /// others wait their turn; that wait is not counted in the
    /// [`timeout`](Self::timeout). It is also how many idle connections the
    /// pool keeps.
    ///
    /// ```
    /// # use taskhook::forward::Forward;
    /// let builder = Forward::builder("http://app:8000/hook").concurrency(4);
    /// # drop(builder);
    /// ```
    pub fn concurrency(mut self, forwards: usize) -> Self {
        self.concurrency = forwards.max(1);
        self
    }

    /// Adds a header to every forward (`Authorization`, a tenant, ...),
    /// replacing the provider's header of that name; call it again with the
    /// same name to send several values. Values are marked sensitive:
    /// `Debug` shows the names only.
    ///
    /// A name this service owns or that is hop-by-hop (`Host`,
    /// `Content-Length`, `Connection`, `Transfer-Encoding`, `Proxy-*`,
    /// `taskhook-*`, ...) makes [`build`](Self::build) fail with
    /// [`InvalidForward::Header`].
    ///
    /// ```
    /// # use http::header::{HeaderName, HeaderValue};
    /// # use taskhook::forward::Forward;
    /// let builder = Forward::builder("http://app:8000/hook")
    ///     .header(HeaderName::from_static("x-tenant"), HeaderValue::from_static("acme"));
    /// # drop(builder);
    /// ```
    pub fn header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        self.headers.append(name, value);
        self
    }

    /// Sets whether an upstream `4xx` (other than `408` and `429`, always
    /// retried) is retried like a `5xx` (`true`: answered `503
    /// upstream_status`) or passed through as the app's final refusal
    /// (`false`, the default: under fast-ack a dead letter at once, see
    /// `FastAckBuilder::dead_letter_refusals`).
    ///
    /// ```
    /// # use taskhook::forward::Forward;
    /// // An app that answers 404 while it is being deployed.
    /// let builder = Forward::builder("http://app:8000/hook").retry_client_errors(true);
    /// # drop(builder);
    /// ```
    pub fn retry_client_errors(mut self, retry: bool) -> Self {
        self.retry_client_errors = retry;
        self
    }

    /// Checks the settings and makes the service, with a pool of plain
    /// `http` connections.
    ///
    /// # Errors
    ///
    /// [`InvalidForward`]: the URL is not an absolute `http` URL (`https`
    /// needs [`build_with_connector`](Self::build_with_connector)), an
    /// extra header cannot be sent, or the timeout is zero.
    pub fn build(self) -> Result<Forward, InvalidForward> {
        let https = self
            .upstream
            .trim()
            .parse::<Uri>()
            .is_ok_and(|uri| uri.scheme() == Some(&http::uri::Scheme::HTTPS));
        if https {
            return Err(InvalidForward::Https);
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        self.build_with_connector(connector)
    }

    /// Checks the settings and makes the service, connecting with
    /// `connector` (a TLS connector for an `https` upstream, such as
    /// `hyper-rustls`' `HttpsConnector`).
    ///
    /// # Errors
    ///
    /// [`InvalidForward`]: the URL is not an absolute `http` or `https`
    /// URL, an extra header cannot be sent, or the timeout is zero.
    pub fn build_with_connector<C>(self, connector: C) -> Result<Forward<C>, InvalidForward>
    where
        C: Connect + Clone + Send + Sync + 'static,
    {
        let upstream: Uri = self
            .upstream
            .trim()
            .parse()
            .map_err(|_| InvalidForward::Url)?;
        let scheme_ok = matches!(upstream.scheme_str(), Some("http" | "https"));
        let authority = upstream.authority().ok_or(InvalidForward::Url)?;
        if !scheme_ok || authority.as_str().contains('@') || authority.host().is_empty() {
            return Err(InvalidForward::Url);
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| InvalidForward::Url)?;
        if let Some(name) = self.headers.keys().find(|name| is_not_forwarded(name)) {
            return Err(InvalidForward::Header(name.clone()));
        }
        if self.timeout.is_zero() {
            return Err(InvalidForward::ZeroTimeout);
        }
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(self.concurrency)
            .build(connector);
        Ok(Forward {
            shared: Arc::new(Shared {
                client,
                upstream,
                host,
                extra: self.headers,
                timeout: self.timeout,
                limit: Semaphore::new(self.concurrency),
                concurrency: self.concurrency,
                retry_client_errors: self.retry_client_errors,
            }),
        })
    }
}

impl fmt::Debug for ForwardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardBuilder")
            .field("upstream", &self.upstream)
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("retry_client_errors", &self.retry_client_errors)
            .finish()
    }
}

/// Why a [`ForwardBuilder`] could not make a [`Forward`]. Never contains a
/// header value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidForward {
    /// The upstream is not an absolute `http://host[:port][/path][?query]`
    /// URL (without user information).
    Url,
    /// An `https` upstream needs a TLS connector:
    /// [`ForwardBuilder::build_with_connector`].
    Https,
    /// This extra header cannot be sent: it is hop-by-hop, or this service
    /// writes it (`Host`, `Content-Length`, `taskhook-*`).
    Header(HeaderName),
    /// The timeout is zero: every forward would fail.
    ZeroTimeout,
}

impl fmt::Display for InvalidForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url => f.write_str("the upstream is not an absolute http:// URL"),
            Self::Https => f.write_str(
                "an https upstream needs a TLS connector (ForwardBuilder::build_with_connector)",
            ),
            Self::Header(name) => write!(
                f,
                "the header {name} cannot be added: it is hop-by-hop or written by the service"
            ),
            Self::ZeroTimeout => f.write_str("the forward timeout is zero"),
        }
    }
}

impl std::error::Error for InvalidForward {}
