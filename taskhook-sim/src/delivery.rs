//! Delivery: one push of a payload, with the provider's timeout and retries.

use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower_service::Service;

use super::simulator::Progress;
use super::workload::DuplicateKind;

/// The most of a response body read (then dropped) so the connection can be
/// reused.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The provider's timing: how long it waits for an answer and when it
/// retries, scaled by a time factor.
///
/// The provider waits about 10 s for a 2xx; no 2xx in time, or a 5xx, is
/// retried after 10 s, 30 s and 60 s (each delay counted from the end of the
/// failed attempt); a 4xx ends the push at once. A time factor scales the
/// timeout and every delay, so a demo runs in seconds:
///
/// ```
/// use std::time::Duration;
/// use taskhook_sim::Schedule;
///
/// let fast = Schedule::provider().time_factor(0.01);
/// assert_eq!(fast.scaled_timeout(), Duration::from_millis(100));
/// assert_eq!(
///     fast.scaled_retry_delays().collect::<Vec<_>>(),
///     [Duration::from_millis(100), Duration::from_millis(300), Duration::from_millis(600)]
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    timeout: Duration,
    retry_delays: Vec<Duration>,
    time_factor: f64,
}

impl Schedule {
    /// The provider's documented schedule: a 10 s timeout, retries after
    /// 10 s, 30 s and 60 s, time factor 1.
    pub fn provider() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry_delays: vec![
                Duration::from_secs(10),
                Duration::from_secs(30),
                Duration::from_secs(60),
            ],
            time_factor: 1.0,
        }
    }

    /// Scales the timeout and every delay (retries and
    /// [`DuplicateKind::After`]) by `factor`: `0.01` turns 10 s into 100 ms.
    ///
    /// # Panics
    ///
    /// If `factor` is not a finite number greater than zero: a schedule that
    /// cannot be run is a configuration error, reported when it is made.
    ///
    /// ```
    /// use taskhook_sim::Schedule;
    ///
    /// let schedule = Schedule::provider().time_factor(0.01);
    /// ```
    #[must_use]
    pub fn time_factor(mut self, factor: f64) -> Self {
        assert!(
            factor.is_finite() && factor > 0.0,
            "time factor must be finite and greater than zero, got {factor}"
        );
        self.time_factor = factor;
        self
    }

    /// Sets how long an attempt may take before it counts as failed
    /// (unscaled; default 10 s). The whole response, status and body, must
    /// arrive in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook_sim::Schedule;
    ///
    /// let schedule = Schedule::provider().timeout(Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the delays before each retry (unscaled; default 10 s, 30 s,
    /// 60 s). Their number is the number of retries.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook_sim::Schedule;
    ///
    /// // No retries at all.
    /// let schedule = Schedule::provider().retry_delays([]);
    /// let one = Schedule::provider().retry_delays([Duration::from_secs(1)]);
    /// ```
    #[must_use]
    pub fn retry_delays<I: IntoIterator<Item = Duration>>(mut self, delays: I) -> Self {
        self.retry_delays = delays.into_iter().collect();
        self
    }

    /// The time factor.
    pub fn factor(&self) -> f64 {
        self.time_factor
    }

    /// The timeout of one attempt, scaled.
    pub fn scaled_timeout(&self) -> Duration {
        self.scale(self.timeout)
    }

    /// The retry delays, scaled.
    pub fn scaled_retry_delays(&self) -> impl Iterator<Item = Duration> + '_ {
        self.retry_delays.iter().map(|d| self.scale(*d))
    }

    /// `duration` scaled by the time factor (saturating).
    pub fn scale(&self, duration: Duration) -> Duration {
        Duration::try_from_secs_f64(duration.as_secs_f64() * self.time_factor)
            .unwrap_or(Duration::MAX)
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Self::provider()
    }
}

/// Why one push was pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushKind {
    /// The task's one regular push.
    First,
    /// An extra push of the same payload (fault injection).
    Duplicate(DuplicateKind),
}

/// What one HTTP attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptResult {
    /// The receiver answered with this status.
    Status(StatusCode),
    /// No complete answer within the (scaled) timeout.
    TimedOut,
    /// The request failed: connection refused or reset, a malformed
    /// response, ...
    Failed(String),
}

impl AttemptResult {
    /// The answered status, if any.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            AttemptResult::Status(status) => Some(*status),
            _ => None,
        }
    }
}

/// One HTTP attempt of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// When the attempt started, from the start of its push (0 for the
    /// first attempt).
    pub offset: Duration,
    /// From sending the request to the end of the response (or the failure).
    pub latency: Duration,
    /// What it got.
    pub result: AttemptResult,
}

/// How a push ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A 2xx: the receiver accepted the task.
    Delivered,
    /// A 4xx: the provider gives up at once, without retrying. The task is
    /// lost unless another push delivers it.
    Rejected(StatusCode),
    /// Every attempt failed (timeout, 5xx, a connection error, or any other
    /// status) and the retries are used up.
    Exhausted,
}

/// One push of a task's payload: every attempt and the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Push {
    /// Why it was pushed.
    pub kind: PushKind,
    /// When its first attempt started, from the creation of the [`Sender`]
    /// (for [`Simulator::run`](super::Simulator::run) and
    /// [`run_tasks`](super::Simulator::run_tasks): the start of the run).
    pub started: Duration,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// How it ended.
    pub outcome: Outcome,
}

