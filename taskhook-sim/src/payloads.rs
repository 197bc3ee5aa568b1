//! The bodies each provider pushes, built from a task kind (the shapes of
//! their docs, the values invented), and where each puts its task id and
//! result URLs.

use serde_json::{json, Map, Value};

use super::provider::Provider;
use super::workload::{apimart, crockford26, ulid_like, Rng, TaskKind, BASE_UNIX_SECS};

/// A generated task before it becomes a [`Task`](crate::Task): its id, its
/// intermediate bodies in order, its final body and result URLs.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) id: String,
    pub(crate) intermediates: Vec<Value>,
    pub(crate) last: Value,
    pub(crate) urls: Vec<String>,
}

/// Milliseconds the generated tasks are created from.
const BASE_MILLIS: u64 = BASE_UNIX_SECS as u64 * 1000;

/// The prompt every generated task was given.
const PROMPT: &str = "a lighthouse at dusk";

/// Builds a task of `kind` for `provider`, the `index`th of its workload.
pub(crate) fn build(provider: Provider, kind: TaskKind, index: u64, rng: &mut Rng) -> Built {
    match provider {
        Provider::Apimart => apimart(kind, index, rng),
        Provider::Replicate => replicate(kind, index, rng),
        Provider::Fal => fal(kind, index, rng),
        Provider::OpenAi => openai(kind, index, rng),
        Provider::StandardWebhooks => standard_webhooks(kind, index, rng),
        Provider::Kie => kie(kind, index, rng),
        Provider::Kling => kling(kind, index, rng),
        Provider::MidjourneyProxy => midjourney_proxy(kind, index, rng),
    }
}

/// A result file's URL: `https://cdn.example.com/<provider>/<id>/<n>.<ext>`.
fn cdn(provider: Provider, id: &str, n: usize, ext: &str) -> String {
    format!("https://cdn.example.com/{}/{id}/{n}.{ext}", provider.name())
}

/// `n` lower-case hex digits.
fn rng_hex(rng: &mut Rng, n: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(n);
    let mut bits = 0;
    let mut left = 0;
    for _ in 0..n {
        if left == 0 {
            bits = rng.next_u64();
            left = 16;
        }
        text.push(char::from(DIGITS[(bits & 15) as usize]));
        bits >>= 4;
        left -= 1;
    }
    text
}

