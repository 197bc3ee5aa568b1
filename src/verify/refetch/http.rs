use std::fmt;
use std::future::Future;

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::{ConfirmError, ConfirmTask, Confirmation};
use crate::TaskEvent;

/// The largest task-status answer read, in bytes.
const MAX_ANSWER: usize = 1024 * 1024;

/// Confirm-by-refetch over HTTP: `GET {base}/v1/tasks/{id}` with
/// `Authorization: Bearer <api key>`, parsed with
/// [`TaskEvent::from_slice`].
///
/// | the provider answers | meaning |
/// |---|---|
/// | 2xx with a task-status body | the authoritative state |
/// | 404, or a 2xx with the API's error shape and code 404 | the task does not exist: forged push |
/// | 401, 403 | our API key is wrong: logged as an error, `503` |
/// | anything else, no answer, an unreadable body | unavailable: `503` |
///
/// The id is percent-encoded into the path. Plain `http` out of the box;
/// for `https` pass a TLS connector (such as `hyper-rustls`'
/// `HttpsConnector`) to [`HttpConfirm::with_connector`]. The API key is
/// marked sensitive and redacted from `Debug`.
///
/// A wrong base URL also answers 404, which would refuse every real push
/// for good: check the configuration at startup with
/// [`HttpConfirm::fetch`] on a task id you know.
///
/// ```
/// use taskhook::verify::refetch::HttpConfirm;
///
/// let confirm = HttpConfirm::new("http://127.0.0.1:8080", "sk-test")?;
/// assert!(!format!("{confirm:?}").contains("sk-test"));
/// # Ok::<(), taskhook::verify::refetch::InvalidHttpConfirm>(())
/// ```
#[derive(Clone)]
pub struct HttpConfirm<C = HttpConnector> {
    client: Client<C, Empty<Bytes>>,
    base: String,
    authorization: HeaderValue,
}

impl HttpConfirm<HttpConnector> {
    /// A client for the API at `base_url` (scheme, host, optional path
    /// prefix; a trailing `/` is ignored), authenticated with `api_key`.
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, InvalidHttpConfirm> {
        Self::with_connector_parts(base_url, api_key, HttpConnector::new())
    }
}

impl<C> HttpConfirm<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    fn with_connector_parts(
        base_url: &str,
        api_key: &str,
        connector: C,
    ) -> Result<Self, InvalidHttpConfirm> {
        let base = base_url.trim_end_matches('/');
        let uri: Uri = base.parse().map_err(|_| InvalidHttpConfirm::BaseUrl)?;
        if uri.scheme().is_none() || uri.authority().is_none() || uri.query().is_some() {
            return Err(InvalidHttpConfirm::BaseUrl);
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {api_key}"))
            .map_err(|_| InvalidHttpConfirm::ApiKey)?;
        authorization.set_sensitive(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            base: base.to_owned(),
            authorization,
        })
    }

    /// The same API, reached through `connector` (a TLS connector for
    /// `https`).
    pub fn with_connector<C2>(self, connector: C2) -> HttpConfirm<C2>
    where
        C2: Connect + Clone + Send + Sync + 'static,
    {
        HttpConfirm {
            client: Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .build(connector),
            base: self.base,
            authorization: self.authorization,
        }
    }

    /// Fetches the state of task `id` (no timeout of its own: wrap it in
    /// one).
    pub fn fetch(&self, id: &str) -> impl Future<Output = Result<TaskEvent, ConfirmError>> + Send {
        let request = self.request(id);
        let client = self.client.clone();
        async move {
            let request = request?;
            let response = client
                .request(request)
                .await
                .map_err(ConfirmError::unavailable)?;
            let status = response.status();
            match status {
                s if s.is_success() => {}
                StatusCode::NOT_FOUND => return Err(ConfirmError::not_found()),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(ConfirmError::unauthorized())
                }
                other => {
                    return Err(ConfirmError::unavailable(format!(
                        "the provider answered {other}"
                    )))
                }
            }
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(ConfirmError::unavailable)?
                .to_bytes();
            TaskEvent::from_slice(&body).map_err(|error| {
                if says_not_found(&body) {
                    ConfirmError::not_found()
                } else {
                    ConfirmError::unavailable(error)
                }
            })
        }
    }

    fn request(&self, id: &str) -> Result<Request<Empty<Bytes>>, ConfirmError> {
        let uri = format!("{}/v1/tasks/{}", self.base, PercentEncoded(id));
        Request::get(uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .body(Empty::new())
            .map_err(ConfirmError::unavailable)
    }
}

impl<C> ConfirmTask for HttpConfirm<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    fn confirm(
        &self,
        pushed: &TaskEvent,
    ) -> impl Future<Output = Result<Confirmation, ConfirmError>> + Send {
        let fetch = self.fetch(pushed.id());
        async move { fetch.await.map(Confirmation::new) }
    }
}

impl<C> fmt::Debug for HttpConfirm<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfirm")
            .field("base", &self.base)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// Why an [`HttpConfirm`] could not be built. Never contains the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidHttpConfirm {
    /// The base URL is not an absolute `scheme://host[/path]` URL.
    BaseUrl,
    /// The API key cannot go in a header (control characters).
    ApiKey,
}

impl fmt::Display for InvalidHttpConfirm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BaseUrl => "the base URL is not an absolute URL without a query",
            Self::ApiKey => "the API key has characters a header cannot carry",
        })
    }
}

impl std::error::Error for InvalidHttpConfirm {}

/// `true` for a 2xx body that is the API's error shape for an unknown task:
/// `{"error":{"code":404,..}}` or `{"code":404,..}` without a task.
fn says_not_found(body: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) else {
        return false;
    };
    let code = map
        .get("error")
        .and_then(|e| e.get("code"))
        .or_else(|| map.get("code"));
    code.and_then(serde_json::Value::as_u64) == Some(404)
}

/// A path segment with everything but the unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) percent-encoded.
struct PercentEncoded<'a>(&'a str);

impl fmt::Display for PercentEncoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `.` and `..` are dot-segments a server or proxy may resolve.
        if self.0 == "." || self.0 == ".." {
            return f.write_str(&"%2E".repeat(self.0.len()));
        }
        for &b in self.0.as_bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{says_not_found, PercentEncoded};

    #[test]
    fn error_shapes() {
        assert!(says_not_found(
            br#"{"error":{"code":404,"message":"no such task"}}"#
        ));
        assert!(says_not_found(br#"{"code":404,"message":"no such task"}"#));
        assert!(!says_not_found(br#"{"error":{"code":500}}"#));
        assert!(!says_not_found(br#"{"code":200,"data":{}}"#));
        assert!(!says_not_found(b"<html>"));
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(PercentEncoded("task_01-A.b~").to_string(), "task_01-A.b~");
        assert_eq!(
            PercentEncoded("a/../b?c#d e%").to_string(),
            "a%2F..%2Fb%3Fc%23d%20e%25"
        );
        assert_eq!(PercentEncoded("é").to_string(), "%C3%A9");
        assert_eq!(PercentEncoded("..").to_string(), "%2E%2E");
    }
}
