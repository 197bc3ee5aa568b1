//! An existing axum app with several routes: only `POST /callback` gets the
//! taskhook stack (payload → dedup → fast-ack → handler); the other routes,
//! their extractors, bodies and status codes are untouched.
//!
//! ```sh
//! cargo run --example axum_existing_app                 # serves 127.0.0.1:8080
//! cargo run --example axum_existing_app -- --self-test  # checks itself, exits
//! ```
//!
//! The stack is built around the handler by `CallbackStack` and mounted
//! with `route_service`: it is a service, not a layer, so it applies to the
//! callback route alone (it answers a method other than `POST` with `405`
//! and `Allow: POST` itself). The handler takes `State`, given with
//! `Handler::with_state`.

mod support;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::handler::Handler;
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use taskhook::dedup::DUPLICATE_HEADER;
use taskhook::{CallbackStack, FastAckHandle, TaskEvent};
use tokio::net::TcpListener;

/// The app's state, shared by its routes and the callback handler.
#[derive(Debug, Clone, Default)]
struct AppState {
    items: Arc<Mutex<Vec<String>>>,
    results: Arc<Mutex<Vec<String>>>,
}

// The app's own routes, as they were before the callback route came.

async fn index() -> &'static str {
    "an existing app\n"
}

async fn list_items(State(state): State<AppState>) -> Json<Vec<String>> {
    Json(
        state
            .items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    )
}

/// Takes a plain-text body: no payload layer here, so no JSON rule either.
async fn add_item(State(state): State<AppState>, item: String) -> StatusCode {
    state
        .items
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(item);
    StatusCode::CREATED
}

async fn results(State(state): State<AppState>) -> Json<Vec<String>> {
    Json(
        state
            .results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    )
}

/// The callback handler: runs in the background, once per task.
async fn on_callback(State(state): State<AppState>, event: TaskEvent) -> StatusCode {
    // Copy the files before they expire; here, remember the URLs.
    let mut results = state.results.lock().unwrap_or_else(PoisonError::into_inner);
    results.extend(event.urls().map(|url| url.url().to_owned()));
    StatusCode::OK
}

/// The app, and the handle on the callback stack's background work.
fn app() -> (Router, FastAckHandle) {
    let state = AppState::default();
    let (callback, handle) = CallbackStack::new().build(on_callback.with_state(state.clone()));
    let app = Router::new()
        .route("/", get(index))
        .route("/items", get(list_items).post(add_item))
        .route("/results", get(results))
        // The only route with the stack.
        .route_service("/callback", callback)
        .with_state(state);
    (app, handle)
}

async fn self_test(addr: SocketAddr, handle: &FastAckHandle) -> Result<(), String> {
    // Intake opens once the workers have started (until then: 503 starting).
    handle.started().await;
    use support::{expect, expect_status, get, post_json, send, SAMPLE, SAMPLE_ID};

    // The other routes behave as before.
    expect_status("GET /", &get(addr, "/").await?, StatusCode::OK)?;
    let added = send(
        addr,
        http::Method::POST,
        "/items",
        Some("text/plain"),
        "apples",
    )
    .await?;
    expect_status("POST /items with a text body", &added, StatusCode::CREATED)?;
    let items = get(addr, "/items").await?;
    expect(items.body == r#"["apples"]"#, "GET /items lists it")?;

    // The callback route has the stack.
    let first = post_json(addr, "/callback", SAMPLE).await?;
    expect_status("POST /callback", &first, StatusCode::ACCEPTED)?;
    let again = post_json(addr, "/callback", SAMPLE).await?;
    expect_status("the same task again", &again, StatusCode::OK)?;
    expect(
        again.headers.get(&DUPLICATE_HEADER).is_some(),
        "answered as a duplicate",
    )?;
    let no_id = post_json(addr, "/callback", r#"{"code":200,"data":{}}"#).await?;
    expect_status(
        "a callback without a task id",
        &no_id,
        StatusCode::BAD_REQUEST,
    )?;
    let wrong_method = get(addr, "/callback").await?;
    expect_status(
        "GET /callback (a callback is a POST)",
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
    )?;
    expect(
        wrong_method
            .headers
            .get(http::header::ALLOW)
            .is_some_and(|v| v == "POST"),
        "GET /callback answers Allow: POST",
    )?;

    support::processed(handle, 1).await?;
    let results = get(addr, "/results").await?;
    expect(
        results.body.contains(".mp4"),
        format!("the handler stored the result URLs of {SAMPLE_ID}"),
    )?;
    expect(
        handle.stats().accepted == 1,
        "one event accepted for two pushes",
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let self_test_mode = support::self_test_requested();
    let listen = if self_test_mode {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:8080"
    };
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("bind {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(addr) = listener.local_addr() else {
        return ExitCode::FAILURE;
    };
    let (app, handle) = app();
    let server = axum::serve(listener, app).with_graceful_shutdown(support::shutdown_signal());
    if self_test_mode {
        tokio::spawn(std::future::IntoFuture::into_future(server));
        let result = self_test(addr, &handle).await;
        handle.shutdown(Duration::from_secs(5)).await;
        return support::finish(result);
    }
    println!("listening on {addr}");
    if let Err(error) = server.await {
        eprintln!("server: {error}");
    }
    // The server stopped on a signal: finish the accepted callbacks.
    let report = handle.shutdown(Duration::from_secs(20)).await;
    eprintln!(
        "shutdown: drained={} left={}",
        report.drained,
        report.left()
    );
    ExitCode::SUCCESS
}
