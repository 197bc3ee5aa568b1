//! fal's Ed25519 callback signatures: [`FalSignature`] /
//! [`FalSignatureLayer`], and the keys they check with ([`JwksSource`]).

pub(crate) mod future;
#[cfg(feature = "refetch")]
mod http_jwks;
mod jwks;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Request};
use sha2::{Digest, Sha256};
use tower_layer::Layer;
use tower_service::Service;

use self::future::{FalResponseFuture, Verdict};
use self::jwks::{CacheSettings, JwksKey, KeyStore};
use super::clock::{self, Clock, TimestampError};
use super::WebhookSigningKey;
use crate::response::Rejection;
use crate::RawPayload;

#[cfg(feature = "refetch")]
pub use self::http_jwks::{HttpJwks, InvalidJwksUrl};
pub use self::jwks::{FetchJwks, JwksError, JwksErrorKind, JwksSource};

const REQUEST_ID: &str = "x-fal-webhook-request-id";
const USER_ID: &str = "x-fal-webhook-user-id";
const TIMESTAMP: &str = "x-fal-webhook-timestamp";
const SIGNATURE: &str = "x-fal-webhook-signature";

/// fal's tolerance: 5 minutes either way.
const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// How long a fetched key set is used (fal allows caching it up to 24 h).
const DEFAULT_TIME_TO_LIVE: Duration = Duration::from_secs(60 * 60);
/// The least time between two fetches prompted by unknown keys.
const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The `Retry-After` of a `503`: a retry sooner than the refresh interval
/// would find the same keys.
const DEFAULT_RETRY_AFTER: Duration = DEFAULT_REFRESH_INTERVAL;

/// The reason of a refusal no key verifies.
pub(crate) const NO_MATCH: &str = "no fal signing key verifies the X-Fal-Webhook-Signature";

#[derive(Clone)]
struct Config {
    users: Vec<Arc<str>>,
    tolerance: Duration,
    now: Clock,
    retry_after: Duration,
    cache: CacheSettings,
}

/// What a layer and its services share: the settings and the keys (with
/// the cache of a fetched set).
struct Shared {
    config: Config,
    keys: KeyStore,
}

/// Why a push is refused before any key is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invalid {
    Missing(&'static str),
    BadTimestamp,
    OutsideTolerance,
    BadSignature,
    OtherUser,
}

impl Invalid {
    fn message(self) -> &'static str {
        match self {
            Self::Missing(REQUEST_ID) => "the X-Fal-Webhook-Request-Id header is missing",
            Self::Missing(USER_ID) => "the X-Fal-Webhook-User-Id header is missing",
            Self::Missing(TIMESTAMP) => "the X-Fal-Webhook-Timestamp header is missing",
            Self::Missing(_) => "the X-Fal-Webhook-Signature header is missing",
            Self::BadTimestamp => "the X-Fal-Webhook-Timestamp header is not a Unix time",
            Self::OutsideTolerance => "the X-Fal-Webhook-Timestamp is outside the tolerance window",
            Self::BadSignature => "the X-Fal-Webhook-Signature is not 64 bytes in hex",
            Self::OtherUser => "the X-Fal-Webhook-User-Id is not an accepted fal user",
        }
    }
}

/// A push whose headers are in order: what its signature must cover.
struct Signed {
    message: Vec<u8>,
    signature: [u8; 64],
}

impl Signed {
    fn verified_by(&self, keys: &[JwksKey]) -> bool {
        // fal's signature names no key: every key is tried.
        keys.iter().any(|key| {
            let ok = key.key.verifies(&self.message, &self.signature);
            if ok {
                tracing::trace!(kid = key.kid.as_deref(), "fal signature verified");
            }
            ok
        })
    }
}

/// `{request_id}\n{user_id}\n{timestamp}\n{hex(sha256(body))}`.
fn message(request_id: &str, user_id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut message =
        Vec::with_capacity(request_id.len() + user_id.len() + timestamp.len() + 3 + 64);
    for part in [request_id, user_id, timestamp] {
        message.extend_from_slice(part.as_bytes());
        message.push(b'\n');
    }
    push_hex(&mut message, &Sha256::digest(body));
    message
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
}

/// 128 hex digits (either case) to 64 bytes.
fn decode_signature(hex: &str) -> Option<[u8; 64]> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let hex = hex.as_bytes();
    if hex.len() != 128 {
        return None;
    }
    let mut out = [0u8; 64];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

