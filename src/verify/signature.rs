//! Standard Webhooks signatures: [`StandardWebhooks`] /
//! [`StandardWebhooksLayer`] and the [`WebhookSecret`] they check with.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Request};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use super::future::{Early, ResponseFuture};
use crate::response::Rejection;
use crate::RawPayload;

/// The default tolerance between `webhook-timestamp` and our clock, in
/// either direction: 5 minutes, as the spec recommends.
pub(crate) const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The most `webhook-signature` entries looked at (a sender rotating keys
/// sends two or three).
const MAX_SIGNATURES: usize = 16;

/// The prefix of a Standard Webhooks secret.
const SECRET_PREFIX: &str = "whsec_";

/// A Standard Webhooks signing secret: `whsec_` followed by the base64 of
/// the key (the prefix is optional).
///
/// Its `Debug` output is redacted.
///
/// ```
/// use taskhook::verify::WebhookSecret;
///
/// let secret = WebhookSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
/// assert_eq!(format!("{secret:?}"), "WebhookSecret(<redacted>)");
/// let signature = secret.sign("msg_1", 1614265330, br#"{"id":"task_01"}"#);
/// assert!(signature.starts_with("v1,"));
/// # Ok::<(), taskhook::verify::InvalidWebhookSecret>(())
/// ```
#[derive(Clone)]
pub struct WebhookSecret {
    key: Arc<[u8]>,
}

impl WebhookSecret {
    /// Decodes a `whsec_<base64>` (or bare base64) secret.
    pub fn new(secret: &str) -> Result<Self, InvalidWebhookSecret> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        let key = STANDARD
            .decode(encoded.trim())
            .map_err(|_| InvalidWebhookSecret)?;
        if key.is_empty() {
            return Err(InvalidWebhookSecret);
        }
        Ok(Self { key: key.into() })
    }

    /// A secret from the raw key bytes.
    pub fn from_bytes(key: &[u8]) -> Result<Self, InvalidWebhookSecret> {
        if key.is_empty() {
            return Err(InvalidWebhookSecret);
        }
        Ok(Self { key: key.into() })
    }

    /// The `v1,<base64>` signature of a message, as a sender puts it in
    /// `webhook-signature` (for tests and simulators).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.tag(id, &timestamp.to_string(), body);
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// HMAC-SHA256 over `{id}.{timestamp}.{body}`.
    fn tag(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        // Hmac accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// A string that is not a Standard Webhooks secret (not base64 after the
/// optional `whsec_` prefix, or empty). Never contains the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidWebhookSecret;

impl fmt::Display for InvalidWebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a Standard Webhooks secret (`whsec_` + base64)")
    }
}

impl std::error::Error for InvalidWebhookSecret {}

/// The clock the tolerance window is checked against.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

#[derive(Clone)]
struct Config {
    secrets: Vec<WebhookSecret>,
    tolerance: Duration,
    now: Clock,
}

/// Why a signed request is refused (the message goes in the response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invalid {
    MissingHeader(&'static str),
    BadTimestamp,
    OutsideTolerance,
    NoMatch,
}

impl Invalid {
    fn message(self) -> &'static str {
        match self {
            Self::MissingHeader("webhook-id") => "the webhook-id header is missing",
            Self::MissingHeader("webhook-timestamp") => "the webhook-timestamp header is missing",
            Self::MissingHeader(_) => "the webhook-signature header is missing",
            Self::BadTimestamp => "the webhook-timestamp header is not a Unix time",
            Self::OutsideTolerance => "the webhook-timestamp is outside the tolerance window",
            Self::NoMatch => "no webhook-signature matches",
        }
    }
}

