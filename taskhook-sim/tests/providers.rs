//! The simulator playing each provider, against recording receivers on
//! loopback under paused tokio time: the bodies have the provider's shape,
//! intermediate events arrive in order before the final one, signatures
//! verify (recomputed here, independently of `taskhook_sim::sign`), and
//! retries follow the provider's schedule and its rule for a `4xx`.

use taskhook_test_support as common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use taskhook_sim::{
    AttemptResult, DuplicateKind, Mix, Outcome, Provider, Push, PushKind, Schedule, Signing,
    Simulator, Task, TaskKind, UrlPolicy, Workload,
};
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);
/// The wall-clock time the simulator's signature timestamps start at.
const START: u64 = 1_765_000_000;
const SLACK: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// A recording receiver

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

/// How the receiver answers: given the body and how many times it got the
/// same bytes before, a status and how long to take.
type Answer = Arc<dyn Fn(&Bytes, usize) -> (u16, Duration) + Send + Sync>;

#[derive(Clone)]
struct Recorder {
    hits: Arc<Mutex<Vec<Hit>>>,
    answer: Answer,
    addr: SocketAddr,
}

impl Recorder {
    async fn start(
        answer: impl Fn(&Bytes, usize) -> (u16, Duration) + Send + Sync + 'static,
    ) -> Self {
        let recorder = Recorder {
            hits: Arc::default(),
            answer: Arc::new(answer),
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        let app = Router::new()
            .fallback(Self::handle)
            .with_state(recorder.clone());
        let addr = common::serve_axum(app).await;
        Recorder { addr, ..recorder }
    }

    /// Answers `status` at once, always.
    async fn always(status: u16) -> Self {
        Self::start(move |_, _| (status, Duration::ZERO)).await
    }

    /// Answers the final events of `tasks` by `final_answer` (given how
    /// many times that body came before), anything else 200.
    async fn finals(
        tasks: &[Task],
        final_answer: impl Fn(usize) -> (u16, Duration) + Send + Sync + 'static,
    ) -> Self {
        let finals: HashSet<Bytes> = tasks.iter().map(|t| t.payload().clone()).collect();
        Self::start(move |body, seen| {
            if finals.contains(body) {
                final_answer(seen)
            } else {
                (200, Duration::ZERO)
            }
        })
        .await
    }

    async fn handle(State(recorder): State<Recorder>, request: Request) -> StatusCode {
        let at = Instant::now();
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let seen = {
            let mut hits = recorder.hits.lock().unwrap();
            let seen = hits.iter().filter(|h| h.body == body).count();
            hits.push(Hit {
                at,
                headers: parts.headers,
                body: body.clone(),
            });
            seen
        };
        let (status, delay) = (recorder.answer)(&body, seen);
        tokio::time::sleep(delay).await;
        StatusCode::from_u16(status).unwrap()
    }

    fn base(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

fn simulator(provider: Provider) -> Simulator {
    Simulator::new()
        .provider(provider)
        .url_policy(UrlPolicy::new().allow_loopback_for_local_testing())
        .wall_clock(UNIX_EPOCH + Duration::from_secs(START))
}

/// `got` is `want` or at most `slack` later (a few scheduler ticks).
fn assert_near(got: Duration, want: Duration, what: &str) {
    assert!(
        got >= want && got <= want + SLACK,
        "{what}: {got:?} is not within {SLACK:?} after {want:?}"
    );
}

fn offsets(push: &Push) -> Vec<Duration> {
    push.attempts.iter().map(|a| a.offset).collect()
}

// ---------------------------------------------------------------------------
// Each provider's contract, written out here from the providers' docs (the
// tests' own reading, not the simulator's code)

/// The id a receiver dedups on.
fn dedup_id(provider: Provider, json: &Value) -> String {
    let id = match provider {
        Provider::Apimart => &json["data"]["id"],
        Provider::Replicate | Provider::MidjourneyProxy => &json["id"],
        Provider::Fal => &json["request_id"],
        Provider::OpenAi | Provider::StandardWebhooks => &json["data"]["id"],
        Provider::Kie => &json["data"]["taskId"],
        Provider::Kling => &json["task_id"],
        other => panic!("{other:?}"),
    };
    id.as_str()
        .unwrap_or_else(|| panic!("{provider}: no id in {json}"))
        .to_owned()
}

/// The state an event tells (midjourney-proxy's with its progress).
fn state(provider: Provider, json: &Value) -> String {
    let text = |v: &Value| {
        v.as_str()
            .unwrap_or_else(|| panic!("{provider}: {json}"))
            .to_owned()
    };
    match provider {
        Provider::Apimart => text(&json["data"]["status"]),
        Provider::Replicate | Provider::Fal => text(&json["status"]),
        Provider::OpenAi | Provider::StandardWebhooks => text(&json["type"]),
        Provider::Kie => json["code"].to_string(),
        Provider::Kling => text(&json["task_status"]),
        Provider::MidjourneyProxy => match text(&json["status"]).as_str() {
            "IN_PROGRESS" => format!("IN_PROGRESS {}", text(&json["progress"])),
            status => status.to_owned(),
        },
        other => panic!("{other:?}"),
    }
}

/// The intermediate states, in order.
fn intermediate_states(provider: Provider) -> Vec<&'static str> {
    match provider {
        Provider::Replicate => vec!["starting", "processing"],
        Provider::Kling => vec!["submitted", "processing"],
        Provider::MidjourneyProxy => vec!["SUBMITTED", "IN_PROGRESS 30%", "IN_PROGRESS 60%"],
        _ => vec![],
    }
}

/// The final state of a task of `kind` (the mapping `Provider` documents).
fn final_state(provider: Provider, kind: TaskKind) -> String {
    let done = matches!(
        kind,
        TaskKind::ImageUrlString | TaskKind::ImageUrlArray | TaskKind::Video | TaskKind::Audio
    );
    let failed = matches!(
        kind,
        TaskKind::FailedErrorObject | TaskKind::FailedErrorString
    );
    let pick = |done_state: &str, failed_state: &str, cancelled_state: &str| {
        if done {
            done_state.to_owned()
        } else if failed {
            failed_state.to_owned()
        } else {
            cancelled_state.to_owned()
        }
    };
    match provider {
        Provider::Apimart => kind.status().to_owned(),
        Provider::Replicate => pick("succeeded", "failed", "canceled"),
        Provider::Fal => pick("OK", "ERROR", "ERROR"),
        Provider::OpenAi => pick(
            "response.completed",
            "response.failed",
            "response.cancelled",
        ),
        Provider::StandardWebhooks => pick("task.succeeded", "task.failed", "task.cancelled"),
        Provider::Kie => pick("200", "501", "501"),
        Provider::Kling => pick("succeed", "failed", "failed"),
        Provider::MidjourneyProxy => pick("SUCCESS", "FAILURE", "FAILURE"),
        other => panic!("{other:?}"),
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect(),
        Value::Null => vec![],
        other => panic!("not URLs: {other}"),
    }
}

fn item_urls(items: &Value) -> Vec<String> {
    items
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["url"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && text.ends_with('Z')
        && text[..19].bytes().filter(u8::is_ascii_digit).count() == 14
}

fn is_millis(value: &Value) -> bool {
    value.as_i64().is_some_and(|ms| ms > 1_700_000_000_000)
}

/// Checks a final body's fields by the provider's documented shape, and
/// returns its result URLs as read from that shape.
fn check_final(provider: Provider, kind: TaskKind, json: &Value) -> Vec<String> {
    let object = json.as_object().unwrap_or_else(|| panic!("{json}"));
    let has = |keys: &[&str]| {
        for key in keys {
            assert!(
                object.contains_key(*key),
                "{provider}: no `{key}` in {json}"
            );
        }
    };
    match provider {
        Provider::Apimart => {
            assert_eq!(json["code"], 200);
            Vec::new()
        }
        Provider::Replicate => {
            has(&[
                "id",
                "version",
                "status",
                "input",
                "output",
                "error",
                "logs",
                "created_at",
                "started_at",
                "completed_at",
                "urls",
            ]);
            let created = json["created_at"].as_str().unwrap();
            let completed = json["completed_at"].as_str().unwrap();
            assert!(is_rfc3339(created) && is_rfc3339(completed), "{json}");
            assert!(created.starts_with("2025-12-06T05:4"), "{created}");
            assert!(completed >= json["started_at"].as_str().unwrap());
            assert!(json["urls"]["get"]
                .as_str()
                .unwrap()
                .ends_with(json["id"].as_str().unwrap()));
            if json["status"] == "failed" {
                assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
                assert!(json["output"].is_null());
            }
            if kind == TaskKind::ImageUrlArray {
                assert_eq!(json["output"].as_array().unwrap().len(), 2);
            } else if json["status"] == "succeeded" {
                assert!(json["output"].is_string(), "{json}");
            }
            strings(&json["output"])
        }
        Provider::Fal => {
            has(&[
                "request_id",
                "gateway_request_id",
                "status",
                "payload",
                "error",
                "payload_error",
            ]);
            let payload = &json["payload"];
            if json["status"] == "OK" {
                assert!(json["error"].is_null());
                let mut urls = item_urls(&payload["images"]);
                for image in payload["images"].as_array().into_iter().flatten() {
                    assert_eq!(image["content_type"], "image/png");
                    assert!(image["width"].is_u64() && image["height"].is_u64());
                }
                for media in ["video", "audio"] {
                    if let Some(url) = payload[media]["url"].as_str() {
                        assert!(payload[media]["content_type"].is_string());
                        urls.push(url.to_owned());
                    }
                }
                urls
            } else {
                assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
                Vec::new()
            }
        }
        Provider::OpenAi => {
            assert!(json["id"].as_str().unwrap().starts_with("evt_"));
            assert_eq!(json["object"], "event");
            assert!(json["created_at"].is_i64());
            let data = json["data"].as_object().unwrap();
            assert_eq!(data.len(), 1, "thin: {json}");
            assert!(json["data"]["id"].as_str().unwrap().starts_with("resp_"));
            Vec::new()
        }
        Provider::StandardWebhooks => {
            has(&["type", "timestamp", "data"]);
            assert!(is_rfc3339(json["timestamp"].as_str().unwrap()));
            let status = json["data"]["status"].as_str().unwrap();
            assert_eq!(json["type"], format!("task.{status}"));
            if status == "failed" {
                assert!(!json["data"]["error"].is_null());
            }
            strings(&json["data"]["output"])
        }
        Provider::Kie => {
            has(&["code", "msg", "data"]);
            assert!(json["msg"].as_str().is_some_and(|m| !m.is_empty()));
            if json["code"] == 200 {
                strings(&json["data"]["info"]["resultUrls"])
            } else {
                assert!(json["data"]["info"].is_null());
                Vec::new()
            }
        }
        Provider::Kling => {
            has(&[
                "task_id",
                "task_status",
                "task_status_msg",
                "created_at",
                "updated_at",
            ]);
            assert!(is_millis(&json["created_at"]) && is_millis(&json["updated_at"]));
            let result = &json["task_result"];
            for (i, image) in result["images"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                assert_eq!(image["index"], i);
            }
            for video in result["videos"].as_array().into_iter().flatten() {
                assert!(video["id"].is_string() && video["duration"].is_string());
            }
            if json["task_status"] == "failed" {
                assert!(!json["task_status_msg"].as_str().unwrap().is_empty());
            }
            let mut urls = item_urls(&result["images"]);
            urls.extend(item_urls(&result["videos"]));
            urls.extend(item_urls(&result["audios"]));
            urls
        }
        Provider::MidjourneyProxy => {
            has(&[
                "id",
                "action",
                "status",
                "progress",
                "imageUrl",
                "failReason",
                "submitTime",
                "startTime",
                "finishTime",
            ]);
            assert_eq!(json["action"], "IMAGINE");
            assert!(is_millis(&json["submitTime"]) && is_millis(&json["finishTime"]));
            if json["status"] == "SUCCESS" {
                assert_eq!(json["progress"], "100%");
                assert!(json["failReason"].is_null());
                strings(&json["imageUrl"])
            } else {
                assert!(json["failReason"].as_str().is_some_and(|r| !r.is_empty()));
                Vec::new()
            }
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Bodies and events

#[tokio::test(start_paused = true)]
async fn each_provider_sends_its_shape_intermediates_first() {
    // Enough for every kind of the default mix to be drawn.
    const TASKS: usize = 120;
    for provider in Provider::ALL {
        let receiver = Recorder::always(200).await;
        let workload = Workload::new(TASKS).seed(2);
        let tasks = workload.generate_for(provider);
        let report = simulator(provider)
            .concurrency(4)
            .run(&receiver.base(), &workload)
            .await
            .unwrap();
        let events = provider.intermediate_events();
        let summary = report.summary();
        assert_eq!(summary.tasks_delivered, TASKS, "{provider}");
        assert_eq!(summary.intermediate_pushes, TASKS * events, "{provider}");
        assert_eq!(summary.pushes, TASKS * (events + 1), "{provider}");

        // What the receiver got, per task id, in the order it got it.
        let mut per_task: HashMap<String, Vec<Value>> = HashMap::new();
        for hit in receiver.hits() {
            let json = hit.json();
            per_task
                .entry(dedup_id(provider, &json))
                .or_default()
                .push(json);
        }
        assert_eq!(per_task.len(), TASKS, "{provider}");
        let mut kinds = HashSet::new();
        for task in &tasks {
            let kind = task.kind().unwrap();
            kinds.insert(kind);
            let got = &per_task[task.id()];
            let states: Vec<String> = got.iter().map(|j| state(provider, j)).collect();
            let mut want: Vec<String> = intermediate_states(provider)
                .into_iter()
                .map(str::to_owned)
                .collect();
            want.push(final_state(provider, kind));
            assert_eq!(states, want, "{provider} {kind:?}");

            let last = got.last().unwrap();
            assert_eq!(
                last,
                &serde_json::from_slice::<Value>(task.payload()).unwrap()
            );
            let urls = check_final(provider, kind, last);
            if provider != Provider::Apimart {
                assert_eq!(urls, task.urls(), "{provider} {kind:?}");
            }
            let done = !matches!(
                kind,
                TaskKind::FailedErrorObject | TaskKind::FailedErrorString | TaskKind::Cancelled
            );
            let has_urls = done && provider != Provider::OpenAi;
            assert_eq!(!task.urls().is_empty(), has_urls, "{provider} {kind:?}");
            // The simulator reads its own bodies back the same way.
            let again = Task::from_provider_payload(provider, task.payload().clone()).unwrap();
            assert_eq!((again.id(), again.urls()), (task.id(), task.urls()));
        }
        assert_eq!(
            kinds.len(),
            TaskKind::ALL.len(),
            "{provider}: every kind drawn"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn intermediate_events_carry_their_progress() {
    let tasks = Workload::new(5)
        .mix(Mix::only(TaskKind::ImageUrlString))
        .generate_for(Provider::Replicate);
    for task in &tasks {
        let [starting, processing] = task.intermediates() else {
            panic!("two intermediate events");
        };
        let starting: Value = serde_json::from_slice(starting.payload()).unwrap();
        let processing: Value = serde_json::from_slice(processing.payload()).unwrap();
        assert!(starting["started_at"].is_null() && starting["output"].is_null());
        assert!(processing["logs"].as_str().unwrap().contains("Using seed"));
        assert!(processing["completed_at"].is_null());
    }
    let tasks = Workload::new(5).generate_for(Provider::Kling);
    for task in &tasks {
        let mut updated = Vec::new();
        for body in task
            .intermediates()
            .iter()
            .map(|e| e.payload())
            .chain([task.payload()])
        {
            let json: Value = serde_json::from_slice(body).unwrap();
            updated.push(json["updated_at"].as_i64().unwrap());
        }
        assert!(updated.windows(2).all(|w| w[0] <= w[1]), "{updated:?}");
    }
    let tasks = Workload::new(5)
        .mix(Mix::only(TaskKind::Video))
        .generate_for(Provider::MidjourneyProxy);
    for task in &tasks {
        let progress: Vec<String> = task
            .intermediates()
            .iter()
            .map(|e| serde_json::from_slice::<Value>(e.payload()).unwrap()["progress"].to_string())
            .collect();
        assert_eq!(progress, [r#""0%""#, r#""30%""#, r#""60%""#]);
        // Video maps to an image: IMAGINE makes images.
        assert!(task.urls()[0].ends_with(".png"));
    }
}

#[tokio::test(start_paused = true)]
async fn a_late_intermediate_arrives_after_the_final_event() {
    for provider in [
        Provider::Replicate,
        Provider::Kling,
        Provider::MidjourneyProxy,
    ] {
        let receiver = Recorder::always(200).await;
        let workload = Workload::new(10).seed(4).late_intermediate(1.0);
        let report = simulator(provider)
            .run(&receiver.base(), &workload)
            .await
            .unwrap();
        let events = provider.intermediate_events();
        for record in report.tasks() {
            let kinds: Vec<PushKind> = record.pushes.iter().map(|p| p.kind).collect();
            let mut want: Vec<PushKind> = (0..events).map(PushKind::Intermediate).collect();
            want.extend([PushKind::First, PushKind::Late]);
            assert_eq!(kinds, want, "{provider}");
            assert!(record.delivered());
        }
        let summary = report.summary();
        assert_eq!(
            (
                summary.first_pushes,
                summary.intermediate_pushes,
                summary.late_pushes
            ),
            (10, 10 * events, 10),
            "{provider}"
        );
        assert_eq!(
            (summary.tasks_delivered, summary.tasks_undelivered),
            (10, 0)
        );

        // The receiver saw the last intermediate state again after the final.
        let mut per_task: HashMap<String, Vec<String>> = HashMap::new();
        for hit in receiver.hits() {
            let json = hit.json();
            per_task
                .entry(dedup_id(provider, &json))
                .or_default()
                .push(state(provider, &json));
        }
        for states in per_task.values() {
            let n = states.len();
            assert_eq!(n, events + 2);
            assert_eq!(states[n - 1], states[n - 3], "{provider}: {states:?}");
        }
    }
    // Nothing to push late for a provider that pushes only the final state.
    let tasks = Workload::new(10)
        .late_intermediate(1.0)
        .generate_for(Provider::Fal);
    assert!(tasks.iter().all(|t| !t.has_late_intermediate()));
    // The probability does not change the tasks.
    let plain = Workload::new(10).generate_for(Provider::Kling);
    let late = Workload::new(10)
        .late_intermediate(0.5)
        .generate_for(Provider::Kling);
    let ids = |tasks: &[Task]| tasks.iter().map(|t| t.id().to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(&plain), ids(&late));
}

#[tokio::test(start_paused = true)]
async fn a_task_is_delivered_only_when_its_final_event_is() {
    let tasks = Workload::new(6).generate_for(Provider::Replicate);
    // The intermediate events get 200, the final event always 500.
    let receiver = Recorder::finals(&tasks, |_| (500, Duration::ZERO)).await;
    let report = simulator(Provider::Replicate)
        .run_tasks(&receiver.base(), tasks)
        .await
        .unwrap();
    let summary = report.summary();
    assert_eq!(summary.delivered, 12, "the intermediate pushes");
    assert_eq!(summary.exhausted, 6);
    assert_eq!((summary.tasks_delivered, summary.tasks_undelivered), (0, 6));
    assert!(report.tasks().iter().all(|t| !t.delivered()));
}

// ---------------------------------------------------------------------------
// Retries and what a 4xx means

/// Each provider's retry delays and timeout, in seconds, as documented
/// (`Schedule::for_provider`).
fn documented(provider: Provider) -> (u64, Vec<u64>) {
    let (m, h) = (60, 3600);
    match provider {
        Provider::Apimart => (10, vec![10, 30, 60]),
        Provider::Replicate => (5, vec![5, 10, 20, 30]),
        Provider::Fal => (15, vec![15, 30, 60, 120, 240, 480, 960, 1500, 1500, 1500]),
        Provider::OpenAi => (
            15,
            vec![30, 2 * m, 10 * m, h, 6 * h, 12 * h, 24 * h, 24 * h],
        ),
        Provider::StandardWebhooks => (
            15,
            vec![
                5,
                5 * m,
                30 * m,
                2 * h,
                5 * h,
                10 * h,
                14 * h,
                20 * h,
                24 * h,
            ],
        ),
        Provider::Kie => (15, vec![10, 30, 60]),
        Provider::Kling => (10, vec![10, 30, 60]),
        Provider::MidjourneyProxy => (10, vec![]),
        other => panic!("{other:?}"),
    }
}

fn one_image(provider: Provider) -> Vec<Task> {
    Workload::new(1)
        .mix(Mix::only(TaskKind::ImageUrlString))
        .generate_for(provider)
}

#[tokio::test(start_paused = true)]
async fn a_503_then_200_is_retried_at_each_providers_offsets() {
    for provider in Provider::ALL {
        let tasks = one_image(provider);
        let receiver = Recorder::finals(&tasks, |seen| {
            (if seen == 0 { 503 } else { 200 }, Duration::ZERO)
        })
        .await;
        let report = simulator(provider)
            .run_tasks(&receiver.base(), tasks)
            .await
            .unwrap();
        let push = report.tasks()[0].pushes.last().unwrap();
        assert_eq!(push.kind, PushKind::First);
        let (_, delays) = documented(provider);
        match delays.first() {
            Some(delay) => {
                assert_eq!(push.outcome, Outcome::Delivered, "{provider}");
                let got = offsets(push);
                assert_eq!(got.len(), 2, "{provider}");
                assert_near(got[1], Duration::from_secs(*delay), provider.name());
            }
            // midjourney-proxy: one attempt, whatever the answer.
            None => {
                assert_eq!(push.outcome, Outcome::Exhausted, "{provider}");
                assert_eq!(push.attempts.len(), 1);
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn always_503_uses_each_providers_whole_schedule() {
    for provider in Provider::ALL {
        let tasks = one_image(provider);
        let receiver = Recorder::finals(&tasks, |_| (503, Duration::ZERO)).await;
        let report = simulator(provider)
            .run_tasks(&receiver.base(), tasks.clone())
            .await
            .unwrap();
        let push = report.tasks()[0].pushes.last().unwrap();
        assert_eq!(push.outcome, Outcome::Exhausted, "{provider}");
        let (_, delays) = documented(provider);
        let mut want = vec![Duration::ZERO];
        for delay in &delays {
            want.push(*want.last().unwrap() + Duration::from_secs(*delay));
        }
        let got = offsets(push);
        assert_eq!(got.len(), want.len(), "{provider}");
        for (got, want) in got.iter().zip(&want) {
            assert_near(*got, *want, provider.name());
        }
        // The receiver saw the final event at the same moments.
        let finals: Vec<Instant> = receiver
            .hits()
            .iter()
            .filter(|h| h.body == *tasks[0].payload())
            .map(|h| h.at)
            .collect();
        assert_eq!(finals.len(), want.len());
        for (at, want) in finals.iter().zip(&want) {
            assert_near(*at - finals[0], *want, provider.name());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_answer_times_out_at_each_providers_timeout() {
    for provider in Provider::ALL {
        let (timeout, delays) = documented(provider);
        let tasks = one_image(provider);
        let slow = Duration::from_secs(timeout + 1);
        let receiver = Recorder::finals(&tasks, move |seen| {
            (200, if seen == 0 { slow } else { Duration::ZERO })
        })
        .await;
        let report = simulator(provider)
            .run_tasks(&receiver.base(), tasks)
            .await
            .unwrap();
        let push = report.tasks()[0].pushes.last().unwrap();
        assert_eq!(
            push.attempts[0].result,
            AttemptResult::TimedOut,
            "{provider}"
        );
        assert_near(
            push.attempts[0].latency,
            Duration::from_secs(timeout),
            provider.name(),
        );
        match delays.first() {
            Some(delay) => {
                assert_eq!(push.outcome, Outcome::Delivered);
                assert_near(
                    push.attempts[1].offset,
                    Duration::from_secs(timeout + delay),
                    provider.name(),
                );
            }
            None => assert_eq!(push.outcome, Outcome::Exhausted),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn what_a_4xx_means_to_each_provider() {
    for provider in Provider::ALL {
        let tasks = one_image(provider);
        let receiver = Recorder::finals(&tasks, |seen| {
            (if seen == 0 { 404 } else { 200 }, Duration::ZERO)
        })
        .await;
        let report = simulator(provider)
            .run_tasks(&receiver.base(), tasks)
            .await
            .unwrap();
        let push = report.tasks()[0].pushes.last().unwrap();
        let retried = matches!(
            provider,
            Provider::Replicate | Provider::Fal | Provider::OpenAi | Provider::StandardWebhooks
        );
        if retried {
            assert_eq!(push.outcome, Outcome::Delivered, "{provider}");
            assert_eq!(push.attempts.len(), 2, "{provider}");
        } else {
            assert_eq!(
                push.outcome,
                Outcome::Rejected(StatusCode::NOT_FOUND),
                "{provider}"
            );
            assert_eq!(push.attempts.len(), 1, "{provider}");
            assert_eq!(report.summary().tasks_undelivered, 1);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn replicate_retries_a_4xx_apimart_gives_up_midjourney_proxy_tries_once() {
    // Replicate: a 4xx on the final event is retried until a 2xx.
    let tasks = one_image(Provider::Replicate);
    let receiver = Recorder::finals(&tasks, |seen| {
        (if seen < 3 { 400 } else { 200 }, Duration::ZERO)
    })
    .await;
    let report = simulator(Provider::Replicate)
        .run_tasks(&receiver.base(), tasks)
        .await
        .unwrap();
    let push = report.tasks()[0].pushes.last().unwrap();
    assert_eq!(push.outcome, Outcome::Delivered);
    assert_eq!(push.attempts.len(), 4);

    // APIMart: a 4xx gives up at once.
    let receiver = Recorder::always(422).await;
    let report = simulator(Provider::Apimart)
        .run(&receiver.base(), &Workload::new(1))
        .await
        .unwrap();
    let push = &report.tasks()[0].pushes[0];
    assert_eq!(
        push.outcome,
        Outcome::Rejected(StatusCode::UNPROCESSABLE_ENTITY)
    );
    tokio::time::sleep(300 * SECOND).await;
    assert_eq!(receiver.hits().len(), 1);

    // midjourney-proxy: one attempt per event, whatever the answer.
    for status in [500, 503, 404] {
        let receiver = Recorder::always(status).await;
        let report = simulator(Provider::MidjourneyProxy)
            .run(&receiver.base(), &Workload::new(1))
            .await
            .unwrap();
        tokio::time::sleep(300 * SECOND).await;
        assert_eq!(
            receiver.hits().len(),
            4,
            "three intermediate events and the final"
        );
        assert!(report.pushes().all(|p| p.attempts.len() == 1));
        assert_eq!(report.summary().tasks_undelivered, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn only_replicates_final_event_is_retried() {
    // Every first attempt of every event gets 503.
    for provider in [Provider::Replicate, Provider::Kling] {
        let receiver =
            Recorder::start(|_, seen| (if seen == 0 { 503 } else { 200 }, Duration::ZERO)).await;
        let report = simulator(provider)
            .run(&receiver.base(), &Workload::new(1))
            .await
            .unwrap();
        let pushes = &report.tasks()[0].pushes;
        let attempts: Vec<usize> = pushes.iter().map(|p| p.attempts.len()).collect();
        match provider {
            // The intermediate events are lost, the final one retried.
            Provider::Replicate => {
                assert_eq!(attempts, [1, 1, 2]);
                assert_eq!(pushes[0].outcome, Outcome::Exhausted);
            }
            // Kling (unconfirmed): every event retried alike.
            _ => {
                assert_eq!(attempts, [2, 2, 2]);
                assert_near(pushes[0].attempts[1].offset, 10 * SECOND, "kling");
            }
        }
        assert!(report.tasks()[0].delivered());
    }
}

// ---------------------------------------------------------------------------
// Signatures, recomputed here

fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The expected `webhook-timestamp` of a hit: the wall-clock start plus the
/// tokio time since `t0` (when the simulator made its sender).
fn expected_timestamp(hit: &Hit, t0: Instant) -> u64 {
    START + (hit.at - t0).as_secs()
}

/// Standard Webhooks content: `{id}.{timestamp}.{body}`.
fn signed_content(hit: &Hit) -> Vec<u8> {
    let mut content = format!(
        "{}.{}.",
        hit.header("webhook-id"),
        hit.header("webhook-timestamp")
    )
    .into_bytes();
    content.extend_from_slice(&hit.body);
    content
}

/// A receiver answering each event's first attempt 503, then 200.
async fn flaky() -> Recorder {
    Recorder::start(|_, seen| (if seen == 0 { 503 } else { 200 }, Duration::ZERO)).await
}

#[tokio::test(start_paused = true)]
async fn standard_webhooks_v1_signs_every_attempt() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    for provider in [
        Provider::Replicate,
        Provider::OpenAi,
        Provider::StandardWebhooks,
    ] {
        let receiver = flaky().await;
        let t0 = Instant::now();
        let report = simulator(provider)
            .signing(Signing::standard_webhooks_secret(secret).unwrap())
            .run(
                &receiver.base(),
                &Workload::new(3).immediate_duplicates(1.0),
            )
            .await
            .unwrap();
        assert_eq!(report.summary().tasks_undelivered, 0);
        let hits = receiver.hits();
        assert!(hits.len() >= 9, "{provider}: {}", hits.len());
        let mut ids_per_body: HashMap<Bytes, HashSet<String>> = HashMap::new();
        let mut bodies_per_id: HashMap<String, HashSet<Bytes>> = HashMap::new();
        for hit in &hits {
            let id = hit.header("webhook-id").to_owned();
            let prefix = if provider == Provider::OpenAi {
                "wh_"
            } else {
                "msg_"
            };
            assert!(id.starts_with(prefix) && !id.contains('.'), "{id}");
            assert_eq!(
                hit.header("webhook-timestamp"),
                expected_timestamp(hit, t0).to_string()
            );
            let want = format!("v1,{}", hmac_base64(&key, &signed_content(hit)));
            assert_eq!(hit.header("webhook-signature"), want, "{provider}");
            ids_per_body
                .entry(hit.body.clone())
                .or_default()
                .insert(id.clone());
            bodies_per_id
                .entry(id)
                .or_default()
                .insert(hit.body.clone());
        }
        // One id per event: the same on its retries and duplicates, another
        // for each other event.
        assert!(ids_per_body.values().all(|ids| ids.len() == 1));
        assert!(bodies_per_id.values().all(|bodies| bodies.len() == 1));
        // A retry is stamped later than its first attempt, by the
        // schedule's first delay.
        let (_, delays) = documented(provider);
        let first_body = &hits[0].body;
        let stamps: Vec<u64> = hits
            .iter()
            .filter(|h| h.body == *first_body)
            .map(|h| h.header("webhook-timestamp").parse().unwrap())
            .collect();
        if provider == Provider::Replicate {
            // Its first event is an intermediate one: never retried.
            assert_eq!(stamps.len(), 1);
        } else {
            assert_eq!(stamps[1] - stamps[0], delays[0], "{provider}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn standard_webhooks_v1a_verifies_with_the_public_key() {
    let seed = *b"TESTSIGNINGKEYDONOTUSETHISFORANY";
    let secret_key = format!("whsk_{}", STANDARD.encode(seed));
    let signing = Signing::standard_webhooks_ed25519(&secret_key).unwrap();
    // The receiver's key: derived here from the seed, and the `whpk_` the
    // simulator exports is the same key.
    let verifying = SigningKey::from_bytes(&seed).verifying_key();
    let whpk = signing.standard_webhooks_public_key().unwrap();
    assert_eq!(
        STANDARD
            .decode(whpk.strip_prefix("whpk_").unwrap())
            .unwrap(),
        verifying.to_bytes()
    );
    let receiver = flaky().await;
    let t0 = Instant::now();
    simulator(Provider::StandardWebhooks)
        .signing(signing)
        .run(&receiver.base(), &Workload::new(4))
        .await
        .unwrap();
    let hits = receiver.hits();
    assert_eq!(hits.len(), 8);
    for hit in &hits {
        assert_eq!(
            hit.header("webhook-timestamp"),
            expected_timestamp(hit, t0).to_string()
        );
        let encoded = hit
            .header("webhook-signature")
            .strip_prefix("v1a,")
            .unwrap();
        let signature = Signature::from_slice(&STANDARD.decode(encoded).unwrap()).unwrap();
        verifying
            .verify_strict(&signed_content(hit), &signature)
            .expect("a valid v1a signature");
        // Not over another body.
        let mut tampered = signed_content(hit);
        tampered.push(b' ');
        assert!(verifying.verify_strict(&tampered, &signature).is_err());
    }
}

#[tokio::test(start_paused = true)]
async fn fal_signs_with_ed25519_and_exports_its_jwks() {
    let signing = Signing::fal([42; 32], "user_sim");
    // The receiver loads the JWKS the simulator exports.
    let jwks: Value = serde_json::from_str(&signing.jwks().unwrap()).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(key["kid"].as_str(), signing.key_id().as_deref());
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let verifying = VerifyingKey::from_bytes(&x).unwrap();
    assert_eq!(verifying, SigningKey::from_bytes(&[42; 32]).verifying_key());

    let receiver = flaky().await;
    let t0 = Instant::now();
    simulator(Provider::Fal)
        .signing(signing)
        .run(&receiver.base(), &Workload::new(4))
        .await
        .unwrap();
    let hits = receiver.hits();
    assert_eq!(hits.len(), 8);
    for hit in &hits {
        let json = hit.json();
        assert_eq!(hit.header("x-fal-webhook-request-id"), json["request_id"]);
        assert_eq!(hit.header("x-fal-webhook-user-id"), "user_sim");
        let timestamp = hit.header("x-fal-webhook-timestamp");
        assert_eq!(timestamp, expected_timestamp(hit, t0).to_string());
        let message = format!(
            "{}\n{}\n{}\n{}",
            hit.header("x-fal-webhook-request-id"),
            hit.header("x-fal-webhook-user-id"),
            timestamp,
            hex(&Sha256::digest(&hit.body))
        );
        let signature =
            Signature::from_slice(&unhex(hit.header("x-fal-webhook-signature"))).unwrap();
        verifying
            .verify_strict(message.as_bytes(), &signature)
            .expect("a valid fal signature");
    }
}

#[tokio::test(start_paused = true)]
async fn kie_signs_the_task_id_and_timestamp() {
    let receiver = flaky().await;
    let t0 = Instant::now();
    simulator(Provider::Kie)
        .signing(Signing::kie("kie-hmac-key"))
        .run(&receiver.base(), &Workload::new(4))
        .await
        .unwrap();
    let hits = receiver.hits();
    assert_eq!(hits.len(), 8);
    for hit in &hits {
        let task_id = hit.json()["data"]["taskId"].as_str().unwrap().to_owned();
        let timestamp = hit.header("x-webhook-timestamp");
        assert_eq!(timestamp, expected_timestamp(hit, t0).to_string());
        let want = hmac_base64(b"kie-hmac-key", format!("{task_id}.{timestamp}").as_bytes());
        assert_eq!(hit.header("x-webhook-signature"), want);
    }
}

#[tokio::test(start_paused = true)]
async fn a_static_header_and_no_signature() {
    let receiver = Recorder::always(200).await;
    simulator(Provider::Kling)
        .signing(Signing::header("x-auth", "s3cr3t").unwrap())
        .run(&receiver.base(), &Workload::new(3))
        .await
        .unwrap();
    let hits = receiver.hits();
    assert_eq!(hits.len(), 9);
    assert!(hits.iter().all(|h| h.header("x-auth") == "s3cr3t"));

    let receiver = Recorder::always(200).await;
    simulator(Provider::Replicate)
        .run(&receiver.base(), &Workload::new(3))
        .await
        .unwrap();
    for hit in receiver.hits() {
        for name in [
            "webhook-id",
            "webhook-signature",
            "x-webhook-signature",
            "x-fal-webhook-signature",
        ] {
            assert!(!hit.headers.contains_key(name), "{name}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn sender_push_finds_the_task_id_in_the_payload() {
    let receiver = Recorder::always(200).await;
    let sender = simulator(Provider::Fal)
        .signing(Signing::fal([1; 32], "user_sim"))
        .connect(&receiver.base())
        .await
        .unwrap();
    assert_eq!(sender.provider(), Provider::Fal);
    let task = &Workload::new(1).generate_for(Provider::Fal)[0];
    let push = sender.push(PushKind::First, task.payload().clone()).await;
    assert_eq!(push.outcome, Outcome::Delivered);
    assert_eq!(
        receiver.hits()[0].header("x-fal-webhook-request-id"),
        task.id()
    );
}

#[tokio::test(start_paused = true)]
async fn the_wall_clock_defaults_to_the_system_clock() {
    let receiver = Recorder::always(200).await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Simulator::new()
        .url_policy(UrlPolicy::new().allow_loopback_for_local_testing())
        .signing(Signing::kie("k"))
        .run(&receiver.base(), &Workload::new(1))
        .await
        .unwrap();
    let stamp: u64 = receiver.hits()[0]
        .header("x-webhook-timestamp")
        .parse()
        .unwrap();
    assert!(
        stamp >= before && stamp <= before + 60,
        "{stamp} vs {before}"
    );
}

// ---------------------------------------------------------------------------
// taskhook's own verifier accepts the simulator's signatures

#[tokio::test(start_paused = true)]
async fn taskhooks_standard_webhooks_layer_accepts_the_signed_pushes() {
    use taskhook::verify::{StandardWebhooksLayer, WebhookSecret};
    use taskhook::PayloadLayer;
    use tower::ServiceBuilder;

    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let t0 = Instant::now();
    // The receiver's clock follows the paused tokio clock from the same
    // wall-clock start as the simulator's.
    let clock = move || UNIX_EPOCH + Duration::from_secs(START) + t0.elapsed();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler_calls = Arc::clone(&calls);
    let app = Router::new().route(
        "/hooks/callback",
        axum::routing::post(move || {
            // The first call of all fails, so one push is retried, signed
            // again with a later timestamp.
            let n = handler_calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        })
        .layer(
            ServiceBuilder::new()
                .layer(PayloadLayer::new())
                .layer(StandardWebhooksLayer::new(WebhookSecret::new(secret).unwrap()).now(clock)),
        ),
    );
    let addr = common::serve_axum(app).await;
    let report = simulator(Provider::Apimart)
        .signing(Signing::standard_webhooks_secret(secret).unwrap())
        .run(
            &format!("http://{addr}/hooks"),
            &Workload::new(20).concurrent_duplicates(0.3),
        )
        .await
        .unwrap();
    let summary = report.summary();
    assert_eq!(summary.rejected, 0, "no 401 from the signature check");
    assert_eq!(summary.delivered, summary.pushes);
    assert_eq!(summary.retries, 1);
    assert_eq!(calls.load(Ordering::SeqCst), summary.attempts);

    // A wrong secret is refused (401): APIMart gives up on a 4xx.
    let report = simulator(Provider::Apimart)
        .signing(Signing::standard_webhooks_secret("whsec_d3Jvbmcgc2VjcmV0IGtleQ==").unwrap())
        .run(&format!("http://{addr}/hooks"), &Workload::new(2))
        .await
        .unwrap();
    assert!(report
        .pushes()
        .all(|p| p.outcome == Outcome::Rejected(StatusCode::UNAUTHORIZED)));
}

// ---------------------------------------------------------------------------
// Duplicates of a multi-event provider's task

#[tokio::test(start_paused = true)]
async fn duplicates_repeat_the_final_event() {
    // Each request takes 1 s, so the pushes' starts are apart.
    let receiver = Recorder::start(|_, _| (200, SECOND)).await;
    let workload = Workload::new(5)
        .immediate_duplicates(1.0)
        .concurrent_duplicates(1.0)
        .later_duplicates(1.0, 60 * SECOND);
    let tasks = workload.generate_for(Provider::MidjourneyProxy);
    let report = simulator(Provider::MidjourneyProxy)
        .schedule(Schedule::for_provider(Provider::MidjourneyProxy))
        .run(&receiver.base(), &workload)
        .await
        .unwrap();
    for (record, task) in report.tasks().iter().zip(&tasks) {
        let kinds: Vec<PushKind> = record.pushes.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [
                PushKind::Intermediate(0),
                PushKind::Intermediate(1),
                PushKind::Intermediate(2),
                PushKind::First,
                PushKind::Duplicate(DuplicateKind::Concurrent),
                PushKind::Duplicate(DuplicateKind::Immediate),
                PushKind::Duplicate(DuplicateKind::After(60 * SECOND)),
            ]
        );
        // The final event's duplicates start with it, not with the task.
        let first = record.pushes[3].started;
        assert_near(record.pushes[4].started, first, "concurrent");
        assert_near(record.pushes[6].started - first, 60 * SECOND, "after");
        let finals = receiver
            .hits()
            .iter()
            .filter(|h| h.body == *task.payload())
            .count();
        assert_eq!(finals, 4);
    }
    assert_eq!(report.summary().duplicate_pushes, 15);
}