impl Shared {
    fn new(config: Config, source: &JwksSource) -> Self {
        Self {
            keys: KeyStore::new(source, config.cache),
            config,
        }
    }

    /// The headers checked, in order: present, the timestamp within the
    /// tolerance, the signature well-formed, the user accepted. Nothing
    /// here fetches, so garbage costs no request to the JWKS URL.
    fn check(&self, headers: &HeaderMap, body: &[u8]) -> Result<Signed, Invalid> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .ok_or(Invalid::Missing(name))
        };
        let request_id = header(REQUEST_ID)?;
        let user_id = header(USER_ID)?;
        let timestamp = header(TIMESTAMP)?;
        let signature = header(SIGNATURE)?;
        clock::check(timestamp, (self.config.now)(), self.config.tolerance).map_err(
            |e| match e {
                TimestampError::NotUnixTime => Invalid::BadTimestamp,
                TimestampError::OutsideTolerance => Invalid::OutsideTolerance,
            },
        )?;
        let signature = decode_signature(signature.trim()).ok_or(Invalid::BadSignature)?;
        if !self.config.users.is_empty() && !self.config.users.iter().any(|u| **u == *user_id) {
            return Err(Invalid::OtherUser);
        }
        Ok(Signed {
            message: message(request_id, user_id, timestamp, body),
            signature,
        })
    }

    /// The verdict once the keys are fetched (they were out of date, or,
    /// if `tried`, none of generation `seen` verified the signature).
    async fn decide(&self, seen: u64, tried: bool, signed: Signed) -> Verdict {
        let snapshot = self.keys.refresh(seen, &self.config.now).await;
        // The same keys that failed already (no fetch since): not tried
        // twice, so a flood of forgeries costs one verification per key.
        let retry = !(tried && snapshot.generation == seen);
        match &snapshot.keys {
            Some(keys) if retry && signed.verified_by(keys) => Verdict::Pass,
            None => Verdict::Unavailable,
            // The set we hold may be missing a rotated key we could not
            // learn: not the sender's fault.
            Some(_) if snapshot.last_failed => Verdict::Unavailable,
            Some(_) => Verdict::Refused,
        }
    }
}

