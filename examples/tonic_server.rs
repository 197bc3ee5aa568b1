//! A gRPC service and the callback route on one tonic server and one port:
//! gRPC over HTTP/2, the provider's callbacks over HTTP/1.1.
//!
//! ```sh
//! cargo run --example tonic_server                 # serves 127.0.0.1:8080
//! cargo run --example tonic_server -- --self-test  # checks itself, exits
//! ```
//!
//! The gRPC service is tonic-health's `grpc.health.v1.Health` (it needs no
//! code generation); yours is added the same way. The callback route is an
//! axum router with the stack (payload → dedup → fast-ack → handler, built
//! by `CallbackStack`, mounted with `route_service`), turned into tonic
//! `Routes`; the server accepts HTTP/1.1 (`accept_http1`) because the provider posts over it.
//! The gRPC services are untouched by the stack.

mod support;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::handler::HandlerWithoutStateExt;
use http::StatusCode;
use taskhook::{CallbackStack, FastAckHandle, TaskEvent};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

async fn on_callback(event: TaskEvent) -> StatusCode {
    println!("  processed {} ({} URLs)", event.id(), event.urls().count());
    StatusCode::OK
}

/// The routes of the server: the health service and `POST /callback`.
fn routes() -> (Routes, FastAckHandle, tonic_health::server::HealthReporter) {
    let (callback, handle) = CallbackStack::new().build(on_callback.into_service());
    let http = axum::Router::new().route_service("/callback", callback);
    let (reporter, health) = tonic_health::server::health_reporter();
    (Routes::from(http).add_service(health), handle, reporter)
}

async fn self_test(addr: SocketAddr, handle: &FastAckHandle) -> Result<(), String> {
    // Intake opens once the workers have started (until then: 503 starting).
    handle.started().await;
    use support::{expect, expect_status, post_json, SAMPLE};
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let first = post_json(addr, "/callback", SAMPLE).await?;
    expect_status("POST /callback over HTTP/1.1", &first, StatusCode::ACCEPTED)?;
    let again = post_json(addr, "/callback", SAMPLE).await?;
    expect_status("the same task again", &again, StatusCode::OK)?;
    let malformed = post_json(addr, "/callback", "[]").await?;
    expect_status(
        "a body that is not an object",
        &malformed,
        StatusCode::BAD_REQUEST,
    )?;
    support::processed(handle, 1).await?;

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("gRPC connect: {e}"))?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|e| format!("gRPC Health/Check: {e}"))?;
    expect(
        answer.into_inner().status == ServingStatus::Serving as i32,
        "gRPC Health/Check on the same port: SERVING",
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
    let (routes, handle, _reporter) = routes();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .accept_http1(true)
            .add_routes(routes)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stop_rx.await;
            }),
    );
    let result = if self_test_mode {
        Some(self_test(addr, &handle).await)
    } else {
        println!("listening on {addr}");
        support::shutdown_signal().await;
        None
    };
    let report = handle.shutdown(Duration::from_secs(20)).await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    match result {
        Some(result) => support::finish(result),
        None => {
            eprintln!(
                "shutdown: drained={} left={}",
                report.drained,
                report.left()
            );
            ExitCode::SUCCESS
        }
    }
}
