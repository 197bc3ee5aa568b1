//! Where fal's public keys come from ([`JwksSource`], [`FetchJwks`]) and
//! the cache of a fetched key set ([`KeyStore`]).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::verify::clock::Clock;
use crate::verify::WebhookPublicKey;

/// The largest JWKS document read, in bytes.
pub(crate) const MAX_JWKS_LEN: usize = 64 * 1024;

/// The most keys kept from one document: every one of them is tried on a
/// signature.
const MAX_KEYS: usize = 32;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Fetches a JWKS document: the transport behind [`JwksSource::fetched`].
///
/// `HttpJwks` (feature `refetch`) fetches a URL with a hyper client;
/// implement this for another client. The layer bounds every call with its
/// own timeout, caches what it returns and parses it: an implementation
/// only hands over the bytes.
///
/// ```
/// use bytes::Bytes;
/// use taskhook::verify::{FetchJwks, JwksError, JwksSource};
///
/// /// Reads the key set another part of the program keeps up to date.
/// struct FromDisk(std::path::PathBuf);
///
/// impl FetchJwks for FromDisk {
///     async fn fetch(&self) -> Result<Bytes, JwksError> {
///         tokio::fs::read(&self.0).await.map(Bytes::from).map_err(JwksError::unavailable)
///     }
/// }
///
/// let source = JwksSource::fetched(FromDisk("/etc/taskhook/fal-jwks.json".into()));
/// # let _ = source;
/// ```
pub trait FetchJwks: Send + Sync + 'static {
    /// The JWKS document as it is now.
    fn fetch(&self) -> impl Future<Output = Result<Bytes, JwksError>> + Send;
}

/// [`FetchJwks`] behind a pointer.
trait DynFetch: Send + Sync {
    fn fetch_boxed(&self) -> BoxFuture<'_, Result<Bytes, JwksError>>;
}

impl<T: FetchJwks> DynFetch for T {
    fn fetch_boxed(&self) -> BoxFuture<'_, Result<Bytes, JwksError>> {
        Box::pin(FetchJwks::fetch(self))
    }
}

/// One usable key of a JWKS.
#[derive(Debug, Clone)]
pub(crate) struct JwksKey {
    pub(crate) kid: Option<Arc<str>>,
    pub(crate) key: WebhookPublicKey,
}

/// Where the public keys that verify fal's signatures come from.
///
/// | constructor | keys | refreshed |
/// |---|---|---|
/// | [`fetched`](Self::fetched) | a [`FetchJwks`]: fal's JWKS URL with an `HttpJwks` (feature `refetch`) and a TLS connector, or a client of your own | on the layer's time to live, and when no cached key verifies a signature (at most once per refresh interval) |
/// | [`url`](Self::url) (feature `refetch`) | a plain-HTTP JWKS URL | the same |
/// | [`file`](Self::file) | a JWKS file, read once, now | never (offline use) |
/// | [`json`](Self::json) | a JWKS document in memory | never |
/// | [`keys`](Self::keys) | keys given in code | never |
///
/// A JWKS is `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"<base64url>","kid":..},..]}`;
/// keys of other types (or with `"use"` other than `"sig"`) are skipped,
/// and a document without a usable Ed25519 key is refused. At most 32 keys
/// are kept, from a document of at most 64 KiB.
///
/// ```
/// use taskhook::verify::{JwksSource, WebhookSigningKey};
///
/// let fal = WebhookSigningKey::from_seed(&[1; 32]).public_key(); // stands in for fal's key
/// let from_code = JwksSource::keys([fal])?;
/// let from_json = JwksSource::json(format!(
///     r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"{}"}}]}}"#,
///     fal.to_base64url()
/// ).as_bytes())?;
/// assert!(JwksSource::json(br#"{"keys":[]}"#).is_err());
/// # let _ = (from_code, from_json);
/// # Ok::<(), taskhook::verify::JwksError>(())
/// ```
#[derive(Clone)]
pub struct JwksSource {
    kind: SourceKind,
}

#[derive(Clone)]
enum SourceKind {
    Keys(Arc<[JwksKey]>),
    Fetched(Arc<dyn DynFetch>),
}

impl JwksSource {
    /// Keys given in code (for a key you copied from fal's JWKS, or tests).
    ///
    /// # Errors
    ///
    /// No key at all ([`JwksErrorKind::Invalid`]): every push would be
    /// refused.
    pub fn keys(keys: impl IntoIterator<Item = WebhookPublicKey>) -> Result<Self, JwksError> {
        let keys: Vec<JwksKey> = keys
            .into_iter()
            .map(|key| JwksKey { kid: None, key })
            .collect();
        if keys.is_empty() {
            return Err(JwksError::invalid("no key given"));
        }
        Ok(Self::from_parsed(keys))
    }