/// Applies [`FalSignature`] to a service: the request must carry fal's
/// Ed25519 signature of its raw body.
///
/// fal signs `{request_id}\n{user_id}\n{timestamp}\n{hex(sha256(body))}`
/// (the values of `X-Fal-Webhook-Request-Id`, `X-Fal-Webhook-User-Id`,
/// `X-Fal-Webhook-Timestamp`, and the lowercase hex SHA-256 of the raw
/// body) and sends the signature in hex in `X-Fal-Webhook-Signature`; its
/// public keys are published as a JWKS. The signature names no key, so
/// every key is tried. The timestamp (Unix seconds) must be within the
/// tolerance (default 5 minutes) of our clock. The layer reads the raw body
/// from the [`RawPayload`] extension, so it sits after
/// [`PayloadLayer`](crate::PayloadLayer), and passes the request on
/// unchanged.
///
/// | the push | answer |
/// |---|---|
/// | a header missing or malformed, the timestamp outside the tolerance, another user ([`user_id`](Self::user_id)) | `401` `invalid_signature`, without looking at any key |
/// | a cached key verifies the signature | the inner service's |
/// | no cached key does: the set is fetched again (at most once per [`jwks_refresh_interval`](Self::jwks_refresh_interval)), and a new key verifies it | the inner service's |
/// | no key of an up-to-date set verifies it | `401` `invalid_signature` |
/// | the set cannot be fetched, and no cached key verifies it | `503` `signing_keys_unavailable` + `Retry-After` |
/// | no payload layer in front | `500` `payload_layer_missing` |
///
/// **A fetched key set** ([`JwksSource::url`], [`JwksSource::fetched`]) is
/// fetched on the first push, then used for its time to live (default 1
/// hour; fal allows 24), fetched again when it expires (a set that cannot
/// be fetched then is still used), and fetched early when no cached key
/// verifies a signature, which is how a rotated key is learnt. That early
/// fetch happens at most once per refresh interval (default 30 s), so a
/// flood of signatures by made-up keys costs one request to the JWKS URL
/// per interval, not one per push; concurrent pushes that need a fetch
/// share one (single flight), bounded by the fetch timeout (default 5 s).
/// Fetching needs a tokio runtime. Warm the cache and check the URL at
/// startup with [`fetch_keys`](Self::fetch_keys).
///
/// **Restrict the user.** Every fal customer's callbacks are signed with
/// the same keys: anyone can submit a fal request with your callback URL
/// and have fal push a genuinely signed result of theirs to you.
/// [`user_id`](Self::user_id) accepts only your account's pushes.
///
/// ```
/// use std::convert::Infallible;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use taskhook::verify::{FalSignatureLayer, JwksSource, WebhookSigningKey};
/// use taskhook::RawPayload;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fal = WebhookSigningKey::from_seed(&[1; 32]); // stands in for fal's secret key
/// let now = 1_763_000_000;
/// let layer = FalSignatureLayer::new(JwksSource::keys([fal.public_key()])?)
///     .user_id("user_42") // only our account's pushes
///     .now(move || UNIX_EPOCH + Duration::from_secs(now)); // the system clock by default
/// let service = layer.layer(service_fn(|_req: Request<String>| async {
///     Ok::<_, Infallible>(Response::new(String::new()))
/// }));
///
/// let body = r#"{"request_id":"req_1","status":"OK","payload":{}}"#;
/// let push = |user: &str, signature: &str| {
///     let mut req = Request::post("/callback")
///         .header("x-fal-webhook-request-id", "req_1")
///         .header("x-fal-webhook-user-id", user)
///         .header("x-fal-webhook-timestamp", now.to_string())
///         .header("x-fal-webhook-signature", signature)
///         .body(body.to_owned())
///         .unwrap();
///     // What `PayloadLayer` leaves for the layers behind it.
///     req.extensions_mut().insert(RawPayload::new(Bytes::from(body)));
///     req
/// };
/// let signature = fal.sign_fal("req_1", "user_42", now as i64, body.as_bytes());
/// let ok = service.clone().oneshot(push("user_42", &signature)).await?;
/// assert_eq!(ok.status(), StatusCode::OK);
///
/// let theirs = fal.sign_fal("req_1", "someone_else", now as i64, body.as_bytes());
/// let other = service.oneshot(push("someone_else", &theirs)).await?;
/// assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FalSignatureLayer {
    shared: Arc<Shared>,
}

impl FalSignatureLayer {
    /// A layer checking signatures with the keys of `source`, with fal's
    /// tolerance of 5 minutes, the system clock, and the default cache
    /// settings.
    pub fn new(source: JwksSource) -> Self {
        let config = Config {
            users: Vec::new(),
            tolerance: DEFAULT_TOLERANCE,
            now: clock::system(),
            retry_after: DEFAULT_RETRY_AFTER,
            cache: CacheSettings {
                time_to_live: DEFAULT_TIME_TO_LIVE,
                refresh_interval: DEFAULT_REFRESH_INTERVAL,
                fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            },
        };
        Self {
            shared: Arc::new(Shared::new(config, &source)),
        }
    }

