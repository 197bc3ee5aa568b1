use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::DEFAULT_LIMIT;
use super::PayloadLayer;
use crate::body::{BufferedBody, ResponseBody};
use crate::response::Rejection;

/// Buffers and parses a task callback body before calling the inner service.
///
/// Created with [`PayloadLayer`] or [`Payload::new`]. The inner service gets
/// a `Request<BufferedBody>` with the [`TaskEvent`](crate::TaskEvent) and the
/// [`RawPayload`](crate::RawPayload) in its extensions.
#[derive(Debug, Clone)]
pub struct Payload<S> {
    inner: S,
    limit: usize,
    in_full: bool,
}

impl<S> Payload<S> {
    /// Wraps `inner` with the default body limit of 256 KiB.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            limit: DEFAULT_LIMIT,
            in_full: false,
        }
    }

    /// Sets the largest body accepted, in bytes.
    #[must_use]
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// Sets whether the whole event is parsed when the body arrives; see
    /// [`PayloadLayer::parse_in_full`].
    #[must_use]
    pub fn parse_in_full(mut self, in_full: bool) -> Self {
        self.in_full = in_full;
        self
    }

    /// Returns a new [`Layer`](tower_layer::Layer) that wraps services with a
    /// `Payload` middleware.
    pub fn layer() -> PayloadLayer {
        PayloadLayer::new()
    }

    inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Payload<S>
where
    S: Service<Request<BufferedBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Body<Data = Bytes>,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if let Some(rejection) = check_headers(req.headers(), self.limit) {
            return ResponseFuture::rejected(rejection);
        }
        if req.body().size_hint().lower() > self.limit as u64 {
            return ResponseFuture::rejected(too_large(self.limit));
        }
        // The body must be read before the inner service is called, so the
        // future takes the service that `poll_ready` made ready and leaves a
        // clone (not yet ready) in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        ResponseFuture::collecting(inner, parts, body, self.limit, self.in_full)
    }
}

/// Rejects before reading the body: a declared length over the limit, or a
/// content type that is clearly not JSON.
fn check_headers(headers: &HeaderMap, limit: usize) -> Option<Rejection> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Some(too_large(limit));
    }
    let content_type = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    if is_clearly_not_json(content_type) {
        return Some(Rejection::permanent(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the callback body must be JSON",
        ));
    }
    None
}

pub(super) fn too_large(limit: usize) -> Rejection {
    Rejection::permanent(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the callback body is larger than {limit} bytes"),
    )
}

/// `true` for media types that cannot carry the provider's JSON: forms,
/// multipart, markup, and binary media.
///
/// Anything else, including a missing or unparsable header, `text/plain` and
/// `application/octet-stream`, is given to the JSON parser: a 415 makes the
/// provider give up for good, so only an obvious mismatch earns one.
pub(super) fn is_clearly_not_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let (kind, subtype) = (kind.trim(), subtype.trim());
    let is = |s: &str, name: &str| s.eq_ignore_ascii_case(name);
    let ends_with = |s: &str, suffix: &str| {
        s.len() >= suffix.len()
            && s.is_char_boundary(s.len() - suffix.len())
            && is(&s[s.len() - suffix.len()..], suffix)
    };
    if is(subtype, "json") || ends_with(subtype, "+json") {
        return false;
    }
    ["multipart", "image", "audio", "video", "font", "model"]
        .iter()
        .any(|name| is(kind, name))
        || [
            "x-www-form-urlencoded",
            "xml",
            "html",
            "xhtml+xml",
            "csv",
            "javascript",
        ]
        .iter()
        .any(|name| is(subtype, name))
        || ends_with(subtype, "+xml")
}

#[cfg(test)]
mod tests {
    use super::is_clearly_not_json;

    #[test]
    fn content_types() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.api+json",
            "text/json",
            "text/plain",
            "application/octet-stream",
            "",
            "garbage",
            "application/+JSON",
            "text/é+json",
            "é/é",
        ] {
            assert!(!is_clearly_not_json(json), "{json}");
        }
        for not_json in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/html",
            "application/xml",
            "text/xml",
            "image/png",
            "application/atom+xml",
            "Application/ATOM+XML",
            "IMAGE/png",
            " text / HTML ; charset=utf-8",
        ] {
            assert!(is_clearly_not_json(not_json), "{not_json}");
        }
    }
}
