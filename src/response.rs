//! Every response this crate writes itself, in one place: the status-code
//! policy.
//!
//! The provider retries a 5xx (or no answer) and gives up for good on a 4xx,
//! so:
//!
//! - a 4xx only for input that can never succeed (a malformed body, a body
//!   too large, a wrong secret);
//! - every transient failure of ours is `503 Service Unavailable` with a
//!   `Retry-After` header;
//! - a 2xx only once the event is safely accepted.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::body::ResponseBody;

/// The `Retry-After` used when a layer has no better estimate.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);

/// A response written by one of our layers instead of the inner service's.
#[derive(Debug)]
pub(crate) struct Rejection {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

impl Rejection {
    /// Input that can never succeed: the provider must not retry it.
    pub(crate) fn permanent(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        debug_assert!(status.is_client_error());
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A transient failure of ours: `503` with `Retry-After`, so the provider
    /// retries.
    pub(crate) fn unavailable(
        code: &'static str,
        message: impl Into<String>,
        retry_after: Duration,
    ) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code,
            message: message.into(),
            retry_after: Some(retry_after),
        }
    }

    pub(crate) fn into_response<B>(self) -> Response<ResponseBody<B>> {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            error: Detail<'a>,
        }
        #[derive(Serialize)]
        struct Detail<'a> {
            code: &'a str,
            message: &'a str,
        }
        let body = json_bytes(&ErrorBody {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        });
        let mut response = Response::new(ResponseBody::full(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(ALLOW, HeaderValue::from_static("POST"));
        }
        if let Some(after) = self.retry_after {
            // Whole seconds, at least one: `Retry-After: 0` invites a hot loop.
            headers.insert(RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
        }
        response
    }
}

/// `value` as a JSON body: written on the stack, then copied once, so one
/// allocation of the exact size (a `Vec` turned into `Bytes` costs a second
/// one); a body too long for the buffer goes through a `Vec`.
fn json_bytes<T: Serialize>(value: &T) -> Bytes {
    const LEN: usize = 256;
    let mut buf = [0u8; LEN];
    let mut rest = &mut buf[..];
    if serde_json::to_writer(&mut rest, value).is_ok() {
        let len = LEN - rest.len();
        return Bytes::copy_from_slice(&buf[..len]);
    }
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

// ---- acknowledgements ------------------------------------------------------

/// The header on the acknowledgement of a duplicate callback; its value says
/// what recognised it: `done` (the dedup layer: already processed) or
/// `journaled` (a deduplicating journal: already accepted).
pub const DUPLICATE_HEADER: http::header::HeaderName =
    http::header::HeaderName::from_static("taskhook-duplicate");

/// The body of every 2xx a layer writes: `{"status":..,"id":..,"seq":..}`.
#[derive(Serialize)]
struct Ack<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

impl Ack<'_> {
    fn into_response<B>(self, status: StatusCode) -> Response<ResponseBody<B>> {
        let mut response = Response::new(ResponseBody::full(json_bytes(&self)));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// `202 Accepted` from the fast-ack layer: the event is journaled and
/// queued; the handler runs in the background.
///
/// Body: `{"status":"accepted","id":..,"seq":N}` (`id` when known).
pub(crate) fn accepted<B>(task_id: Option<&str>, seq: u64) -> Response<ResponseBody<B>> {
    Ack {
        status: "accepted",
        id: task_id,
        seq: Some(seq),
    }
    .into_response(StatusCode::ACCEPTED)
}

/// `200 OK` for a duplicate callback: the event is safely accepted (it was,
/// the first time), so the provider may stop. `reason` is the value of
/// [`DUPLICATE_HEADER`].
///
/// Body: `{"status":"duplicate","id":..}` (`id` when known).
pub(crate) fn duplicate<B>(
    task_id: Option<&str>,
    reason: &'static str,
) -> Response<ResponseBody<B>> {
    let mut response = Ack {
        status: "duplicate",
        id: task_id,
        seq: None,
    }
    .into_response(StatusCode::OK);
    response
        .headers_mut()
        .insert(DUPLICATE_HEADER, HeaderValue::from_static(reason));
    response
}

// ---- other responses ---------------------------------------------------------

impl Rejection {
    /// Our own programming or configuration error (a layer missing from the
    /// stack or stacked in the wrong order): `500`, never a 4xx, so the
    /// provider retries and a fixed deployment still gets the event.
    pub(crate) fn misconfigured(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl Rejection {
    /// `405 Method Not Allowed` with `Allow: POST`: the provider only ever
    /// POSTs a callback.
    pub(crate) fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: "a callback is a POST".into(),
            retry_after: None,
        }
    }
}

/// A `404 Not Found` with an empty body and no `Content-Type`, byte for byte
/// what axum answers for a path no route matches, so a wrong secret path token
/// is indistinguishable from a URL that does not exist.
#[cfg_attr(not(feature = "verify"), allow(dead_code))]
pub(crate) fn not_found<B>() -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody::full(Bytes::new()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_body_is_the_same_on_the_stack_and_past_it() {
        for len in [0, 10, 200, 240, 256, 1000] {
            let ack = Ack {
                status: "accepted",
                id: Some(&"é\"x".repeat(len)),
                seq: Some(u64::MAX),
            };
            let expected = serde_json::to_vec(&ack).unwrap();
            assert_eq!(json_bytes(&ack), expected, "id of {len} repeats");
        }
    }
}
