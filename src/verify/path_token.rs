//! The secret path token: [`PathToken`] / [`PathTokenLayer`] and the
//! [`PathSecret`] it accepts.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::{PathAndQuery, Uri};
use http::Request;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use tower_layer::Layer;
use tower_service::Service;

use super::future::{Early, ResponseFuture};

/// The shortest secret accepted, in bytes (16 random URL-safe characters
/// carry about 95 bits).
pub const MIN_SECRET_LEN: usize = 16;

/// The longest secret accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 256;

/// A secret path segment, such as the `<token>` of
/// `https://host/hooks/<token>`.
///
/// Only the SHA-256 digest of the secret is kept, and its `Debug` output is
/// redacted, so it never ends up in a log. A secret is 16 to 256 characters
/// from the URL-safe set `A-Z a-z 0-9 - . _ ~` (so it is the same before and
/// after percent-encoding).
///
/// ```
/// use taskhook::verify::PathSecret;
///
/// let secret: PathSecret = "k3Qm9x_T2vLr8pZa".parse()?;
/// assert_eq!(format!("{secret:?}"), "PathSecret(<redacted>)");
/// assert!("short".parse::<PathSecret>().is_err());
/// # Ok::<(), taskhook::verify::InvalidPathSecret>(())
/// ```
#[derive(Clone)]
pub struct PathSecret {
    digest: [u8; 32],
}

impl PathSecret {
    /// Validates `secret` and keeps its digest.
    pub fn new(secret: &str) -> Result<Self, InvalidPathSecret> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(InvalidPathSecret::TooShort);
        }
        if secret.len() > MAX_SECRET_LEN {
            return Err(InvalidPathSecret::TooLong);
        }
        if !secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Err(InvalidPathSecret::InvalidCharacter);
        }
        Ok(Self {
            digest: digest(secret.as_bytes()),
        })
    }
}

impl FromStr for PathSecret {
    type Err = InvalidPathSecret;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Debug for PathSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PathSecret(<redacted>)")
    }
}

/// Why a string is not a usable [`PathSecret`]. Never contains the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidPathSecret {
    /// Shorter than [`MIN_SECRET_LEN`].
    TooShort,
    /// Longer than [`MAX_SECRET_LEN`].
    TooLong,
    /// A character outside `A-Z a-z 0-9 - . _ ~`.
    InvalidCharacter,
}

impl fmt::Display for InvalidPathSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooShort => "the path secret is shorter than 16 characters",
            Self::TooLong => "the path secret is longer than 256 characters",
            Self::InvalidCharacter => "the path secret has a character outside A-Z a-z 0-9 - . _ ~",
        })
    }
}

impl std::error::Error for InvalidPathSecret {}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[derive(Clone)]
struct Config {
    secrets: Vec<PathSecret>,
    prefix: String,
    strip: bool,
}

impl Config {
    /// Checks the path; on success, the path the inner service should see
    /// (`None`: leave the URI as it is).
    fn check(&self, path: &str) -> Result<Option<String>, ()> {
        let after_prefix = path.strip_prefix(self.prefix.as_str()).ok_or(())?;
        let after_slash = after_prefix.strip_prefix('/').ok_or(())?;
        let (segment, rest) = match after_slash.find('/') {
            Some(at) => after_slash.split_at(at),
            None => (after_slash, ""),
        };
        // Digests have a fixed length, so the comparison time says nothing
        // about the secret's length or a common prefix; every configured
        // secret is compared, with no early exit.
        let candidate = digest(segment.as_bytes());
        let mut matched = Choice::from(0);
        for secret in &self.secrets {
            matched |= secret.digest.ct_eq(&candidate);
        }
        if !bool::from(matched) {
            return Err(());
        }
        if !self.strip {
            return Ok(None);
        }
        let mut stripped = String::with_capacity(self.prefix.len() + rest.len() + 1);
        stripped.push_str(&self.prefix);
        stripped.push_str(rest);
        if stripped.is_empty() {
            stripped.push('/');
        }
        Ok(Some(stripped))
    }
}

/// Applies [`PathToken`] to a service: requests whose path does not carry
/// one of the configured [`PathSecret`]s get an empty `404`.
///
/// See the [module docs](crate::verify) for where the token is looked for.
///
/// ```
/// use taskhook::verify::{PathSecret, PathTokenLayer};
///
/// let layer = PathTokenLayer::new("k3Qm9x_T2vLr8pZa".parse::<PathSecret>()?)
///     .also_accept("new-secret-9876543210".parse()?) // while rotating
///     .prefix("/hooks") // the token is the segment after `/hooks/`
///     .strip_token(true); // the inner service sees `/hooks/callback`
/// # Ok::<(), taskhook::verify::InvalidPathSecret>(())
/// ```
#[derive(Clone)]
pub struct PathTokenLayer {
    config: Arc<Config>,
}

