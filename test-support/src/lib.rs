//! Helpers shared by taskhook's tests, benchmarks and tools (not
//! published): the sample payloads of `tests/fixtures/`, the benchmark
//! bodies, servers on loopback, a raw HTTP/1.1 client that shows exactly
//! what went over the wire, and a one-call exchange with a tower service.

pub mod bodies;
pub mod redis;
pub mod replicas;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A bound for eventual conditions: generous, only hit when the code is
/// wrong.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The directory of the sample payloads: `tests/fixtures/` of the
/// `taskhook` crate (they ship with it).
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");

/// The sample payload `tests/fixtures/<name>.json`; panics if it is not there.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{name}.json");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Serves an axum router on a free loopback port.
pub async fn serve_axum(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// An HTTP response as read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The status line and the headers.
    pub head: String,
    /// The body (de-chunked), lossily decoded as UTF-8.
    pub body: String,
}

impl RawResponse {
    /// The value of header `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends `head` then each part of `body` in turn (write errors ignored: the
/// server may answer and close early), then reads the whole response.
pub async fn exchange(addr: SocketAddr, head: &str, body: &[&[u8]]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut ok = stream.write_all(head.as_bytes()).await.is_ok();
    for part in body {
        if !ok {
            break;
        }
        ok = stream.write_all(part).await.is_ok();
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    parse_response(&raw)
}

/// POSTs `body` to `path` with a Content-Length and `Connection: close`.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> RawResponse {
    let content_type = content_type
        .map(|ct| format!("content-type: {ct}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\n{content_type}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    exchange(addr, &head, &[body]).await
}

/// POSTs `body` to `path` with chunked transfer encoding, in chunks of `chunk` bytes.
pub async fn post_chunked(addr: SocketAddr, path: &str, body: &[u8], chunk: usize) -> RawResponse {
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let mut parts: Vec<Vec<u8>> = body
        .chunks(chunk)
        .map(|c| {
            let mut part = format!("{:x}\r\n", c.len()).into_bytes();
            part.extend_from_slice(c);
            part.extend_from_slice(b"\r\n");
            part
        })
        .collect();
    parts.push(b"0\r\n\r\n".to_vec());
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    exchange(addr, &head, &parts).await
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    RawResponse {
        status,
        head: head.to_owned(),
        body: if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Parses a raw HTTP/1.1 response (as [`exchange`] does).
pub fn parse(raw: &[u8]) -> RawResponse {
    parse_response(raw)
}

/// A callback request for task `id`, enveloped, status `completed`.
pub fn callback(id: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let body = format!(r#"{{"code":200,"data":{{"id":"{id}","status":"completed"}}}}"#);
    http::Request::post("/callback")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap()
}

/// What a stack answered to [`send`].
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: http::StatusCode,
    /// The `retry-after` header.
    pub retry_after: Option<String>,
    /// The `taskhook-duplicate` header.
    pub duplicate: Option<String>,
    /// The body as JSON (`Null` if it is not).
    pub json: serde_json::Value,
}

/// Sends [`callback`]`(id)` through a clone of `service` and reads the answer.
pub async fn send<S, B>(service: &S, id: &str) -> Answer
where
    S: tower::Service<
            http::Request<http_body_util::Full<bytes::Bytes>>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone,
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let response = service.clone().oneshot(callback(id)).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: parts.status,
        retry_after: header("retry-after"),
        duplicate: header("taskhook-duplicate"),
        json: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    }
}

/// Waits in steps of 1 ms of tokio time (paused or not) until `done` holds;
/// fails after 20,000 steps instead of hanging.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..20_000 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("timed out waiting until {what}");
}
