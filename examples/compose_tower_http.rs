//! The taskhook stack composed with tower-http: request tracing, a request
//! body limit, and a timeout that answers `503` (not `408`), in an order
//! that keeps the status-code policy.
//!
//! ```sh
//! RUST_LOG=tower_http=debug cargo run --example compose_tower_http   # 127.0.0.1:8080
//! ```
//!
//! Then, from another terminal: a callback (`202`), a body over the limit
//! (`413`), and a client that stops sending its body (`503` with
//! `Retry-After` after 8 s; `cargo test --example compose_tower_http`
//! checks all three against `app()`, with a shorter timeout):
//!
//! ```sh
//! curl -i http://127.0.0.1:8080/callback -H 'content-type: application/json' \
//!     --data-binary @tests/fixtures/completed-video.json
//! head -c 2000000 /dev/zero | curl -i http://127.0.0.1:8080/callback --data-binary @-
//! (printf 'POST /callback HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{'; sleep 10) \
//!     | nc 127.0.0.1 8080
//! ```
//!
//! From the outside in (the first layer added to a `ServiceBuilder` is the
//! outermost):
//!
//! 1. `TraceLayer`: outermost, so its span covers the whole request and it
//!    logs the final status, including the `413` and `503` answers the
//!    layers below write themselves.
//! 2. `map_response(retry_after_on_503)`: every `503` must carry
//!    `Retry-After` (taskhook's own do); tower-http's timeout answer has
//!    none, so one is added to any `503` without it. It sits outside the
//!    timeout to see that answer.
//! 3. `RequestBodyLimitLayer` (1 MiB): for every route; a `Content-Length`
//!    over it is a `413` at once, before the timeout starts to matter. The
//!    callback route's own, tighter limit is the payload layer's (256 KiB
//!    by default, a JSON `413`); were this outer limit the tighter one, a
//!    streamed body over it would also end as the payload layer's `413`
//!    (never a `503`: a body that can never fit must not be retried).
//! 4. `TimeoutLayer::with_status_code(503, 8 s)`: the provider gives up for
//!    good on a 4xx, so tower-http's old default, `408 Request Timeout`,
//!    would lose the result; `503` makes it retry. 8 s is under the
//!    provider's 10 s, so it gets our answer instead of timing out itself.
//!    It is outside the payload layer, which reads the body, so it also
//!    bounds a client that sends its body slowly. (It sits inside the body
//!    limit: tower-http's timeout needs a response body with a `Default`,
//!    which axum's has and the limit's has not.) Keep it above the dedup
//!    layer's wait for an in-flight duplicate (5 s by default), so dedup
//!    answers that case itself. A timeout drops the request's future:
//!    before the dedup layer's claim nothing was accepted; after it, the
//!    dedup layer moves the call onto a task of its own, where fast-ack's
//!    journal-and-queue step finishes and the task id is recorded, so
//!    nothing is half-accepted and the provider's retry is answered as a
//!    duplicate. (Without the dedup layer, fast-ack still finishes a
//!    journal-and-queue step under way on a task of its own, and a retry
//!    would be accepted again: a journal that deduplicates by task id
//!    closes that window.)
//! 5. Then, on `/callback` only: payload → dedup → fast-ack → handler,
//!    built by `CallbackStack` and mounted with `route_service`.

use std::time::Duration;

use axum::handler::HandlerWithoutStateExt;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};
use taskhook::{CallbackStack, DedupLayer, FastAckHandle, TaskEvent};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

async fn on_callback(event: TaskEvent) -> StatusCode {
    tracing::info!(id = event.id(), urls = event.urls().count(), "processed");
    StatusCode::OK
}

/// Adds `Retry-After` to a `503` that has none (the timeout's answer).
async fn retry_after_on_503<B>(mut response: Response<B>) -> Response<B> {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(RETRY_AFTER)
    {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("10"));
    }
    response
}

/// The app; `timeout` bounds every request (8 s in `main`, less in the
/// test).
fn app(timeout: Duration) -> (Router, FastAckHandle) {
    let (callback, handle) = CallbackStack::new()
        // The wait for an in-flight duplicate ends before the timeout.
        .dedup(DedupLayer::new().wait_timeout(timeout * 5 / 8))
        .build(on_callback.into_service());
    let app = Router::new()
        .route_service("/callback", callback)
        .route("/health", get(|| async { "ok" }))
        // These apply to every route; none of them is a FastAckLayer, so
        // layering the router (and its fallback) is fine.
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(axum::middleware::map_response(retry_after_on_503))
                .layer(RequestBodyLimitLayer::new(1024 * 1024))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    timeout,
                )),
        );
    (app, handle)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let listener = TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on {}", listener.local_addr()?);
    let (app, handle) = app(Duration::from_secs(8));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
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
    use std::time::Duration;

    use taskhook_test_support::{exchange, fixture, post, post_chunked, serve_axum, until};

    /// `what`, or a failure after 10 s.
    async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .unwrap_or_else(|_| panic!("{what}: nothing within 10 s"))
    }

    #[tokio::test]
    async fn a_stalled_body_is_a_503_with_retry_after_and_a_large_one_a_413() {
        let (app, handle) = super::app(Duration::from_millis(400));
        let addr = serve_axum(app).await;
        within("the workers' start", handle.started()).await;

        let head = format!("GET /health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        let health = exchange(addr, &head, &[]);
        assert_eq!(within("GET /health", health).await.status, 200);
        let sample = fixture("completed-video");
        let accepted = post(addr, "/callback", Some("application/json"), &sample);
        assert_eq!(within("POST /callback", accepted).await.status, 202);
        let processed = until("processed", || handle.stats().processed == 1);
        within("processing", processed).await;

        // A client that stops sending its body: 503 with Retry-After, not 408.
        let head = format!(
            "POST /callback HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: 100\r\n\r\n"
        );
        let stalled = within("a stalled body", exchange(addr, &head, &[b"{"])).await;
        assert_eq!(stalled.status, 503, "{stalled:?}");
        assert_eq!(stalled.header("retry-after"), Some("10"), "{stalled:?}");

        // Over the app-wide limit by Content-Length: tower-http's 413.
        let head = format!(
            "POST /callback HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 2097152\r\n\
             connection: close\r\n\r\n"
        );
        let too_large = within("2 MiB by length", exchange(addr, &head, &[])).await;
        assert_eq!(too_large.status, 413, "{too_large:?}");
        assert_eq!(too_large.body, "length limit exceeded", "{too_large:?}");

        // Over the limits while streaming (chunked, no length): a 413, not a
        // 503 (the provider must not retry a body that can never fit).
        let body = vec![b' '; 1280 * 1024];
        let streamed = post_chunked(addr, "/callback", &body, 64 * 1024);
        let streamed = within("1.25 MiB chunked", streamed).await;
        assert_eq!(streamed.status, 413, "{streamed:?}");
        // The payload layer's own, tighter limit, in JSON.
        assert_eq!(streamed.json()["error"]["code"], "payload_too_large");
        assert!(handle.shutdown(Duration::from_secs(5)).await.drained);
    }
}
