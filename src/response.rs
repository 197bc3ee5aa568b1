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

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::body::ResponseBody;
use crate::event::PayloadError;
use crate::fast_ack::Refusal;

/// The `Retry-After` used when a layer has no better estimate.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Every error code a layer writes, in `{"error":{"code":..,"message":..}}`,
/// with the status it goes with. The one list: a new rejection adds its code
/// here, and a constructor on [`Rejection`] below.
///
/// | code | status | meaning |
/// |---|---|---|
/// | `malformed_json`, `invalid_utf8`, `nesting_too_deep`, `not_an_object`, `invalid_id`, `unexpected_shape` | 400 | the body is not a task event ([`PayloadError::code`](crate::event::PayloadError::code)) |
/// | `payload_too_large` | 413 | the body is over the payload layer's limit |
/// | `method_not_allowed` | 405 | not a `POST` (with `Allow: POST`) |
/// | `forbidden` | 403 | the client address is outside the allowlist |
/// | `not_confirmed` | 403 | the provider's API contradicts the push |
/// | `invalid_signature` | 401 | a missing, bad or expired signature |
/// | `invalid_secret` | 401 | a missing or wrong static secret header (or bearer token) |
/// | `body_unreadable` | 503 | the body failed while being read |
/// | `queue_full`, `starting`, `shutting_down`, `journal_unavailable`, `accept_failed` | 503 | fast-ack could not accept the event now |
/// | `duplicate_in_flight`, `dedup_store_unavailable` | 503 | dedup could not decide now |
/// | `confirmation_timeout`, `provider_unavailable`, `not_confirmed_yet` | 503 | the provider could not confirm the push now |
/// | `signing_keys_unavailable` | 503 | the provider's public keys (a JWKS) could not be fetched, so a signature could not be checked now |
/// | `request_timeout` | 503 | the request did not arrive in time (the server) |
/// | `upstream_status`, `upstream_timeout`, `upstream_unreachable`, `upstream_connection_error` | 503 | the forwarding service could not deliver the event now (to fast-ack's worker, which retries; `Retry-After` only when the upstream sent one) |
/// | `payload_layer_missing`, `dedup_behind_fast_ack`, `fast_ack_layer_reused`, `no_tokio_runtime`, `peer_address_missing` | 500 | our misconfiguration, logged at `ERROR`; the provider retries |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// The parser's code for a body that is not a task event.
    Payload(&'static str),
    PayloadTooLarge,
    MethodNotAllowed,
    Forbidden,
    NotConfirmed,
    InvalidSignature,
    InvalidSecret,
    BodyUnreadable,
    QueueFull,
    Starting,
    ShuttingDown,
    JournalUnavailable,
    AcceptFailed,
    DuplicateInFlight,
    DedupStoreUnavailable,
    ConfirmationTimeout,
    ProviderUnavailable,
    NotConfirmedYet,
    SigningKeysUnavailable,
    RequestTimeout,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnreachable,
    UpstreamConnectionError,
    PayloadLayerMissing,
    DedupBehindFastAck,
    FastAckLayerReused,
    NoTokioRuntime,
    PeerAddressMissing,
}