/// A UUIDv7 whose time is `millis` (unique per task when `millis` is).
fn uuid_v7(rng: &mut Rng, millis: u64) -> String {
    let random_a = rng.next_u64() & 0x0fff;
    let random_b = rng.next_u64() & 0x3fff_ffff_ffff_ffff;
    let value = u128::from(millis & 0xffff_ffff_ffff) << 80
        | 0x7 << 76
        | u128::from(random_a) << 64
        | 0b10 << 62
        | u128::from(random_b);
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `unix_secs` and `micros` as RFC 3339 in UTC, with microseconds
/// (`2025-12-06T05:46:40.123456Z`).
pub(crate) fn rfc3339(unix_secs: i64, micros: u32) -> String {
    let days = unix_secs.div_euclid(86_400);
    let of_day = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The times of a generated task, in Unix seconds: created, started (out
/// of the queue), completed.
struct Times {
    created: i64,
    started: i64,
    completed: i64,
    micros: u32,
}

impl Times {
    fn draw(index: u64, rng: &mut Rng) -> Self {
        let created = BASE_UNIX_SECS + index as i64;
        let started = created + 1 + rng.below(5) as i64;
        let completed = started + 5 + rng.below(120) as i64;
        Self {
            created,
            started,
            completed,
            micros: rng.below(1_000_000) as u32,
        }
    }

    fn millis(secs: i64, micros: u32) -> i64 {
        secs * 1000 + i64::from(micros / 1000)
    }
}

/// Replicate's Prediction: `starting`, `processing` (with logs), then the
/// final state.
fn replicate(kind: TaskKind, index: u64, rng: &mut Rng) -> Built {
    let id = crockford26(rng, index).to_ascii_lowercase();
    let version = rng_hex(rng, 64);
    let times = Times::draw(index, rng);
    let seed = rng.below(100_000);
    let url = |n, ext| cdn(Provider::Replicate, &id, n, ext);
    let (status, output, error, urls) = match kind {
        TaskKind::ImageUrlString => {
            let urls = vec![url(0, "png")];
            ("succeeded", json!(urls[0]), Value::Null, urls)
        }
        TaskKind::ImageUrlArray => {
            let urls = vec![url(0, "png"), url(1, "png")];
            ("succeeded", json!(urls), Value::Null, urls)
        }
        TaskKind::Video => {
            let urls = vec![url(0, "mp4")];
            ("succeeded", json!(urls[0]), Value::Null, urls)
        }
        TaskKind::Audio => {
            let urls = vec![url(0, "mp3")];
            ("succeeded", json!(urls[0]), Value::Null, urls)
        }
        TaskKind::FailedErrorObject => (
            "failed",
            Value::Null,
            json!("NSFW content detected. Try running it again, or try a different prompt."),
            Vec::new(),
        ),
        TaskKind::FailedErrorString => (
            "failed",
            Value::Null,
            json!("CUDA out of memory. Tried to allocate 2.00 GiB"),
            Vec::new(),
        ),
        TaskKind::Cancelled => ("canceled", Value::Null, Value::Null, Vec::new()),
    };
    let at = |secs| json!(rfc3339(secs, times.micros));
    let api = format!("https://api.replicate.example.com/v1/predictions/{id}");
    let prediction = |status: &str, started_at: Value, completed_at: Value, logs: Value| {
        json!({
            "id": id,
            "model": "sim/image-model",
            "version": version,
            "status": status,
            "input": {"prompt": PROMPT, "seed": seed},
            "output": Value::Null,
            "error": Value::Null,
            "logs": logs,
            "data_removed": false,
            "created_at": at(times.created),
            "started_at": started_at,
            "completed_at": completed_at,
            "urls": {
                "get": api,
                "cancel": format!("{api}/cancel"),
                "stream": format!("https://stream.replicate.example.com/v1/files/{id}"),
                "web": format!("https://replicate.example.com/p/{id}"),
            },
            "metrics": {},
        })
    };
    let starting_logs = format!("Using seed: {seed}\n  0%|          | 0/28 [00:00<?, ?it/s]\n");
    let starting = prediction("starting", Value::Null, Value::Null, Value::Null);
    let processing = prediction(
        "processing",
        at(times.started),
        Value::Null,
        json!(starting_logs),
    );
    let mut last = prediction(
        status,
        at(times.started),
        at(times.completed),
        json!(format!(
            "{starting_logs}100%|##########| 28/28 [00:04<00:00]\n"
        )),
    );
    last["output"] = output;
    last["error"] = error;
    last["metrics"] = json!({"predict_time": (times.completed - times.started) as f64 + 0.25});
    Built {
        id,
        intermediates: vec![starting, processing],
        last,
        urls,
    }
}

/// fal's webhook body: `OK` with the model's output under `payload`, or
/// `ERROR`.
fn fal(kind: TaskKind, index: u64, rng: &mut Rng) -> Built {
    let millis = BASE_MILLIS + index;
    let request_id = uuid_v7(rng, millis);
    let url = |n, ext| cdn(Provider::Fal, &request_id, n, ext);
    let mut file = |url: &str, content_type: &str, name: &str| {
        json!({
            "url": url,
            "content_type": content_type,
            "file_name": name,
            "file_size": 200_000 + rng.below(2_000_000),
        })
    };
    let (status, payload, error, urls) = match kind {
        TaskKind::ImageUrlString | TaskKind::ImageUrlArray => {
            let n = if kind == TaskKind::ImageUrlString {
                1
            } else {
                2
            };
            let urls: Vec<String> = (0..n).map(|i| url(i, "png")).collect();
            let images: Vec<Value> = urls
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    let mut image = file(u, "image/png", &format!("{i}.png"));
                    image["width"] = json!(1024);
                    image["height"] = json!(1024);
                    image
                })
                .collect();
            let payload = json!({
                "images": images,
                "seed": index * 7919 % 100_000,
                "has_nsfw_concepts": vec![false; n],
                "prompt": PROMPT,
            });
            ("OK", payload, Value::Null, urls)
        }
        TaskKind::Video => {
            let urls = vec![url(0, "mp4")];
            let video = file(&urls[0], "video/mp4", "0.mp4");
            ("OK", json!({"video": video}), Value::Null, urls)
        }
        TaskKind::Audio => {
            let urls = vec![url(0, "mp3")];
            let audio = file(&urls[0], "audio/mpeg", "0.mp3");
            ("OK", json!({"audio": audio}), Value::Null, urls)
        }
        TaskKind::FailedErrorObject => (
            "ERROR",
            json!({"detail": [{
                "loc": ["body", "prompt"],
                "msg": "field required",
                "type": "value_error.missing",
            }]}),
            json!("Invalid status code: 422"),
            Vec::new(),
        ),
        TaskKind::FailedErrorString => {
            ("ERROR", Value::Null, json!("Request timed out"), Vec::new())
        }
        TaskKind::Cancelled => (
            "ERROR",
            Value::Null,
            json!("Request was cancelled"),
            Vec::new(),
        ),
    };
    // "If the request failed and was retried, gateway_request_id will have
    // the value of the last tried request."
    let gateway_request_id = if kind == TaskKind::FailedErrorString {
        uuid_v7(rng, millis)
    } else {
        request_id.clone()
    };
    let last = json!({
        "request_id": request_id,
        "gateway_request_id": gateway_request_id,
        "status": status,
        "payload": payload,
        "error": error,
        "payload_error": Value::Null,
    });
    Built {
        id: request_id,
        intermediates: Vec::new(),
        last,
        urls,
    }
}

/// OpenAI's thin event: `response.completed`, `.failed` or `.cancelled`,
/// with only the response's id.
fn openai(kind: TaskKind, index: u64, rng: &mut Rng) -> Built {
    let millis = BASE_MILLIS + index;
    let response_id = format!("resp_{millis:012x}{}", rng_hex(rng, 36));
    let event_id = format!("evt_{millis:012x}{}", rng_hex(rng, 20));
    let times = Times::draw(index, rng);
    let event = match kind {
        TaskKind::FailedErrorObject | TaskKind::FailedErrorString => "response.failed",
        TaskKind::Cancelled => "response.cancelled",
        _ => "response.completed",
    };
    let last = json!({
        "id": event_id,
        "object": "event",
        "created_at": times.completed,
        "type": event,
        "data": {"id": response_id},
    });
    Built {
        id: response_id,
        intermediates: Vec::new(),
        last,
        urls: Vec::new(),
    }
}

/// The result URLs of a completed generic task, and its media extension.
fn generic_urls(provider: Provider, kind: TaskKind, id: &str) -> Vec<String> {
    match kind {
        TaskKind::ImageUrlString => vec![cdn(provider, id, 0, "png")],
        TaskKind::ImageUrlArray => vec![cdn(provider, id, 0, "png"), cdn(provider, id, 1, "png")],
        TaskKind::Video => vec![cdn(provider, id, 0, "mp4")],
        TaskKind::Audio => vec![cdn(provider, id, 0, "mp3")],
        _ => Vec::new(),
    }
}

/// A generic Standard Webhooks sender: `{type, timestamp, data}`.
fn standard_webhooks(kind: TaskKind, index: u64, rng: &mut Rng) -> Built {
    let id = ulid_like(rng, index);
    let times = Times::draw(index, rng);
    let urls = generic_urls(Provider::StandardWebhooks, kind, &id);
    let (status, error) = match kind {
        TaskKind::FailedErrorObject => (
            "failed",
            json!({"code": "content_rejected", "message": "content rejected"}),
        ),
        TaskKind::FailedErrorString => ("failed", json!("upstream model timeout")),
        TaskKind::Cancelled => ("cancelled", Value::Null),
        _ => ("succeeded", Value::Null),
    };
    let mut data = json!({
        "id": id,
        "status": status,
        "output": urls,
        "created_at": rfc3339(times.created, times.micros),
    });
    if !error.is_null() {
        data["error"] = error;
    }
    let last = json!({
        "type": format!("task.{status}"),
        "timestamp": rfc3339(times.completed, times.micros),
        "data": data,
    });
    Built {
        id,
        intermediates: Vec::new(),
        last,
        urls,
    }
}

/// KIE's callback: `{code, msg, data}`, `code` 200 on success and 501 on
/// failure.
fn kie(kind: TaskKind, index: u64, rng: &mut Rng) -> Built {
    let millis = BASE_MILLIS + index;
    let task_id = format!("{millis:012x}{}", rng_hex(rng, 20));
    let times = Times::draw(index, rng);
    let urls = generic_urls(Provider::Kie, kind, &task_id);
    let create_time = Times::millis(times.created, times.micros);
    let complete_time = Times::millis(times.completed, times.micros);
    let mut data = json!({
        "taskId": task_id,
        "model": "sim-image-model",
        "createTime": create_time,
        "completeTime": complete_time,
        "costTime": complete_time - create_time,
    });
    let failure = match kind {
        TaskKind::FailedErrorObject => Some(("400", "content policy violation")),
        TaskKind::FailedErrorString => Some(("500", "upstream model timeout")),
        TaskKind::Cancelled => Some(("499", "task cancelled")),
        _ => None,
    };
    let (code, msg) = match failure {
        None => {
            data["state"] = json!("success");
            data["info"] = json!({"resultUrls": urls});
            (200, "success".to_owned())
        }
        Some((fail_code, fail_msg)) => {
            data["state"] = json!("fail");
            data["failCode"] = json!(fail_code);
            data["failMsg"] = json!(fail_msg);
            data["info"] = Value::Null;
            (501, format!("Generation failed: {fail_msg}"))
        }
    };
    let last = json!({"code": code, "msg": msg, "data": data});
    Built {
        id: task_id,
        intermediates: Vec::new(),
        last,
        urls,
    }
}

/// Kling's callback at every status change: `submitted`, `processing`,
/// then `succeed` or `failed`.
fn kling(kind: TaskKind, index: u64, rng: &mut Rng) -> Built {
    let millis = BASE_MILLIS + index;
    let task_id = (millis * 100_000 + rng.below(100_000)).to_string();
    let times = Times::draw(index, rng);
    let created = Times::millis(times.created, times.micros);
    let started = Times::millis(times.started, times.micros);
    let completed = Times::millis(times.completed, times.micros);
    let urls = generic_urls(Provider::Kling, kind, &task_id);
    let mut media_id = || uuid_v7(rng, millis);
    let result = match kind {
        TaskKind::ImageUrlString | TaskKind::ImageUrlArray => {
            let images: Vec<Value> = urls
                .iter()
                .enumerate()
                .map(|(index, url)| json!({"index": index, "url": url}))
                .collect();
            Some(json!({"images": images}))
        }
        TaskKind::Video => Some(json!({"videos": [
            {"id": media_id(), "url": urls[0], "duration": "5"}
        ]})),
        TaskKind::Audio => Some(json!({"audios": [
            {"id": media_id(), "url": urls[0], "duration": "8"}
        ]})),
        _ => None,
    };
    let event = |status: &str, message: &str, updated: i64| {
        json!({
            "task_id": task_id,
            "task_status": status,
            "task_status_msg": message,
            "created_at": created,
            "updated_at": updated,
            "task_info": {},
        })
    };
    let submitted = event("submitted", "", created);
    let processing = event("processing", "", started);
    let last = match result {
        Some(result) => {
            let mut last = event("succeed", "", completed);
            last["task_result"] = result;
            last
        }
        None => {
            let message = match kind {
                TaskKind::FailedErrorObject => "Failure to pass the risk control system",
                TaskKind::Cancelled => "task cancelled",
                _ => "upstream model timeout",
            };
            event("failed", message, completed)
        }
    };
    Built {
        id: task_id,
        intermediates: vec![submitted, processing],
        last,
        urls,
    }
}

/// midjourney-proxy's Task at every change: `SUBMITTED`, `IN_PROGRESS` at
/// 30 % and 60 % (with a preview `imageUrl`), then `SUCCESS` or `FAILURE`.
fn midjourney_proxy(kind: TaskKind, index: u64, rng: &mut Rng) -> Built {
    let millis = BASE_MILLIS + index;
    let id = (millis * 1000 + rng.below(1000)).to_string();
    let times = Times::draw(index, rng);
    let submitted = Times::millis(times.created, times.micros);
    let started = Times::millis(times.started, times.micros);
    let finished = Times::millis(times.completed, times.micros);
    let url = |name: &str| {
        format!(
            "https://cdn.example.com/{}/{id}/{name}.png",
            Provider::MidjourneyProxy.name()
        )
    };
    let prompt = format!("{PROMPT} --v 6");
    let task = |status: &str, progress: &str, image_url: Value, start: Value, finish: Value| {
        json!({
            "id": id,
            "action": "IMAGINE",
            "prompt": prompt,
            "promptEn": prompt,
            "description": format!("/imagine {prompt}"),
            "state": Value::Null,
            "submitTime": submitted,
            "startTime": start,
            "finishTime": finish,
            "imageUrl": image_url,
            "status": status,
            "progress": progress,
            "failReason": Value::Null,
            "properties": {},
        })
    };
    let intermediates = vec![
        task("SUBMITTED", "0%", Value::Null, Value::Null, Value::Null),
        task(
            "IN_PROGRESS",
            "30%",
            json!(url("progress_30")),
            json!(started),
            Value::Null,
        ),
        task(
            "IN_PROGRESS",
            "60%",
            json!(url("progress_60")),
            json!(started),
            Value::Null,
        ),
    ];
    let fail_reason = match kind {
        TaskKind::FailedErrorObject => Some("Banned prompt: lighthouse"),
        TaskKind::FailedErrorString => Some("upstream model timeout"),
        TaskKind::Cancelled => Some("task cancelled"),
        _ => None,
    };
    let (last, urls) = match fail_reason {
        None => {
            let urls = vec![url("grid_0")];
            let last = task(
                "SUCCESS",
                "100%",
                json!(urls[0]),
                json!(started),
                json!(finished),
            );
            (last, urls)
        }
        Some(reason) => {
            let mut last = task(
                "FAILURE",
                "60%",
                Value::Null,
                json!(started),
                json!(finished),
            );
            last["failReason"] = json!(reason);
            (last, Vec::new())
        }
    };
    Built {
        id,
        intermediates,
        last,
        urls,
    }
}

/// Where `provider` puts the task id, for messages.
pub(crate) fn id_path(provider: Provider) -> &'static str {
    match provider {
        Provider::Apimart => "`data.id`",
        Provider::Replicate | Provider::MidjourneyProxy => "`id`",
        Provider::Fal => "`request_id`",
        Provider::OpenAi | Provider::StandardWebhooks => "`data.id`",
        Provider::Kie => "`data.taskId`",
        Provider::Kling => "`task_id`",
    }
}

