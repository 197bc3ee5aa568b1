//! Delivery: one push of a payload, with the provider's timeout and retries.

use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

use super::provider::Provider;
use super::sign::Signing;
use super::simulator::Progress;
use super::workload::{derive_webhook_id, DuplicateKind};

/// The most of a response body read (then dropped) so the connection can be
/// reused.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// What a `4xx` answer means to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientErrors {
    /// It gives up at once: the push is
    /// [`Rejected`](Outcome::Rejected) (APIMart).
    GiveUp,
    /// It retries a `4xx` like a `5xx` (Replicate, OpenAI).
    Retry,
}

/// The provider's timing: how long it waits for an answer and when it
/// retries, scaled by a time factor; and what a `4xx` means to it.
///
/// [`Schedule::provider`] is APIMart's: it waits about 10 s for a 2xx; no
/// 2xx in time, or a 5xx, is retried after 10 s, 30 s and 60 s (each delay
/// counted from the end of the failed attempt); a 4xx ends the push at once.
/// [`Schedule::for_provider`] gives each provider's. A time factor scales the timeout and
/// every delay, so a demo runs in seconds:
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
    client_errors: ClientErrors,
    retry_intermediate: bool,
}

impl Schedule {
    /// APIMart's documented schedule (the default provider's): a 10 s
    /// timeout, retries after 10 s, 30 s and 60 s, a `4xx` gives up, time
    /// factor 1. The same as `Schedule::for_provider(Provider::Apimart)`.
    pub fn provider() -> Self {
        Self::for_provider(Provider::Apimart)
    }

