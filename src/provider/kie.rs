//! [`Kie`]: KIE.ai's per-task callbacks, an aggregator of many models.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::json::{self, Object};
use super::{Authenticity, Profile};
use crate::event::PayloadError;
use crate::{TaskEvent, TaskStatus};

/// Where the result URLs of the different models' callbacks are: a path
/// of keys from `data` to an array of URL strings (or one URL string).
const URL_PATHS: &[&[&str]] = &[
    &["info", "resultUrls"],
    &["resultUrls"],
    &["info", "result_urls"],
    &["response", "resultUrls"],
    &["info", "resultImageUrl"],
];

/// KIE.ai (`docs.kie.ai`): one push per task, on success and on failure,
/// `{"code":200,"msg":"..","data":{"taskId":"..",..}}`, whose `data`
/// varies with the model.
///
/// - Task id: `data.taskId`, or `data.task_id`.
/// - Status: `data.state` or `data.status` when it is a known word
///   (`success` -> completed, `fail` -> failed, `waiting`, `queuing` ->
///   pending, `generating` -> processing, and the other common spellings);
///   else `code`: `200` is completed, any other code failed. The
///   [`raw_status`](TaskEvent::raw_status) is the state, or the code as
///   text (`"200"`).
/// - Results: the URLs at `data.info.resultUrls`, `data.resultUrls`,
///   `data.info.result_urls`, `data.response.resultUrls`,
///   `data.info.resultImageUrl`, and the `resultUrls` of the JSON text in
///   `data.resultJson` (the market models), each listed once, kind by
///   extension. KIE keeps generated files for 14 days, counted from a time
///   the callback does not carry, so no expiry is set.
/// - Error (a failed task): `data.failMsg`, `data.errorMessage` or `msg`,
///   with `data.failCode` or `code` as its code.
/// - `data.createTime` and `data.completeTime` (milliseconds) are read
///   into seconds; `code`, `msg` and every other field of `data` are kept
///   under [`extra`](TaskEvent::extra) under their own keys.
///
/// The contract: signed only if you enable it, by HMAC-SHA256 over
/// `taskId.timestamp` ([`Authenticity::KieHmac`]): the body is not covered,
/// so refetch the task to trust its results. A 15 s timeout and duplicate
/// pushes are documented; the retry schedule and what a `4xx` does are not:
/// this profile assumes a horizon of 1 hour and that a `4xx` makes KIE give
/// up (the default, [`ClientErrors::GiveUp`](super::ClientErrors::GiveUp)).
/// The shapes of `data` beyond the task id are read from several models'
/// docs and are not confirmed for every model.
///
/// ```
/// use bytes::Bytes;
/// use http::HeaderMap;
/// use taskhook::provider::{Kie, Profile};
///
/// let body = Bytes::from_static(br#"{"code":200,"msg":"Veo3 video generated successfully.",
///     "data":{"taskId":"veo_1","info":{"resultUrls":["https://tempfile.example/v.mp4"]}}}"#);
/// let event = Kie::new().parse(&body, &HeaderMap::new())?;
/// assert_eq!((event.id(), event.raw_status()), ("veo_1", Some("200")));
/// assert!(event.status().unwrap().is_success());
/// assert_eq!(event.urls().next().unwrap().kind(), "videos");
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Kie {
    _private: (),
}

impl Kie {
    /// The profile.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Profile for Kie {
    fn name(&self) -> &str {
        "kie"
    }

    fn parse(&self, body: &Bytes, _headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
        let mut object = json::parse_object(body)?;
        let mut data = json::take_object(&mut object, "data")
            .ok_or_else(|| PayloadError::shape("no `data` object"))?;
        let id = if data.contains_key("taskId") {
            json::take_id(&mut data, "taskId", "data.taskId")?
        } else {
            json::take_id(&mut data, "task_id", "data.task_id")?
        };
        let mut event = TaskEvent::builder(id);

        let code = object.get("code").and_then(Value::as_i64);
        let state_key = ["state", "status"]
            .into_iter()
            .find(|key| data.get(*key).is_some_and(Value::is_string));
        let state = state_key
            .and_then(|key| data.remove(key))
            .and_then(|value| value.as_str().map(str::to_owned));
        let (status, raw) = match (state, code) {
            (Some(raw), _) if json::status_word(&raw).is_some() => {
                (json::status_word(&raw), Some(raw))
            }
            (state, Some(code)) => {
                let status = if code == 200 {
                    TaskStatus::Completed
                } else {
                    TaskStatus::Failed
                };
                (
                    Some(status),
                    Some(state.unwrap_or_else(|| code.to_string())),
                )
            }
            (Some(raw), None) => (Some(TaskStatus::from(raw.as_str())), Some(raw)),
            (None, None) => (None, None),
        };
        if let Some(status) = status.clone() {
            event = event.status(status);
        }
        if let Some(raw) = raw {
            event = event.raw_status(raw);
        }

        if status == Some(TaskStatus::Failed) {
            let message = ["failMsg", "errorMessage"]
                .into_iter()
                .find_map(|key| data.get(key)?.as_str().filter(|m| !m.is_empty()))
                .or_else(|| object.get("msg").and_then(Value::as_str));
            let code = data
                .get("failCode")
                .filter(|c| !c.is_null())
                .or_else(|| object.get("code"))
                .cloned();
            if let Some(message) = message {
                event = event.error(message, code);
            }
        }

        for url in result_urls(&data) {
            event = event.output(json::kind_of_url(&url), url, None);
        }
        if let Some(created) = json::take_millis(&mut data, "createTime") {
            event = event.created(created);
        }
        if let Some(completed) = json::take_millis(&mut data, "completeTime") {
            event = event.completed(completed);
        }
        let event = json::keep_rest(event, data);
        json::keep_rest(event, object).build()
    }

    fn authenticity(&self) -> Authenticity {
        Authenticity::KieHmac
    }

    /// Not documented: 1 hour assumed.
    fn retry_horizon(&self) -> Duration {
        Duration::from_secs(60 * 60)
    }
}

/// Every result URL of `data`, each once, in the order of [`URL_PATHS`]
/// then `resultJson`.
fn result_urls(data: &Object) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    let mut add = |value: &Value| {
        let found: Vec<&str> = match value {
            Value::String(url) => vec![url.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for url in found {
            if json::is_url(url) && !urls.iter().any(|u| u == url) {
                urls.push(url.to_owned());
            }
        }
    };
    for path in URL_PATHS {
        let mut value = None;
        let mut fields = Some(data);
        for key in *path {
            value = fields.and_then(|f| f.get(*key));
            fields = value.and_then(Value::as_object);
        }
        if let Some(value) = value {
            add(value);
        }
    }
    // The market models send their result as JSON in a string.
    let result_json = data.get("resultJson").and_then(Value::as_str);
    if let Some(Ok(Value::Object(result))) = result_json.map(serde_json::from_str::<Value>) {
        if let Some(value) = result.get("resultUrls") {
            add(value);
        }
    }
    urls
}
