//! Several events per task: a provider profile that pushes every change
//! (`Steps`, written here), through the whole stack (`CallbackStack` with
//! the profile) and through the layers composed by hand. The handler runs
//! once per task with its final state, the progress handler once per
//! intermediate state, a regression is ignored with `200`.

mod concurrent;
mod layer;
mod stack;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use taskhook::body::BufferedBody;
use taskhook::event::PayloadError;
use taskhook::progress::ProgressHandler;
use taskhook::provider::{Events, Profile};
use taskhook::{TaskEvent, TaskStatus};
use tokio::sync::Semaphore;
use tower::{service_fn, Service, ServiceExt};

/// A provider that pushes `{"id","status","progress"}` at every change:
/// `queued`, `processing` (with a percent or not), then `succeeded`,
/// `failed` or `canceled`.
#[derive(Debug, Clone, Copy)]
struct Steps {
    horizon: Duration,
}

impl Steps {
    fn new() -> Self {
        Self::retrying_for(Duration::from_secs(60))
    }

    fn retrying_for(horizon: Duration) -> Self {
        Self { horizon }
    }
}

impl Profile for Steps {
    fn name(&self) -> &str {
        "steps"
    }

    fn parse(&self, body: &Bytes, _headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
        let json: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| PayloadError::from_json(e, body))?;
        let id = json["id"]
            .as_str()
            .ok_or_else(|| PayloadError::shape("no `id`"))?;
        let raw = json["status"].as_str().unwrap_or_default();
        let status = match raw {
            "queued" => TaskStatus::Pending,
            "processing" => TaskStatus::Processing,
            "succeeded" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "canceled" => TaskStatus::Cancelled,
            other => TaskStatus::from(other),
        };
        let mut event = TaskEvent::builder(id).status(status).raw_status(raw);
        if let Some(percent) = json["progress"].as_u64() {
            event = event.progress(u8::try_from(percent).unwrap_or(100));
        }
        event.build()
    }

    fn events(&self) -> Events {
        Events::EveryChange
    }

    fn retry_horizon(&self) -> Duration {
        self.horizon
    }
}

/// A push of `Steps`.
fn push(id: &str, status: &str, progress: Option<u8>) -> Request<String> {
    let body = match progress {
        Some(percent) => format!(r#"{{"id":"{id}","status":"{status}","progress":{percent}}}"#),
        None => format!(r#"{{"id":"{id}","status":"{status}"}}"#),
    };
    Request::post("/callback").body(body).unwrap()
}

/// What a stack answered.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    /// `taskhook-ignored`.
    ignored: Option<String>,
    /// `taskhook-duplicate`.
    duplicate: Option<String>,
    retry_after: Option<String>,
    json: serde_json::Value,
}

async fn send<S, B>(service: &S, id: &str, status: &str, progress: Option<u8>) -> Reply
where
    S: Service<Request<String>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = service
        .clone()
        .oneshot(push(id, status, progress))
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Reply {
        status: parts.status,
        ignored: header("taskhook-ignored"),
        duplicate: header("taskhook-duplicate"),
        retry_after: header("retry-after"),
        json: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    }
}

/// What a handler saw, in order: `"<id> <raw status>=<normalized>"`, and
/// `" <n>%"` when the event carried a percent.
#[derive(Debug, Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn record(&self, event: &TaskEvent) {
        let mut line = format!(
            "{} {}={}",
            event.id(),
            event.raw_status().unwrap_or("-"),
            event.status().map_or("-", TaskStatus::as_str)
        );
        if let Some(percent) = event.progress() {
            line.push_str(&format!(" {percent}%"));
        }
        self.0.lock().unwrap().push(line);
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// The final handler (under fast-ack, or alone): records each event, then
/// waits for a permit of `gate` (when given) and answers `200`.
fn handler(
    seen: &Seen,
    gate: Option<Arc<Semaphore>>,
) -> impl Service<
    Request<BufferedBody>,
    Response = Response<String>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
       + Send
       + 'static {
    let seen = seen.clone();
    service_fn(move |req: Request<BufferedBody>| {
        let (seen, gate) = (seen.clone(), gate.clone());
        async move {
            let event = req
                .extensions()
                .get::<TaskEvent>()
                .expect("set by the stack");
            seen.record(event);
            if let Some(gate) = gate {
                gate.acquire().await.expect("never closed").forget();
            }
            Ok::<_, Infallible>(Response::new(String::new()))
        }
    })
}

/// A progress handler that records each event.
fn progress(seen: &Seen) -> impl ProgressHandler {
    let seen = seen.clone();
    move |event: TaskEvent| {
        let seen = seen.clone();
        async move { seen.record(&event) }
    }
}
