use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Buf;
use http::header::RETRY_AFTER;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use super::future::{Admission, ResponseFuture};
use super::handle::FastAckHandle;
use super::job::{received_now, Head, Job};
use super::journal::BoxFuture;
use super::retry::parse_retry_after;
use super::shared::Shared;
use super::FastAckLayer;
use crate::body::{BufferedBody, ResponseBody};
use crate::metrics::record::AttemptStart;
use crate::response::Rejection;
use crate::{RawPayload, TaskEvent};

/// The status of a response, which tells the workers whether an attempt
/// succeeded (`1xx` to `3xx`), was refused (`4xx`) or failed (`5xx`), and
/// the start of its body, which says why.
///
/// Implemented for [`http::Response`]; implement it for another response
/// type to run such a service behind the layer.
pub trait ResponseStatus {
    /// The response's status code.
    fn status(&self) -> StatusCode;

    /// How long a failed answer (a `5xx`) asks to wait before the next
    /// attempt: the next one is not made sooner (see [`RetryPolicy`](super::RetryPolicy)).
    /// The default asks nothing.
    ///
    /// For [`http::Response`], its `Retry-After` header: delay-seconds or
    /// an HTTP date (IMF-fixdate); another value is ignored.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::Response;
    /// use taskhook::fast_ack::ResponseStatus;
    ///
    /// let busy = Response::builder()
    ///     .status(503)
    ///     .header("retry-after", "120")
    ///     .body(String::new())
    ///     .unwrap();
    /// assert_eq!(busy.retry_after(), Some(Duration::from_secs(120)));
    /// ```
    fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// The start of the body, at most `limit` bytes as lossy UTF-8 (`…`
    /// when cut), for the report of a refused or failed attempt. Read for
    /// at most one second. The default reads nothing.
    fn excerpt(self, limit: usize) -> BoxFuture<'static, String>
    where
        Self: Sized,
    {
        let _ = limit;
        Box::pin(std::future::ready(String::new()))
    }
}

impl<B> ResponseStatus for Response<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
{
    fn status(&self) -> StatusCode {
        Response::status(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        let value = self.headers().get(RETRY_AFTER)?;
        parse_retry_after(value.as_bytes(), SystemTime::now())
    }

    fn excerpt(self, limit: usize) -> BoxFuture<'static, String> {
        Box::pin(excerpt(self.into_body(), limit))
    }
}

/// The start of `body`: see [`ResponseStatus::excerpt`].
async fn excerpt<B: Body>(body: B, limit: usize) -> String {
    let mut body = std::pin::pin!(body);
    let mut buf = Vec::new();
    let mut cut = false;
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            while data.has_remaining() && buf.len() < limit {
                let chunk = data.chunk();
                let n = chunk.len().min(limit - buf.len());
                buf.extend_from_slice(&chunk[..n]);
                data.advance(n);
            }
            if buf.len() >= limit {
                cut = data.has_remaining() || !body.is_end_stream();
                break;
            }
        }
    };
    // A body that never ends must not hold the worker.
    if tokio::time::timeout(EXCERPT_READ_TIMEOUT, read)
        .await
        .is_err()
    {
        cut = true;
    }
    let mut text = String::from_utf8_lossy(&buf).trim_end().to_owned();
    if cut {
        text.push('…');
    }
    text
}

/// How long [`ResponseStatus::excerpt`] reads.
const EXCERPT_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Answers `202 Accepted` as soon as the event is journaled and queued, and
/// runs the inner service on it in the background.
///
/// Created with [`FastAckLayer`] (which shares one queue, journal and set of
/// workers with every service it makes) or [`FastAck::new`]. See the
/// [module docs](crate::fast_ack).
///
/// It never fails (`Error = Infallible`): the inner service's errors belong
/// to background attempts, which are retried and then dead-lettered, so
/// they never reach the caller.
///
/// The inner service is owned by the layer's workers, not by this value,
/// so there is no `get_ref`/`get_mut`/`into_inner`: reach the shared state
/// through [`FastAck::handle`].
pub struct FastAck<S> {
    shared: Arc<Shared>,
    /// `false` for a service made by a second `layer` call on the same
    /// layer: it answers `500`.
    bound: bool,
    _inner: PhantomData<fn() -> S>,
}

