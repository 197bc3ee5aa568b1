//! What a new user wiring the stack into an axum app gets wrong, and how
//! each mistake now fails loudly and early instead of silently: a handler
//! that needs what a replay cannot restore, a handler's 4xx after the 202,
//! layers in the wrong order or applied with `.layer`, a non-POST request,
//! JSON labelled as a form.

use taskhook_test_support as common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::handler::{Handler, HandlerWithoutStateExt};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use taskhook::fast_ack::journal::MemoryJournal;
use taskhook::fast_ack::{FastAckBuilder, FastAckLayer, RetryPolicy};
use taskhook::{CallbackStack, DedupLayer, PayloadLayer, TaskEvent};
use tower::{ServiceBuilder, ServiceExt};

use common::until;

const BODY: &[u8] = br#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#;

/// One attempt, so a failing handler is a dead letter at once.
fn one_attempt() -> FastAckBuilder {
    FastAckLayer::builder().retry(RetryPolicy::new().attempts(1))
}

async fn with_tenant(Path(tenant): Path<String>, event: TaskEvent) -> String {
    format!("{tenant} {}", event.id())
}

#[tokio::test]
async fn a_handler_that_needs_the_outer_routers_path_params_fails_on_its_first_live_call() {
    // Live or replayed after a restart, the handler gets what the journal
    // keeps: the router's path parameters are not in it, so `Path` fails
    // now, not after the next `kill -9`, and the dead letter says why.
    let journal = MemoryJournal::new();
    let (callback, handle) = CallbackStack::new()
        .fast_ack(one_attempt().journal(journal.clone()))
        .build(with_tenant.into_service());
    let app = Router::new().route_service("/t/{tenant}/callback", callback);
    let addr = common::serve_axum(app).await;
    handle.started().await;

    let answer = common::post(addr, "/t/acme/callback", None, BODY).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    until("dead-lettered", || handle.stats().dead_lettered == 1).await;
    let letter = &handle.dead_letters()[0];
    assert_eq!(
        letter.failure().status_code(),
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert!(
        letter
            .failure()
            .to_string()
            .contains("No paths parameters found"),
        "the dead letter says why: {}",
        letter.failure()
    );
    assert_eq!(handle.stats().processed, 0);
}

#[tokio::test]
async fn path_params_routed_inside_the_stack_work_live_and_after_a_restart() {
    // The supported way: route inside the stack, so the parameters come from
    // the journaled URI on every attempt.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hold = Arc::new(tokio::sync::Semaphore::new(0));
    let inner = |seen: Arc<Mutex<Vec<String>>>, hold: Option<Arc<tokio::sync::Semaphore>>| {
        Router::new().route(
            "/t/{tenant}/callback",
            post(
                move |Path(tenant): Path<String>, event: TaskEvent| async move {
                    if let Some(hold) = hold {
                        let _never = hold.acquire().await;
                    }
                    seen.lock()
                        .unwrap()
                        .push(format!("{tenant} {}", event.id()));
                },
            ),
        )
    };
    let journal = MemoryJournal::new();

    // Live.
    let (callback, handle) = CallbackStack::new()
        .journal(journal.clone())
        .build(inner(Arc::clone(&seen), None));
    let addr =
        common::serve_axum(Router::new().route_service("/t/{tenant}/callback", callback)).await;
    handle.started().await;
    assert_eq!(
        common::post(addr, "/t/acme/callback", None, BODY)
            .await
            .status,
        202
    );
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(*seen.lock().unwrap(), ["acme task_01"]);

    // An event left pending by a process that stopped mid-handler...
    let (callback, handle) = CallbackStack::new()
        .journal(journal.clone())
        .build(inner(Arc::clone(&seen), Some(Arc::clone(&hold))));
    let addr =
        common::serve_axum(Router::new().route_service("/t/{tenant}/callback", callback)).await;
    handle.started().await;
    let other = br#"{"code":200,"data":{"id":"task_02","status":"completed"}}"#;
    assert_eq!(
        common::post(addr, "/t/globex/callback", None, other)
            .await
            .status,
        202
    );
    until("running", || handle.stats().in_flight == 1).await;
    assert!(!handle.shutdown(Duration::from_millis(10)).await.drained);
    assert_eq!(journal.len(), 1);

    // ... is replayed by the next one with its path parameters.
    let (_callback, handle) = CallbackStack::new()
        .journal(journal.clone())
        .build(inner(Arc::clone(&seen), None));
    handle.started().await;
    until("replayed", || handle.stats().processed == 1).await;
    assert_eq!(*seen.lock().unwrap(), ["acme task_01", "globex task_02"]);
}

#[derive(serde::Deserialize)]
struct NeedsTenant {
    #[allow(dead_code)]
    tenant: String,
}

#[tokio::test]
async fn an_extractor_rejection_after_the_202_is_a_dead_letter_not_processed() {
    let (callback, handle) = CallbackStack::new()
        .build((|Json(_): Json<NeedsTenant>| async { StatusCode::OK }).into_service());
    let addr = common::serve_axum(Router::new().route_service("/callback", callback)).await;
    handle.started().await;
    let answer = common::post(addr, "/callback", Some("application/json"), BODY).await;
    assert_eq!(answer.status, 202);
    until("refused", || handle.stats().refused == 1).await;
    let stats = handle.stats();
    assert_eq!((stats.processed, stats.dead_letters), (0, 1), "{stats:?}");
    let letter = &handle.dead_letters()[0];
    assert_eq!(
        letter.failure().status_code(),
        Some(StatusCode::UNPROCESSABLE_ENTITY)
    );
    assert!(
        letter.failure().to_string().contains("tenant"),
        "{}",
        letter.failure()
    );
}

#[tokio::test]
async fn dedup_behind_fast_ack_is_a_500_that_names_the_fix() {
    let calls = Arc::new(Mutex::new(0));
    let handler = {
        let calls = Arc::clone(&calls);
        move || async move {
            *calls.lock().unwrap() += 1;
        }
    };
    let (fast_ack, handle) = one_attempt().build();
    let callback = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(fast_ack)
        .layer(DedupLayer::new())
        .service(handler.into_service());
    let addr = common::serve_axum(Router::new().route_service("/callback", callback)).await;
    handle.started().await;
    assert_eq!(
        common::post(addr, "/callback", None, BODY).await.status,
        202
    );
    until("dead-lettered", || handle.stats().dead_lettered == 1).await;
    let failure = handle.dead_letters()[0].failure().to_string();
    assert!(failure.contains("dedup_behind_fast_ack"), "{failure}");
    assert!(failure.contains("put it in front"), "{failure}");
    assert_eq!(
        *calls.lock().unwrap(),
        0,
        "the handler never ran unprotected"
    );
}

// `post(handler).layer(fast_ack)` and `Router::layer(fast_ack)` do not
// compile: axum takes only `Clone` layers there, and a `FastAckLayer` is not
// one (the `compile_fail` doctests of `taskhook::fast_ack` check it). What
// is left to check at run time: a second service from one layer.

#[tokio::test]
async fn a_fast_ack_layer_applied_twice_answers_500_naming_the_fix() {
    let (fast_ack, handle) = FastAckLayer::builder().build();
    let first = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(&fast_ack)
        .service((|| async {}).into_service());
    let second = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(&fast_ack)
        .service((|| async {}).into_service());
    let app = Router::new()
        .route_service("/callback", first)
        .route_service("/other/callback", second);
    let addr = common::serve_axum(app).await;
    handle.started().await;
    assert_eq!(
        common::post(addr, "/callback", None, BODY).await.status,
        202
    );
    let answer = common::post(addr, "/other/callback", None, BODY).await;
    assert_eq!(answer.status, 500, "{answer:?}");
    let json = answer.json();
    assert_eq!(json["error"]["code"], "fast_ack_layer_reused");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("route_service"), "{message}");
    assert!(message.contains("CallbackStack"), "{message}");
}

