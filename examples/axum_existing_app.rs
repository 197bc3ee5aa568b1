//! An existing axum app with several routes: only `POST /callback` gets the
//! taskhook stack (payload → dedup → fast-ack → handler); the other routes,
//! their extractors, bodies and status codes are untouched.
//!
//! ```sh
//! cargo run --example axum_existing_app    # serves 127.0.0.1:8080 until Ctrl-C
//! ```
//!
//! The stack is built around the handler by `CallbackStack` and mounted
//! with `route_service`: it is a service, not a layer, so it applies to the
//! callback route alone (it answers a method other than `POST` with `405`
//! and `Allow: POST` itself). The handler takes `State`, given with
//! `Handler::with_state`.
//!
//! To try from another terminal:
//!
//! ```sh
//! curl -i http://127.0.0.1:8080/items --data apples    # 201, no JSON rule here
//! curl -i http://127.0.0.1:8080/items                  # ["apples"]
//! curl -i http://127.0.0.1:8080/callback -H 'content-type: application/json' \
//!     --data-binary @tests/fixtures/completed-video.json  # 202, then 200 + taskhook-duplicate
//! curl -i http://127.0.0.1:8080/results                # the result URLs the handler kept
//! curl -i http://127.0.0.1:8080/callback               # 405, Allow: POST
//! ```
//!
//! `cargo test --example axum_existing_app` does the same against `app()`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::handler::Handler;
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
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

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on {}", listener.local_addr()?);
    let (app, handle) = app();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // The server stopped on Ctrl-C: finish the accepted callbacks.
    let report = handle.shutdown(Duration::from_secs(20)).await;
    eprintln!(
        "shutdown: drained={} left={}",
        report.drained,
        report.left()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::net::SocketAddr;
    use std::time::Duration;

    use taskhook::dedup::DUPLICATE_HEADER;
    use taskhook_test_support::{exchange, fixture, post, serve_axum, until, RawResponse};

    /// `what`, or a failure after 10 s.
    async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .unwrap_or_else(|_| panic!("{what}: nothing within 10 s"))
    }

    async fn get(addr: SocketAddr, path: &str) -> RawResponse {
        let head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        within(path, exchange(addr, &head, &[])).await
    }

    async fn post_json(addr: SocketAddr, body: &[u8]) -> RawResponse {
        let answer = post(addr, "/callback", Some("application/json"), body);
        within("POST /callback", answer).await
    }

    #[tokio::test]
    async fn the_other_routes_are_untouched_and_the_callback_is_processed_once() {
        let (app, handle) = super::app();
        let addr = serve_axum(app).await;
        // Intake opens once the workers have started (until then: 503).
        within("the workers' start", handle.started()).await;

        // The other routes behave as before.
        assert_eq!(get(addr, "/").await.status, 200);
        let added = post(addr, "/items", Some("text/plain"), b"apples");
        assert_eq!(within("POST /items", added).await.status, 201);
        assert_eq!(get(addr, "/items").await.body, r#"["apples"]"#);

        // The callback route has the stack.
        let sample = fixture("completed-video");
        assert_eq!(post_json(addr, &sample).await.status, 202);
        let again = post_json(addr, &sample).await;
        assert_eq!(again.status, 200, "{again:?}");
        assert!(
            again.header(DUPLICATE_HEADER.as_str()).is_some(),
            "{again:?}"
        );
        let no_id = post_json(addr, br#"{"code":200,"data":{}}"#).await;
        assert_eq!(no_id.status, 400, "{no_id:?}");
        let wrong_method = get(addr, "/callback").await;
        assert_eq!(wrong_method.status, 405, "{wrong_method:?}");
        assert_eq!(wrong_method.header("allow"), Some("POST"));

        // Processed in the background, once for two pushes.
        within(
            "processing",
            until("processed", || handle.stats().processed >= 1),
        )
        .await;
        let results = get(addr, "/results").await.json();
        let url = "video_task_01KBS40K78KGHZ9SDBWQSGSXRK.mp4";
        assert!(
            results[0].as_str().is_some_and(|u| u.ends_with(url)),
            "{results}"
        );
        assert_eq!(handle.stats().accepted, 1);
        assert!(handle.shutdown(Duration::from_secs(5)).await.drained);
    }
}