    /// The keys of a JWKS document in memory.
    ///
    /// # Errors
    ///
    /// Not a JWKS, larger than 64 KiB, or without a usable Ed25519 key
    /// ([`JwksErrorKind::Invalid`]).
    pub fn json(document: &[u8]) -> Result<Self, JwksError> {
        parse(document).map(Self::from_parsed)
    }

    /// The keys of a JWKS file, read once, now (for a receiver that cannot
    /// reach fal's URL; refresh it by building a new layer).
    ///
    /// # Errors
    ///
    /// The file cannot be read ([`JwksErrorKind::Unavailable`]) or is not a
    /// usable JWKS ([`JwksErrorKind::Invalid`]).
    pub fn file(path: impl AsRef<Path>) -> Result<Self, JwksError> {
        let path = path.as_ref();
        let document = std::fs::read(path)
            .map_err(|error| JwksError::unavailable(format!("{}: {error}", path.display())))?;
        Self::json(&document)
    }

    /// Keys fetched by `fetcher`, cached by the layer (see
    /// [`FalSignatureLayer`](crate::verify::FalSignatureLayer) for when it
    /// fetches).
    pub fn fetched(fetcher: impl FetchJwks) -> Self {
        Self {
            kind: SourceKind::Fetched(Arc::new(fetcher)),
        }
    }

    /// Keys fetched from a plain `http` JWKS URL with a hyper client
    /// (a proxy of yours, tests). An `https` URL, such as fal's
    /// `https://rest.alpha.fal.ai/.well-known/jwks.json`, is refused
    /// ([`InvalidJwksUrl::NeedsTls`](crate::verify::InvalidJwksUrl::NeedsTls)):
    /// build an [`HttpJwks`](crate::verify::HttpJwks) with a TLS connector
    /// and pass it to [`fetched`](Self::fetched).
    ///
    /// ```
    /// use taskhook::verify::JwksSource;
    ///
    /// let source = JwksSource::url("http://127.0.0.1:8080/.well-known/jwks.json")?;
    /// assert!(JwksSource::url("not a url").is_err());
    /// # let _ = source;
    /// # Ok::<(), taskhook::verify::InvalidJwksUrl>(())
    /// ```
    #[cfg(feature = "refetch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "refetch")))]
    pub fn url(url: &str) -> Result<Self, super::http_jwks::InvalidJwksUrl> {
        super::http_jwks::plain(url)
    }

    fn from_parsed(keys: Vec<JwksKey>) -> Self {
        Self {
            kind: SourceKind::Keys(keys.into()),
        }
    }
}

impl fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            SourceKind::Keys(keys) => write!(f, "JwksSource::Keys({})", keys.len()),
            SourceKind::Fetched(_) => f.write_str("JwksSource::Fetched"),
        }
    }
}

/// The usable keys of a JWKS document.
fn parse(document: &[u8]) -> Result<Vec<JwksKey>, JwksError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }

    if document.len() > MAX_JWKS_LEN {
        return Err(JwksError::invalid("the document is larger than 64 KiB"));
    }
    let document: Document = serde_json::from_slice(document)
        .map_err(|_| JwksError::invalid("not a JWKS (`{\"keys\":[..]}`)"))?;
    let mut keys = Vec::new();
    for jwk in &document.keys {
        let field = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
        if field("kty") != Some("OKP")
            || field("crv") != Some("Ed25519")
            || field("use").is_some_and(|u| u != "sig")
        {
            continue;
        }
        let Some(key) = field("x").and_then(|x| WebhookPublicKey::from_base64url(x).ok()) else {
            tracing::warn!(
                kid = field("kid"),
                "a JWKS Ed25519 key has no valid `x`: skipped"
            );
            continue;
        };
        keys.push(JwksKey {
            kid: field("kid").map(Arc::from),
            key,
        });
        if keys.len() == MAX_KEYS {
            break;
        }
    }
    if keys.is_empty() {
        return Err(JwksError::invalid(
            "no usable Ed25519 key (`\"kty\":\"OKP\",\"crv\":\"Ed25519\"`)",
        ));
    }
    Ok(keys)
}

