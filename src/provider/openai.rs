//! [`OpenAi`]: OpenAI's thin webhook events.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::json;
use super::{Authenticity, ClientErrors, Profile};
use crate::event::PayloadError;
use crate::{TaskEvent, TaskStatus};

/// OpenAI (`developers.openai.com/api/docs/guides/webhooks`): a thin event
/// per finished object, `{"id":"evt_..","object":"event",
/// "type":"response.completed","created_at":..,"data":{"id":"resp_.."}}`.
///
/// - Task id: `data.id`, the object the event is about (a response, a
///   batch, a fine-tuning job, a video). The event's own `id` is kept as
///   [`extra`](TaskEvent::extra)`["event_id"]`; the other fields of `data`,
///   if any, as `extra["data"]`.
/// - Status: from the type's last part — `completed`, `succeeded` ->
///   completed; `failed`, `incomplete`, `expired` -> failed; `cancelled`,
///   `canceled` -> cancelled; another type (`realtime.call.incoming`) is
///   kept as it is. The [`raw_status`](TaskEvent::raw_status) is the
///   whole type.
/// - `created_at` (Unix seconds: when the object reached that state) stays
///   under `extra`, and is also the [`completed`](TaskEvent::completed)
///   time of a completed object.
/// - No results: the event is thin ([`is_thin`](Profile::is_thin)), the
///   object must be fetched with the API.
///
/// The contract: one endpoint per project; signed with Standard Webhooks;
/// any answer but a `2xx` (a `3xx` too) is retried with backoff for up to
/// 72 hours, at least once and in no set order.
///
/// ```
/// use bytes::Bytes;
/// use http::HeaderMap;
/// use taskhook::provider::{OpenAi, Profile};
/// use taskhook::TaskStatus;
///
/// let body = Bytes::from_static(br#"{"id":"evt_1","object":"event","type":"batch.expired",
///     "created_at":1767225600,"data":{"id":"batch_1"}}"#);
/// let event = OpenAi::new().parse(&body, &HeaderMap::new())?;
/// assert_eq!(event.id(), "batch_1");
/// assert_eq!(event.status(), Some(&TaskStatus::Failed));
/// assert_eq!(event.raw_status(), Some("batch.expired"));
/// assert_eq!(event.extra()["event_id"], "evt_1");
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAi {
    _private: (),
}

impl OpenAi {
    /// The profile.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Profile for OpenAi {
    fn name(&self) -> &str {
        "openai"
    }

    fn parse(&self, body: &Bytes, _headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
        let mut object = json::parse_object(body)?;
        let mut data = json::take_object(&mut object, "data")
            .ok_or_else(|| PayloadError::shape("no `data` object"))?;
        let id = json::take_id(&mut data, "id", "data.id")?;
        let mut event = TaskEvent::builder(id);
        if let Some(event_type) = json::take_str(&mut object, "type") {
            let status = status(&event_type);
            if status == TaskStatus::Completed {
                if let Some(at) = object.get("created_at").and_then(Value::as_i64) {
                    event = event.completed(at);
                }
            }
            event = event.status(status).raw_status(event_type);
        }
        if let Some(event_id) = json::take_str(&mut object, "id") {
            event = event.extra("event_id", Value::String(event_id));
        }
        if !data.is_empty() {
            event = event.extra("data", Value::Object(data));
        }
        json::keep_rest(event, object).build()
    }

    fn authenticity(&self) -> Authenticity {
        Authenticity::StandardWebhooks
    }

    fn client_errors(&self) -> ClientErrors {
        ClientErrors::Retry
    }

    /// Retried for up to 72 hours.
    fn retry_horizon(&self) -> Duration {
        Duration::from_secs(72 * 60 * 60)
    }

    fn is_thin(&self) -> bool {
        true
    }
}

/// The normalized status of an event type.
fn status(event_type: &str) -> TaskStatus {
    match event_type.rsplit('.').next().unwrap_or_default() {
        "completed" | "succeeded" => TaskStatus::Completed,
        "failed" | "incomplete" | "expired" => TaskStatus::Failed,
        "cancelled" | "canceled" => TaskStatus::Cancelled,
        _ => TaskStatus::from(event_type),
    }
}
