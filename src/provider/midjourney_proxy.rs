//! [`MidjourneyProxy`]: midjourney-proxy's `notifyHook`, and its clones'.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::json::{self, Object};
use super::{ClientErrors, Events, Profile};
use crate::event::PayloadError;
use crate::{TaskEvent, TaskStatus};

/// midjourney-proxy (`novicezk/midjourney-proxy`) and the services that
/// copy its API: the Task, pushed to `notifyHook` at every change of status
/// or progress.
///
/// - Task id: `id`.
/// - Status: `status` — `NOT_START` -> pending, `SUBMITTED` -> submitted,
///   `IN_PROGRESS` -> processing, `FAILURE` -> failed, `SUCCESS` ->
///   completed; the clones' `CANCEL` (trueai-org's fork) -> cancelled, and
///   `MODAL` (waiting for the `/modal` step) is kept as it is, neither
///   running nor final. The word is the
///   [`raw_status`](TaskEvent::raw_status).
/// - Progress: `progress`, `"NN%"` (or a number), capped at 100; one that
///   does not read stays under [`extra`](TaskEvent::extra).
/// - Results: `imageUrl` as an image, and the clones' `videoUrl` as a
///   video, when they are `http(s)` URLs; no expiry (Discord's attachment
///   links do expire, on a clock the Task does not carry).
/// - Error: `failReason`, when not empty.
/// - `submitTime` (milliseconds) is the creation time, `finishTime` the
///   completion time; `action`, `startTime`, `prompt`, `promptEn`,
///   `description`, `state`, `properties`, `buttons` and every other field
///   stay under `extra`.
///
/// The contract: every status or progress change ([`Events::EveryChange`]);
/// unsigned; one attempt, never retried ([`ClientErrors::NeverRetries`],
/// a horizon of 0): a push that fails is lost, so poll for the tasks that
/// go quiet. The default dedup time to live is then the 24-hour floor.
///
/// ```
/// use bytes::Bytes;
/// use http::HeaderMap;
/// use taskhook::provider::{MidjourneyProxy, Profile};
/// use taskhook::TaskStatus;
///
/// let body = Bytes::from_static(br#"{"id":"1767225600123","action":"IMAGINE",
///     "status":"IN_PROGRESS","progress":"42%","imageUrl":null,"failReason":null}"#);
/// let event = MidjourneyProxy::new().parse(&body, &HeaderMap::new())?;
/// assert_eq!(event.status(), Some(&TaskStatus::Processing));
/// assert_eq!((event.raw_status(), event.progress()), (Some("IN_PROGRESS"), Some(42)));
/// assert_eq!(event.extra()["action"], "IMAGINE");
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MidjourneyProxy {
    _private: (),
}

impl MidjourneyProxy {
    /// The profile.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Profile for MidjourneyProxy {
    fn name(&self) -> &str {
        "midjourney-proxy"
    }

    fn parse(&self, body: &Bytes, _headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
        let mut object = json::parse_object(body)?;
        let id = json::take_id(&mut object, "id", "id")?;
        let mut event = TaskEvent::builder(id);
        if let Some(raw) = json::take_str(&mut object, "status") {
            event = event.status(status(&raw)).raw_status(raw);
        }
        if let Some(progress) = take_progress(&mut object) {
            event = event.progress(progress);
        }
        for (field, kind) in [("imageUrl", "images"), ("videoUrl", "videos")] {
            if let Some(url) = take_url(&mut object, field) {
                event = event.output(kind, url, None);
            }
        }
        json::drop_empty(&mut object, "failReason");
        if let Some(reason) = json::take_str(&mut object, "failReason") {
            event = event.error(reason, None);
        }
        if let Some(created) = json::take_millis(&mut object, "submitTime") {
            event = event.created(created);
        }
        match json::take_millis(&mut object, "finishTime") {
            Some(finished) if finished > 0 => event = event.completed(finished),
            _ => {}
        }
        json::keep_rest(event, object).build()
    }

    fn events(&self) -> Events {
        Events::EveryChange
    }

    fn client_errors(&self) -> ClientErrors {
        ClientErrors::NeverRetries
    }

    /// One attempt, no retry.
    fn retry_horizon(&self) -> Duration {
        Duration::ZERO
    }
}

/// The normalized status of a Task's `status`.
fn status(raw: &str) -> TaskStatus {
    match raw {
        "NOT_START" => TaskStatus::Pending,
        "SUBMITTED" => TaskStatus::Submitted,
        "IN_PROGRESS" => TaskStatus::Processing,
        "FAILURE" => TaskStatus::Failed,
        "SUCCESS" => TaskStatus::Completed,
        "CANCEL" => TaskStatus::Cancelled,
        "MODAL" => TaskStatus::from(raw),
        other => json::status_word(other).unwrap_or_else(|| TaskStatus::from(other)),
    }
}

/// Takes `progress` if it reads as a percentage (`"42%"`, `"42"`, `42`).
fn take_progress(object: &mut Object) -> Option<u8> {
    let percent = match object.get("progress")? {
        Value::String(text) => text
            .trim()
            .trim_end_matches('%')
            .trim()
            .parse::<f64>()
            .ok()?,
        Value::Number(n) => n.as_f64()?,
        Value::Null => {
            object.remove("progress");
            return None;
        }
        _ => return None,
    };
    if !percent.is_finite() || percent < 0.0 {
        return None;
    }
    object.remove("progress");
    // In range after the clamp, so the cast is exact.
    Some(percent.min(100.0).round() as u8)
}

/// Takes the `http(s)` URL at `field`; anything else but `null` stays.
fn take_url(object: &mut Object, field: &str) -> Option<String> {
    json::drop_empty(object, field);
    if !object.get(field)?.as_str().is_some_and(json::is_url) {
        return None;
    }
    json::take_str(object, field)
}
