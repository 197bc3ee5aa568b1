//! [`StandardWebhooks`]: any provider that sends Standard Webhooks events.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::json::{self, Object};
use super::{Authenticity, ClientErrors, Profile};
use crate::event::{PayloadError, TaskEventBuilder};
use crate::{TaskEvent, TaskStatus};

/// The fields of `data` read as result URLs, with the media kind each
/// implies (`None`: from the URL's extension).
const OUTPUT_FIELDS: &[(&str, Option<&str>)] = &[
    ("output", None),
    ("outputs", None),
    ("url", None),
    ("urls", None),
    ("video_uri", Some("videos")),
];

/// A generic profile for a provider that signs with Standard Webhooks
/// (`standardwebhooks.com`) and sends the spec's payload shape,
/// `{"type":"..","timestamp":"..","data":{..}}`: Google's Gemini API
/// project webhooks, for one, or your own provider.
///
/// - Task id: `data.id` if present, else the `webhook-id` header (the
///   message id: then every message is its own task, which still dedupes
///   the provider's retries of one message). A `data.id` that is not a
///   string is an error.
/// - Status: `data.status` if it is a string, read by common spellings
///   (`succeeded`, `success`, `completed`, `done` -> completed; `failed`,
///   `error` -> failed; `canceled`, `cancelled` -> cancelled;
///   `processing`, `running`, `in_progress` -> processing; `queued`,
///   `pending`, `starting` -> pending; another word kept as it is), else
///   from the type's last part as for [`OpenAi`](super::OpenAi)
///   (`batch.succeeded` -> completed, `batch.expired` -> failed). The
///   [`raw_status`](TaskEvent::raw_status) is the word it came from.
/// - Results: the strings (or arrays of strings) at `data.output`,
///   `data.outputs`, `data.url`, `data.urls` that are `http(s)` URLs, kind
///   by extension, and `data.video_uri` (Gemini's `video.generated`) as a
///   video; no expiry.
/// - Error: `data.error`, a string or an object's `message` (and `code`).
/// - [`extra`](TaskEvent::extra): `type`, `timestamp`, the whole `data`,
///   the `webhook-id` header as `webhook_id`, and any other field.
///
/// The contract: signed with Standard Webhooks; a `4xx` is taken to be
/// retried ([`ClientErrors::Retry`]) and the horizon is 24 hours — both
/// differ between providers (OpenAI retries for 72 hours): prefer a
/// provider's own profile, or wrap this one to change them.
///
/// ```
/// use bytes::Bytes;
/// use http::HeaderMap;
/// use taskhook::provider::{Profile, StandardWebhooks};
/// use taskhook::TaskStatus;
///
/// let body = Bytes::from_static(br#"{"type":"video.generated","timestamp":"2026-05-01T12:00:00Z",
///     "data":{"id":"op_1","video_uri":"https://storage.example/v/op_1.mp4"}}"#);
/// let event = StandardWebhooks::new().parse(&body, &HeaderMap::new())?;
/// assert_eq!(event.id(), "op_1");
/// assert_eq!(event.raw_status(), Some("video.generated"));
/// assert_eq!(event.urls().next().unwrap().kind(), "videos");
///
/// // No `data.id`: the message id names the task.
/// let mut headers = HeaderMap::new();
/// headers.insert("webhook-id", "msg_2".parse().unwrap());
/// let body = Bytes::from_static(br#"{"type":"batch.succeeded","timestamp":"2026-05-01T12:00:00Z","data":{}}"#);
/// let event = StandardWebhooks::new().parse(&body, &headers)?;
/// assert_eq!((event.id(), event.status()), ("msg_2", Some(&TaskStatus::Completed)));
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardWebhooks {
    _private: (),
}

impl StandardWebhooks {
    /// The profile.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Profile for StandardWebhooks {
    fn name(&self) -> &str {
        "standard-webhooks"
    }

    fn parse(&self, body: &Bytes, headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
        let mut object = json::parse_object(body)?;
        let data = match object.get("data") {
            Some(Value::Object(data)) => Some(data),
            None | Some(Value::Null) => None,
            Some(_) => return Err(PayloadError::shape("`data` is not an object")),
        };
        let message_id = headers
            .get("webhook-id")
            .and_then(|value| value.to_str().ok());
        let id = match data.and_then(|data| data.get("id")) {
            Some(Value::String(id)) => id.clone(),
            Some(_) => return Err(PayloadError::shape("`data.id` is not a string")),
            None => message_id
                .ok_or_else(|| PayloadError::shape("no `data.id` and no `webhook-id` header"))?
                .to_owned(),
        };
        let mut event = TaskEvent::builder(id);
        let event_type = object.get("type").and_then(Value::as_str);
        let data_status = data
            .and_then(|data| data.get("status"))
            .and_then(Value::as_str);
        if let Some(raw) = data_status {
            let status = json::status_word(raw).unwrap_or_else(|| TaskStatus::from(raw));
            event = event.status(status).raw_status(raw);
        } else if let Some(raw) = event_type {
            let status = json::status_of_type(raw).unwrap_or_else(|| TaskStatus::from(raw));
            event = event.status(status).raw_status(raw);
        }
        if let Some(data) = data {
            event = read_data(event, data);
        }
        if let Some(message_id) = message_id {
            event = event.extra("webhook_id", Value::String(message_id.to_owned()));
        }
        // `data` stays whole under extra, as every other top-level field.
        json::drop_empty(&mut object, "data");
        json::keep_rest(event, object).build()
    }

    fn authenticity(&self) -> Authenticity {
        Authenticity::StandardWebhooks
    }

    /// Assumed: providers differ.
    fn client_errors(&self) -> ClientErrors {
        ClientErrors::Retry
    }

    /// 24 hours (Gemini's, from a secondary source); providers differ.
    fn retry_horizon(&self) -> Duration {
        Duration::from_secs(24 * 60 * 60)
    }
}

/// Reads the results and the error of `data`.
fn read_data(mut event: TaskEventBuilder, data: &Object) -> TaskEventBuilder {
    for (field, kind) in OUTPUT_FIELDS {
        let urls: Vec<&str> = match data.get(*field) {
            Some(Value::String(url)) => vec![url.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        for url in urls.into_iter().filter(|url| json::is_url(url)) {
            event = event.output(kind.unwrap_or_else(|| json::kind_of_url(url)), url, None);
        }
    }
    let (message, code) = match data.get("error") {
        Some(Value::String(message)) => (Some(message.as_str()), None),
        Some(Value::Object(error)) => (
            error.get("message").and_then(Value::as_str),
            error.get("code").cloned(),
        ),
        _ => (None, None),
    };
    if let Some(message) = message {
        event = event.error(message, code);
    }
    event
}
