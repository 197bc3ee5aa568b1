//! A provider profile of your own, for a provider taskhook does not ship:
//! "Acme Render" pushes `{"job":{"uuid":..,"phase":..,"artifacts":[..]}}`
//! at every phase of a render job. The profile reads that into the one
//! `TaskEvent` model, so the handler is the same as for any provider, and
//! tells the stack what Acme does (every change is pushed, so dedup keys on
//! the task and its status).
//!
//! ```sh
//! cargo run --example custom_profile    # sends a few pushes, checks the answers, exits 0
//! ```
//!
//! The stack is built by hand with `ServiceBuilder`: the payload layer with
//! the profile, the dedup layer keyed on id and status, then the handler.
//! `main` posts Acme's pushes to it in process (`tower::ServiceExt::oneshot`)
//! and asserts what comes back; `cargo test --example custom_profile` runs
//! the same.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use taskhook::body::BufferedBody;
use taskhook::dedup::{ByIdAndStatus, DUPLICATE_HEADER};
use taskhook::event::PayloadError;
use taskhook::provider::{Events, Profile};
use taskhook::{DedupLayer, PayloadLayer, TaskEvent, TaskStatus};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// Acme Render's pushes: `{"job":{"uuid","phase","progress","artifacts":
/// [{"href","mime"}],"problem"},"sent_at"}`.
#[derive(Debug, Clone, Copy, Default)]
struct AcmeRender;

impl Profile for AcmeRender {
    fn name(&self) -> &str {
        "acme-render"
    }

    fn parse(&self, body: &Bytes, _headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
        // Never panic on any input: every field is read by type, a body that
        // is not Acme's is a `PayloadError` (answered `400`).
        let json: Value =
            serde_json::from_slice(body).map_err(|e| PayloadError::from_json(e, body))?;
        let job = json
            .get("job")
            .and_then(Value::as_object)
            .ok_or_else(|| PayloadError::shape("no `job` object"))?;
        let id = job
            .get("uuid")
            .and_then(Value::as_str)
            .ok_or_else(|| PayloadError::shape("no `job.uuid` string"))?;
        let mut event = TaskEvent::builder(id);
        if let Some(phase) = job.get("phase").and_then(Value::as_str) {
            let status = match phase {
                "queued" => TaskStatus::Pending,
                "rendering" => TaskStatus::Processing,
                "rendered" => TaskStatus::Completed,
                "broken" => TaskStatus::Failed,
                other => TaskStatus::from(other),
            };
            event = event.status(status).raw_status(phase);
        }
        if let Some(progress) = job.get("progress").and_then(Value::as_u64) {
            event = event.progress(u8::try_from(progress).unwrap_or(100));
        }
        for artifact in job
            .get("artifacts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(href) = artifact.get("href").and_then(Value::as_str) else {
                continue;
            };
            let kind = match artifact.get("mime").and_then(Value::as_str) {
                Some(mime) if mime.starts_with("video/") => "videos",
                Some(mime) if mime.starts_with("image/") => "images",
                _ => "files",
            };
            event = event.output(kind, href, None);
        }
        if let Some(problem) = job.get("problem").and_then(Value::as_str) {
            event = event.error(problem, None);
        }
        // What the model has no place for stays readable.
        if let Some(sent_at) = json.get("sent_at") {
            event = event.extra("sent_at", sent_at.clone());
        }
        event.build()
    }

    fn events(&self) -> Events {
        Events::EveryChange
    }

    /// Acme retries for 10 minutes.
    fn retry_horizon(&self) -> Duration {
        Duration::from_secs(10 * 60)
    }
}

/// The handler: the same for every provider. It counts its calls.
fn handler(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<BufferedBody>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(move |request: Request<BufferedBody>| {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let event = request.extensions().get::<TaskEvent>().cloned();
            let text = match event {
                Some(event) => {
                    let status = event.status().map_or("-", TaskStatus::as_str);
                    let files: Vec<String> = event
                        .urls()
                        .map(|u| format!("{} {}", u.kind(), u.url()))
                        .collect();
                    println!("  handled {} {status} {files:?}", event.id());
                    format!("{} {status}", event.id())
                }
                None => "no event".to_owned(),
            };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
        }
    })
}

/// Posts `body` to `service`; returns the status, whether dedup answered
/// it as a duplicate, and the body.
async fn post<S, B>(service: &S, body: &'static str) -> (StatusCode, bool, String)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let request = Request::post("/callback")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("a valid request");
    let response = service.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let duplicate = response.headers().contains_key(&DUPLICATE_HEADER);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (
        status,
        duplicate,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

const RENDERING: &str = r#"{"job":{"uuid":"job-7","phase":"rendering","progress":40},"sent_at":"2026-03-14T09:00:00Z"}"#;
const RENDERED: &str = r#"{"job":{"uuid":"job-7","phase":"rendered","progress":100,
    "artifacts":[{"href":"https://cdn.acme.example/job-7/final.mp4","mime":"video/mp4"},
                 {"href":"https://cdn.acme.example/job-7/poster.png","mime":"image/png"}]},
    "sent_at":"2026-03-14T09:01:00Z"}"#;
const NOT_ACME: &str = r#"{"code":200,"data":{"id":"task_1","status":"completed"}}"#;

/// Builds the stack and checks it end to end.
async fn run() {
    let profile = AcmeRender;
    // The dedup memory must outlive the provider's retries: the profile says
    // how long by default.
    assert_eq!(
        profile.default_time_to_live(),
        Duration::from_secs(24 * 60 * 60)
    );

    let calls = Arc::new(AtomicUsize::new(0));
    let stack = ServiceBuilder::new()
        .layer(PayloadLayer::new().profile(profile))
        // Acme pushes every change: key on the task *and* its status, so the
        // final push is not swallowed as a duplicate of "rendering".
        .layer(DedupLayer::new().key(ByIdAndStatus))
        .service(handler(Arc::clone(&calls)));

    println!("POST rendering");
    let (status, duplicate, body) = post(&stack, RENDERING).await;
    assert_eq!(
        (status, duplicate, body.as_str()),
        (StatusCode::OK, false, "job-7 processing")
    );

    println!("POST rendering again (Acme retried it)");
    let (status, duplicate, _) = post(&stack, RENDERING).await;
    assert_eq!((status, duplicate), (StatusCode::OK, true));

    println!("POST rendered");
    let (status, duplicate, body) = post(&stack, RENDERED).await;
    assert_eq!(
        (status, duplicate, body.as_str()),
        (StatusCode::OK, false, "job-7 completed")
    );

    println!("POST a body in another provider's shape");
    let (status, _, body) = post(&stack, NOT_ACME).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!(error["error"]["code"], "unexpected_shape");
    println!("  answered 400: {}", error["error"]["message"]);

    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the handler ran once per state"
    );
    println!("ok");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_custom_profile_in_a_stack() {
        super::run().await;
    }
}