impl PathTokenLayer {
    /// A layer accepting `secret` as the first path segment (no prefix),
    /// leaving the URI unchanged.
    pub fn new(secret: PathSecret) -> Self {
        Self {
            config: Arc::new(Config {
                secrets: vec![secret],
                prefix: String::new(),
                strip: false,
            }),
        }
    }

    /// Accepts `secret` too, for rotation: register the new base URL with
    /// the provider while both are accepted, then drop the old one. Every
    /// configured secret is compared on every request.
    #[must_use]
    pub fn also_accept(mut self, secret: PathSecret) -> Self {
        Arc::make_mut(&mut self.config).secrets.push(secret);
        self
    }

    /// Sets the path before the token: with `"/hooks"`, the token is the
    /// segment after `/hooks/`. The prefix is matched as whole segments; a
    /// trailing `/` is ignored. Default: none (the token is the first
    /// segment of the path this layer sees).
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        let trimmed = prefix.trim_end_matches('/');
        let normalized = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        Arc::make_mut(&mut self.config).prefix = normalized;
        self
    }

    /// Removes the token segment from the URI the inner service sees:
    /// `/hooks/<token>/callback?x=1` becomes `/hooks/callback?x=1`, so the
    /// secret cannot leak from the inner service (its logs, its routing
    /// errors). Default: off.
    #[must_use]
    pub fn strip_token(mut self, strip: bool) -> Self {
        Arc::make_mut(&mut self.config).strip = strip;
        self
    }
}

impl fmt::Debug for PathTokenLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathTokenLayer")
            .field("secrets", &self.config.secrets.len())
            .field("prefix", &self.config.prefix)
            .field("strip_token", &self.config.strip)
            .finish()
    }
}

impl<S> Layer<S> for PathTokenLayer {
    type Service = PathToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PathToken {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Lets a request through only if its path carries a configured
/// [`PathSecret`]; anything else gets an empty `404`.
///
/// Created with [`PathTokenLayer`] or [`PathToken::new`].
#[derive(Clone)]
pub struct PathToken<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> PathToken<S> {
    /// Wraps `inner`, accepting `secret` as the first path segment.
    pub fn new(inner: S, secret: PathSecret) -> Self {
        PathTokenLayer::new(secret).layer(inner)
    }

    /// Returns a new [`Layer`] that wraps services with a `PathToken`
    /// middleware.
    pub fn layer(secret: PathSecret) -> PathTokenLayer {
        PathTokenLayer::new(secret)
    }

    inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for PathToken<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathToken")
            .field("inner", &self.inner)
            .field("secrets", &self.config.secrets.len())
            .field("prefix", &self.config.prefix)
            .field("strip_token", &self.config.strip)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PathToken<S>
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
        match self.config.check(req.uri().path()) {
            // No field names the path: it may hold a near-miss of the secret.
            Err(()) => {
                tracing::debug!("path token missing or wrong: 404");
                ResponseFuture::early(Early::NotFound)
            }
            Ok(None) => ResponseFuture::inner(self.inner.call(req)),
            Ok(Some(path)) => match with_path(req.uri(), &path) {
                Some(uri) => {
                    *req.uri_mut() = uri;
                    ResponseFuture::inner(self.inner.call(req))
                }
                // Cannot happen (the pieces come from a valid URI); refuse
                // rather than pass the secret on.
                None => ResponseFuture::early(Early::NotFound),
            },
        }
    }
}

/// `uri` with its path replaced by `path`, the query kept.
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let path_and_query = match uri.query() {
        Some(query) => PathAndQuery::try_from(format!("{path}?{query}")).ok()?,
        None => PathAndQuery::try_from(path).ok()?,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(prefix: &str, strip: bool) -> Config {
        let layer = PathTokenLayer::new(PathSecret::new("0123456789abcdef").unwrap())
            .prefix(prefix)
            .strip_token(strip);
        (*layer.config).clone()
    }

    #[test]
    fn finds_the_token_after_the_prefix() {
        let c = config("/hooks", true);
        assert_eq!(
            c.check("/hooks/0123456789abcdef/callback"),
            Ok(Some("/hooks/callback".into()))
        );
        assert_eq!(
            c.check("/hooks/0123456789abcdef"),
            Ok(Some("/hooks".into()))
        );
        assert!(c.check("/hooksx/0123456789abcdef/callback").is_err());
        assert!(c.check("/hooks/0123456789abcdeF/callback").is_err());
        assert!(c.check("/hooks/0123456789abcdef0/callback").is_err());
        assert!(c.check("/hooks//callback").is_err());
        assert!(c.check("/0123456789abcdef/callback").is_err());
        let c = config("", true);
        assert_eq!(
            c.check("/0123456789abcdef/callback"),
            Ok(Some("/callback".into()))
        );
        assert_eq!(c.check("/0123456789abcdef"), Ok(Some("/".into())));
        assert_eq!(config("hooks/", false).prefix, "/hooks");
    }
}
