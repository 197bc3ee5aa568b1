//! Shared by the examples of use: their `--self-test` mode (serve on a free
//! loopback port, send requests to themselves, check the answers, exit `0`
//! or `1`). Not an example itself: Cargo only builds `examples/*.rs` and
//! `examples/*/main.rs`.
#![allow(dead_code)]

use std::fmt::Display;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use taskhook::FastAckHandle;
use tokio::net::TcpStream;

/// A completed video task, as the provider sends it.
pub(crate) const SAMPLE: &[u8] = include_bytes!("../../tests/fixtures/completed-video.json");
/// The id in [`SAMPLE`].
pub(crate) const SAMPLE_ID: &str = "task_01KBS40K78KGHZ9SDBWQSGSXRK";

/// Whether the program was started with `--self-test`.
pub(crate) fn self_test_requested() -> bool {
    std::env::args().skip(1).any(|arg| arg == "--self-test")
}

/// An answer, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

/// Sends one HTTP/1.1 request on a new connection.
pub(crate) async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> Result<Answer, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string());
    if let Some(content_type) = content_type {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    let request = request
        .body(Full::new(body.into()))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `POST path` with a JSON body.
pub(crate) async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: impl Into<Bytes>,
) -> Result<Answer, String> {
    send(addr, Method::POST, path, Some("application/json"), body).await
}

/// `GET path`.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Result<Answer, String> {
    send(addr, Method::GET, path, None, Bytes::new()).await
}

/// Checks that `answer` has `status`.
pub(crate) fn expect_status(what: &str, answer: &Answer, status: StatusCode) -> Result<(), String> {
    if answer.status == status {
        println!("  ok  {what}: {}", answer.status);
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {status}, got {} {}",
            answer.status, answer.body
        ))
    }
}

/// Fails with `what` unless `holds`.
pub(crate) fn expect(holds: bool, what: impl Display) -> Result<(), String> {
    if holds {
        println!("  ok  {what}");
        Ok(())
    } else {
        Err(format!("failed: {what}"))
    }
}

/// Waits (at most 10 s) until the fast-ack workers have processed `n`
/// events.
pub(crate) async fn processed(handle: &FastAckHandle, n: u64) -> Result<(), String> {
    for _ in 0..1000 {
        if handle.stats().processed >= n {
            println!("  ok  {n} processed in the background");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("not processed: {:?}", handle.stats()))
}

/// The exit code of a self-test.
pub(crate) fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => {
            println!("self-test ok");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("self-test FAILED: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Writes `head` and `body` on a raw connection and keeps it open, then
/// reads the answer's status line and headers (at most 10 s): for bodies a
/// client never finishes or that break the rules.
pub(crate) async fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // The server may answer and close before the whole body is written.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?;
    let text = String::from_utf8_lossy(&answer);
    Ok(text.split("\r\n\r\n").next().unwrap_or_default().to_owned())
}