/// The task id in `json`, where `provider` puts it (a non-empty string).
pub(crate) fn task_id_of(provider: Provider, json: &Value) -> Option<&str> {
    let id = match provider {
        Provider::Apimart => json.get("data").unwrap_or(json).get("id"),
        Provider::Replicate | Provider::MidjourneyProxy => json.get("id"),
        Provider::Fal => json.get("request_id"),
        Provider::OpenAi | Provider::StandardWebhooks => json.get("data")?.get("id"),
        Provider::Kie => {
            let data = json.get("data")?;
            data.get("taskId").or_else(|| data.get("task_id"))
        }
        Provider::Kling => json.get("task_id"),
    };
    id?.as_str().filter(|id| !id.is_empty())
}

/// The task id in a payload, if it is JSON and has one.
pub(crate) fn task_id_in(provider: Provider, payload: &[u8]) -> Option<String> {
    let json: Value = serde_json::from_slice(payload).ok()?;
    task_id_of(provider, &json).map(str::to_owned)
}

/// The strings of a string or an array of strings.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(url) => vec![url.clone()],
        Value::Array(values) => values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The `url` of every item of every list in `object`, and of every object
/// in it that has one.
fn urls_of_items(object: Option<&Map<String, Value>>) -> Vec<String> {
    let Some(object) = object else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for value in object.values() {
        match value {
            Value::Array(items) => {
                urls.extend(
                    items
                        .iter()
                        .filter_map(|item| item.get("url"))
                        .flat_map(strings),
                );
            }
            Value::Object(item) => urls.extend(item.get("url").map(strings).unwrap_or_default()),
            _ => {}
        }
    }
    urls
}

