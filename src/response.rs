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
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
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
        let body = serde_json::to_vec(&ErrorBody {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        })
        .unwrap_or_default();
        let mut response = Response::new(ResponseBody::full(Bytes::from(body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(after) = self.retry_after {
            // Whole seconds, at least one: `Retry-After: 0` invites a hot loop.
            headers.insert(RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
        }
        response
    }
}

// ---- fast-ack layer (src/fast_ack) ----

impl Rejection {
    /// A programming error of ours, such as a layer missing from the stack:
    /// `500`, so the provider retries and a fixed deployment still gets the
    /// event.
    pub(crate) fn internal(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// `202 Accepted` from the fast-ack layer: the event is journaled and
/// queued; the handler runs in the background.
///
/// Body: `{"status":"accepted","seq":N}` with `"id"` when the task id is
/// known.
pub(crate) fn accepted<B>(task_id: Option<&str>, seq: u64) -> Response<ResponseBody<B>> {
    #[derive(Serialize)]
    struct Accepted<'a> {
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        seq: u64,
    }
    let body = serde_json::to_vec(&Accepted {
        status: "accepted",
        id: task_id,
        seq,
    })
    .unwrap_or_default();
    let mut response = Response::new(ResponseBody::full(Bytes::from(body)));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `200 OK` from the fast-ack layer when a journal that deduplicates by task
/// id already holds the event: nothing new was queued.
///
/// Body: `{"status":"duplicate"}` with `"id"` when the task id is known.
pub(crate) fn already_journaled<B>(task_id: Option<&str>) -> Response<ResponseBody<B>> {
    #[derive(Serialize)]
    struct Duplicate<'a> {
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    }
    let body = serde_json::to_vec(&Duplicate {
        status: "duplicate",
        id: task_id,
    })
    .unwrap_or_default();
    let mut response = Response::new(ResponseBody::full(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
