//! A gRPC service and the callback route on one tonic server and one port:
//! gRPC over HTTP/2, the provider's callbacks over HTTP/1.1.
//!
//! ```sh
//! cargo run --example tonic_server    # serves 127.0.0.1:8080 until Ctrl-C
//! curl -i http://127.0.0.1:8080/callback -H 'content-type: application/json' \
//!     --data-binary @tests/fixtures/completed-video.json     # 202 over HTTP/1.1
//! ```
//!
//! `cargo test --example tonic_server` posts the callback and asks the
//! health service (`Check`: `SERVING`) with tonic's client, on one port.
//!
//! The gRPC service is tonic-health's `grpc.health.v1.Health` (it needs no
//! code generation); yours is added the same way. The callback route is an
//! axum router with the stack (payload → dedup → fast-ack → handler, built
//! by `CallbackStack`, mounted with `route_service`), turned into tonic
//! `Routes`; the server accepts HTTP/1.1 (`accept_http1`) because the
//! provider posts over it. The gRPC services are untouched by the stack.

use std::future::Future;
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

/// Serves `routes` on `listener`, HTTP/1.1 and HTTP/2, until `shutdown`.
async fn serve(
    listener: TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .accept_http1(true)
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on {}", listener.local_addr()?);
    // The reporter changes a service's health (`set_not_serving`, ...);
    // the server's own (`""`) starts as SERVING.
    let (routes, handle, _reporter) = routes();
    serve(listener, routes, async {
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

    use taskhook_test_support::{fixture, post, until};
    use tokio::net::TcpListener;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    /// `what`, or a failure after 10 s.
    async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .unwrap_or_else(|_| panic!("{what}: nothing within 10 s"))
    }

    #[tokio::test]
    async fn grpc_and_the_callback_share_one_port() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (routes, handle, _reporter) = super::routes();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(super::serve(listener, routes, async {
            let _ = stopped.await;
        }));
        within("the workers' start", handle.started()).await;

        // The callback, over HTTP/1.1.
        let sample = fixture("completed-video");
        for (body, status) in [(&sample[..], 202), (&sample, 200), (b"[]", 400)] {
            let answer = post(addr, "/callback", Some("application/json"), body);
            let answer = within("POST /callback", answer).await;
            assert_eq!(answer.status, status, "{answer:?}");
        }
        let processed = until("processed", || handle.stats().processed == 1);
        within("processing", processed).await;

        // gRPC, over HTTP/2, on the same port.
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap();
        let channel = within("gRPC connect", channel.connect()).await.unwrap();
        let mut health = HealthClient::new(channel);
        let check = health.check(HealthCheckRequest::default());
        let answer = within("Health/Check", check).await.unwrap().into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32);

        assert!(handle.shutdown(Duration::from_secs(5)).await.drained);
        let _ = stop.send(());
        within("the server's stop", server).await.unwrap().unwrap();
    }
}
