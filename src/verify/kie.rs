//! KIE's callback signature: [`KieSignature`] / [`KieSignatureLayer`] and
//! the [`KieSecret`] they check with.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Request};
use serde::Deserialize;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};
use tower_layer::Layer;
use tower_service::Service;

use super::clock::{self, Clock, TimestampError};
use super::future::{Early, ResponseFuture};
use crate::response::Rejection;
use crate::RawPayload;

/// The header with the Unix time (seconds) the callback was sent at.
const TIMESTAMP: &str = "x-webhook-timestamp";

/// The header with the base64 HMAC-SHA256 of `{taskId}.{timestamp}`.
const SIGNATURE: &str = "x-webhook-signature";

/// The default tolerance: 5 minutes either way (KIE's docs name none).
const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// KIE's `webhookHmacKey`, from its settings page: the HMAC key is the
/// string's bytes as they are (it is not decoded).
///
/// Its `Debug` output is redacted.
///
/// ```
/// use taskhook::verify::KieSecret;
///
/// let secret = KieSecret::new("8f2c1e0a9b7d4c36")?;
/// assert_eq!(format!("{secret:?}"), "KieSecret(<redacted>)");
/// assert_eq!(secret.sign("task_01", 1763000000).len(), 44); // base64 of 32 bytes
/// assert!(KieSecret::new("").is_err());
/// # Ok::<(), taskhook::verify::InvalidKieSecret>(())
/// ```
#[derive(Clone)]
pub struct KieSecret {
    key: Arc<[u8]>,
}

impl KieSecret {
    /// The key, as KIE shows it (surrounding whitespace is ignored).
    pub fn new(key: &str) -> Result<Self, InvalidKieSecret> {
        let key = key.trim();
        if key.is_empty() {
            return Err(InvalidKieSecret);
        }
        Ok(Self {
            key: key.as_bytes().into(),
        })
    }

    /// The `X-Webhook-Signature` value KIE sends for `task_id` at
    /// `timestamp` (for tests and simulators):
    /// `base64(HMAC-SHA256(key, "{task_id}.{timestamp}"))`.
    pub fn sign(&self, task_id: &str, timestamp: i64) -> String {
        STANDARD.encode(self.tag(task_id, &timestamp.to_string()))
    }

    fn tag(&self, task_id: &str, timestamp: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(task_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for KieSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KieSecret(<redacted>)")
    }
}

/// An empty KIE key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidKieSecret;

impl fmt::Display for InvalidKieSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the KIE webhook HMAC key is empty")
    }
}

impl std::error::Error for InvalidKieSecret {}

#[derive(Clone)]
struct Config {
    secrets: Vec<KieSecret>,
    tolerance: Duration,
    now: Clock,
}

/// Why a push is refused (the message goes in the response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invalid {
    MissingTimestamp,
    MissingSignature,
    BadTimestamp,
    OutsideTolerance,
    NoTaskId,
    NoMatch,
}

impl Invalid {
    fn message(self) -> &'static str {
        match self {
            Self::MissingTimestamp => "the X-Webhook-Timestamp header is missing",
            Self::MissingSignature => "the X-Webhook-Signature header is missing",
            Self::BadTimestamp => "the X-Webhook-Timestamp header is not a Unix time in seconds",
            Self::OutsideTolerance => "the X-Webhook-Timestamp is outside the tolerance window",
            Self::NoTaskId => "the body has no single data.taskId or data.task_id to check",
            Self::NoMatch => "the X-Webhook-Signature does not match",
        }
    }
}

/// `{"data":{"taskId":..}}` or `{"data":{"task_id":..}}`, read lightly:
/// everything else is ignored.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "taskId", borrow)]
    camel: Option<Cow<'a, str>>,
    #[serde(borrow)]
    task_id: Option<Cow<'a, str>>,
}

/// The task id the signature covers; `None` if there is none, or two that
/// differ.
fn task_id(body: &[u8]) -> Option<Cow<'_, str>> {
    let data = serde_json::from_slice::<Envelope<'_>>(body).ok()?.data?;
    match (data.camel, data.task_id) {
        (Some(a), Some(b)) if a != b => None,
        (Some(id), _) | (None, Some(id)) => Some(id),
        (None, None) => None,
    }
}