impl Config {
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Invalid> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(Invalid::MissingHeader(name))
        };
        let id = header("webhook-id")?;
        let timestamp = header("webhook-timestamp")?;
        let signatures = header("webhook-signature")?;

        if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::BadTimestamp);
        }
        let sent = timestamp
            .parse::<u64>()
            .map_err(|_| Invalid::BadTimestamp)?;
        let now = (self.now)()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if now.abs_diff(sent) > self.tolerance.as_secs() {
            return Err(Invalid::OutsideTolerance);
        }

        let candidates: Vec<Vec<u8>> = signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .take(MAX_SIGNATURES)
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .collect();
        for secret in &self.secrets {
            let expected = secret.tag(id, timestamp, body);
            // Constant time per comparison; which entry matched is not secret.
            if candidates
                .iter()
                .any(|candidate| bool::from(expected.as_slice().ct_eq(candidate)))
            {
                return Ok(());
            }
        }
        Err(Invalid::NoMatch)
    }
}

/// Applies [`StandardWebhooks`] to a service: the request must carry a
/// valid Standard Webhooks signature of its raw body.
///
/// See the [module docs](crate::verify) for where it sits and what it
/// answers.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use taskhook::verify::{StandardWebhooksLayer, WebhookSecret};
///
/// let layer = StandardWebhooksLayer::new(WebhookSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?)
///     .also_accept(WebhookSecret::new("whsec_bmV3IHNlY3JldA==")?) // while rotating
///     .tolerance(Duration::from_secs(60))
///     .now(SystemTime::now); // the default; a fixed clock in tests
/// # Ok::<(), taskhook::verify::InvalidWebhookSecret>(())
/// ```
#[derive(Clone)]
pub struct StandardWebhooksLayer {
    config: Arc<Config>,
}

impl StandardWebhooksLayer {
    /// A layer checking signatures made with `secret`, with the default
    /// tolerance of 5 minutes and the system clock.
    pub fn new(secret: WebhookSecret) -> Self {
        Self {
            config: Arc::new(Config {
                secrets: vec![secret],
                tolerance: DEFAULT_TOLERANCE,
                now: Arc::new(SystemTime::now),
            }),
        }
    }

    /// Accepts signatures made with `secret` too, for rotation.
    #[must_use]
    pub fn also_accept(mut self, secret: WebhookSecret) -> Self {
        Arc::make_mut(&mut self.config).secrets.push(secret);
        self
    }

    /// Sets how far `webhook-timestamp` may be from our clock, in either
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

impl fmt::Debug for StandardWebhooksLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardWebhooksLayer")
            .field("secrets", &self.config.secrets.len())
            .field("tolerance", &self.config.tolerance)
            .finish()
    }
}

impl<S> Layer<S> for StandardWebhooksLayer {
    type Service = StandardWebhooks<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StandardWebhooks {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Lets a request through only if it carries a valid Standard Webhooks
/// signature over its raw body (the [`RawPayload`] extension).
///
/// Created with [`StandardWebhooksLayer`] or [`StandardWebhooks::new`].
#[derive(Clone)]
pub struct StandardWebhooks<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> StandardWebhooks<S> {
    /// Wraps `inner`, checking signatures made with `secret`.
    pub fn new(inner: S, secret: WebhookSecret) -> Self {
        StandardWebhooksLayer::new(secret).layer(inner)
    }

    /// Returns a new [`Layer`] that wraps services with a
    /// `StandardWebhooks` middleware.
    pub fn layer(secret: WebhookSecret) -> StandardWebhooksLayer {
        StandardWebhooksLayer::new(secret)
    }

    inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for StandardWebhooks<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardWebhooks")
            .field("inner", &self.inner)
            .field("secrets", &self.config.secrets.len())
            .field("tolerance", &self.config.tolerance)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StandardWebhooks<S>
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
                "StandardWebhooksLayer",
            )));
        };
        match self.config.verify(req.headers(), raw) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(invalid) => {
                tracing::info!(reason = invalid.message(), "webhook signature refused: 401");
                ResponseFuture::early(Early::Rejection(Rejection::invalid_signature(
                    invalid.message(),
                )))
            }
        }
    }
}
