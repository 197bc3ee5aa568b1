//! [`Fal`]: fal.ai's queue webhook, once per request.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::json;
use super::{Authenticity, ClientErrors, Profile};
use crate::event::PayloadError;
use crate::{TaskEvent, TaskStatus};

/// How deep the payload is searched for files.
const MAX_DEPTH: usize = 32;

/// fal.ai (`docs.fal.ai/model-apis/model-endpoints/webhooks`): one push
/// when a queued request is done.
///
/// - Task id: `request_id` (the id of the queue API; dedupe on it).
///   `gateway_request_id` (the last attempt's id) stays under
///   [`extra`](TaskEvent::extra).
/// - Status: `status` — `OK` is completed, `ERROR` failed (the raw status
///   keeps the word).
/// - Results: the model's output, `payload`, is searched for file objects:
///   an object with an `http(s)` `url` string and either a `content_type`
///   (`image/*` -> `images`, `video/*` -> `videos`, `audio/*` -> `audios`,
///   another type -> by the URL's extension) or a known key (`images`,
///   `image`, `video`, `videos`, `audio`, `audios`, `audio_file`, `file`,
///   `files`), as in `images[].url`, `video.url`, `audio_file.url`. Data
///   URIs (`sync_mode`) are not listed. The payload itself is kept whole
///   under `extra["payload"]` (seeds, timings, an error's `detail`). Links
///   carry no expiry.
/// - Error: `error` (a string), else `payload_error` (the payload could not
///   be serialized), which also stays under `extra`.
///
/// The contract: final state only; signed with Ed25519 over the request id,
/// user id, timestamp and the body's SHA-256 ([`Authenticity::FalEd25519`]);
/// 10 retries within 2 hours. The docs do not say whether a `4xx` stops
/// them: this profile assumes it is retried ([`ClientErrors::Retry`],
/// unconfirmed).
///
/// ```
/// use bytes::Bytes;
/// use http::HeaderMap;
/// use taskhook::provider::{Fal, Profile};
///
/// let body = Bytes::from_static(br#"{"request_id":"r1","gateway_request_id":"r1","status":"OK",
///     "payload":{"images":[{"url":"https://v3.fal.media/files/a.png","content_type":"image/png"}],"seed":7}}"#);
/// let event = Fal::new().parse(&body, &HeaderMap::new())?;
/// assert_eq!((event.id(), event.raw_status()), ("r1", Some("OK")));
/// assert!(event.is_final());
/// let url = event.urls().next().unwrap();
/// assert_eq!((url.kind(), url.url()), ("images", "https://v3.fal.media/files/a.png"));
/// assert_eq!(event.extra()["payload"]["seed"], 7);
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Fal {
    _private: (),
}

impl Fal {
    /// The profile.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Profile for Fal {
    fn name(&self) -> &str {
        "fal"
    }

    fn parse(&self, body: &Bytes, _headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
        let mut object = json::parse_object(body)?;
        let id = json::take_id(&mut object, "request_id", "request_id")?;
        let mut event = TaskEvent::builder(id);
        if let Some(raw) = json::take_str(&mut object, "status") {
            let status = match raw.as_str() {
                "OK" => TaskStatus::Completed,
                "ERROR" => TaskStatus::Failed,
                other => TaskStatus::from(other),
            };
            event = event.status(status).raw_status(raw);
        }
        let message = json::take_str(&mut object, "error").or_else(|| {
            object
                .get("payload_error")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        if let Some(message) = message {
            event = event.error(message, None);
        }
        if let Some(payload) = object.get("payload") {
            let mut files = Vec::new();
            collect(payload, None, 0, &mut files);
            for (kind, url) in files {
                event = event.output(kind, url, None);
            }
        }
        json::drop_empty(&mut object, "payload");
        json::drop_empty(&mut object, "payload_error");
        json::keep_rest(event, object).build()
    }

    fn authenticity(&self) -> Authenticity {
        Authenticity::FalEd25519
    }

    /// Assumed: the docs do not say what a `4xx` does.
    fn client_errors(&self) -> ClientErrors {
        ClientErrors::Retry
    }

    /// 10 retries within 2 hours.
    fn retry_horizon(&self) -> Duration {
        Duration::from_secs(2 * 60 * 60)
    }
}

/// The media kind a payload key names.
fn kind_of_key(key: &str) -> Option<&'static str> {
    Some(match key {
        "images" | "image" => "images",
        "videos" | "video" => "videos",
        "audios" | "audio" | "audio_file" => "audios",
        "files" | "file" => "files",
        _ => return None,
    })
}

/// Collects the file objects under `value` (found under `key`), in
/// document order.
fn collect<'a>(
    value: &'a Value,
    key: Option<&str>,
    depth: usize,
    files: &mut Vec<(&'static str, &'a str)>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Array(items) => {
            for item in items {
                collect(item, key, depth + 1, files);
            }
        }
        Value::Object(fields) => {
            let url = fields
                .get("url")
                .and_then(Value::as_str)
                .filter(|u| json::is_url(u));
            if let Some(url) = url {
                let content_type = fields.get("content_type").and_then(Value::as_str);
                let kind = content_type
                    .and_then(json::kind_of_content_type)
                    .or_else(|| key.and_then(kind_of_key))
                    .or_else(|| content_type.map(|_| json::kind_of_url(url)));
                if let Some(kind) = kind {
                    files.push((kind, url));
                    return;
                }
            }
            for (key, value) in fields {
                collect(value, Some(key), depth + 1, files);
            }
        }
        _ => {}
    }
}
