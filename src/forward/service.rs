use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower_service::Service;

use super::builder::{ForwardBuilder, InvalidForward};
use super::future::ResponseFuture;
use super::headers::{self, ATTEMPT_HEADER, RECEIVED_AT_HEADER, TASK_ID_HEADER};
use crate::body::{BufferedBody, ResponseBody};
use crate::fast_ack::{Attempt, ResponseStatus};
use crate::response::Rejection;
use crate::TaskEvent;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The body of a [`Forward`] answer: the start of the upstream's body, or
/// the JSON of a failure.
pub type ForwardBody = ResponseBody<BufferedBody>;

/// How much of the upstream's body is kept for the answer (and so for a
/// dead letter or a log line, which say why).
const KEPT: usize = 1024;

/// How much of the upstream's body is shown in the message of a failure.
const SHOWN: usize = 200;

/// How much of the upstream's body is read in all: reading it to the end
/// lets the pool reuse the connection; a longer body closes it instead.
const DRAINED: usize = 64 * 1024;

/// Forwards each event to an upstream URL: the provider's body bytes
/// unchanged, its end-to-end headers, and `taskhook-task-id`,
/// `taskhook-attempt`, `taskhook-received-at`. Made by
/// [`Forward::builder`]; see the [module docs](crate::forward).
///
/// Cheap to clone: the clones share the connection pool and the
/// concurrency cap.
pub struct Forward<C = HttpConnector> {
    pub(super) shared: Arc<Shared<C>>,
}

pub(super) struct Shared<C> {
    pub(super) client: Client<C, Full<Bytes>>,
    pub(super) upstream: Uri,
    pub(super) host: HeaderValue,
    pub(super) extra: HeaderMap,
    pub(super) timeout: Duration,
    pub(super) limit: Semaphore,
    pub(super) concurrency: usize,
    pub(super) retry_client_errors: bool,
}

impl Forward {
    /// Settings to forward to `upstream` (an absolute `http://` URL), to
    /// adjust, then [`build`](ForwardBuilder::build).
    pub fn builder(upstream: impl Into<String>) -> ForwardBuilder {
        ForwardBuilder::new(upstream)
    }

    /// Forwards to `upstream` with the default settings (a 30 s timeout,
    /// 16 forwards at once).
    ///
    /// # Errors
    ///
    /// [`InvalidForward`] when `upstream` is not an absolute `http` URL.
    ///
    /// ```
    /// use taskhook::forward::{Forward, InvalidForward};
    ///
    /// assert!(Forward::new("http://127.0.0.1:8000/callback").is_ok());
    /// assert_eq!(Forward::new("127.0.0.1:8000").unwrap_err(), InvalidForward::Url);
    /// assert_eq!(Forward::new("https://app.example/hook").unwrap_err(), InvalidForward::Https);
    /// ```
    pub fn new(upstream: &str) -> Result<Self, InvalidForward> {
        ForwardBuilder::new(upstream).build()
    }
}

impl<C> Forward<C> {
    /// The URL every event is forwarded to.
    pub fn upstream(&self) -> &Uri {
        &self.shared.upstream
    }
}

impl<C> Clone for Forward<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C> fmt::Debug for Forward<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        f.debug_struct("Forward")
            .field("upstream", &shared.upstream)
            .field("timeout", &shared.timeout)
            .field("concurrency", &shared.concurrency)
            .field("headers", &shared.extra.keys().collect::<Vec<_>>())
            .field("retry_client_errors", &shared.retry_client_errors)
            .finish()
    }
}

impl<C, B> Service<Request<B>> for Forward<C>
where
    C: Connect + Clone + Send + Sync + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ForwardBody>;
    /// Never fails: a failed delivery is a `503` (see the [module
    /// docs](crate::forward#answers)).
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready: the concurrency cap is waited for in the response
    /// future, before the timeout starts, so that a clone never holds a
    /// place while idle.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        ResponseFuture::new(async move { Ok(shared.forward(req).await) })
    }
}

/// What the upstream's answer means for the event.
enum Verdict {
    /// `2xx`: delivered.
    Delivered,
    /// A final `4xx` of the app: passed through.
    Refused,
    /// Anything else: a failed attempt, answered `503`.
    Retry,
}

