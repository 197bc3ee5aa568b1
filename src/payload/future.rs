//! Response future of [`Payload`](super::Payload).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::parse::Parse;
use super::service::too_large;
use crate::body::{BufferedBody, ResponseBody};
use crate::response::Rejection;
use crate::RawPayload;

pin_project! {
    /// Response future of [`Payload`](super::Payload): collects the body,
    /// parses it, then calls the inner service, or answers with a rejection.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<BufferedBody>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<BufferedBody>>,
    {
        Collecting {
            #[pin]
            body: B,
            parts: Option<Parts>,
            buf: Collected,
            limit: usize,
            parse: Parse,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Rejected {
            rejection: Option<Rejection>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<BufferedBody>>,
{
    pub(super) fn rejected(rejection: Rejection) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
            },
        }
    }

    /// The inner service called at once (the request was already read).
    pub(super) fn calling(future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
        }
    }

    pub(super) fn collecting(inner: S, parts: Parts, body: B, limit: usize, parse: Parse) -> Self
    where
        B: Body,
    {
        // Reserve what the body announces, within the limit.
        let hint = body.size_hint();
        let expected = hint.exact().unwrap_or_else(|| hint.lower());
        let capacity = usize::try_from(expected).unwrap_or(limit).min(limit);
        Self {
            state: State::Collecting {
                body,
                parts: Some(parts),
                buf: Collected::with_capacity(capacity),
                limit,
                parse,
                inner: Some(inner),
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<BufferedBody>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::new)));
                }
                StateProj::Rejected { rejection } => {
                    let rejection = rejection.take().expect("polled after completion");
                    return Poll::Ready(Ok(rejection.into_response()));
                }
                StateProj::Collecting {
                    mut body,
                    parts,
                    buf,
                    limit,
                    parse,
                    inner,
                } => loop {
                    match ready!(body.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => {
                            // Trailers carry nothing we use.
                            if let Ok(data) = frame.into_data() {
                                if buf.len() + data.len() > *limit {
                                    break State::Rejected {
                                        rejection: Some(too_large(*limit)),
                                    };
                                }
                                buf.push(data);
                            }
                        }
                        Some(Err(error)) => {
                            break State::Rejected {
                                rejection: Some(body_error(error.into(), *limit)),
                            }
                        }
                        None => {
                            let bytes = std::mem::take(buf).freeze();
                            let (Some(mut parts), Some(mut inner)) = (parts.take(), inner.take())
                            else {
                                unreachable!("the collecting state is left once")
                            };
                            let event = parse.parse(&bytes, &parts.headers);
                            break match event {
                                Ok(event) => {
                                    tracing::trace!(
                                        id = event.id(),
                                        len = bytes.len(),
                                        "callback parsed"
                                    );
                                    parts.extensions.insert(event);
                                    parts.extensions.insert(RawPayload::new(bytes.clone()));
                                    let req = Request::from_parts(parts, BufferedBody::new(bytes));
                                    State::Calling {
                                        future: inner.call(req),
                                    }
                                }
                                Err(error) => {
                                    tracing::debug!(%error, "callback rejected");
                                    State::Rejected {
                                        rejection: Some(Rejection::bad_payload(&error)),
                                    }
                                }
                            };
                        }
                    }
                },
            };
            this.state.set(next);
        }
    }
}

/// A body that failed while being read: a limit set by an outer layer is a
/// 413; anything else (a reset connection, a read timeout) is transient.
///
/// The limit error is looked for along the whole source chain: a framework
/// may wrap it (axum's `Router::layer` turns the body of
/// `tower_http::limit::RequestBodyLimitLayer` into an `axum::Body` whose
/// error wraps the `LengthLimitError`).
fn body_error(error: Box<dyn std::error::Error + Send + Sync>, limit: usize) -> Rejection {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            return too_large(limit);
        }
        cause = current.source();
    }
    tracing::debug!(%error, "callback body could not be read");
    Rejection::body_unreadable()
}

/// The body so far: one chunk kept as it came (the common case, no copy), or
/// several chunks copied into one buffer sized from the body's size hint.
enum Collected {
    Empty { expected: usize },
    One { first: Bytes, expected: usize },
    Many(BytesMut),
}

impl Default for Collected {
    fn default() -> Self {
        Self::Empty { expected: 0 }
    }
}

impl Collected {
    fn with_capacity(expected: usize) -> Self {
        Self::Empty { expected }
    }

    fn len(&self) -> usize {
        match self {
            Collected::Empty { .. } => 0,
            Collected::One { first, .. } => first.len(),
            Collected::Many(buf) => buf.len(),
        }
    }

    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        *self = match std::mem::take(self) {
            Collected::Empty { expected } => Collected::One {
                first: data,
                expected,
            },
            Collected::One { first, expected } => {
                let mut buf = BytesMut::with_capacity(expected.max(first.len() + data.len()));
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&data);
                Collected::Many(buf)
            }
            Collected::Many(mut buf) => {
                buf.extend_from_slice(&data);
                Collected::Many(buf)
            }
        };
    }

    fn freeze(self) -> Bytes {
        match self {
            Collected::Empty { .. } => Bytes::new(),
            Collected::One { first, .. } => first,
            Collected::Many(buf) => buf.freeze(),
        }
    }
}