impl Config {
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Invalid> {
        let header = |name: &'static str, missing: Invalid| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .ok_or(missing)
        };
        let timestamp = header(TIMESTAMP, Invalid::MissingTimestamp)?;
        let signature = header(SIGNATURE, Invalid::MissingSignature)?;
        clock::check(timestamp, (self.now)(), self.tolerance).map_err(|e| match e {
            TimestampError::NotUnixTime => Invalid::BadTimestamp,
            TimestampError::OutsideTolerance => Invalid::OutsideTolerance,
        })?;
        let candidate = STANDARD
            .decode(signature)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or(Invalid::NoMatch)?;
        let task_id = task_id(body).ok_or(Invalid::NoTaskId)?;
        let matched = self.secrets.iter().fold(Choice::from(0), |found, secret| {
            found | secret.tag(&task_id, timestamp).ct_eq(&candidate)
        });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(Invalid::NoMatch)
        }
    }
}

/// Applies [`KieSignature`] to a service: the request must carry KIE's
/// signature of its task id.
///
/// KIE signs `{taskId}.{timestamp}` with HMAC-SHA256 under the account's
/// `webhookHmacKey`: `X-Webhook-Timestamp` is the Unix time in seconds,
/// `X-Webhook-Signature` the base64 of the HMAC, and the task id is read
/// from the body (`data.taskId`, or `data.task_id` as some models send it;
/// a body with both, differing, is refused). The timestamp must be within
/// the tolerance (default 5 minutes) of our clock.
///
/// **The body is not covered by the signature.** The signature proves that
/// KIE sent *a* callback for this task id within the tolerance window, not
/// what the callback says: whoever sees one signed callback (a log, a
/// proxy) can replay its headers with a body of their choosing, with the
/// same task id, until the timestamp leaves the window. A handler that
/// trusts the status or the result URLs must confirm them with the
/// provider: put [`RefetchLayer`](super::refetch::RefetchLayer) behind this
/// layer (a `ConfirmTask` that asks KIE's task-status API), which checks
/// the pushed state against KIE's own.
///
/// A failed check gets `401` (`invalid_signature`), as for the other
/// signature layers; a missing [`RawPayload`] (no payload layer in front)
/// is our misconfiguration, `500`.
///
/// ```
/// use std::convert::Infallible;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use http::{Request, Response, StatusCode};
/// use taskhook::verify::{KieSecret, KieSignatureLayer};
/// use taskhook::PayloadLayer;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = KieSecret::new("8f2c1e0a9b7d4c36")?;
/// let now = 1_763_000_000;
/// let service = ServiceBuilder::new()
///     .layer(PayloadLayer::new())
///     .layer(
///         KieSignatureLayer::new(secret.clone())
///             .also_accept(KieSecret::new("a-key-being-rotated-in")?)
///             .tolerance(Duration::from_secs(300))
///             .now(move || UNIX_EPOCH + Duration::from_secs(now)), // the system clock by default
///     )
///     .service(service_fn(|_req| async { Ok::<_, Infallible>(Response::new(String::new())) }));
///
/// let body = r#"{"code":200,"data":{"id":"task_01","taskId":"task_01","status":"completed"}}"#;
/// let push = |signature: &str| Request::post("/callback")
///     .header("x-webhook-timestamp", now.to_string())
///     .header("x-webhook-signature", signature)
///     .body(body.to_owned())
///     .unwrap();
/// let ok = service.clone().oneshot(push(&secret.sign("task_01", now as i64))).await?;
/// assert_eq!(ok.status(), StatusCode::OK);
/// let forged = service.oneshot(push(&secret.sign("task_02", now as i64))).await?;
/// assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KieSignatureLayer {
    config: Arc<Config>,
}

impl KieSignatureLayer {
    /// A layer checking signatures made with `secret`, with the default
    /// tolerance of 5 minutes and the system clock.
    pub fn new(secret: KieSecret) -> Self {
        Self {
            config: Arc::new(Config {
                secrets: vec![secret],
                tolerance: DEFAULT_TOLERANCE,
                now: clock::system(),
            }),
        }
    }