impl Code {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Payload(code) => code,
            Self::PayloadTooLarge => "payload_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Forbidden => "forbidden",
            Self::NotConfirmed => "not_confirmed",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidSecret => "invalid_secret",
            Self::BodyUnreadable => "body_unreadable",
            Self::QueueFull => "queue_full",
            Self::Starting => "starting",
            Self::ShuttingDown => "shutting_down",
            Self::JournalUnavailable => "journal_unavailable",
            Self::AcceptFailed => "accept_failed",
            Self::DuplicateInFlight => "duplicate_in_flight",
            Self::DedupStoreUnavailable => "dedup_store_unavailable",
            Self::ConfirmationTimeout => "confirmation_timeout",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::NotConfirmedYet => "not_confirmed_yet",
            Self::SigningKeysUnavailable => "signing_keys_unavailable",
            Self::RequestTimeout => "request_timeout",
            Self::UpstreamStatus => "upstream_status",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamUnreachable => "upstream_unreachable",
            Self::UpstreamConnectionError => "upstream_connection_error",
            Self::PayloadLayerMissing => "payload_layer_missing",
            Self::DedupBehindFastAck => "dedup_behind_fast_ack",
            Self::FastAckLayerReused => "fast_ack_layer_reused",
            Self::NoTokioRuntime => "no_tokio_runtime",
            Self::PeerAddressMissing => "peer_address_missing",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::Payload(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Forbidden | Self::NotConfirmed => StatusCode::FORBIDDEN,
            Self::InvalidSignature | Self::InvalidSecret => StatusCode::UNAUTHORIZED,
            Self::BodyUnreadable
            | Self::QueueFull
            | Self::Starting
            | Self::ShuttingDown
            | Self::JournalUnavailable
            | Self::AcceptFailed
            | Self::DuplicateInFlight
            | Self::DedupStoreUnavailable
            | Self::ConfirmationTimeout
            | Self::ProviderUnavailable
            | Self::NotConfirmedYet
            | Self::SigningKeysUnavailable
            | Self::RequestTimeout
            | Self::UpstreamStatus
            | Self::UpstreamTimeout
            | Self::UpstreamUnreachable
            | Self::UpstreamConnectionError => StatusCode::SERVICE_UNAVAILABLE,
            Self::PayloadLayerMissing
            | Self::DedupBehindFastAck
            | Self::FastAckLayerReused
            | Self::NoTokioRuntime
            | Self::PeerAddressMissing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A response written by one of our layers instead of the inner service's:
/// made by one constructor per kind below, so its status, code and
/// `Retry-After` always agree with the policy.
#[derive(Debug)]
pub(crate) struct Rejection {
    code: Code,
    message: Cow<'static, str>,
    retry_after: Option<Duration>,
}

impl Rejection {
    fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        let status = code.status();
        debug_assert!(status.is_client_error() || status.is_server_error());
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A transient failure of ours: `503` with `Retry-After`, so the provider
    /// retries.
    fn unavailable(code: Code, message: &'static str, retry_after: Duration) -> Self {
        debug_assert_eq!(code.status(), StatusCode::SERVICE_UNAVAILABLE);
        Self {
            retry_after: Some(retry_after),
            ..Self::new(code, message)
        }
    }

    /// Our own programming or configuration error (a layer missing from the
    /// stack or in the wrong order): `500`, never a 4xx, so the provider
    /// retries and a fixed deployment still gets the event. Logged at
    /// `ERROR` here, once per request.
    fn misconfigured(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        debug_assert_eq!(code.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let rejection = Self::new(code, message);
        tracing::error!(code = code.as_str(), "{}", rejection.message);
        rejection
    }

    // ---- input that can never succeed: 4xx -----------------------------------

    /// The body is not a task event: `400`, with the parser's code.
    pub(crate) fn bad_payload(error: &PayloadError) -> Self {
        Self::new(Code::Payload(error.code()), error.to_string())
    }

    /// The body is over the payload layer's limit: `413`.
    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            Code::PayloadTooLarge,
            format!("the callback body is larger than {limit} bytes"),
        )
    }

    /// `405 Method Not Allowed` with `Allow: POST`: the provider only ever
    /// POSTs a callback.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(Code::MethodNotAllowed, "a callback is a POST")
    }

    /// The client address is outside the allowlist: `403`.
    #[cfg_attr(not(feature = "verify"), allow(dead_code))]
    pub(crate) fn forbidden_address() -> Self {
        Self::new(Code::Forbidden, "the client address is not allowed")
    }

    /// The provider's API contradicts the push: `403`.
    #[cfg_attr(not(feature = "verify"), allow(dead_code))]
    pub(crate) fn not_confirmed() -> Self {
        Self::new(
            Code::NotConfirmed,
            "the provider does not confirm this callback",
        )
    }

    /// A missing, bad or expired signature: `401`.
    #[cfg_attr(not(feature = "verify"), allow(dead_code))]
    pub(crate) fn invalid_signature(reason: &'static str) -> Self {
        Self::new(Code::InvalidSignature, reason)
    }

    /// A missing or wrong static secret header or bearer token: `401`. The
    /// message never says which, nor anything of the secret.
    #[cfg_attr(not(feature = "verify"), allow(dead_code))]
    pub(crate) fn invalid_secret() -> Self {
        Self::new(
            Code::InvalidSecret,
            "the request does not carry the shared secret",
        )
    }

    // ---- transient failures of ours: 503 + Retry-After -----------------------

    /// The body failed while being read (a reset connection, a read timeout
    /// of an outer layer).
    pub(crate) fn body_unreadable() -> Self {
        Self::unavailable(
            Code::BodyUnreadable,
            "the callback body could not be read",
            DEFAULT_RETRY_AFTER,
        )
    }