impl<S> FastAck<S> {
    /// Wraps `inner` with a [`FastAckLayer::new`] (a [`MemoryJournal`](super::journal::MemoryJournal)
    /// and the default settings).
    ///
    /// Spawns the workers on the current tokio runtime, or on the first
    /// request when there is none yet.
    pub fn new(inner: S) -> Self
    where
        S: Service<Request<BufferedBody>> + Clone + Send + 'static,
        S::Response: ResponseStatus,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        S::Future: Send + 'static,
    {
        FastAckLayer::new().layer(inner)
    }

    pub(super) fn from_shared(shared: Arc<Shared>, bound: bool) -> Self {
        Self {
            shared,
            bound,
            _inner: PhantomData,
        }
    }

    /// Returns a new [`FastAckLayer`] with the default settings.
    pub fn layer() -> FastAckLayer {
        FastAckLayer::new()
    }

    /// A handle on the counters, the dead letters and the shutdown.
    pub fn handle(&self) -> FastAckHandle {
        FastAckHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> Clone for FastAck<S> {
    fn clone(&self) -> Self {
        Self::from_shared(Arc::clone(&self.shared), self.bound)
    }
}

impl<S> fmt::Debug for FastAck<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastAck")
            .field("shared", &self.shared)
            .field("bound", &self.bound)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FastAck<S>
where
    S: Service<Request<BufferedBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    /// Never fails: the inner service's errors belong to background
    /// attempts (retried, then dead-lettered), never to the caller. So the
    /// stack mounts on axum whatever the handler's error type.
    type Error = Infallible;
    type Future = ResponseFuture<ResBody>;

    /// Always ready: the inner service is driven by the workers, and a full
    /// queue is answered `503` at once rather than holding the provider's
    /// connection (it waits only about 10 s for an answer).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if !self.bound {
            return ResponseFuture::rejected(Rejection::fast_ack_layer_reused());
        }
        let Some(body) = req
            .extensions()
            .get::<RawPayload>()
            .map(|raw| raw.bytes().clone())
        else {
            return ResponseFuture::rejected(Rejection::payload_layer_missing("FastAckLayer"));
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return ResponseFuture::rejected(Rejection::no_tokio_runtime());
        };
        self.shared.ensure_started(&runtime);
        let retry_after = self.shared.config.retry_after;
        let reservation = match self.shared.reserve() {
            Ok(reservation) => reservation,
            Err(refusal) => {
                tracing::debug!(?refusal, "event refused");
                return ResponseFuture::rejected(Rejection::refused(&refusal, retry_after));
            }
        };
        let event = req.extensions().get::<TaskEvent>().cloned();
        let task_id = event.as_ref().map(|event| Arc::clone(event.shared_id()));
        // Only what the journal keeps goes on: the other extensions are
        // dropped here, so a live attempt sees what a replayed one will.
        let (parts, _) = req.into_parts();
        let span = tracing::Span::current();
        let job = Job {
            seq: 0,
            task_id: task_id.clone(),
            event,
            head: Arc::new(Head {
                method: parts.method,
                uri: parts.uri,
                version: parts.version,
                headers: parts.headers,
                received_at: received_now(),
            }),
            body,
            attempts: 0,
            span: span.clone(),
            attempt_started: AttemptStart::default(),
        };
        // The append and the enqueue run in the response future; if it is
        // dropped before they finished, they move onto a task of their own,
        // so a client going away mid-append cannot leave an entry journaled
        // but never queued.
        let shared = Arc::clone(&self.shared);
        let admission = Admission::admit(runtime, shared.accept(reservation, job).instrument(span));
        ResponseFuture::accepting(admission, task_id, retry_after)
    }
}