    /// `provider`'s schedule, time factor 1: its timeout, its retry
    /// delays, what a `4xx` means to it and whether its intermediate events
    /// are retried. Where the provider's docs are silent, the table says
    /// what the simulator does (and "unconfirmed"):
    ///
    /// | Provider | Timeout | Retry delays | A `4xx` | Intermediate events |
    /// |---|---|---|---|---|
    /// | `apimart` | 10 s | 10 s, 30 s, 60 s | gives up | (none) |
    /// | `replicate` | 5 s ("a few seconds") | 5 s, 10 s, 20 s, 30 s (the last about a minute after the first attempt) | retried | never retried |
    /// | `fal` | 15 s (undocumented) | 15 s doubling, capped at 25 min: 10 retries, the last 1 h 47 min after the first attempt ("10 retries within 2 h") | retried (undocumented: "fails to deliver") | (none) |
    /// | `openai` | 15 s (undocumented; the Standard Webhooks spec recommends 15-30 s) | 30 s, 2 min, 10 min, 1 h, 6 h, 12 h, 24 h, 24 h (about 67 h: "up to 72 h") | retried (any non-`2xx`) | (none) |
    /// | `standard-webhooks` | 15 s (the spec's 15-30 s) | the spec's example: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h | retried (the spec's `410`, "disable the endpoint", is not simulated) | (none) |
    /// | `kie` | 15 s | unconfirmed: 10 s, 30 s, 60 s, as APIMart | unconfirmed: gives up, as APIMart | (none) |
    /// | `kling` | unconfirmed: 10 s | unconfirmed: 10 s, 30 s, 60 s | unconfirmed: gives up | retried like the final one |
    /// | `midjourney-proxy` | 10 s (its HTTP client's, unconfirmed) | none: one attempt, whatever the answer | one attempt | one attempt |
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook_sim::{ClientErrors, Provider, Schedule};
    ///
    /// assert_eq!(Schedule::for_provider(Provider::Apimart), Schedule::provider());
    /// let replicate = Schedule::for_provider(Provider::Replicate);
    /// assert_eq!(replicate.client_errors(), ClientErrors::Retry);
    /// assert!(!replicate.retries_intermediate_events());
    /// let fal = Schedule::for_provider(Provider::Fal);
    /// assert_eq!(fal.scaled_retry_delays().count(), 10);
    /// assert!(fal.scaled_retry_delays().sum::<Duration>() < Duration::from_secs(2 * 3600));
    /// assert_eq!(Schedule::for_provider(Provider::MidjourneyProxy).scaled_retry_delays().count(), 0);
    /// ```
    pub fn for_provider(provider: Provider) -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 3600;
        let (timeout, delays, retry_intermediate): (u64, &[u64], bool) = match provider {
            Provider::Apimart => (10, &[10, 30, 60], true),
            Provider::Kie => (15, &[10, 30, 60], true),
            Provider::Replicate => (5, &[5, 10, 20, 30], false),
            Provider::Fal => (
                15,
                &[15, 30, 60, 120, 240, 480, 960, 1500, 1500, 1500],
                true,
            ),
            Provider::OpenAi => (
                15,
                &[
                    30,
                    2 * MIN,
                    10 * MIN,
                    HOUR,
                    6 * HOUR,
                    12 * HOUR,
                    24 * HOUR,
                    24 * HOUR,
                ],
                true,
            ),
            Provider::StandardWebhooks => (
                15,
                &[
                    5,
                    5 * MIN,
                    30 * MIN,
                    2 * HOUR,
                    5 * HOUR,
                    10 * HOUR,
                    14 * HOUR,
                    20 * HOUR,
                    24 * HOUR,
                ],
                true,
            ),
            Provider::Kling => (10, &[10, 30, 60], true),
            Provider::MidjourneyProxy => (10, &[], true),
        };
        Self {
            timeout: Duration::from_secs(timeout),
            retry_delays: delays.iter().copied().map(Duration::from_secs).collect(),
            time_factor: 1.0,
            client_errors: provider.client_errors(),
            retry_intermediate,
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

    /// Sets what a `4xx` means: [`ClientErrors::GiveUp`] (APIMart's) or
    /// [`ClientErrors::Retry`].
    ///
    /// ```
    /// use taskhook_sim::{ClientErrors, Schedule};
    ///
    /// let schedule = Schedule::provider().on_client_error(ClientErrors::Retry);
    /// assert_eq!(schedule.client_errors(), ClientErrors::Retry);
    /// ```
    #[must_use]
    pub fn on_client_error(mut self, policy: ClientErrors) -> Self {
        self.client_errors = policy;
        self
    }

    /// Sets whether intermediate events (and late ones) get the retries too
    /// (Replicate's do not: only its final event is retried).
    ///
    /// ```
    /// use taskhook_sim::{Provider, Schedule};
    ///
    /// let schedule = Schedule::for_provider(Provider::Kling).retry_intermediate_events(false);
    /// assert!(!schedule.retries_intermediate_events());
    /// ```
    #[must_use]
    pub fn retry_intermediate_events(mut self, retry: bool) -> Self {
        self.retry_intermediate = retry;
        self
    }

    /// What a `4xx` means.
    pub fn client_errors(&self) -> ClientErrors {
        self.client_errors
    }

    /// Whether intermediate events are retried.
    pub fn retries_intermediate_events(&self) -> bool {
        self.retry_intermediate
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
    /// The regular push of the task's final event (its only event for a
    /// provider that pushes only the final state).
    First,
    /// An extra push of the final event's payload (fault injection).
    Duplicate(DuplicateKind),
    /// The regular push of the task's intermediate event `n` (from 0, in
    /// the order pushed: Replicate's `starting` is 0, `processing` 1),
    /// before the final event.
    Intermediate(usize),
    /// The task's last intermediate event pushed again after the final one
    /// (fault injection: a regression the receiver must ignore).
    Late,
}

impl PushKind {
    /// Whether it pushes the final event ([`First`](Self::First) or a
    /// [`Duplicate`](Self::Duplicate)).
    ///
    /// ```
    /// use taskhook_sim::PushKind;
    ///
    /// assert!(PushKind::First.is_final());
    /// assert!(!PushKind::Intermediate(0).is_final());
    /// assert!(!PushKind::Late.is_final());
    /// ```
    pub fn is_final(self) -> bool {
        matches!(self, PushKind::First | PushKind::Duplicate(_))
    }
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
    /// A 4xx, to a provider that gives up on one ([`ClientErrors::GiveUp`])
    /// at once, without retrying. The task is lost unless another push
    /// delivers it.
    Rejected(StatusCode),
    /// Every attempt failed (timeout, 5xx, a connection error, any other
    /// status, or a 4xx to a provider that retries it) and the retries are
    /// used up.
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

/// The ids an attempt is signed with.
#[derive(Debug, Clone)]
pub(super) struct Ids {
    /// The task id (fal's request id, KIE's `taskId`).
    pub(super) task_id: String,
    /// The event's Standard Webhooks `webhook-id`.
    pub(super) webhook_id: String,
}

/// Pushes payloads to one validated callback URL the way the provider does:
/// HTTP/1.1 `POST` with `Content-Type: application/json`, connections
/// reused, the [`Schedule`]'s timeout and retries, every attempt signed by
/// the [`Signing`].
///
/// Made by [`Simulator::connect`](super::Simulator::connect), which checks
/// the URL and resolves its host once; the sender connects only to those
/// addresses. Cheap to clone: clones share the connection pool and the
/// in-flight limit.
///
/// Status handling, by the provider's rules: a 2xx is
/// [`Delivered`](Outcome::Delivered); a 4xx is
/// [`Rejected`](Outcome::Rejected) at once if the schedule says
/// [`ClientErrors::GiveUp`], retried otherwise; a 5xx, a timeout or a
/// connection error is retried. The provider's docs name only 2xx, 4xx and
/// 5xx; any other final status (a 3xx) is treated as a failure and retried
/// (redirects are not followed).
///
/// Each attempt's signature timestamp is the sender's
/// [`wall_clock`](Self::wall_clock) at that attempt: the wall-clock time
/// the sender was made at (or
/// [`Simulator::wall_clock`](super::Simulator::wall_clock)) plus the tokio
/// time since. So retries carry later timestamps, under
/// `tokio::time::pause` too, where they run ahead of the system clock.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpConnector<PinnedResolver>, Full<Bytes>>,
    uri: Uri,
    addrs: Arc<[SocketAddr]>,
    schedule: Schedule,
    provider: Provider,
    signing: Arc<Signing>,
    in_flight: Arc<Semaphore>,
    epoch: Instant,
    wall_epoch: SystemTime,
    progress: Progress,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("uri", &self.uri)
            .field("addrs", &self.addrs)
            .field("schedule", &self.schedule)
            .field("provider", &self.provider)
            .field("signing", &self.signing)
            .field("in_flight_available", &self.in_flight.available_permits())
            .finish_non_exhaustive()
    }
}

/// How a [`Sender`] is set up, besides its URL.
#[derive(Debug)]
pub(super) struct SenderConfig {
    pub(super) schedule: Schedule,
    pub(super) provider: Provider,
    pub(super) signing: Signing,
    pub(super) wall_clock: Option<SystemTime>,
    pub(super) max_in_flight: usize,
    pub(super) progress: Progress,
}

impl Sender {
    pub(super) fn new(uri: Uri, addrs: Vec<SocketAddr>, config: SenderConfig) -> Self {
        let SenderConfig {
            schedule,
            provider,
            signing,
            wall_clock,
            max_in_flight,
            progress,
        } = config;
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
            provider,
            signing: Arc::new(signing),
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            epoch: Instant::now(),
            wall_epoch: wall_clock.unwrap_or_else(SystemTime::now),
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

    /// The provider played.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The signing scheme.
    pub fn signing(&self) -> &Signing {
        &self.signing
    }

    /// The wall-clock time an attempt made now is signed with: the
    /// sender's start on the wall clock plus the tokio time since.
    pub fn wall_clock(&self) -> SystemTime {
        self.wall_epoch + Instant::now().saturating_duration_since(self.epoch)
    }

    /// Pushes `payload` until it is delivered, rejected, or the retries are
    /// used up, and records every attempt. Waiting for a retry holds no slot
    /// of the in-flight limit. An [`Intermediate`](PushKind::Intermediate)
    /// or [`Late`](PushKind::Late) push is retried only if the schedule
    /// [retries intermediate events](Schedule::retries_intermediate_events).
    ///
    /// Signatures, if any, name the task id found in the payload where the
    /// provider puts it (none if it is not there), and a `webhook-id` made
    /// from the payload (the same for the same bytes).
    pub async fn push(&self, kind: PushKind, payload: Bytes) -> Push {
        let task_id = super::payloads::task_id_in(self.provider, &payload).unwrap_or_default();
        let webhook_id = derive_webhook_id(self.provider, &[&payload]);
        let ids = Ids {
            task_id,
            webhook_id,
        };
        self.push_with(kind, payload, &ids, None).await
    }

    /// Waits for a free slot of the in-flight limit, for the first attempt
    /// of a push.
    pub(super) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed; if it were, send unlimited.
        Arc::clone(&self.in_flight).acquire_owned().await.ok()
    }