impl Push {
    /// The number of retries (attempts after the first).
    pub fn retries(&self) -> usize {
        self.attempts.len().saturating_sub(1)
    }
}

/// Resolves every name to the addresses checked when the [`Sender`] was
/// made, so a second lookup can never lead somewhere the rules refuse.
#[derive(Debug, Clone)]
struct PinnedResolver {
    addrs: Arc<[SocketAddr]>,
}

/// The pinned addresses, in order.
#[derive(Debug)]
struct PinnedAddrs {
    addrs: Arc<[SocketAddr]>,
    next: usize,
}

impl Iterator for PinnedAddrs {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        let addr = self.addrs.get(self.next).copied();
        self.next += 1;
        addr
    }
}

impl Service<Name> for PinnedResolver {
    type Response = PinnedAddrs;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _name: Name) -> Self::Future {
        ready(Ok(PinnedAddrs {
            addrs: Arc::clone(&self.addrs),
            next: 0,
        }))
    }
}

/// Pushes payloads to one validated callback URL the way the provider does:
/// HTTP/1.1 `POST` with `Content-Type: application/json`, connections
/// reused, the [`Schedule`]'s timeout and retries.
///
/// Made by [`Simulator::connect`](super::Simulator::connect), which checks
/// the URL and resolves its host once; the sender connects only to those
/// addresses. Cheap to clone: clones share the connection pool and the
/// in-flight limit.
///
/// Status handling, by the provider's rules: a 2xx is
/// [`Delivered`](Outcome::Delivered); a 4xx is
/// [`Rejected`](Outcome::Rejected) at once; a 5xx, a timeout or a
/// connection error is retried. The provider's docs name only 2xx, 4xx and
/// 5xx; any other final status (a 3xx) is treated as a failure and retried
/// (redirects are not followed).
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpConnector<PinnedResolver>, Full<Bytes>>,
    uri: Uri,
    addrs: Arc<[SocketAddr]>,
    schedule: Schedule,
    in_flight: Arc<Semaphore>,
    epoch: Instant,
    progress: Progress,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("uri", &self.uri)
            .field("addrs", &self.addrs)
            .field("schedule", &self.schedule)
            .field("in_flight_available", &self.in_flight.available_permits())
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub(super) fn new(
        uri: Uri,
        addrs: Vec<SocketAddr>,
        schedule: Schedule,
        max_in_flight: usize,
        progress: Progress,
    ) -> Self {
        let addrs: Arc<[SocketAddr]> = addrs.into();
        let mut connector = HttpConnector::new_with_resolver(PinnedResolver {
            addrs: Arc::clone(&addrs),
        });
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_in_flight)
            .build(connector);
        Self {
            client,
            uri,
            addrs,
            schedule,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            epoch: Instant::now(),
            progress,
        }
    }

    /// The callback URL pushed to.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The checked addresses connected to.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Pushes `payload` until it is delivered, rejected, or the retries are
    /// used up, and records every attempt. Waiting for a retry holds no slot
    /// of the in-flight limit.
    pub async fn push(&self, kind: PushKind, payload: Bytes) -> Push {
        self.push_with(kind, payload, None).await
    }

    /// Waits for a free slot of the in-flight limit, for the first attempt
    /// of a push.
    pub(super) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed; if it were, send unlimited.
        Arc::clone(&self.in_flight).acquire_owned().await.ok()
    }

    /// [`push`](Self::push), the first attempt in `slot` if given.
    pub(super) async fn push_with(
        &self,
        kind: PushKind,
        payload: Bytes,
        mut slot: Option<OwnedSemaphorePermit>,
    ) -> Push {
        let start = Instant::now();
        let mut attempts = Vec::new();
        let mut delays = self.schedule.scaled_retry_delays();
        let outcome = loop {
            let slot = match slot.take() {
                Some(slot) => Some(slot),
                None => self.slot().await,
            };
            let attempt = self.attempt(payload.clone(), start).await;
            drop(slot);
            self.progress.attempted();
            let result = attempt.result.clone();
            attempts.push(attempt);
            match result.status() {
                Some(status) if status.is_success() => break Outcome::Delivered,
                Some(status) if status.is_client_error() => break Outcome::Rejected(status),
                _ => {}
            }
            match delays.next() {
                Some(delay) => tokio::time::sleep(delay).await,
                None => break Outcome::Exhausted,
            }
        };
        self.progress.pushed(outcome);
        Push {
            kind,
            started: start.saturating_duration_since(self.epoch),
            attempts,
            outcome,
        }
    }

    async fn attempt(&self, payload: Bytes, push_start: Instant) -> Attempt {
        let sent = Instant::now();
        let mut request = Request::new(Full::new(payload));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        request
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            // Read the body (bounded, then dropped) so the connection goes
            // back to the pool; a failure here does not change the status.
            let _ = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
                .collect()
                .await;
            Ok::<_, hyper_util::client::legacy::Error>(status)
        };
        let result = match tokio::time::timeout(self.schedule.scaled_timeout(), exchange).await {
            Ok(Ok(status)) => AttemptResult::Status(status),
            Ok(Err(error)) => AttemptResult::Failed(error_chain(&error)),
            Err(_) => AttemptResult::TimedOut,
        };
        Attempt {
            offset: sent.saturating_duration_since(push_start),
            latency: sent.elapsed(),
            result,
        }
    }
}

/// An error and its sources, `: `-separated (hyper's own message alone is
/// often just "client error (Connect)").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
