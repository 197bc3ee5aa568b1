//! Standard Webhooks signatures: [`StandardWebhooks`] /
//! [`StandardWebhooksLayer`] and the [`WebhookKey`]s they check with (a
//! [`WebhookSecret`] for `v1` HMAC signatures, a
//! [`WebhookPublicKey`] for `v1a` Ed25519 ones).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Request};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use super::clock::{self, Clock, TimestampError};
use super::ed25519::{
    InvalidWebhookKey, WebhookPublicKey, PUBLIC_PREFIX, SECRET_PREFIX as SIGNING_PREFIX,
};
use super::future::{Early, ResponseFuture};
use crate::response::Rejection;
use crate::RawPayload;

/// The default tolerance between `webhook-timestamp` and our clock, in
/// either direction: 5 minutes, as the spec recommends.
pub(crate) const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The most `webhook-signature` entries of each version looked at (a
/// sender rotating keys sends two or three).
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

/// `{id}.{timestamp}.{body}`, the content a Standard Webhooks signature
/// covers, in one buffer (Ed25519 signs the whole message).
pub(crate) fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// A key a receiver checks Standard Webhooks signatures with: a
/// [`WebhookSecret`] (`whsec_`, matches `v1,` HMAC-SHA256 signatures) or a
/// [`WebhookPublicKey`] (`whpk_`, matches `v1a,` Ed25519 signatures).
///
/// [`WebhookKey::new`] tells them apart by the prefix; a string without one
/// is read as a `whsec_` secret, as [`WebhookSecret::new`] reads it. A
/// `whsk_` secret key is refused: it is the sender's, and the receiver
/// needs only its public half. `Debug` redacts a secret and shows a public
/// key.
///
/// ```
/// use taskhook::verify::{WebhookKey, WebhookSecret, WebhookSigningKey};
///
/// let hmac = WebhookKey::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
/// assert_eq!(format!("{hmac:?}"), "WebhookKey(v1, <redacted>)");
///
/// let sender = WebhookSigningKey::from_seed(&[7; 32]);
/// let public = WebhookKey::new(&sender.public_key().to_string())?; // "whpk_..."
/// assert!(format!("{public:?}").starts_with("WebhookKey(v1a, whpk_"));
///
/// // From the typed keys too.
/// let _: WebhookKey = WebhookSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?.into();
/// let _: WebhookKey = sender.public_key().into();
///
/// assert!(WebhookKey::new(&sender.expose_secret()).is_err()); // "whsk_...": the sender's
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct WebhookKey {
    kind: KeyKind,
}

#[derive(Clone)]
enum KeyKind {
    Hmac(WebhookSecret),
    Ed25519(WebhookPublicKey),
}

impl WebhookKey {
    /// Decodes `whsec_<base64>` (HMAC), `whpk_<base64>` (Ed25519 public
    /// key), or bare base64 (HMAC).
    pub fn new(key: &str) -> Result<Self, InvalidWebhookKey> {
        let key = key.trim();
        if key.starts_with(PUBLIC_PREFIX) {
            return WebhookPublicKey::new(key).map(Self::from);
        }
        if key.starts_with(SIGNING_PREFIX) {
            return Err(InvalidWebhookKey::SigningKey);
        }
        WebhookSecret::new(key)
            .map(Self::from)
            .map_err(|_| InvalidWebhookKey::Malformed)
    }
}

impl FromStr for WebhookKey {
    type Err = InvalidWebhookKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl From<WebhookSecret> for WebhookKey {
    fn from(secret: WebhookSecret) -> Self {
        Self {
            kind: KeyKind::Hmac(secret),
        }
    }
}

impl From<WebhookPublicKey> for WebhookKey {
    fn from(key: WebhookPublicKey) -> Self {
        Self {
            kind: KeyKind::Ed25519(key),
        }
    }
}

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            KeyKind::Hmac(_) => f.write_str("WebhookKey(v1, <redacted>)"),
            KeyKind::Ed25519(key) => write!(f, "WebhookKey(v1a, {key})"),
        }
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

#[derive(Clone)]
struct Config {
    keys: Vec<WebhookKey>,
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

        clock::check(timestamp, (self.now)(), self.tolerance).map_err(|e| match e {
            TimestampError::NotUnixTime => Invalid::BadTimestamp,
            TimestampError::OutsideTolerance => Invalid::OutsideTolerance,
        })?;

        let entries = |version: &'static str| {
            signatures
                .split(' ')
                .filter_map(move |entry| entry.strip_prefix(version))
                .take(MAX_SIGNATURES)
                .filter_map(|b64| STANDARD.decode(b64).ok())
        };
        let hmac: Vec<Vec<u8>> = entries("v1,").collect();
        let ed25519: Vec<[u8; 64]> = entries("v1a,")
            .filter_map(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .collect();
        // Ed25519 signs the whole message: built once, only when needed.
        let mut content = None;
        for key in &self.keys {
            match &key.kind {
                KeyKind::Hmac(secret) if !hmac.is_empty() => {
                    let expected = secret.tag(id, timestamp, body);
                    // Constant time per comparison; which entry matched is
                    // not secret.
                    if hmac
                        .iter()
                        .any(|candidate| bool::from(expected.as_slice().ct_eq(candidate)))
                    {
                        return Ok(());
                    }
                }
                KeyKind::Ed25519(public) if !ed25519.is_empty() => {
                    let content =
                        content.get_or_insert_with(|| signed_content(id, timestamp, body));
                    if ed25519
                        .iter()
                        .any(|signature| public.verifies(content, signature))
                    {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(Invalid::NoMatch)
    }
}

/// Applies [`StandardWebhooks`] to a service: the request must carry a
/// valid Standard Webhooks signature of its raw body, a `v1` HMAC made with
/// one of the [`WebhookSecret`]s or a `v1a` Ed25519 signature made with the
/// secret half of one of the [`WebhookPublicKey`]s.
///
/// See the [module docs](crate::verify) for where it sits and what it
/// answers.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use taskhook::verify::{StandardWebhooksLayer, WebhookKey, WebhookSecret};
///
/// let layer = StandardWebhooksLayer::new(WebhookSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?)
///     .also_accept(WebhookSecret::new("whsec_bmV3IHNlY3JldA==")?) // while rotating
///     .also_accept(WebhookKey::new("whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")?) // v1a
///     .tolerance(Duration::from_secs(60))
///     .now(SystemTime::now); // the default; a fixed clock in tests
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct StandardWebhooksLayer {
    config: Arc<Config>,
}

impl StandardWebhooksLayer {
    /// A layer checking signatures made with `key` (a [`WebhookSecret`], a
    /// [`WebhookPublicKey`] or a [`WebhookKey`]), with the default
    /// tolerance of 5 minutes and the system clock.
    pub fn new(key: impl Into<WebhookKey>) -> Self {
        Self {
            config: Arc::new(Config {
                keys: vec![key.into()],
                tolerance: DEFAULT_TOLERANCE,
                now: clock::system(),
            }),
        }
    }

    /// Accepts signatures made with `key` too: for rotation, or a `v1a`
    /// key beside a `v1` secret. A signature matching any one key passes.
    #[must_use]
    pub fn also_accept(mut self, key: impl Into<WebhookKey>) -> Self {
        Arc::make_mut(&mut self.config).keys.push(key.into());
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
            .field("keys", &self.config.keys)
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
    /// Wraps `inner`, checking signatures made with `key`.
    pub fn new(inner: S, key: impl Into<WebhookKey>) -> Self {
        StandardWebhooksLayer::new(key).layer(inner)
    }

    /// Returns a new [`Layer`] that wraps services with a
    /// `StandardWebhooks` middleware.
    pub fn layer(key: impl Into<WebhookKey>) -> StandardWebhooksLayer {
        StandardWebhooksLayer::new(key)
    }

    inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for StandardWebhooks<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardWebhooks")
            .field("inner", &self.inner)
            .field("keys", &self.config.keys)
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
