//! A static shared secret in a header: [`HeaderSecret`] /
//! [`HeaderSecretLayer`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::Request;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use tower_layer::Layer;
use tower_service::Service;

use super::future::{Early, ResponseFuture};
use crate::response::Rejection;

/// The longest secret accepted, in bytes.
const MAX_SECRET_LEN: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// The whole value of the header is the secret.
    Value,
    /// `Authorization: Bearer <secret>`.
    Bearer,
}

#[derive(Clone)]
struct Config {
    name: HeaderName,
    scheme: Scheme,
    /// SHA-256 digests of the accepted secrets: the secrets themselves are
    /// not kept, and a comparison of digests takes the same time whatever
    /// the lengths.
    digests: Vec<[u8; 32]>,
    keep_header: bool,
}

impl Config {
    /// Whether `value` carries one of the secrets: every digest is
    /// compared, without early exit.
    fn accepts(&self, value: &HeaderValue) -> bool {
        let candidate = match self.scheme {
            Scheme::Value => value.as_bytes(),
            Scheme::Bearer => match bearer_token(value.as_bytes()) {
                Some(token) => token,
                None => return false,
            },
        };
        let digest: [u8; 32] = Sha256::digest(candidate).into();
        let matched = self.digests.iter().fold(Choice::from(0), |found, secret| {
            found | secret.ct_eq(&digest)
        });
        matched.into()
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 9110
/// 11.1; spaces after it are skipped).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first() != Some(&b' ') {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[start..])
}

/// Checks a secret and keeps its digest.
fn digest(secret: &str, scheme: Scheme) -> Result<[u8; 32], InvalidHeaderSecret> {
    if secret.is_empty() {
        return Err(InvalidHeaderSecret::Empty);
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(InvalidHeaderSecret::TooLong);
    }
    // What a sender can put in a header and a parser hands over unchanged:
    // visible ASCII and inner spaces (no spaces at all in a bearer token).
    let visible = |b: u8| b.is_ascii_graphic() || (b == b' ' && scheme == Scheme::Value);
    let bytes = secret.as_bytes();
    if !bytes.iter().all(|&b| visible(b)) || bytes[0] == b' ' || bytes[bytes.len() - 1] == b' ' {
        return Err(InvalidHeaderSecret::InvalidCharacter);
    }
    Ok(Sha256::digest(bytes).into())
}

/// Applies [`HeaderSecret`] to a service: the request must carry a shared
/// secret in a header, such as AssemblyAI's `webhook_auth_header_name` /
/// `webhook_auth_header_value`, or a bearer token.
///
/// A missing or wrong secret gets `401` (`invalid_secret`) and never
/// reaches the inner service. The comparison is constant-time (SHA-256
/// digests compared with [`subtle`], all of them, without early exit), the
/// secrets are kept only as digests, and `Debug` shows none of them. Only
/// the first value of the header is looked at. Several secrets may be
/// accepted at once, for rotation ([`also_accept`](Self::also_accept)).
///
/// The header is **removed** before the inner service sees the request, so
/// a handler that logs or forwards headers (such as
/// `taskhook::forward::Forward`) does not leak it; keep it with
/// [`keep_header`](Self::keep_header). It needs no body: put it first,
/// before the payload layer.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response, StatusCode};
/// use taskhook::verify::HeaderSecretLayer;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = HeaderSecretLayer::header("x-assemblyai-auth", "s3cret-one")?
///     .also_accept("s3cret-two")?; // while rotating
/// let service = layer.layer(service_fn(|req: Request<String>| async move {
///     assert!(req.headers().get("x-assemblyai-auth").is_none()); // removed
///     Ok::<_, Infallible>(Response::new(String::new()))
/// }));
///
/// let push = |secret: &str| Request::post("/callback")
///     .header("x-assemblyai-auth", secret)
///     .body(String::new())
///     .unwrap();
/// assert_eq!(service.clone().oneshot(push("s3cret-two")).await?.status(), StatusCode::OK);
/// assert_eq!(service.oneshot(push("guess")).await?.status(), StatusCode::UNAUTHORIZED);
/// assert!(!format!("{layer:?}").contains("s3cret"));
///
/// // `Authorization: Bearer <token>`
/// let bearer = HeaderSecretLayer::bearer("tok_9f8e7d")?;
/// # let _ = bearer;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HeaderSecretLayer {
    config: Arc<Config>,
}

impl HeaderSecretLayer {
    /// A layer accepting requests whose header `name` (case-insensitive)
    /// has the value `secret`, exactly.
    pub fn header(name: &str, secret: &str) -> Result<Self, InvalidHeaderSecret> {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidHeaderSecret::HeaderName)?;
        Self::with(name, Scheme::Value, secret)
    }

    /// A layer accepting requests with `Authorization: Bearer <token>`.
    pub fn bearer(token: &str) -> Result<Self, InvalidHeaderSecret> {
        Self::with(AUTHORIZATION, Scheme::Bearer, token)
    }

    fn with(name: HeaderName, scheme: Scheme, secret: &str) -> Result<Self, InvalidHeaderSecret> {
        Ok(Self {
            config: Arc::new(Config {
                name,
                scheme,
                digests: vec![digest(secret, scheme)?],
                keep_header: false,
            }),
        })
    }

    /// Accepts `secret` too (in the same header), for rotation.
    ///
    /// ```
    /// use taskhook::verify::HeaderSecretLayer;
    ///
    /// let layer = HeaderSecretLayer::bearer("old-token")?.also_accept("new-token")?;
    /// # let _ = layer;
    /// # Ok::<(), taskhook::verify::InvalidHeaderSecret>(())
    /// ```
    pub fn also_accept(mut self, secret: &str) -> Result<Self, InvalidHeaderSecret> {
        let digest = digest(secret, self.config.scheme)?;
        Arc::make_mut(&mut self.config).digests.push(digest);
        Ok(self)
    }

    /// Whether the inner service still sees the secret header (default
    /// `false`: it is removed).
    ///
    /// ```
    /// use taskhook::verify::HeaderSecretLayer;
    ///
    /// let layer = HeaderSecretLayer::header("x-webhook-token", "s3cret")?.keep_header(true);
    /// # let _ = layer;
    /// # Ok::<(), taskhook::verify::InvalidHeaderSecret>(())
    /// ```
    #[must_use]
    pub fn keep_header(mut self, keep: bool) -> Self {
        Arc::make_mut(&mut self.config).keep_header = keep;
        self
    }
}