/// The result URLs in a final body of `provider`, in order.
pub(crate) fn urls_in(provider: Provider, json: &Value) -> Vec<String> {
    match provider {
        Provider::Apimart => {
            let data = json.get("data").unwrap_or(json);
            let result = data.get("result").and_then(Value::as_object);
            urls_of_items(result)
        }
        Provider::Replicate => json.get("output").map(strings).unwrap_or_default(),
        Provider::Fal => urls_of_items(json.get("payload").and_then(Value::as_object)),
        Provider::OpenAi => Vec::new(),
        Provider::StandardWebhooks => json
            .get("data")
            .and_then(|data| data.get("output"))
            .map(strings)
            .unwrap_or_default(),
        Provider::Kie => {
            let info = json.get("data").and_then(|data| data.get("info"));
            info.and_then(|info| info.get("resultUrls").or_else(|| info.get("result_urls")))
                .map(strings)
                .unwrap_or_default()
        }
        Provider::Kling => urls_of_items(json.get("task_result").and_then(Value::as_object)),
        Provider::MidjourneyProxy => {
            if json.get("status").and_then(Value::as_str) == Some("SUCCESS") {
                json.get("imageUrl").map(strings).unwrap_or_default()
            } else {
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(BASE_UNIX_SECS, 123_456),
            "2025-12-06T05:46:40.123456Z"
        );
        assert_eq!(rfc3339(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59.000000Z");
    }

    #[test]
    fn uuid_v7_shape() {
        let mut rng = Rng::new(1);
        let id = uuid_v7(&mut rng, BASE_MILLIS);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "7");
        assert!("89ab".contains(&id[19..20]));
        assert!(id.starts_with(&format!("{:08x}", BASE_MILLIS >> 16)));
    }
}
