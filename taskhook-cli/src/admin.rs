//! The admin listener: health, readiness, Prometheus metrics, the dead
//! letters (list, replay, delete) and a page for a person on call.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the on-call page (static HTML; it asks for the token itself) |
//! | `GET /healthz` | `200` while the process is up |
//! | `GET /readyz` | `200` once the start-up replay is done and the journal takes writes; `503` before, while draining, and for 10 s after a journal error |
//! | `GET /metrics` | Prometheus text |
//! | `GET /stats` | the counters and the queue, JSON |
//! | `GET /dead-letters` | every dead letter: task id, attempts, last error, received-at |
//! | `POST /dead-letters/{id}/replay` | replays one (by task id, or by sequence number) |
//! | `POST /dead-letters/replay` | replays them all |
//! | `DELETE /dead-letters/{id}` | drops one for good |
//!
//! With `--admin-token T`, every route but `/` needs `Authorization: Bearer
//! T` (`401` without it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use subtle::ConstantTimeEq;
use taskhook::dedup::DedupStats;
use taskhook::fast_ack::{DeadLetter, ReplayError};
use taskhook::FastAckHandle;

/// How long `/readyz` stays `503` after the journal refused a write.
const JOURNAL_ERROR_HOLD: Duration = Duration::from_secs(10);

/// What the admin routes read and act on.
#[derive(Clone)]
pub(crate) struct Admin {
    inner: Arc<Inner>,
}

struct Inner {
    handle: FastAckHandle,
    dedup: Arc<dyn Fn() -> DedupStats + Send + Sync>,
    prometheus: PrometheusHandle,
    token: Option<String>,
    started: AtomicBool,
    draining: AtomicBool,
    journal_errors: AtomicU64,
    last_journal_error: Mutex<Option<Instant>>,
}

impl Admin {
    pub(crate) fn new(
        handle: FastAckHandle,
        dedup: Arc<dyn Fn() -> DedupStats + Send + Sync>,
        prometheus: PrometheusHandle,
        token: Option<String>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                handle,
                dedup,
                prometheus,
                token,
                started: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                journal_errors: AtomicU64::new(0),
                last_journal_error: Mutex::new(None),
            }),
        }
    }

    /// The start-up replay is done.
    pub(crate) fn set_started(&self) {
        self.inner.started.store(true, Ordering::SeqCst);
    }

    /// Intake has stopped.
    pub(crate) fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// `None` when ready, else why not.
    fn not_ready(&self) -> Option<&'static str> {
        let inner = &self.inner;
        if inner.draining.load(Ordering::SeqCst) {
            return Some("draining");
        }
        if !inner.started.load(Ordering::SeqCst) {
            return Some("replaying the journal");
        }
        let errors = inner.handle.stats().journal_errors;
        let mut last = inner
            .last_journal_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if inner.journal_errors.swap(errors, Ordering::SeqCst) != errors {
            *last = Some(Instant::now());
        }
        match *last {
            Some(at) if at.elapsed() < JOURNAL_ERROR_HOLD => Some("the journal refused a write"),
            _ => None,
        }
    }
}

/// The admin app.
pub(crate) fn router(admin: Admin) -> Router {
    let api = Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/dead-letters", get(dead_letters))
        .route("/dead-letters/replay", post(replay_all))
        .route("/dead-letters/{id}/replay", post(replay_one))
        .route("/dead-letters/{id}", delete(dismiss))
        .route_layer(middleware::from_fn_with_state(admin.clone(), authorize));
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .merge(api)
        .with_state(admin)
}

/// The on-call page.
const PAGE: &str = include_str!("admin.html");

async fn authorize(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    if let Some(token) = &admin.inner.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({ "error": "a bearer token is required (--admin-token)" })),
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn readyz(State(admin): State<Admin>) -> Response {
    match admin.not_ready() {
        None => Json(json!({ "ready": true })).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reason": reason })),
        )
            .into_response(),
    }
}

async fn metrics(State(admin): State<Admin>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        admin.inner.prometheus.render(),
    )
        .into_response()
}

async fn stats(State(admin): State<Admin>) -> Response {
    let inner = &admin.inner;
    let fast_ack = inner.handle.stats();
    Json(json!({
        "ready": admin.not_ready().is_none(),
        // Every event not yet done: queued, being forwarded, waiting for a retry.
        "pending": fast_ack.queued + fast_ack.in_flight + fast_ack.waiting_retry,
        "fast_ack": fast_ack,
        "dedup": (inner.dedup)(),
    }))
    .into_response()
}

/// A dead letter as the admin API shows it: its own JSON (task id,
/// attempts, failure, received-at and failed-at, the payload) and the
/// failure as one line, `last_error`.
fn letter_json(letter: &DeadLetter) -> serde_json::Value {
    let mut json = serde_json::to_value(letter).unwrap_or_default();
    if let Some(fields) = json.as_object_mut() {
        fields.insert("last_error".into(), letter.failure().to_string().into());
    }
    json
}

async fn dead_letters(State(admin): State<Admin>) -> Response {
    let letters: Vec<_> = admin
        .inner
        .handle
        .dead_letters()
        .iter()
        .map(letter_json)
        .collect();
    Json(json!({ "dead_letters": letters })).into_response()
}

/// The dead letter named `id`: a task id, or a sequence number.
fn find(admin: &Admin, id: &str) -> Option<DeadLetter> {
    let letters = admin.inner.handle.dead_letters();
    letters
        .iter()
        .find(|l| l.task_id() == Some(id))
        .or_else(|| {
            let seq: u64 = id.parse().ok()?;
            letters.iter().find(|l| l.seq() == seq)
        })
        .cloned()
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no dead letter {id:?}") })),
    )
        .into_response()
}

fn replay_error(error: &ReplayError) -> Response {
    let status = match error {
        ReplayError::NotFound(_) => StatusCode::NOT_FOUND,
        ReplayError::Duplicate => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(json!({ "error": error.to_string() }))).into_response()
}

async fn replay_one(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    let Some(letter) = find(&admin, &id) else {
        return not_found(&id);
    };
    match admin.inner.handle.replay(letter.seq()).await {
        Ok(seq) => {
            tracing::info!(task_id = letter.task_id(), seq, "dead letter replayed");
            (
                StatusCode::ACCEPTED,
                Json(json!({ "replayed": letter.task_id(), "seq": seq })),
            )
                .into_response()
        }
        Err(error) => replay_error(&error),
    }
}

async fn replay_all(State(admin): State<Admin>) -> Response {
    match admin.inner.handle.replay_all().await {
        Ok(n) => {
            tracing::info!(n, "dead letters replayed");
            (StatusCode::ACCEPTED, Json(json!({ "replayed": n }))).into_response()
        }
        Err(error) => replay_error(&error),
    }
}

async fn dismiss(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    let Some(letter) = find(&admin, &id) else {
        return not_found(&id);
    };
    match admin.inner.handle.dismiss(letter.seq()).await {
        Ok(Some(_)) => {
            tracing::info!(task_id = letter.task_id(), "dead letter deleted");
            Json(json!({ "deleted": letter.task_id(), "seq": letter.seq() })).into_response()
        }
        Ok(None) => not_found(&id),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
    }
}