/// Why a JWKS could not be had.
///
/// ```
/// use taskhook::verify::{JwksErrorKind, JwksSource};
///
/// let missing = JwksSource::file("/no/such/jwks.json").unwrap_err();
/// assert_eq!(missing.kind(), JwksErrorKind::Unavailable);
/// let empty = JwksSource::json(br#"{"keys":[]}"#).unwrap_err();
/// assert_eq!(empty.kind(), JwksErrorKind::Invalid);
/// println!("{empty}"); // not a usable JWKS: no usable Ed25519 key (...)
/// ```
#[derive(Debug)]
pub struct JwksError {
    kind: JwksErrorKind,
    reason: Cow<'static, str>,
    source: Option<BoxError>,
}

/// The kind of a [`JwksError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksErrorKind {
    /// The document could not be fetched or read (unreachable, an answer
    /// other than 2xx, a timeout, a file that cannot be read).
    Unavailable,
    /// The document is not a usable JWKS.
    Invalid,
}

impl JwksError {
    /// The document could not be fetched; `source` says why (what a
    /// [`FetchJwks`] returns).
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self {
            kind: JwksErrorKind::Unavailable,
            reason: Cow::Borrowed("the JWKS could not be fetched"),
            source: Some(source.into()),
        }
    }

    /// The document is not a usable JWKS.
    pub(crate) fn invalid(reason: &'static str) -> Self {
        Self {
            kind: JwksErrorKind::Invalid,
            reason: Cow::Borrowed(reason),
            source: None,
        }
    }

    /// The kind of error.
    pub fn kind(&self) -> JwksErrorKind {
        self.kind
    }
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.source) {
            (JwksErrorKind::Invalid, _) => write!(f, "not a usable JWKS: {}", self.reason),
            (_, Some(source)) => write!(f, "{}: {source}", self.reason),
            (_, None) => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for JwksError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// How a fetched key set is cached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheSettings {
    /// How long a fetched set is used before it is fetched again.
    pub(crate) time_to_live: Duration,
    /// The least time between two fetches prompted by a signature no
    /// cached key verifies (or by an earlier failure).
    pub(crate) refresh_interval: Duration,
    /// The bound on one fetch.
    pub(crate) fetch_timeout: Duration,
}

/// The keys a layer verifies with: fixed, or a fetched set with its cache.
pub(crate) struct KeyStore {
    source: SourceKind,
    settings: CacheSettings,
    state: Mutex<State>,
    /// Held for the whole of a fetch: a second request that needs one
    /// waits, then uses the first one's result (single flight).
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// The last set fetched successfully.
    keys: Option<Arc<[JwksKey]>>,
    fetched_at: Option<SystemTime>,
    /// When the last fetch, successful or not, ended.
    last_attempt: Option<SystemTime>,
    last_failed: bool,
    /// Counts the fetches that ended, so a waiting request can tell that
    /// another one fetched while it waited.
    generation: u64,
}

/// The keys as a request sees them.
pub(crate) struct Snapshot {
    pub(crate) keys: Option<Arc<[JwksKey]>>,
    pub(crate) generation: u64,
    /// Fetched within the time to live (always, for fixed keys).
    pub(crate) fresh: bool,
    /// The last fetch failed: the keys (if any) may be out of date.
    pub(crate) last_failed: bool,
}

/// Time from `then` to `now`; `None` if the clock went back (treated as a
/// long time: the cache expires, a refresh is allowed).
fn since(now: SystemTime, then: SystemTime) -> Option<Duration> {
    now.duration_since(then).ok()
}

impl State {
    fn snapshot(&self, now: SystemTime, time_to_live: Duration) -> Snapshot {
        let fresh = self.keys.is_some()
            && self
                .fetched_at
                .and_then(|at| since(now, at))
                .is_some_and(|age| age < time_to_live);
        Snapshot {
            keys: self.keys.clone(),
            generation: self.generation,
            fresh,
            last_failed: self.last_failed,
        }
    }
}

