//! [`Replicate`]: the Prediction object, pushed at every change.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::json::{self, Object};
use super::{Authenticity, ClientErrors, Events, Profile};
use crate::event::PayloadError;
use crate::{TaskEvent, TaskStatus};

/// How long Replicate keeps a prediction's output files after it
/// completes.
const OUTPUT_LIFETIME: i64 = 60 * 60;

/// Replicate (`replicate.com/docs/topics/webhooks`): the body is the
/// Prediction, as its "get a prediction" API returns it.
///
/// - Task id: `id`.
/// - Status: `status` — `starting` is pending, `processing` processing,
///   `succeeded` completed, `failed` failed, `canceled` and `aborted` (a
///   deadline passed before it started) cancelled; the word itself is the
///   [`raw_status`](TaskEvent::raw_status).
/// - Results: `output` as a URL string, or the URL strings of an array (or
///   of an object's values). Each URL's media kind is read from its
///   extension (`png`, `jpg`, `jpeg`, `webp`, `gif` -> `images`; `mp4`,
///   `webm`, `mov` -> `videos`; `mp3`, `wav`, `ogg`, `flac`, `m4a` ->
///   `audios`; else `files`). An object output, or one that holds anything
///   but URLs (text, numbers, nested objects), is kept whole under
///   [`extra`](TaskEvent::extra)`["output"]`, its URLs still listed.
/// - Expiry: Replicate deletes output files an hour after the prediction
///   completes, so each URL expires at `completed_at` + 3600 s when
///   `completed_at` is known, else `None`.
/// - `error` (a string) is the error message; `created_at` and
///   `completed_at` (RFC 3339) are read into Unix seconds (kept under
///   `extra` if they do not parse); `logs`, `metrics`, `input`, `version`,
///   `started_at`, `urls` and every other field stay under `extra`.
///
/// The contract: pushes at start, at each new output or log line (at most
/// every 500 ms) and at the end ([`Events::EveryChange`]); signed with
/// Standard Webhooks; only the final push is retried, on a `4xx` too
/// ([`ClientErrors::Retry`]), the last retry about a minute after
/// completion (a horizon of 2 minutes here).
///
/// ```
/// use bytes::Bytes;
/// use http::HeaderMap;
/// use taskhook::provider::{Profile, Replicate};
/// use taskhook::TaskStatus;
///
/// let body = Bytes::from_static(br#"{"id":"p1","status":"succeeded",
///     "output":["https://replicate.delivery/x/out-0.webp"],
///     "completed_at":"2026-05-01T12:00:00Z","metrics":{"predict_time":2.5}}"#);
/// let event = Replicate::new().parse(&body, &HeaderMap::new())?;
/// assert_eq!(event.id(), "p1");
/// assert_eq!(event.status(), Some(&TaskStatus::Completed));
/// assert_eq!(event.raw_status(), Some("succeeded"));
/// let url = event.urls().next().unwrap();
/// assert_eq!((url.kind(), url.expires_at()), ("images", Some(event.completed().unwrap() + 3600)));
/// assert_eq!(event.extra()["metrics"]["predict_time"], 2.5);
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Replicate {
    _private: (),
}

impl Replicate {
    /// The profile.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Profile for Replicate {
    fn name(&self) -> &str {
        "replicate"
    }

    fn parse(&self, body: &Bytes, _headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
        let mut object = json::parse_object(body)?;
        let id = json::take_id(&mut object, "id", "id")?;
        let mut event = TaskEvent::builder(id);
        if let Some(raw) = json::take_str(&mut object, "status") {
            event = event.status(status(&raw)).raw_status(raw);
        }
        if let Some(created) = take_time(&mut object, "created_at") {
            event = event.created(created);
        }
        let completed = take_time(&mut object, "completed_at");
        if let Some(completed) = completed {
            event = event.completed(completed);
        }
        if let Some(message) = json::take_str(&mut object, "error") {
            event = event.error(message, None);
        }
        let expires_at = completed.map(|at| at.saturating_add(OUTPUT_LIFETIME));
        let (urls, only_urls) = match object.get("output") {
            Some(output) => output_urls(output),
            None => (Vec::new(), true),
        };
        for url in urls {
            event = event.output(json::kind_of_url(&url), url, expires_at);
        }
        if only_urls {
            object.remove("output");
        }
        json::keep_rest(event, object).build()
    }

    fn events(&self) -> Events {
        Events::EveryChange
    }

    fn authenticity(&self) -> Authenticity {
        Authenticity::StandardWebhooks
    }

    fn client_errors(&self) -> ClientErrors {
        ClientErrors::Retry
    }

    /// The last retry comes about a minute after completion: 2 minutes.
    fn retry_horizon(&self) -> Duration {
        Duration::from_secs(2 * 60)
    }
}

/// The normalized status of a Prediction's `status`.
fn status(raw: &str) -> TaskStatus {
    match raw {
        "starting" => TaskStatus::Pending,
        "processing" => TaskStatus::Processing,
        "succeeded" => TaskStatus::Completed,
        "failed" => TaskStatus::Failed,
        "canceled" | "aborted" => TaskStatus::Cancelled,
        other => TaskStatus::from(other),
    }
}

/// Takes an RFC 3339 time; one that does not parse stays in `object`.
fn take_time(object: &mut Object, key: &str) -> Option<i64> {
    if matches!(object.get(key), Some(Value::Null)) {
        object.remove(key);
        return None;
    }
    let seconds = json::rfc3339(object.get(key)?.as_str()?)?;
    object.remove(key);
    Some(seconds)
}

/// The URLs of an `output`, and whether it held nothing else (`null`
/// included).
fn output_urls(output: &Value) -> (Vec<String>, bool) {
    let values: Vec<&Value> = match output {
        Value::Null => return (Vec::new(), true),
        Value::Array(items) => items.iter().collect(),
        Value::Object(fields) => fields.values().collect(),
        single => vec![single],
    };
    let urls: Vec<String> = values
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|s| json::is_url(s))
        .map(str::to_owned)
        .collect();
    let only_urls = urls.len() == values.len() && !matches!(output, Value::Object(_));
    (urls, only_urls)
}