    /// Why fast-ack did not accept an event.
    pub(crate) fn refused(refusal: &Refusal, retry_after: Duration) -> Self {
        let (code, message) = match refusal {
            Refusal::Full => (
                Code::QueueFull,
                "too many events are waiting to be processed",
            ),
            Refusal::Starting => (
                Code::Starting,
                "journaled events are being replayed; new events are not accepted yet",
            ),
            Refusal::ShuttingDown => (Code::ShuttingDown, "the receiver is shutting down"),
            Refusal::Journal(_) => (Code::JournalUnavailable, "the event could not be journaled"),
        };
        Self::unavailable(code, message, retry_after)
    }

    /// Accepting the event failed (the journal panicked).
    pub(crate) fn accept_failed(retry_after: Duration) -> Self {
        Self::unavailable(
            Code::AcceptFailed,
            "the event could not be accepted",
            retry_after,
        )
    }

    /// A duplicate of a task still in flight after the wait bound.
    pub(crate) fn duplicate_in_flight(retry_after: Duration) -> Self {
        Self::unavailable(
            Code::DuplicateInFlight,
            "a callback for this task is being processed; retry later",
            retry_after,
        )
    }

    /// The dedup store failed.
    pub(crate) fn dedup_store_unavailable(retry_after: Duration) -> Self {
        Self::unavailable(
            Code::DedupStoreUnavailable,
            "the deduplication store is unavailable; retry later",
            retry_after,
        )
    }

    /// The provider did not answer the confirmation in time.
    #[cfg_attr(not(feature = "verify"), allow(dead_code))]
    pub(crate) fn confirmation_timeout(retry_after: Duration) -> Self {
        Self::unavailable(
            Code::ConfirmationTimeout,
            "the task could not be confirmed in time",
            retry_after,
        )
    }

    /// The provider's API failed (or refused our key).
    #[cfg_attr(not(feature = "verify"), allow(dead_code))]
    pub(crate) fn provider_unavailable(retry_after: Duration) -> Self {
        Self::unavailable(
            Code::ProviderUnavailable,
            "the task could not be confirmed",
            retry_after,
        )
    }

    /// The provider's API does not show the pushed state yet.
    #[cfg_attr(not(feature = "verify"), allow(dead_code))]
    pub(crate) fn not_confirmed_yet(retry_after: Duration) -> Self {
        Self::unavailable(
            Code::NotConfirmedYet,
            "the provider does not show this state yet",
            retry_after,
        )
    }

    /// The provider's public keys could not be fetched (and none cached
    /// verifies the signature): a signature we cannot check now is our
    /// problem, not the sender's.
    #[cfg_attr(not(feature = "verify"), allow(dead_code))]
    pub(crate) fn signing_keys_unavailable(retry_after: Duration) -> Self {
        Self::unavailable(
            Code::SigningKeysUnavailable,
            "the provider's signing keys could not be fetched; retry later",
            retry_after,
        )
    }

