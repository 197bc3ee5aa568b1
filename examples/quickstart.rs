//! Serves a callback route with the payload layer on loopback, posts the
//! provider's sample payloads (and a few bad bodies) to it, and prints what
//! the handler saw and what the provider would have been told.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use axum::{routing::post, Router};
use taskhook::{PayloadLayer, TaskEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn on_callback(event: TaskEvent) -> &'static str {
    let status = event.status().map_or("-", |s| s.as_str());
    println!("  handler: {} {status}", event.id());
    for url in event.urls() {
        println!(
            "    {} {} (expires {:?})",
            url.kind(),
            url.url(),
            url.expires_at()
        );
    }
    if let Some(error) = event.error() {
        println!("    error: {error}");
    }
    "ok"
}

const SAMPLES: &[(&str, &str)] = &[
    (
        "completed image",
        include_str!("../tests/fixtures/completed-image-url-array.json"),
    ),
    (
        "completed video",
        include_str!("../tests/fixtures/completed-video-legacy.json"),
    ),
    (
        "failed",
        include_str!("../tests/fixtures/failed-error-object.json"),
    ),
    (
        "no envelope",
        include_str!("../tests/fixtures/unenveloped-completed.json"),
    ),
    ("malformed", "{\"code\":200,\"data\":{\"id\":"),
    (
        "missing id",
        "{\"code\":200,\"data\":{\"status\":\"completed\"}}",
    ),
];

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new().route("/callback", post(on_callback).layer(PayloadLayer::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("listening on {addr}");

    for (name, body) in SAMPLES {
        println!("{name}:");
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!(
            "POST /callback HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let status = response.lines().next().unwrap_or_default();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        println!("  -> {status} {body}");
    }
    Ok(())
}
