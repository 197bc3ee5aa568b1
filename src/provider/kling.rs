//! [`Kling`]: Kling's callback protocol, at every status change.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::json::{self, Object};
use super::{Events, Profile};
use crate::event::PayloadError;
use crate::{TaskEvent, TaskStatus};

/// Kling (its "callback protocol", `app.klingai.com` developer docs, read
/// in mirrors): the task object, pushed to `callback_url` whenever its
/// status changes.
///
/// - Task id: `task_id`.
/// - Status: `task_status` — `submitted`, `processing`, `succeed` ->
///   completed, `failed`; the word is the
///   [`raw_status`](TaskEvent::raw_status).
/// - Results: `task_result.images[].url` as images and
///   `task_result.videos[].url` as videos. `task_result` is also kept whole
///   under [`extra`](TaskEvent::extra) for the items' `index`, `id` and
///   `duration`. Kling clears generated files after 30 days (from a time
///   the callback does not state exactly), so no expiry is set.
/// - Error: `task_status_msg` of a failed task (the failure reason, such
///   as a content-moderation refusal); on another status it stays under
///   `extra` if not empty.
/// - `created_at` (milliseconds) is read as the creation time, and
///   `updated_at` as the completion time of a final state; both stay under
///   `extra` as sent too. `external_task_id` (your own id, at the top or in
///   `task_info`) is kept as `extra["external_task_id"]`; `task_info`,
///   `final_unit_deduction` and every other field under their own keys.
///
/// The contract: every status change ([`Events::EveryChange`]); unsigned
/// (protect the route with a path token, an allowlist or a refetch). The
/// docs say nothing of retries or of a `4xx`: this profile assumes a
/// horizon of 1 hour and that a `4xx` loses the push (the default,
/// [`ClientErrors::GiveUp`](super::ClientErrors::GiveUp)).
///
/// ```
/// use bytes::Bytes;
/// use http::HeaderMap;
/// use taskhook::provider::{Kling, Profile};
/// use taskhook::TaskStatus;
///
/// let body = Bytes::from_static(br#"{"task_id":"k1","task_status":"succeed","task_status_msg":"",
///     "created_at":1767225600000,"updated_at":1767225660000,
///     "task_result":{"videos":[{"id":"v1","url":"https://cdn.example/k1.mp4","duration":"5.1"}]}}"#);
/// let event = Kling::new().parse(&body, &HeaderMap::new())?;
/// assert_eq!(event.status(), Some(&TaskStatus::Completed));
/// assert_eq!(event.raw_status(), Some("succeed"));
/// assert_eq!((event.created(), event.completed()), (Some(1767225600), Some(1767225660)));
/// assert_eq!(event.urls().next().unwrap().kind(), "videos");
/// assert_eq!(event.extra()["task_result"]["videos"][0]["duration"], "5.1");
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Kling {
    _private: (),
}

impl Kling {
    /// The profile.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Profile for Kling {
    fn name(&self) -> &str {
        "kling"
    }

    fn parse(&self, body: &Bytes, _headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
        let mut object = json::parse_object(body)?;
        let id = json::take_id(&mut object, "task_id", "task_id")?;
        let mut event = TaskEvent::builder(id);
        let raw = json::take_str(&mut object, "task_status");
        let status = raw.as_deref().map(status);
        if let (Some(status), Some(raw)) = (status.clone(), raw) {
            event = event.status(status).raw_status(raw);
        }
        if status == Some(TaskStatus::Failed) {
            if let Some(message) = json::take_str(&mut object, "task_status_msg") {
                event = event.error(message, None);
            }
        }
        json::drop_empty(&mut object, "task_status_msg");
        if let Some(created) = millis(&object, "created_at") {
            event = event.created(created);
        }
        if status.as_ref().is_some_and(TaskStatus::is_final) {
            if let Some(completed) = millis(&object, "updated_at") {
                event = event.completed(completed);
            }
        }
        if let Some(Value::Object(result)) = object.get("task_result") {
            for (field, kind) in [("images", "images"), ("videos", "videos")] {
                for url in urls(result, field) {
                    event = event.output(kind, url, None);
                }
            }
        }
        let external = json::take_str(&mut object, "external_task_id").or_else(|| {
            object
                .get("task_info")?
                .get("external_task_id")?
                .as_str()
                .map(str::to_owned)
        });
        if let Some(external) = external {
            event = event.extra("external_task_id", Value::String(external));
        }
        json::keep_rest(event, object).build()
    }

    fn events(&self) -> Events {
        Events::EveryChange
    }

    /// Not documented: 1 hour assumed.
    fn retry_horizon(&self) -> Duration {
        Duration::from_secs(60 * 60)
    }
}

/// The normalized status of a `task_status`.
fn status(raw: &str) -> TaskStatus {
    match raw {
        "submitted" => TaskStatus::Submitted,
        "processing" => TaskStatus::Processing,
        "succeed" => TaskStatus::Completed,
        "failed" => TaskStatus::Failed,
        other => json::status_word(other).unwrap_or_else(|| TaskStatus::from(other)),
    }
}

/// A millisecond timestamp at `key`, in seconds.
fn millis(object: &Object, key: &str) -> Option<i64> {
    object.get(key)?.as_i64().map(|ms| ms.div_euclid(1000))
}

/// The `http(s)` URL strings of `result[field][].url`.
fn urls<'a>(result: &'a Object, field: &str) -> impl Iterator<Item = &'a str> + 'a {
    result
        .get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("url")?.as_str())
        .filter(|url| json::is_url(url))
}
