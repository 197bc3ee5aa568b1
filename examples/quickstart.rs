//! The smallest receiver: one axum route with the payload layer, which
//! parses the provider's callback once and hands the handler a `TaskEvent`
//! (or answers `400` itself when the body is not a callback).
//!
//! ```sh
//! cargo run --example quickstart    # serves 127.0.0.1:8080 until Ctrl-C
//! ```
//!
//! Then, from another terminal, post one of the provider's sample payloads
//! (the handler prints the task, its result URLs and any error; the
//! provider is told `200 ok`), and a body that is not a callback (`400`,
//! the handler is not called):
//!
//! ```sh
//! curl -i http://127.0.0.1:8080/callback -H 'content-type: application/json' \
//!     --data-binary @tests/fixtures/completed-video.json
//! curl -i http://127.0.0.1:8080/callback -H 'content-type: application/json' \
//!     --data '{"code":200,"data":{"status":"completed"}}'
//! ```
//!
//! `cargo test --example quickstart` posts every sample to the same app.

use axum::{routing::post, Router};
use taskhook::{PayloadLayer, TaskEvent};
use tokio::net::TcpListener;

async fn on_callback(event: TaskEvent) -> &'static str {
    let status = event.status().map_or("-", |s| s.as_str());
    println!("{} {status}", event.id());
    for url in event.urls() {
        println!(
            "  {} {} (expires {:?})",
            url.kind(),
            url.url(),
            url.expires_at()
        );
    }
    if let Some(error) = event.error() {
        println!("  error: {error}");
    }
    "ok"
}

/// The app: `POST /callback`, parsed by the payload layer.
fn app() -> Router {
    Router::new().route("/callback", post(on_callback).layer(PayloadLayer::new()))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use taskhook_test_support::{fixture, post, serve_axum, RawResponse};

    async fn post_callback(addr: std::net::SocketAddr, body: &[u8]) -> RawResponse {
        let answer = post(addr, "/callback", Some("application/json"), body);
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("an answer within 10 s")
    }

    #[tokio::test]
    async fn the_samples_reach_the_handler_and_bad_bodies_are_refused() {
        let addr = serve_axum(super::app()).await;
        for name in [
            "completed-image-url-array",
            "completed-video-legacy",
            "failed-error-object",
            "unenveloped-completed",
        ] {
            let answer = post_callback(addr, &fixture(name)).await;
            assert_eq!(answer.status, 200, "{name}: {answer:?}");
            assert_eq!(answer.body, "ok", "{name}: the handler's answer");
        }
        for bad in [
            &br#"{"code":200,"data":{"id":"#[..],
            br#"{"code":200,"data":{"status":"completed"}}"#,
        ] {
            let answer = post_callback(addr, bad).await;
            assert_eq!(answer.status, 400, "{answer:?}");
        }
    }
}