impl<C> Shared<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    async fn forward<B>(&self, req: Request<B>) -> Response<ForwardBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        // Under fast-ack the body is in memory already: this is one frame.
        let Ok(body) = body.collect().await.map(|body| body.to_bytes()) else {
            return Rejection::body_unreadable().into_response();
        };
        let request = self.request(parts, body);

        // The semaphore is never closed, so this waits for a place and
        // never fails; the timeout starts once the place is held.
        let _place = self.limit.acquire().await.ok();
        let now = Instant::now();
        // A timeout too long to add (`Duration::MAX` for "none") is a year.
        let deadline = now
            .checked_add(self.timeout)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400));
        let response = match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                let cause = causes(&error);
                tracing::debug!(upstream = %self.upstream, error = %cause, "forward failed");
                return if error.is_connect() {
                    Rejection::upstream_unreachable(&cause).into_response()
                } else {
                    Rejection::upstream_connection_error(&cause).into_response()
                };
            }
            Err(_) => {
                tracing::debug!(upstream = %self.upstream, "forward timed out");
                return Rejection::upstream_timeout(self.timeout).into_response();
            }
        };
        let status = response.status();
        let retry_after = ResponseStatus::retry_after(&response);
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        let kept = read_start(response.into_body(), deadline).await;
        tracing::debug!(upstream = %self.upstream, %status, "forwarded");
        match self.verdict(status) {
            Verdict::Delivered | Verdict::Refused => {
                let mut answer = Response::new(ResponseBody::new(BufferedBody::new(kept)));
                *answer.status_mut() = status;
                if let Some(content_type) = content_type {
                    answer.headers_mut().insert(CONTENT_TYPE, content_type);
                }
                answer
            }
            Verdict::Retry => {
                Rejection::upstream_status(status, &shown(&kept), retry_after).into_response()
            }
        }
    }

    /// The request to the upstream: the provider's method, headers (minus
    /// what is not forwarded) and body, to the upstream URL over HTTP/1.1,
    /// with the `taskhook-*` headers and the extras.
    fn request(&self, parts: http::request::Parts, body: Bytes) -> Request<Full<Bytes>> {
        let attempt = parts.extensions.get::<Attempt>();
        let task_id = attempt
            .and_then(Attempt::task_id)
            .or_else(|| parts.extensions.get::<TaskEvent>().map(|event| event.id()));
        let task_id = task_id.and_then(|id| HeaderValue::from_bytes(id.as_bytes()).ok());
        let number = attempt.map_or(1, Attempt::number);
        let received_at = attempt.map_or_else(SystemTime::now, Attempt::received_at);

        let mut headers = parts.headers;
        headers::strip(&mut headers);
        for name in self.extra.keys() {
            headers.remove(name);
        }
        for (name, value) in &self.extra {
            headers.append(name, value.clone());
        }
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        if let Some(task_id) = task_id {
            headers.insert(TASK_ID_HEADER, task_id);
        }
        headers.insert(ATTEMPT_HEADER, HeaderValue::from(number));
        headers.insert(RECEIVED_AT_HEADER, headers::rfc3339(received_at));

        let mut request = Request::new(Full::new(body));
        *request.method_mut() = parts.method;
        *request.uri_mut() = self.upstream.clone();
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = headers;
        request
    }

    fn verdict(&self, status: StatusCode) -> Verdict {
        let always_retried = [StatusCode::REQUEST_TIMEOUT, StatusCode::TOO_MANY_REQUESTS];
        if status.is_success() {
            Verdict::Delivered
        } else if status.is_client_error()
            && !always_retried.contains(&status)
            && !self.retry_client_errors
        {
            Verdict::Refused
        } else {
            Verdict::Retry
        }
    }
}

/// Reads `body` until its end, `deadline` or [`DRAINED`] bytes, whichever
/// comes first, and keeps its first [`KEPT`] bytes. Read to the end, the
/// connection goes back to the pool.
async fn read_start<B: Body<Data = Bytes>>(body: B, deadline: Instant) -> Bytes {
    let mut body = std::pin::pin!(body);
    let mut kept = BytesMut::new();
    let mut read = 0usize;
    let drain = async {
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let room = KEPT.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
            read = read.saturating_add(data.len());
            if read > DRAINED {
                break;
            }
        }
    };
    let _ = tokio::time::timeout_at(deadline, drain).await;
    kept.freeze()
}

/// The start of a body for a failure's message: lossy UTF-8, at most
/// [`SHOWN`] bytes (cut on a character), trimmed, `…` when cut.
fn shown(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= SHOWN {
        return text.to_owned();
    }
    let mut end = SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// An error and its sources, `: `-separated (hyper-util's own text is
/// terse: the cause, a refused connection, is in the sources).
fn causes(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        let next = error.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = error.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_body_is_cut_on_a_character() {
        assert_eq!(shown(b"  down  \n"), "down");
        let long = "é".repeat(150);
        let cut = shown(long.as_bytes());
        assert!(cut.ends_with('…'));
        assert_eq!(cut.len(), SHOWN + '…'.len_utf8());
        assert_eq!(shown(&[0xff, b'x']), "\u{fffd}x");
    }

    #[tokio::test]
    async fn statuses_map_to_verdicts() {
        let forward = Forward::new("http://127.0.0.1:9/").unwrap();
        let retrying = Forward::builder("http://127.0.0.1:9/")
            .retry_client_errors(true)
            .build()
            .unwrap();
        for (code, default, retry_4xx) in [
            (200, "delivered", "delivered"),
            (204, "delivered", "delivered"),
            (301, "retry", "retry"),
            (400, "refused", "retry"),
            (404, "refused", "retry"),
            (408, "retry", "retry"),
            (422, "refused", "retry"),
            (429, "retry", "retry"),
            (500, "retry", "retry"),
            (503, "retry", "retry"),
        ] {
            let name = |verdict| match verdict {
                Verdict::Delivered => "delivered",
                Verdict::Refused => "refused",
                Verdict::Retry => "retry",
            };
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(name(forward.shared.verdict(status)), default, "{code}");
            assert_eq!(name(retrying.shared.verdict(status)), retry_4xx, "{code}");
        }
    }
}
