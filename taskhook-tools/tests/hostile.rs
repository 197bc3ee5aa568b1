//! Hostile input against the receiver's stack and server, over HTTP
//! on loopback: oversize and lying chunked bodies, deep nesting, invalid
//! UTF-8, hostile ids, a stalled body, and hundreds of slow connections.
//!
//! The stack is the one `taskhook_tools::receiver` builds (payload → dedup →
//! fast-ack → handler, mounted by its `router`), served by its `serve_with`
//! with the header-read timeout and the connection cap: in process, on a
//! free loopback port, so the test needs no binary.

use taskhook_test_support as common;

use taskhook_tools::receiver;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::handler::Handler;
use http::StatusCode;
use taskhook::{CallbackStack, FastAckHandle, TaskEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use self::common::RawResponse;
use taskhook::server::ServerLimits;

/// The payload layer's default body limit (256 KiB, stated in `PayloadLayer::limit`).
const PAYLOAD_DEFAULT_LIMIT: usize = 256 * 1024;

/// A bound on anything that should happen promptly: a liveness check that
/// fails a hung test, never a measure of speed.
const BOUND: Duration = Duration::from_secs(20);

/// The receiver's stack and server on a free loopback port.
struct Receiver {
    addr: SocketAddr,
    /// Handler runs, by task id.
    runs: Arc<AtomicUsize>,
    handle: FastAckHandle,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

async fn on_callback(State(runs): State<Arc<AtomicUsize>>, _event: TaskEvent) -> StatusCode {
    runs.fetch_add(1, Ordering::SeqCst);
    StatusCode::OK
}

impl Receiver {
    async fn start(limits: ServerLimits) -> Self {
        let runs = Arc::new(AtomicUsize::new(0));
        let (callback, handle) =
            CallbackStack::new().build(on_callback.with_state(Arc::clone(&runs)));
        let app = receiver::router(callback);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(receiver::serve_with(listener, app, limits, async {
            let _ = stopped.await;
        }));
        handle.started().await;
        Self {
            addr,
            runs,
            handle,
            stop: Some(stop),
            server,
        }
    }

    /// Runs the handler ran, once the queue is drained.
    async fn runs(&self) -> usize {
        let _ = self.handle.shutdown(BOUND).await;
        self.runs.load(Ordering::SeqCst)
    }
}

fn limits(header_timeout: Duration, max_connections: usize) -> ServerLimits {
    ServerLimits::new()
        .header_timeout(header_timeout)
        .max_connections(max_connections)
}

fn push_body(id: &str) -> Vec<u8> {
    format!(r#"{{"code":200,"data":{{"id":"{id}","status":"completed"}}}}"#).into_bytes()
}

/// Sends `head` and `parts` while reading the answer, so an early answer
/// (the server cuts a body at the limit) is read even if the server then
/// resets the connection; gives up writing at the first error. The parts
/// need not finish the request: the answer must come anyway.
async fn send(addr: SocketAddr, head: String, parts: Vec<Vec<u8>>) -> RawResponse {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return writer;
        }
        for part in parts {
            if writer.write_all(&part).await.is_err() {
                break;
            }
        }
        // Not shut down: a stalled client keeps its side open.
        writer
    });
    let read = async {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
            if complete(&raw) {
                break;
            }
        }
        raw
    };
    let raw = tokio::time::timeout(BOUND, read)
        .await
        .expect("no answer within the bound");
    writing.abort();
    common::parse(&raw)
}

/// `true` once `raw` holds a whole response with a `content-length` body.
fn complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .is_some_and(|len| body.len() >= len)
}

fn chunked_head(addr: SocketAddr) -> String {
    format!(
        "POST /callback HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n"
    )
}

fn length_head(addr: SocketAddr, len: usize) -> String {
    format!(
        "POST /callback HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {len}\r\nconnection: close\r\n\r\n"
    )
}

/// Asserts a permanent rejection with its error code, no 5xx.
#[track_caller]
fn assert_rejected(response: &RawResponse, status: u16, code: &str) {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.json()["error"]["code"], code, "{response:?}");
}

