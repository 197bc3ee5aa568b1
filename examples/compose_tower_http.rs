//! The taskhook stack composed with tower-http: request tracing, a request
//! body limit, and a timeout that answers `503` (not `408`), in an order
//! that keeps the status-code policy.
//!
//! ```sh
//! RUST_LOG=tower_http=debug cargo run --example compose_tower_http
//! cargo run --example compose_tower_http -- --self-test
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

mod support;

use std::net::SocketAddr;
use std::process::ExitCode;
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

/// The app; `timeout` bounds every request (8 s in production, less in the
/// self-test).
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

async fn self_test(addr: SocketAddr, handle: &FastAckHandle) -> Result<(), String> {
    // Intake opens once the workers have started (until then: 503 starting).
    handle.started().await;
    use support::{expect, expect_status, get, post_json, raw, SAMPLE};

    expect_status("GET /health", &get(addr, "/health").await?, StatusCode::OK)?;
    let accepted = post_json(addr, "/callback", SAMPLE).await?;
    expect_status("POST /callback", &accepted, StatusCode::ACCEPTED)?;
    support::processed(handle, 1).await?;

    // A client that stops sending its body: 503 with Retry-After, not 408.
    let head = format!(
        "POST /callback HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n"
    );
    let stalled = raw(addr, &head, br#"{"code":200,"#).await?;
    expect(
        stalled.starts_with("HTTP/1.1 503"),
        format!(
            "a stalled body times out as 503: {:?}",
            first_line(&stalled)
        ),
    )?;
    expect(
        stalled.to_ascii_lowercase().contains("retry-after: 10"),
        "with Retry-After",
    )?;

    // Over the app-wide limit by Content-Length: tower-http's 413.
    let head = format!(
        "POST /callback HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        2 * 1024 * 1024
    );
    let too_large = raw(addr, &head, b"").await?;
    expect(
        too_large.starts_with("HTTP/1.1 413"),
        format!("2 MiB by Content-Length: {:?}", first_line(&too_large)),
    )?;

    // Over the limits while streaming (chunked, no length): a 413, not a
    // 503 (the provider must not retry a body that can never fit).
    let head = format!(
        "POST /callback HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let chunk = vec![b' '; 64 * 1024];
    let mut body = Vec::new();
    for _ in 0..20 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let streamed = raw(addr, &head, &body).await?;
    expect(
        streamed.starts_with("HTTP/1.1 413"),
        format!("1.25 MiB chunked: {:?}", first_line(&streamed)),
    )?;
    Ok(())
}

fn first_line(head: &str) -> &str {
    head.lines().next().unwrap_or_default()
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let self_test_mode = support::self_test_requested();
    let (listen, timeout) = if self_test_mode {
        ("127.0.0.1:0", Duration::from_millis(400))
    } else {
        ("127.0.0.1:8080", Duration::from_secs(8))
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
    let (app, handle) = app(timeout);
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
    let report = handle.shutdown(Duration::from_secs(20)).await;
    eprintln!(
        "shutdown: drained={} left={}",
        report.drained,
        report.left()
    );
    ExitCode::SUCCESS
}
