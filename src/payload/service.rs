use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Method, Request, Response};
use http_body::Body;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::DEFAULT_LIMIT;
use super::parse::Parse;
use super::PayloadLayer;
use crate::body::{BufferedBody, ResponseBody};
use crate::provider::Profile;
use crate::response::Rejection;
use crate::{RawPayload, TaskEvent};

/// Buffers and parses a task callback body before calling the inner service.
///
/// Created with [`PayloadLayer`] or [`Payload::new`]. The inner service gets
/// a `Request<BufferedBody>` with the [`TaskEvent`](crate::TaskEvent) and the
/// [`RawPayload`](crate::RawPayload) in its extensions.
#[derive(Debug, Clone)]
pub struct Payload<S> {
    inner: S,
    limit: usize,
    parse: Parse,
}

impl<S> Payload<S> {
    /// Wraps `inner` with the default body limit of 256 KiB.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            limit: DEFAULT_LIMIT,
            parse: Parse::default(),
        }
    }

    /// Sets the largest body accepted, in bytes (default 256 KiB).
    #[must_use]
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// Sets whether the whole event is parsed when the body arrives; see
    /// [`PayloadLayer::parse_in_full`].
    #[must_use]
    pub fn parse_in_full(mut self, in_full: bool) -> Self {
        self.parse.in_full = in_full;
        self
    }

    pub(super) fn set_parse(&mut self, parse: Parse) {
        self.parse = parse;
    }

    /// Sets the provider profile that reads the body; see
    /// [`PayloadLayer::profile`].
    #[must_use]
    pub fn profile(mut self, profile: impl Profile) -> Self {
        self.parse.profile = Some(Arc::new(profile));
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
        // Read and parsed already by a payload layer further out (one that
        // had to run before a signature check): the body is its bytes.
        let extensions = req.extensions();
        if let (Some(_), Some(raw)) = (
            extensions.get::<TaskEvent>(),
            extensions.get::<RawPayload>(),
        ) {
            let bytes = raw.bytes().clone();
            let (parts, _body) = req.into_parts();
            let req = Request::from_parts(parts, BufferedBody::new(bytes));
            return ResponseFuture::calling(self.inner.call(req));
        }
        if let Some(rejection) = check_head(req.method(), req.headers(), self.limit) {
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
        ResponseFuture::collecting(inner, parts, body, self.limit, self.parse.clone())
    }
}

/// Rejects before reading the body: a method other than `POST`, or a
/// declared length over the limit.
///
/// The `Content-Type` decides nothing: a provider that labels its JSON as a
/// form (as `curl -d` does) would otherwise lose every callback to a `4xx`.
/// The body decides: valid JSON goes through, anything else is a `400`.
fn check_head(method: &Method, headers: &HeaderMap, limit: usize) -> Option<Rejection> {
    if method != Method::POST {
        return Some(Rejection::method_not_allowed());
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Some(too_large(limit));
    }
    None
}

pub(super) fn too_large(limit: usize) -> Rejection {
    Rejection::payload_too_large(limit)
}