    /// The request (its body included) did not arrive in time.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn request_timeout(retry_after: Duration) -> Self {
        Self::unavailable(
            Code::RequestTimeout,
            "the request was not complete in time",
            retry_after,
        )
    }

    // ---- the forwarding service: 503 to fast-ack's worker -----------------------

    /// A failed delivery to the upstream, answered to fast-ack's worker
    /// (not to the provider): `503`, so the worker retries, with a
    /// `Retry-After` only when the upstream sent one, because the worker
    /// waits the larger of its backoff and a `Retry-After` (a default one
    /// would override the backoff).
    fn upstream(code: Code, message: String, retry_after: Option<Duration>) -> Self {
        debug_assert_eq!(code.status(), StatusCode::SERVICE_UNAVAILABLE);
        Self {
            retry_after,
            ..Self::new(code, message)
        }
    }

    /// The upstream answered a status that asks for a retry (`5xx`, `408`,
    /// `429`, a redirect, or a `4xx` the service retries); `excerpt` is the
    /// start of its body.
    #[cfg_attr(not(feature = "forward"), allow(dead_code))]
    pub(crate) fn upstream_status(
        status: StatusCode,
        excerpt: &str,
        retry_after: Option<Duration>,
    ) -> Self {
        let mut message = format!("the upstream answered {status}");
        if status.is_redirection() {
            message.push_str(" (a redirect is not followed: configure the final URL)");
        }
        if !excerpt.is_empty() {
            message.push_str(": ");
            message.push_str(excerpt);
        }
        Self::upstream(Code::UpstreamStatus, message, retry_after)
    }

    /// The upstream did not answer within `timeout`.
    #[cfg_attr(not(feature = "forward"), allow(dead_code))]
    pub(crate) fn upstream_timeout(timeout: Duration) -> Self {
        Self::upstream(
            Code::UpstreamTimeout,
            format!("the upstream did not answer within {timeout:?}"),
            None,
        )
    }

    /// No connection to the upstream (refused, no route, name not resolved).
    #[cfg_attr(not(feature = "forward"), allow(dead_code))]
    pub(crate) fn upstream_unreachable(error: &str) -> Self {
        Self::upstream(
            Code::UpstreamUnreachable,
            format!("the upstream is unreachable: {error}"),
            None,
        )
    }

    /// The connection to the upstream failed during the exchange (reset,
    /// closed before the answer, a malformed answer).
    #[cfg_attr(not(feature = "forward"), allow(dead_code))]
    pub(crate) fn upstream_connection_error(error: &str) -> Self {
        Self::upstream(
            Code::UpstreamConnectionError,
            format!("the exchange with the upstream failed: {error}"),
            None,
        )
    }

    // ---- our misconfiguration: 500 ---------------------------------------------

    /// `layer` needs what the payload layer puts in the extensions, and it
    /// is not there: the payload layer is missing or behind `layer`.
    pub(crate) fn payload_layer_missing(layer: &'static str) -> Self {
        Self::misconfigured(
            Code::PayloadLayerMissing,
            format!(
                "`{layer}` found no parsed event in the request: apply `taskhook::PayloadLayer` \
                 in front of it, or build the stack with `taskhook::CallbackStack`"
            ),
        )
    }

    /// The dedup layer is behind the fast-ack layer: every duplicate was
    /// answered `202` and journaled before it got there.
    pub(crate) fn dedup_behind_fast_ack() -> Self {
        Self::misconfigured(
            Code::DedupBehindFastAck,
            "`DedupLayer` is behind `FastAckLayer`, so every duplicate is journaled and queued: \
             put it in front (payload, dedup, fast-ack), or build the stack with \
             `taskhook::CallbackStack`",
        )
    }

    /// A service made by a second `layer` call on one `FastAckLayer`.
    pub(crate) fn fast_ack_layer_reused() -> Self {
        Self::misconfigured(Code::FastAckLayerReused, FAST_ACK_LAYER_REUSED)
    }

    /// Fast-ack was called outside a tokio runtime.
    pub(crate) fn no_tokio_runtime() -> Self {
        Self::misconfigured(Code::NoTokioRuntime, "FastAck must run on a tokio runtime")
    }

    /// The IP allowlist cannot tell the client's address.
    #[cfg_attr(not(feature = "verify"), allow(dead_code))]
    pub(crate) fn peer_address_missing() -> Self {
        Self::misconfigured(
            Code::PeerAddressMissing,
            "the server cannot tell the client address: serve with axum's \
             `into_make_service_with_connect_info`, `taskhook::server`, or insert \
             `taskhook::verify::PeerAddr`",
        )
    }

    /// The status of the answer.
    pub(crate) fn status(&self) -> StatusCode {
        self.code.status()
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
        let status = self.status();
        let body = json_bytes(&ErrorBody {
            error: Detail {
                code: self.code.as_str(),
                message: &self.message,
            },
        });
        let mut response = Response::new(ResponseBody::full(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(ALLOW, HeaderValue::from_static("POST"));
        }
        if let Some(after) = self.retry_after {
            // Whole seconds, at least one: `Retry-After: 0` invites a hot loop.
            headers.insert(RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
        }
        response
    }
}

/// What a service made by a second `FastAckLayer::layer` call answers, and
/// what that call logs.
pub(crate) const FAST_ACK_LAYER_REUSED: &str = "this FastAckLayer already runs another service: \
    axum's `Router::layer` and `MethodRouter::layer` (`post(handler).layer(..)`) apply a \
    layer to every route and to the fallback; build the stack once with \
    `taskhook::CallbackStack` and mount it with `Router::route_service`";

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
/// what recognised it: `done` (the dedup layer: already processed),
/// `journaled` (a deduplicating journal: already accepted) or `progress`
/// (the progress layer: an intermediate state already handled).
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

/// The header on the `200` of a callback answered and not processed, whose
/// value says why: `intermediate` (a state before the final one, with no
/// progress handler), `regression` (an intermediate state that came after
/// the task's final one was accepted) or `progress_failed` (the progress
/// handler failed on it). See [`progress`](crate::progress).
pub const IGNORED_HEADER: http::header::HeaderName =
    http::header::HeaderName::from_static("taskhook-ignored");

/// `200 OK` for an intermediate event the progress layer does not pass on:
/// it is no result to keep, and a retry would change nothing. `reason` is
/// the value of [`IGNORED_HEADER`].
///
/// Body: `{"status":"ignored","id":..}`.
pub(crate) fn ignored<B>(task_id: &str, reason: &'static str) -> Response<ResponseBody<B>> {
    let mut response = Ack {
        status: "ignored",
        id: Some(task_id),
        seq: None,
    }
    .into_response(StatusCode::OK);
    response
        .headers_mut()
        .insert(IGNORED_HEADER, HeaderValue::from_static(reason));
    response
}

/// `200 OK` for an intermediate event the progress handler took.
///
/// Body: `{"status":"progress","id":..}`.
pub(crate) fn progress<B>(task_id: &str) -> Response<ResponseBody<B>> {
    Ack {
        status: "progress",
        id: Some(task_id),
        seq: None,
    }
    .into_response(StatusCode::OK)
}

// ---- other responses ---------------------------------------------------------

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
    fn each_kind_of_rejection_has_its_own_code_and_the_policys_status() {
        let after = Duration::from_secs(7);
        let kinds = [
            Rejection::payload_too_large(10),
            Rejection::method_not_allowed(),
            Rejection::forbidden_address(),
            Rejection::not_confirmed(),
            Rejection::invalid_signature("bad"),
            Rejection::invalid_secret(),
            Rejection::body_unreadable(),
            Rejection::refused(&Refusal::Full, after),
            Rejection::refused(&Refusal::Starting, after),
            Rejection::refused(&Refusal::ShuttingDown, after),
            Rejection::refused(
                &Refusal::Journal(crate::fast_ack::journal::JournalError::other("x")),
                after,
            ),
            Rejection::accept_failed(after),
            Rejection::duplicate_in_flight(after),
            Rejection::dedup_store_unavailable(after),
            Rejection::confirmation_timeout(after),
            Rejection::provider_unavailable(after),
            Rejection::not_confirmed_yet(after),
            Rejection::signing_keys_unavailable(after),
            Rejection::request_timeout(after),
            Rejection::upstream_status(StatusCode::BAD_GATEWAY, "down", Some(after)),
            Rejection::upstream_timeout(after).with_retry_after(after),
            Rejection::upstream_unreachable("refused").with_retry_after(after),
            Rejection::upstream_connection_error("reset").with_retry_after(after),
            Rejection::payload_layer_missing("DedupLayer"),
            Rejection::dedup_behind_fast_ack(),
            Rejection::fast_ack_layer_reused(),
            Rejection::no_tokio_runtime(),
            Rejection::peer_address_missing(),
        ];
        let mut codes = std::collections::HashSet::new();
        for rejection in kinds {
            let code = rejection.code.as_str();
            assert!(codes.insert(code), "{code} twice");
            let status = rejection.status();
            let response = rejection.into_response::<String>();
            assert_eq!(response.status(), status, "{code}");
            // 503 always says when to retry; nothing else does.
            assert_eq!(
                response.headers().contains_key(RETRY_AFTER),
                status == StatusCode::SERVICE_UNAVAILABLE,
                "{code}"
            );
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}"
            );
        }
    }

    impl Rejection {
        fn with_retry_after(mut self, after: Duration) -> Self {
            self.retry_after = Some(after);
            self
        }
    }

    #[test]
    fn an_upstream_failure_says_when_to_retry_only_if_the_upstream_did() {
        for rejection in [
            Rejection::upstream_status(StatusCode::INTERNAL_SERVER_ERROR, "", None),
            Rejection::upstream_timeout(Duration::from_secs(30)),
            Rejection::upstream_unreachable("connection refused"),
            Rejection::upstream_connection_error("connection reset"),
        ] {
            let response = rejection.into_response::<String>();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(!response.headers().contains_key(RETRY_AFTER));
        }
        let response = Rejection::upstream_status(
            StatusCode::MOVED_PERMANENTLY,
            "elsewhere",
            Some(Duration::from_secs(7)),
        )
        .into_response::<String>();
        assert_eq!(response.headers()[RETRY_AFTER], "7");
        let message =
            Rejection::upstream_status(StatusCode::MOVED_PERMANENTLY, "elsewhere", None).message;
        assert_eq!(
            message,
            "the upstream answered 301 Moved Permanently (a redirect is not followed: \
             configure the final URL): elsewhere"
        );
    }

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
