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

use super::jwks::{FetchJwks, JwksError, MAX_JWKS_LEN};

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
    /// A fetcher of the JWKS at `url` (an absolute `http` or `https` URL).
    pub fn new(url: &str) -> Result<Self, InvalidJwksUrl> {
        let uri: Uri = url.parse().map_err(|_| InvalidJwksUrl)?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(InvalidJwksUrl);
        }
        Ok(Self {
            client: client(HttpConnector::new()),
            uri,
        })
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

/// A JWKS URL that is not an absolute `http` or `https` URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidJwksUrl;

impl fmt::Display for InvalidJwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the JWKS URL is not an absolute http or https URL")
    }
}

impl std::error::Error for InvalidJwksUrl {}