// ---- hostile bodies ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_chunked_body_is_a_413_before_it_ends() {
    let receiver = Receiver::start(ServerLimits::default()).await;
    let addr = receiver.addr;
    // 1 MiB in 8 KiB chunks, and never the last chunk: the answer must not
    // wait for the end of the body.
    let parts: Vec<Vec<u8>> = (0..128)
        .map(|_| {
            let mut part = format!("{:x}\r\n", 8192).into_bytes();
            part.extend_from_slice(&[b' '; 8192]);
            part.extend_from_slice(b"\r\n");
            part
        })
        .collect();
    let response = send(addr, chunked_head(addr), parts).await;
    assert_rejected(&response, 413, "payload_too_large");
    assert_eq!(receiver.runs().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_of_tiny_chunks_is_limited_by_its_bytes() {
    let receiver = Receiver::start(ServerLimits::default()).await;
    let addr = receiver.addr;
    // 300 KiB in one-byte chunks (1.8 MB on the wire): the limit counts
    // body bytes, however thinly they are sliced.
    let mut wire = Vec::new();
    wire.extend_from_slice(b"1\r\n{\r\n");
    for _ in 0..300 * 1024 {
        wire.extend_from_slice(b"1\r\n \r\n");
    }
    let parts = wire.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let response = send(addr, chunked_head(addr), parts).await;
    assert_rejected(&response, 413, "payload_too_large");

    // Tiny chunks under the limit are one ordinary body.
    let body = push_body("task_tiny_chunks");
    let response = common::post_chunked(addr, "/callback", &body, 1).await;
    assert_eq!(response.status, 202, "{response:?}");
    assert_eq!(receiver.runs().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_that_declares_a_huge_size_is_cut_at_the_limit() {
    let receiver = Receiver::start(ServerLimits::default()).await;
    let addr = receiver.addr;
    // One chunk announced as 1 TiB; 300 KiB of it sent, then a stall.
    let mut parts = vec![format!("{:x}\r\n", 1u64 << 40).into_bytes()];
    parts.extend((0..30).map(|_| vec![b' '; 10 * 1024]));
    let response = send(addr, chunked_head(addr), parts).await;
    assert_rejected(&response, 413, "payload_too_large");
    // A declared Content-Length over the limit is refused from the header.
    let response = send(addr, length_head(addr, 1 << 30), Vec::new()).await;
    assert_rejected(&response, 413, "payload_too_large");
    assert_eq!(receiver.runs().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_is_a_400() {
    let receiver = Receiver::start(ServerLimits::default()).await;
    let addr = receiver.addr;
    for depth in [200, 10_000, 100_000] {
        for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
            let body = format!(
                r#"{{"id":"task_deep","x":{}1{}}}"#,
                open.repeat(depth),
                close.repeat(depth)
            );
            let response = if body.len() <= PAYLOAD_DEFAULT_LIMIT {
                common::post(addr, "/callback", Some("application/json"), body.as_bytes()).await
            } else {
                // Over the limit as well: the size is checked first.
                let response = send(addr, length_head(addr, body.len()), vec![]).await;
                assert_rejected(&response, 413, "payload_too_large");
                continue;
            };
            assert_rejected(&response, 400, "nesting_too_deep");
        }
    }
    // Chunked, the same answer.
    let body = format!(
        r#"{{"id":"task_deep","x":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let response = common::post_chunked(addr, "/callback", body.as_bytes(), 100).await;
    assert_rejected(&response, 400, "nesting_too_deep");
    assert_eq!(receiver.runs().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_a_400() {
    let receiver = Receiver::start(ServerLimits::default()).await;
    let addr = receiver.addr;
    let cases: [(&[u8], &str); 5] = [
        // In the id, in another string, a lone surrogate escape.
        (b"{\"id\":\"task_\xc3\x28\"}", "invalid_utf8"),
        (
            b"{\"id\":\"task_ok\",\"status\":\"comp\xffleted\"}",
            "invalid_utf8",
        ),
        (b"{\"id\":\"task_\xed\xa0\x80\"}", "invalid_utf8"),
        (b"{\"id\":\"task_\\ud800\"}", "malformed_json"),
        // Outside any string.
        (b"{\"id\":\"task_ok\"\xff}", "invalid_utf8"),
    ];
    for (body, code) in cases {
        let response = common::post(addr, "/callback", Some("application/json"), body).await;
        assert_rejected(&response, 400, code);
        let response = common::post_chunked(addr, "/callback", body, 3).await;
        assert_rejected(&response, 400, code);
    }
    assert_eq!(receiver.runs().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ids_are_a_400_and_never_echoed() {
    let receiver = Receiver::start(ServerLimits::default()).await;
    let addr = receiver.addr;
    let long = format!("task_{}", "x".repeat(10 * 1024));
    let cases: Vec<Vec<u8>> = vec![
        // 10 KB.
        format!(r#"{{"id":"{long}"}}"#).into_bytes(),
        format!(r#"{{"code":200,"data":{{"id":"{long}","status":"completed"}}}}"#).into_bytes(),
        // CRLF, escaped (a raw one is not valid JSON: also a 400).
        br#"{"id":"task_evil\r\nX-Injected: 1"}"#.to_vec(),
        b"{\"id\":\"task_evil\r\nX-Injected: 1\"}".to_vec(),
        // NUL, escaped and raw.
        br#"{"id":"task_evil\u0000tail"}"#.to_vec(),
        b"{\"id\":\"task_evil\0tail\"}".to_vec(),
        // Other control characters, and not a string.
        br#"{"id":"task_evil\u001b[31m"}"#.to_vec(),
        br#"{"id":"task_evil\u0085"}"#.to_vec(),
        br#"{"id":12345}"#.to_vec(),
        br#"{"id":""}"#.to_vec(),
    ];
    for body in &cases {
        let response = common::post(addr, "/callback", Some("application/json"), body).await;
        assert_eq!(response.status, 400, "{response:?}");
        let code = response.json()["error"]["code"].clone();
        assert!(
            code == "invalid_id" || code == "malformed_json",
            "{response:?}"
        );
        assert!(!response.body.contains("task_evil"), "{response:?}");
        assert!(!response.body.contains("xxxxxxxx"), "{response:?}");
        assert!(response.header("x-injected").is_none(), "{response:?}");
    }
    // An id of exactly 256 bytes is fine.
    let id = format!("task_{}", "y".repeat(256 - 5));
    let response = common::post(addr, "/callback", None, &push_body(&id)).await;
    assert_eq!(response.status, 202, "{response:?}");
    assert_eq!(receiver.runs().await, 1);
}

// ---- slow connections ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_a_503_with_retry_after() {
    let request_timeout = Duration::from_millis(500);
    let receiver = Receiver::start(ServerLimits::new().request_timeout(request_timeout)).await;
    let addr = receiver.addr;
    // The header in time, then part of the body and a stall: with a
    // Content-Length, and chunked.
    let stalls = [
        (length_head(addr, 100), b"{\"id\":\"task_".to_vec()),
        (chunked_head(addr), b"20\r\n{\"id\":\"task_".to_vec()),
    ];
    for (head, part) in stalls {
        let opened = Instant::now();
        let response = send(addr, head, vec![part]).await;
        assert_eq!(response.status, 503, "{response:?}");
        assert_eq!(response.header("retry-after"), Some("5"), "{response:?}");
        assert_eq!(response.json()["error"]["code"], "request_timeout");
        assert!(opened.elapsed() >= request_timeout);
    }
    assert_eq!(receiver.runs().await, 0);
}

/// Reads until the server closes the connection; `Ok(bytes)` on a clean
/// close or a reset.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return raw,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_are_closed_while_real_pushes_are_served() {
    const SLOW: usize = 300;
    let header_timeout = Duration::from_millis(800);
    let receiver = Receiver::start(limits(header_timeout, 1024)).await;
    let addr = receiver.addr;

    // Half send part of a header and stall; half say nothing at all.
    let mut slow = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        // Before the connection: the server's clock starts after it.
        let since = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            stream
                .write_all(b"POST /callback HTTP/1.1\r\nhost: x\r\ncontent-type: appl")
                .await
                .unwrap();
        }
        slow.push((stream, since));
    }

    // Real pushes meanwhile, each on its own connection: all accepted.
    let pushes: Vec<_> = (0..20)
        .map(|i| {
            tokio::spawn(async move {
                let body = push_body(&format!("task_real_{i}"));
                common::post(addr, "/callback", Some("application/json"), &body).await
            })
        })
        .collect();
    for push in pushes {
        let response = tokio::time::timeout(BOUND, push).await.unwrap().unwrap();
        assert_eq!(response.status, 202, "{response:?}");
    }

    // Every slow connection is closed by the server, no sooner than the
    // header timeout after it was opened.
    let closing = slow.into_iter().map(|(mut stream, since)| async move {
        let raw = until_closed(&mut stream).await;
        (raw, since.elapsed())
    });
    let closed = tokio::time::timeout(BOUND, futures_join_all(closing))
        .await
        .expect("a slow connection was never closed");
    for (raw, after) in closed {
        assert!(after >= header_timeout, "closed after {after:?}");
        // Closed without an answer (hyper writes nothing on a header
        // timeout), so certainly no 2xx.
        assert!(raw.is_empty(), "{:?}", String::from_utf8_lossy(&raw));
    }
    assert_eq!(receiver.runs().await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    const CAP: usize = 8;
    let header_timeout = Duration::from_millis(500);
    let receiver = Receiver::start(limits(header_timeout, CAP)).await;
    let addr = receiver.addr;

    // A served request proves the server runs, then CAP silent connections
    // take every slot (accepted in order, behind it).
    let response = common::post(addr, "/callback", None, &push_body("task_first")).await;
    assert_eq!(response.status, 202);
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..CAP {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // The next connection waits in the backlog: its push is answered only
    // once the header timeout freed a slot.
    let push = tokio::spawn(async move {
        let response = common::post(addr, "/callback", None, &push_body("task_waited")).await;
        (response, Instant::now())
    });
    let closes = silent.iter_mut().map(until_closed);
    tokio::time::timeout(BOUND, futures_join_all(closes))
        .await
        .expect("silent connections were never closed");
    let (response, answered) = tokio::time::timeout(BOUND, push).await.unwrap().unwrap();
    assert_eq!(response.status, 202, "{response:?}");
    // No slot is free before a silent connection's header timeout ran out
    // (without the cap it would be answered at once).
    assert!(
        answered.duration_since(opened) >= header_timeout,
        "served after {:?}, before a slot was free",
        answered.duration_since(opened)
    );
    assert_eq!(receiver.runs().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_stops_accepting() {
    let mut receiver = Receiver::start(limits(Duration::from_secs(60), 16)).await;
    let addr = receiver.addr;
    // A keep-alive connection, idle after one answer.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let body = push_body("task_keepalive");
    let head = format!(
        "POST /callback HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    idle.write_all(head.as_bytes()).await.unwrap();
    idle.write_all(&body).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    while !complete(&raw) {
        let n = idle.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the answer");
        raw.extend_from_slice(&buf[..n]);
    }
    assert_eq!(common::parse(&raw).status, 202);

    let _ = receiver.stop.take().unwrap().send(());
    // The server returns (the idle connection does not hold it up for the
    // 60 s header timeout) and the idle connection is closed.
    let served = tokio::time::timeout(BOUND, &mut receiver.server)
        .await
        .expect("the server did not stop");
    served.unwrap().unwrap();
    let rest = tokio::time::timeout(BOUND, until_closed(&mut idle))
        .await
        .unwrap();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    assert_eq!(receiver.runs().await, 1);
}

/// Awaits every future, concurrently (without the `futures` crate).
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future,
{
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