impl fmt::Debug for HeaderSecretLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_config(f.debug_struct("HeaderSecretLayer"), &self.config).finish()
    }
}

fn debug_config<'a, 'b>(
    mut f: fmt::DebugStruct<'a, 'b>,
    config: &Config,
) -> fmt::DebugStruct<'a, 'b> {
    f.field("header", &config.name)
        .field(
            "scheme",
            &match config.scheme {
                Scheme::Value => "value",
                Scheme::Bearer => "bearer",
            },
        )
        .field("secrets", &config.digests.len())
        .field("keep_header", &config.keep_header);
    f
}

impl<S> Layer<S> for HeaderSecretLayer {
    type Service = HeaderSecret<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HeaderSecret {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Lets a request through only if it carries the shared secret in the
/// configured header.
///
/// Created with [`HeaderSecretLayer`] (see there for the behaviour) or
/// [`HeaderSecret::new`].
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use taskhook::verify::HeaderSecret;
///
/// let service = HeaderSecret::new(
///     tower::service_fn(|_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) }),
///     "x-assemblyai-auth",
///     "s3cret",
/// )?;
/// # let _ = service;
/// # Ok::<(), taskhook::verify::InvalidHeaderSecret>(())
/// ```
#[derive(Clone)]
pub struct HeaderSecret<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> HeaderSecret<S> {
    /// Wraps `inner`, accepting `secret` in the header `name`.
    pub fn new(inner: S, name: &str, secret: &str) -> Result<Self, InvalidHeaderSecret> {
        Ok(HeaderSecretLayer::header(name, secret)?.layer(inner))
    }

    /// Returns a new [`Layer`] that wraps services with a `HeaderSecret`
    /// middleware accepting `secret` in the header `name`.
    pub fn layer(name: &str, secret: &str) -> Result<HeaderSecretLayer, InvalidHeaderSecret> {
        HeaderSecretLayer::header(name, secret)
    }

    inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for HeaderSecret<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("HeaderSecret");
        f.field("inner", &self.inner);
        debug_config(f, &self.config).finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HeaderSecret<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<crate::body::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let accepted = req
            .headers()
            .get(&self.config.name)
            .is_some_and(|value| self.config.accepts(value));
        if !accepted {
            // Neither the header nor its value is logged.
            tracing::info!(header = %self.config.name, "shared secret missing or wrong: 401");
            return ResponseFuture::early(Early::Rejection(Rejection::invalid_secret()));
        }
        if !self.config.keep_header {
            req.headers_mut().remove(&self.config.name);
        }
        ResponseFuture::inner(self.inner.call(req))
    }
}

/// Why a [`HeaderSecretLayer`] could not be built. Never contains the
/// secret.
///
/// ```
/// use taskhook::verify::{HeaderSecretLayer, InvalidHeaderSecret};
///
/// let error = HeaderSecretLayer::bearer("two words").unwrap_err();
/// assert_eq!(error, InvalidHeaderSecret::InvalidCharacter);
/// assert!(!error.to_string().contains("words"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidHeaderSecret {
    /// The header name is not a valid HTTP header name.
    HeaderName,
    /// The secret is empty.
    Empty,
    /// The secret is longer than 4096 bytes.
    TooLong,
    /// The secret has a character a header cannot carry unchanged (a
    /// control character, non-ASCII, a leading or trailing space; any space
    /// in a bearer token).
    InvalidCharacter,
}

impl fmt::Display for InvalidHeaderSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HeaderName => "not a valid HTTP header name",
            Self::Empty => "the secret is empty",
            Self::TooLong => "the secret is longer than 4096 bytes",
            Self::InvalidCharacter => {
                "the secret has a character a header cannot carry unchanged \
                 (visible ASCII, and inner spaces outside a bearer token)"
            }
        })
    }
}

impl std::error::Error for InvalidHeaderSecret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer   abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"BEARER abc def"), Some(&b"abc def"[..]));
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearerabc",
            b"Basic abc",
            b"",
            b"Bear",
        ] {
            assert_eq!(bearer_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(digest("", Scheme::Value), Err(InvalidHeaderSecret::Empty));
        assert_eq!(
            digest(&"x".repeat(4097), Scheme::Value),
            Err(InvalidHeaderSecret::TooLong)
        );
        for bad in [" lead", "trail ", "tab\there", "nl\n", "é"] {
            assert_eq!(
                digest(bad, Scheme::Value),
                Err(InvalidHeaderSecret::InvalidCharacter),
                "{bad:?}"
            );
        }
        assert!(digest("inner space", Scheme::Value).is_ok());
        assert_eq!(
            digest("inner space", Scheme::Bearer),
            Err(InvalidHeaderSecret::InvalidCharacter)
        );
    }
}