impl KeyStore {
    pub(crate) fn new(source: &JwksSource, settings: CacheSettings) -> Self {
        Self {
            source: source.kind.clone(),
            settings,
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The source, to build a store with other settings.
    pub(crate) fn source(&self) -> JwksSource {
        JwksSource {
            kind: self.source.clone(),
        }
    }

    /// Whether the keys are fetched (and so may change).
    pub(crate) fn is_fetched(&self) -> bool {
        matches!(self.source, SourceKind::Fetched(_))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a handful of fields written together: a panic
        // elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keys now, without waiting.
    pub(crate) fn snapshot(&self, now: SystemTime) -> Snapshot {
        match &self.source {
            SourceKind::Keys(keys) => Snapshot {
                keys: Some(Arc::clone(keys)),
                generation: 0,
                fresh: true,
                last_failed: false,
            },
            SourceKind::Fetched(_) => self.lock().snapshot(now, self.settings.time_to_live),
        }
    }

    /// The keys after a fetch, for a request that saw generation `seen`
    /// and needs newer keys (expired, or none verified its signature).
    ///
    /// Fetches unless another fetch ended since `seen` (its result is
    /// used: single flight), or the last one ended less than the refresh
    /// interval ago (a flood of signatures by unknown keys costs one fetch
    /// per interval). A fixed set is returned as it is.
    pub(crate) async fn refresh(&self, seen: u64, now: &Clock) -> Snapshot {
        let SourceKind::Fetched(fetcher) = &self.source else {
            return self.snapshot(now());
        };
        let _flight = self.fetching.lock().await;
        {
            let state = self.lock();
            let at = now();
            let cooling = state
                .last_attempt
                .and_then(|last| since(at, last))
                .is_some_and(|elapsed| elapsed < self.settings.refresh_interval);
            if state.generation != seen || cooling {
                return state.snapshot(at, self.settings.time_to_live);
            }
        }
        let _ = self.attempt(fetcher.as_ref(), now).await;
        self.lock().snapshot(now(), self.settings.time_to_live)
    }

    /// Fetches now, whatever the cache holds (a warm-up, a check of the
    /// configuration); returns how many keys are usable.
    pub(crate) async fn fetch_now(&self, now: &Clock) -> Result<usize, JwksError> {
        match &self.source {
            SourceKind::Keys(keys) => Ok(keys.len()),
            SourceKind::Fetched(fetcher) => {
                let _flight = self.fetching.lock().await;
                self.attempt(fetcher.as_ref(), now).await
            }
        }
    }

    /// One fetch, recorded in the state (called holding `fetching`).
    async fn attempt(&self, fetcher: &dyn DynFetch, now: &Clock) -> Result<usize, JwksError> {
        let timeout = self.settings.fetch_timeout;
        let outcome = match tokio::time::timeout(timeout, fetcher.fetch_boxed()).await {
            Ok(Ok(document)) => parse(&document),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(JwksError::unavailable(format!(
                "no answer within {timeout:?}"
            ))),
        };
        let at = now();
        let mut state = self.lock();
        state.generation = state.generation.wrapping_add(1);
        state.last_attempt = Some(at);
        match outcome {
            Ok(keys) => {
                let count = keys.len();
                tracing::debug!(keys = count, "JWKS fetched");
                state.keys = Some(keys.into());
                state.fetched_at = Some(at);
                state.last_failed = false;
                Ok(count)
            }
            Err(error) => {
                tracing::warn!(
                    %error,
                    cached = state.keys.as_ref().map_or(0, |keys| keys.len()),
                    "the JWKS could not be fetched"
                );
                state.last_failed = true;
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::WebhookSigningKey;

    fn x(seed: u8) -> String {
        WebhookSigningKey::from_seed(&[seed; 32])
            .public_key()
            .to_base64url()
    }

    #[test]
    fn documents() {
        let doc = format!(
            r#"{{"keys":[
                {{"kty":"RSA","n":"..","e":"AQAB","kid":"rsa"}},
                {{"kty":"OKP","crv":"X25519","x":"{a}"}},
                {{"kty":"OKP","crv":"Ed25519","x":"{a}","use":"enc"}},
                {{"kty":"OKP","crv":"Ed25519","x":"not base64url!"}},
                {{"kty":"OKP","crv":"Ed25519","x":"{a}","kid":"one"}},
                {{"kty":"OKP","crv":"Ed25519","x":"{b}","use":"sig","extra":[1,2]}}
            ],"other":true}}"#,
            a = x(1),
            b = x(2)
        );
        let keys = parse(doc.as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].kid.as_deref(), Some("one"));
        assert_eq!(keys[1].kid, None);

        for bad in [
            &b"{}"[..],
            b"[]",
            br#"{"keys":{}}"#,
            br#"{"keys":[]}"#,
            br#"{"keys":[{"kty":"RSA"}]}"#,
            b"",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().kind(),
                JwksErrorKind::Invalid,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: Vec<String> = (0..40)
            .map(|i| format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#, x(i)))
            .collect();
        let doc = format!(r#"{{"keys":[{}]}}"#, many.join(","));
        assert_eq!(parse(doc.as_bytes()).unwrap().len(), MAX_KEYS);
        let huge = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(MAX_JWKS_LEN));
        assert!(parse(huge.as_bytes()).is_err());
    }
}