#[tokio::test]
async fn the_payload_layer_on_every_route_answers_a_health_check_405_not_400() {
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .layer(PayloadLayer::new());
    let addr = common::serve_axum(app).await;
    let health = common::exchange(
        addr,
        &format!("GET /health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"),
        &[],
    )
    .await;
    assert_eq!(health.status, 405, "{health:?}");
    assert_eq!(health.header("allow"), Some("POST"));
}

#[tokio::test]
async fn a_non_post_request_to_the_callback_route_is_405_with_allow_post() {
    let (callback, handle) = CallbackStack::new().build((|| async {}).into_service());
    let addr = common::serve_axum(Router::new().route_service("/callback", callback)).await;
    handle.started().await;
    for method in ["GET", "PUT", "DELETE"] {
        let answer = common::exchange(
            addr,
            &format!("{method} /callback HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
            &[],
        )
        .await;
        assert_eq!(answer.status, 405, "{method}: {answer:?}");
        assert_eq!(answer.header("allow"), Some("POST"), "{method}");
    }
    assert_eq!(handle.stats().accepted, 0);
}

#[tokio::test]
async fn json_labelled_as_a_form_is_accepted() {
    // What `curl -d @payload.json` sends.
    let (callback, handle) = CallbackStack::new().build((|| async {}).into_service());
    let addr = common::serve_axum(Router::new().route_service("/callback", callback)).await;
    handle.started().await;
    let answer = common::post(
        addr,
        "/callback",
        Some("application/x-www-form-urlencoded"),
        BODY,
    )
    .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let form = common::post(
        addr,
        "/callback",
        Some("application/x-www-form-urlencoded"),
        b"id=task_02",
    )
    .await;
    assert_eq!(form.status, 400, "a body that is not JSON stays a 4xx");
    until("processed", || handle.stats().processed == 1).await;
}

#[derive(Clone)]
struct AppState {
    prefix: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
}

#[tokio::test]
async fn a_handler_with_state_mounts_with_with_state() {
    async fn on_callback(State(state): State<AppState>, event: TaskEvent) {
        state
            .seen
            .lock()
            .unwrap()
            .push(format!("{}{}", state.prefix, event.id()));
    }
    let state = AppState {
        prefix: "got ",
        seen: Arc::default(),
    };
    let (callback, handle) = CallbackStack::new().build(on_callback.with_state(state.clone()));
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route_service("/callback", callback)
        .with_state(state.clone());
    let addr = common::serve_axum(app).await;
    handle.started().await;
    assert_eq!(
        common::post(addr, "/callback", None, BODY).await.status,
        202
    );
    let again = common::post(addr, "/callback", None, BODY).await;
    assert_eq!(
        (again.status, again.header("taskhook-duplicate")),
        (200, Some("done"))
    );
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(*state.seen.lock().unwrap(), ["got task_01"]);
}

#[tokio::test]
async fn a_durable_journal_recognises_a_duplicate_after_a_restart_with_no_other_wiring() {
    use taskhook::backend::redb::RedbJournal;
    let dir = std::env::temp_dir().join(format!("taskhook-misuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("journal.redb");
    let runs = Arc::new(Mutex::new(0));
    let handler = {
        let runs = Arc::clone(&runs);
        move || async move {
            *runs.lock().unwrap() += 1;
        }
    };
    for run in 0..2 {
        let journal = RedbJournal::open(&path).unwrap();
        let (callback, handle) = CallbackStack::new()
            .journal(journal)
            .build(handler.clone().into_service());
        handle.started().await;
        let push = http::Request::post("/callback")
            .body(axum::body::Body::from(BODY))
            .unwrap();
        let answer = callback.oneshot(push).await.unwrap();
        if run == 0 {
            assert_eq!(answer.status(), 202);
            until("processed", || handle.stats().processed == 1).await;
        } else {
            // A new process: its in-memory dedup store is empty, the journal is not.
            assert_eq!(answer.status(), 200);
            assert_eq!(answer.headers()["taskhook-duplicate"], "journaled");
        }
        assert!(handle.shutdown(Duration::from_secs(5)).await.drained);
        // The process ends: the journal file is closed.
    }
    assert_eq!(
        *runs.lock().unwrap(),
        1,
        "the handler ran once in two processes"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