    /// [`push`](Self::push) signed with `ids`, the first attempt in `slot`
    /// if given.
    pub(super) async fn push_with(
        &self,
        kind: PushKind,
        payload: Bytes,
        ids: &Ids,
        mut slot: Option<OwnedSemaphorePermit>,
    ) -> Push {
        let start = Instant::now();
        let mut attempts = Vec::new();
        let retried = kind.is_final() || self.schedule.retry_intermediate;
        let mut delays =
            self.schedule
                .scaled_retry_delays()
                .take(if retried { usize::MAX } else { 0 });
        let give_up_on_4xx = self.schedule.client_errors == ClientErrors::GiveUp;
        let outcome = loop {
            let slot = match slot.take() {
                Some(slot) => Some(slot),
                None => self.slot().await,
            };
            let attempt = self.attempt(payload.clone(), ids, start).await;
            drop(slot);
            self.progress.attempted();
            let result = attempt.result.clone();
            attempts.push(attempt);
            match result.status() {
                Some(status) if status.is_success() => break Outcome::Delivered,
                Some(status) if status.is_client_error() && give_up_on_4xx => {
                    break Outcome::Rejected(status)
                }
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

    async fn attempt(&self, payload: Bytes, ids: &Ids, push_start: Instant) -> Attempt {
        let sent = Instant::now();
        let timestamp = self
            .wall_clock()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let signature = self
            .signing
            .headers(&ids.task_id, &ids.webhook_id, timestamp, &payload);
        let mut request = Request::new(Full::new(payload));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.extend(signature);
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