    /// A setter: the settings change, and the layer gets a cache of its
    /// own (empty: settings are set before the layer serves).
    fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.shared.config.clone();
        change(&mut config);
        self.shared = Arc::new(Shared::new(config, &self.shared.keys.source()));
        self
    }

    /// Accepts only pushes whose `X-Fal-Webhook-User-Id` is `id` (call it
    /// again to accept several). Without it, any fal user's push passes:
    /// see the type's docs.
    ///
    /// ```
    /// use taskhook::verify::{FalSignatureLayer, JwksSource};
    ///
    /// # let source = JwksSource::keys([taskhook::verify::WebhookSigningKey::from_seed(&[1; 32]).public_key()])?;
    /// let layer = FalSignatureLayer::new(source).user_id("5c1e2b8a-0000-4000-8000-000000000042");
    /// # let _ = layer;
    /// # Ok::<(), taskhook::verify::JwksError>(())
    /// ```
    #[must_use]
    pub fn user_id(self, id: impl Into<String>) -> Self {
        let id: Arc<str> = id.into().into();
        self.configure(|config| config.users.push(id))
    }

    /// Sets how far `X-Fal-Webhook-Timestamp` may be from our clock, in
    /// either direction (whole seconds). Default 5 minutes.
    #[must_use]
    pub fn tolerance(self, tolerance: Duration) -> Self {
        self.configure(|config| config.tolerance = tolerance)
    }

    /// Sets the clock the timestamp and the cache are checked against
    /// (tests; a clock of your own). Default [`SystemTime::now`]. A clock
    /// that goes back expires the cache and allows a fetch.
    #[must_use]
    pub fn now(self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        let now: Clock = Arc::new(now);
        self.configure(|config| config.now = now)
    }

    /// Sets how long a fetched key set is used before it is fetched again.
    /// Default 1 hour.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook::verify::{FalSignatureLayer, JwksSource};
    ///
    /// let layer = FalSignatureLayer::new(JwksSource::url("http://127.0.0.1:8080/jwks.json")?)
    ///     .jwks_time_to_live(Duration::from_secs(6 * 3600))
    ///     .jwks_refresh_interval(Duration::from_secs(60))
    ///     .jwks_fetch_timeout(Duration::from_secs(3))
    ///     .retry_after(Duration::from_secs(60));
    /// # let _ = layer;
    /// # Ok::<(), taskhook::verify::InvalidJwksUrl>(())
    /// ```
    #[must_use]
    pub fn jwks_time_to_live(self, time_to_live: Duration) -> Self {
        self.configure(|config| config.cache.time_to_live = time_to_live)
    }

    /// Sets the least time between two fetches of the key set prompted by
    /// a signature no cached key verifies, or after a failed fetch.
    /// Default 30 seconds.
    #[must_use]
    pub fn jwks_refresh_interval(self, interval: Duration) -> Self {
        self.configure(|config| config.cache.refresh_interval = interval)
    }

    /// Sets the bound on one fetch of the key set. Default 5 seconds.
    #[must_use]
    pub fn jwks_fetch_timeout(self, timeout: Duration) -> Self {
        self.configure(|config| config.cache.fetch_timeout = timeout)
    }

    /// Sets the `Retry-After` of the `503` answered while the key set
    /// cannot be fetched. Default 30 seconds (the refresh interval).
    #[must_use]
    pub fn retry_after(self, retry_after: Duration) -> Self {
        self.configure(|config| config.retry_after = retry_after)
    }

    /// Fetches the key set now (whatever the cache holds) and returns how
    /// many usable keys it has: a warm-up and a check of the
    /// configuration at startup. Fixed keys are counted. The result is
    /// shared with every service this layer made. Fetching needs a tokio
    /// runtime.
    ///
    /// ```
    /// use taskhook::verify::{FalSignatureLayer, JwksSource, WebhookSigningKey};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = FalSignatureLayer::new(JwksSource::keys([WebhookSigningKey::from_seed(&[1; 32]).public_key()])?);
    /// assert_eq!(layer.fetch_keys().await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn fetch_keys(&self) -> Result<usize, JwksError> {
        let shared = Arc::clone(&self.shared);
        shared.keys.fetch_now(&shared.config.now).await
    }
}

impl fmt::Debug for FalSignatureLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_shared(f.debug_struct("FalSignatureLayer"), &self.shared).finish()
    }
}

fn debug_shared<'a, 'b>(
    mut f: fmt::DebugStruct<'a, 'b>,
    shared: &Shared,
) -> fmt::DebugStruct<'a, 'b> {
    let config = &shared.config;
    f.field("source", &shared.keys.source())
        .field("users", &config.users)
        .field("tolerance", &config.tolerance)
        .field("cache", &config.cache)
        .field("retry_after", &config.retry_after);
    f
}

