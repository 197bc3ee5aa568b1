//! [`HttpJwks`]: a JWKS fetched over HTTP with a hyper client.

use std::fmt;
use std::future::Future;

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::jwks::{FetchJwks, JwksError, JwksSource, MAX_JWKS_LEN};

/// A JWKS fetched with `GET <url>` over a pooled hyper client (feature
/// `refetch`), for [`JwksSource::fetched`](crate::verify::JwksSource::fetched).
///
/// Any 2xx answer is the document (at most 64 KiB); anything else, or no
/// answer, is [`Unavailable`](crate::verify::JwksErrorKind::Unavailable).
/// Redirects are not followed. Plain `http` out of the box; fal's URL,
/// `https://rest.alpha.fal.ai/.well-known/jwks.json`, needs a TLS
/// connector (such as `hyper-rustls`' `HttpsConnector`) passed to
/// [`HttpJwks::with_connector`].
///
/// ```
/// use taskhook::verify::{HttpJwks, JwksSource};
///
/// let fetcher = HttpJwks::new("http://127.0.0.1:8080/.well-known/jwks.json")?;
/// // .with_connector(hyper_rustls::HttpsConnectorBuilder::new()...build()) for https
/// let source = JwksSource::fetched(fetcher);
/// # let _ = source;
/// # Ok::<(), taskhook::verify::InvalidJwksUrl>(())
/// ```
#[derive(Clone)]
pub struct HttpJwks<C = HttpConnector> {
    client: Client<C, Empty<Bytes>>,
    uri: Uri,
}

impl HttpJwks<HttpConnector> {
    /// A fetcher of the JWKS at `url` (an absolute `http` or `https` URL;
    /// `https` needs [`with_connector`](Self::with_connector)).
    pub fn new(url: &str) -> Result<Self, InvalidJwksUrl> {
        let uri: Uri = url.parse().map_err(|_| InvalidJwksUrl::NotAbsolute)?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(InvalidJwksUrl::NotAbsolute);
        }
        Ok(Self {
            client: client(HttpConnector::new()),
            uri,
        })
    }

    fn is_https(&self) -> bool {
        self.uri.scheme_str() == Some("https")
    }
}

fn client<C>(connector: C) -> Client<C, Empty<Bytes>>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// The plain-HTTP fetcher of [`JwksSource::url`].
pub(super) fn plain(url: &str) -> Result<JwksSource, InvalidJwksUrl> {
    let fetcher = HttpJwks::new(url)?;
    if fetcher.is_https() {
        return Err(InvalidJwksUrl::NeedsTls);
    }
    Ok(JwksSource::fetched(fetcher))
}

impl<C> HttpJwks<C> {
    /// The same URL, reached through `connector` (a TLS connector for
    /// `https`).
    pub fn with_connector<C2>(self, connector: C2) -> HttpJwks<C2>
    where
        C2: Connect + Clone + Send + Sync + 'static,
    {
        HttpJwks {
            client: client(connector),
            uri: self.uri,
        }
    }
}

impl<C> FetchJwks for HttpJwks<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    fn fetch(&self) -> impl Future<Output = Result<Bytes, JwksError>> + Send {
        let request = Request::get(self.uri.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .body(Empty::new());
        let client = self.client.clone();
        async move {
            let request = request.map_err(JwksError::unavailable)?;
            let response = client
                .request(request)
                .await
                .map_err(JwksError::unavailable)?;
            let status = response.status();
            if !status.is_success() {
                return Err(JwksError::unavailable(format!(
                    "the JWKS URL answered {status}"
                )));
            }
            Limited::new(response.into_body(), MAX_JWKS_LEN)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .map_err(JwksError::unavailable)
        }
    }
}

impl<C> fmt::Debug for HttpJwks<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpJwks").field("url", &self.uri).finish()
    }
}

/// Why a JWKS URL cannot be fetched.
///
/// ```
/// use taskhook::verify::{HttpJwks, InvalidJwksUrl, JwksSource};
///
/// assert_eq!(HttpJwks::new("/jwks.json").unwrap_err(), InvalidJwksUrl::NotAbsolute);
/// // Plain HTTP cannot fetch an https URL: build an `HttpJwks` with a TLS connector.
/// let https = "https://rest.alpha.fal.ai/.well-known/jwks.json";
/// assert_eq!(JwksSource::url(https).unwrap_err(), InvalidJwksUrl::NeedsTls);
/// assert!(HttpJwks::new(https).is_ok()); // then `.with_connector(..)`
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidJwksUrl {
    /// Not an absolute `http` or `https` URL.
    NotAbsolute,
    /// An `https` URL given to [`JwksSource::url`](crate::verify::JwksSource::url),
    /// whose client speaks plain HTTP: use
    /// [`JwksSource::fetched`](crate::verify::JwksSource::fetched) with an
    /// [`HttpJwks`] built [`with_connector`](HttpJwks::with_connector) (a TLS
    /// connector).
    NeedsTls,
}

impl fmt::Display for InvalidJwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAbsolute => "the JWKS URL is not an absolute http or https URL",
            Self::NeedsTls => {
                "an https JWKS URL needs a TLS connector: \
                 JwksSource::fetched(HttpJwks::new(url)?.with_connector(tls))"
            }
        })
    }
}

impl std::error::Error for InvalidJwksUrl {}