    /// Accepts signatures made with `secret` too, for rotation.
    #[must_use]
    pub fn also_accept(mut self, secret: KieSecret) -> Self {
        Arc::make_mut(&mut self.config).secrets.push(secret);
        self
    }

    /// Sets how far `X-Webhook-Timestamp` may be from our clock, in either
    /// direction (whole seconds). Default 5 minutes.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        Arc::make_mut(&mut self.config).tolerance = tolerance;
        self
    }

    /// Sets the clock the timestamp is checked against (tests; a clock of
    /// your own). Default [`SystemTime::now`].
    #[must_use]
    pub fn now(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Arc::make_mut(&mut self.config).now = Arc::new(now);
        self
    }
}

impl fmt::Debug for KieSignatureLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KieSignatureLayer")
            .field("secrets", &self.config.secrets.len())
            .field("tolerance", &self.config.tolerance)
            .finish()
    }
}

impl<S> Layer<S> for KieSignatureLayer {
    type Service = KieSignature<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KieSignature {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Lets a request through only if it carries KIE's signature of the task
/// id in its body (the [`RawPayload`] extension).
///
/// Created with [`KieSignatureLayer`] (see there: the body is **not**
/// covered) or [`KieSignature::new`].
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use taskhook::verify::{KieSecret, KieSignature};
///
/// let service = KieSignature::new(
///     tower::service_fn(|_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) }),
///     KieSecret::new("8f2c1e0a9b7d4c36")?,
/// );
/// # let _ = service;
/// # Ok::<(), taskhook::verify::InvalidKieSecret>(())
/// ```
#[derive(Clone)]
pub struct KieSignature<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> KieSignature<S> {
    /// Wraps `inner`, checking signatures made with `secret`.
    pub fn new(inner: S, secret: KieSecret) -> Self {
        KieSignatureLayer::new(secret).layer(inner)
    }

    /// Returns a new [`Layer`] that wraps services with a `KieSignature`
    /// middleware.
    pub fn layer(secret: KieSecret) -> KieSignatureLayer {
        KieSignatureLayer::new(secret)
    }

    inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for KieSignature<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KieSignature")
            .field("inner", &self.inner)
            .field("secrets", &self.config.secrets.len())
            .field("tolerance", &self.config.tolerance)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for KieSignature<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<crate::body::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(raw) = req.extensions().get::<RawPayload>() else {
            return ResponseFuture::early(Early::Rejection(Rejection::payload_layer_missing(
                "KieSignatureLayer",
            )));
        };
        match self.config.verify(req.headers(), raw) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(invalid) => {
                tracing::info!(reason = invalid.message(), "KIE signature refused: 401");
                ResponseFuture::early(Early::Rejection(Rejection::invalid_signature(
                    invalid.message(),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::task_id;

    #[test]
    fn task_ids() {
        assert_eq!(task_id(br#"{"data":{"taskId":"a"}}"#).as_deref(), Some("a"));
        assert_eq!(
            task_id(br#"{"data":{"task_id":"a"}}"#).as_deref(),
            Some("a")
        );
        assert_eq!(
            task_id(br#"{"code":200,"data":{"taskId":"a","task_id":"a","x":[1]}}"#).as_deref(),
            Some("a")
        );
        assert_eq!(
            task_id(br#"{"data":{"taskId":"a\u00e9"}}"#).as_deref(),
            Some("aé")
        );
        for none in [
            &br#"{"data":{"taskId":"a","task_id":"b"}}"#[..],
            br#"{"data":{"taskId":"a","taskId":"b"}}"#,
            br#"{"data":{"taskId":7}}"#,
            br#"{"data":"x"}"#,
            br#"{"data":null}"#,
            br#"{"taskId":"a"}"#,
            b"[]",
            b"not json",
            b"",
        ] {
            assert_eq!(task_id(none), None, "{}", String::from_utf8_lossy(none));
        }
    }
}