impl<S> Layer<S> for FalSignatureLayer {
    type Service = FalSignature<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FalSignature {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Lets a request through only if it carries fal's signature of its raw
/// body (the [`RawPayload`] extension).
///
/// Created with [`FalSignatureLayer`] (see there for what it answers and
/// how it fetches keys) or [`FalSignature::new`].
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use taskhook::verify::{FalSignature, JwksSource, WebhookSigningKey};
///
/// let fal = WebhookSigningKey::from_seed(&[1; 32]).public_key();
/// let service = FalSignature::new(
///     tower::service_fn(|_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) }),
///     JwksSource::keys([fal])?,
/// );
/// # let _ = service;
/// # Ok::<(), taskhook::verify::JwksError>(())
/// ```
pub struct FalSignature<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> FalSignature<S> {
    /// Wraps `inner`, checking signatures with the keys of `source`.
    pub fn new(inner: S, source: JwksSource) -> Self {
        FalSignatureLayer::new(source).layer(inner)
    }

    /// Returns a new [`Layer`] that wraps services with a `FalSignature`
    /// middleware.
    pub fn layer(source: JwksSource) -> FalSignatureLayer {
        FalSignatureLayer::new(source)
    }

    inner_service_accessors!();
}

impl<S: Clone> Clone for FalSignature<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for FalSignature<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("FalSignature");
        f.field("inner", &self.inner);
        debug_shared(f, &self.shared).finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FalSignature<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone,
{
    type Response = http::Response<crate::body::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = FalResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(raw) = req.extensions().get::<RawPayload>() else {
            return FalResponseFuture::rejected(Rejection::payload_layer_missing(
                "FalSignatureLayer",
            ));
        };
        let signed = match self.shared.check(req.headers(), raw) {
            Ok(signed) => signed,
            Err(invalid) => {
                tracing::info!(reason = invalid.message(), "fal signature refused: 401");
                return FalResponseFuture::rejected(Rejection::invalid_signature(
                    invalid.message(),
                ));
            }
        };
        let snapshot = self.shared.keys.snapshot((self.shared.config.now)());
        let tried = snapshot.fresh && snapshot.keys.is_some();
        if snapshot.fresh {
            if let Some(keys) = &snapshot.keys {
                if signed.verified_by(keys) {
                    return FalResponseFuture::calling(self.inner.call(req));
                }
            }
            if !self.shared.keys.is_fetched() {
                tracing::info!(reason = NO_MATCH, "fal signature refused: 401");
                return FalResponseFuture::rejected(Rejection::invalid_signature(NO_MATCH));
            }
        }
        // The keys must be fetched first: that needs tokio (a timer, and
        // the HTTP client).
        if tokio::runtime::Handle::try_current().is_err() {
            return FalResponseFuture::rejected(Rejection::no_tokio_runtime());
        }
        let shared = Arc::clone(&self.shared);
        let seen = snapshot.generation;
        let decision = Box::pin(async move { shared.decide(seen, tried, signed).await });
        // The keys are fetched before the inner service is called, so the
        // future takes the service that `poll_ready` made ready and leaves
        // a clone (not yet ready) in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        FalResponseFuture::deciding(decision, inner, req, self.shared.config.retry_after)
    }
}

impl WebhookSigningKey {
    /// The `X-Fal-Webhook-Signature` value fal sends for a push (for tests
    /// and simulators): the lowercase hex Ed25519 signature of
    /// `{request_id}\n{user_id}\n{timestamp}\n{hex(sha256(body))}`.
    ///
    /// ```
    /// use taskhook::verify::WebhookSigningKey;
    ///
    /// let key = WebhookSigningKey::from_seed(&[1; 32]);
    /// let signature = key.sign_fal("req_1", "user_42", 1763000000, b"{}");
    /// assert_eq!(signature.len(), 128);
    /// ```
    pub fn sign_fal(&self, request_id: &str, user_id: &str, timestamp: i64, body: &[u8]) -> String {
        let message = message(request_id, user_id, &timestamp.to_string(), body);
        let mut hex = Vec::with_capacity(128);
        push_hex(&mut hex, &self.sign_bytes(&message));
        String::from_utf8(hex).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex() {
        let mut out = Vec::new();
        push_hex(&mut out, &[0x00, 0x0f, 0xa5, 0xff]);
        assert_eq!(out, b"000fa5ff");
        let sig = "00ff".repeat(32);
        assert_eq!(decode_signature(&sig).unwrap()[..2], [0x00, 0xff]);
        assert_eq!(
            decode_signature(&sig.to_uppercase()).unwrap()[..2],
            [0x00, 0xff]
        );
        for bad in [
            "",
            "00",
            &"0".repeat(127),
            &"0".repeat(129),
            &"g0".repeat(64),
        ] {
            assert!(decode_signature(bad).is_none(), "{bad}");
        }
        // A multi-byte character where a digit is expected.
        assert!(decode_signature(&format!("é{}", "0".repeat(126))).is_none());
    }

    #[test]
    fn the_message_fal_signs() {
        // sha256("") = e3b0c442...b855
        assert_eq!(
            message("req", "user", "1700000000", b""),
            b"req\nuser\n1700000000\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
