//! `taskhook::server` over real HTTP on loopback: both protocols on one
//! port, the header (idle) timeout, the connection cap, the request
//! timeout, graceful shutdown.
//!
//! Every wait is bounded by [`BOUND`], a liveness check that fails a hung
//! test, never a measure of speed; the timeouts under test are short (a few
//! hundred milliseconds) so the tests stay fast.

use std::convert::Infallible;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use taskhook::server::{serve, ServerLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

/// A bound on anything that should happen promptly.
const BOUND: Duration = Duration::from_secs(10);

/// A server on a free loopback port, stopped by `stop`.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(app: Router, limits: ServerLimits) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(listener, app, limits)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn shut_down(&mut self) {
        let _ = self.stop.take().expect("stopped twice").send(());
    }
}

/// `GET /` answers the protocol version and the peer address it saw.
fn hello() -> Router {
    Router::new().route(
        "/",
        get(
            |ConnectInfo(peer): ConnectInfo<SocketAddr>, request: Request<axum::body::Body>| async move {
                format!("{:?} from {peer}", request.version())
            },
        ),
    )
}

/// An HTTP/1.1 client connection.
async fn http1(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    SocketAddr,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    (send, local)
}

/// An HTTP/2 client connection with prior knowledge (no upgrade, no TLS);
/// `closed` resolves when the connection ends.
async fn http2<B>(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    SocketAddr,
    JoinHandle<()>,
)
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let closed = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, local, closed)
}

fn get_root(addr: SocketAddr) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap()
}

async fn text(response: Response<Incoming>) -> String {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Reads until the server closes the connection (a clean close or a
/// reset), within [`BOUND`]: what it wrote before.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let read = async {
        let mut raw = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return raw,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("the server never closed the connection")
}

/// A request body that never sends anything, nor ends.
struct Stalled;

impl hyper::body::Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

// ---- protocols ----

#[tokio::test]
async fn http1_and_http2_prior_knowledge_are_served_on_one_port() {
    let server = Server::start(hello(), ServerLimits::new()).await;
    let addr = server.addr;

    let (mut h1, local) = http1(addr).await;
    let response = h1.send_request(get_root(addr)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(text(response).await, format!("HTTP/1.1 from {local}"));

    let (mut h2, local, _closed) = http2::<Empty<Bytes>>(addr).await;
    // Two requests on the one connection, at once.
    let (a, b) = tokio::join!(
        h2.send_request(get_root(addr)),
        h2.send_request(get_root(addr))
    );
    for response in [a.unwrap(), b.unwrap()] {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), Version::HTTP_2);
        assert_eq!(text(response).await, format!("HTTP/2.0 from {local}"));
    }
}

// ---- header and idle timeouts ----

#[tokio::test]
async fn a_client_that_stalls_before_its_request_is_disconnected() {
    let header_timeout = Duration::from_millis(200);
    let server = Server::start(hello(), ServerLimits::new().header_timeout(header_timeout)).await;
    let addr = server.addr;
    let stalls: [&[u8]; 4] = [
        // Part of an HTTP/1 header.
        b"GET / HTTP/1.1\r\nhost: x\r\nuser-ag",
        // Nothing at all.
        b"",
        // One byte, which could still begin either protocol.
        b"P",
        // Part of the HTTP/2 preface.
        b"PRI * HTTP/2.0\r\n",
    ];
    for stall in stalls {
        let opened = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(stall).await.unwrap();
        let raw = until_closed(&mut stream).await;
        assert!(
            raw.is_empty(),
            "{stall:?}: {:?}",
            String::from_utf8_lossy(&raw)
        );
        assert!(
            opened.elapsed() >= header_timeout,
            "{stall:?}: closed early"
        );
    }
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_header_timeout() {
    let header_timeout = Duration::from_millis(200);
    let server = Server::start(hello(), ServerLimits::new().header_timeout(header_timeout)).await;
    let addr = server.addr;

    // HTTP/1.1 keep-alive, idle after one answer.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let raw = until_closed(&mut stream).await;
    assert!(
        raw.starts_with(b"HTTP/1.1 200 OK"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );

    // HTTP/2, idle after one answer, and idle from the start: the server
    // sends GOAWAY and the client's connection ends.
    let (mut h2, _, closed) = http2::<Empty<Bytes>>(addr).await;
    let response = h2.send_request(get_root(addr)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    tokio::time::timeout(BOUND, closed)
        .await
        .expect("an idle HTTP/2 connection stayed open")
        .unwrap();
    let (_h2, _, closed) = http2::<Empty<Bytes>>(addr).await;
    tokio::time::timeout(BOUND, closed)
        .await
        .expect("an HTTP/2 connection without a request stayed open")
        .unwrap();

    // An HTTP/2 client that opens the connection and then never answers a
    // frame (nor the GOAWAY's ping): the keep-alive timeout closes it.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let raw = until_closed(&mut stream).await;
    // The server's SETTINGS frame first: it did speak HTTP/2.
    assert_eq!(raw.get(3), Some(&4), "{raw:?}");
}

#[tokio::test]
async fn a_connection_with_a_request_in_flight_is_not_idle() {
    let header_timeout = Duration::from_millis(200);
    let app = hello().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            "slow"
        }),
    );
    let server = Server::start(app, ServerLimits::new().header_timeout(header_timeout)).await;
    let addr = server.addr;
    let (mut h2, _, _closed) = http2::<Empty<Bytes>>(addr).await;
    let slow = Request::get(format!("http://{addr}/slow"))
        .body(Empty::new())
        .unwrap();
    let slow = tokio::spawn(h2.send_request(slow));
    // Past the idle timeout, with the slow request in flight: a connection
    // taken for idle would have had its GOAWAY and refuse a new stream.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let response = tokio::time::timeout(BOUND, h2.send_request(get_root(addr)))
        .await
        .unwrap()
        .expect("a new stream refused while a request was in flight");
    assert_eq!(response.status(), StatusCode::OK);
    let response = tokio::time::timeout(BOUND, slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(text(response).await, "slow");
}

// ---- connection cap ----

#[tokio::test]
async fn a_connection_over_the_cap_waits_for_a_free_slot() {
    let limits = ServerLimits::new()
        .max_connections(2)
        .header_timeout(Duration::from_secs(60));
    let server = Server::start(hello(), limits).await;
    let addr = server.addr;

    // Two connections, each served once, then kept open.
    let (mut first, _) = http1(addr).await;
    let (mut second, _) = http1(addr).await;
    for client in [&mut first, &mut second] {
        let response = client.send_request(get_root(addr)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let _ = text(response).await;
    }

    // The third is connected (the kernel's backlog), not served.
    let third = tokio::spawn(async move {
        let (mut third, _) = http1(addr).await;
        let response = third.send_request(get_root(addr)).await.unwrap();
        text(response).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "served over the cap");

    // One closes: the third gets its slot.
    drop(first);
    let answer = tokio::time::timeout(BOUND, third)
        .await
        .expect("the third connection was never served")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 from"), "{answer}");
    drop(second);
}

// ---- request timeout ----

#[tokio::test]
async fn a_body_that_stalls_is_a_503_request_timeout() {
    let request_timeout = Duration::from_millis(300);
    let app = Router::new().route(
        "/callback",
        post(|body: Bytes| async move { body.len().to_string() }),
    );
    let server = Server::start(app, ServerLimits::new().request_timeout(request_timeout)).await;
    let addr = server.addr;

    // HTTP/1.1: a Content-Length of 100 and 12 bytes sent.
    let opened = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /callback HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"id\":\"task_",
        )
        .await
        .unwrap();
    let raw = until_closed(&mut stream).await;
    assert!(opened.elapsed() >= request_timeout);
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 503"), "{text}");
    assert!(head.contains("\r\nretry-after: 5\r\n"), "{text}");
    assert!(
        head.contains("\r\ncontent-type: application/json\r\n"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"]["code"], "request_timeout", "{text}");
    assert!(json["error"]["message"].is_string(), "{text}");

    // HTTP/2: a body that never comes.
    let (mut h2, _, _closed) = http2::<Stalled>(addr).await;
    let request = Request::post(format!("http://{addr}/callback"))
        .body(Stalled)
        .unwrap();
    let response = tokio::time::timeout(BOUND, h2.send_request(request))
        .await
        .expect("no answer to a stalled HTTP/2 body")
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "request_timeout");
}

// ---- graceful shutdown ----

/// `GET /` tells `entered`, then waits for a permit of `release`.
fn held(entered: mpsc::UnboundedSender<()>, release: Arc<Semaphore>) -> Router {
    Router::new().route(
        "/",
        get(move || async move {
            let _ = entered.send(());
            let _ = release.acquire().await;
            "finished"
        }),
    )
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight_and_refuses_new_connections() {
    let (entered, mut entering) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let app = held(entered, Arc::clone(&release));
    let mut server = Server::start(app, ServerLimits::new()).await;
    let addr = server.addr;

    // One request in flight on each protocol, and an idle connection.
    let (mut h1, _) = http1(addr).await;
    let in_h1 = tokio::spawn(h1.send_request(get_root(addr)));
    let (mut h2, _, _closed) = http2::<Empty<Bytes>>(addr).await;
    let in_h2 = tokio::spawn(h2.send_request(get_root(addr)));
    for _ in 0..2 {
        tokio::time::timeout(BOUND, entering.recv())
            .await
            .expect("the requests never reached the handler");
    }
    let mut idle = TcpStream::connect(addr).await.unwrap();
    // Accepted (most likely) before the signal; refused is fine too.
    tokio::time::sleep(Duration::from_millis(100)).await;

    server.shut_down();
    // New connections are refused once the listener is closed.
    tokio::time::timeout(BOUND, async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("still accepting after the shutdown signal");
    // The idle connection is closed without an answer; the server waits for
    // the requests in flight.
    assert!(until_closed(&mut idle).await.is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.task.is_finished(),
        "returned with requests in flight"
    );

    release.add_permits(1);
    for in_flight in [in_h1, in_h2] {
        let response = tokio::time::timeout(BOUND, in_flight)
            .await
            .expect("a request in flight was never answered")
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "finished");
    }
    tokio::time::timeout(BOUND, &mut server.task)
        .await
        .expect("serve did not return")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_shutdown_timeout_closes_what_is_left() {
    let (entered, mut entering) = mpsc::unbounded_channel();
    // No permit ever: the handler never finishes.
    let app = held(entered, Arc::new(Semaphore::new(0)));
    let limits = ServerLimits::new().shutdown_timeout(Duration::from_millis(200));
    let mut server = Server::start(app, limits).await;
    let addr = server.addr;

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(BOUND, entering.recv())
        .await
        .expect("the request never reached the handler");
    server.shut_down();
    // The handler never finishes: the bound closes the connection.
    tokio::time::timeout(BOUND, &mut server.task)
        .await
        .expect("serve did not return after the shutdown timeout")
        .unwrap()
        .unwrap();
    assert!(until_closed(&mut stream).await.is_empty());
}

#[tokio::test]
async fn limits_that_cannot_work_fail_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = tokio::time::timeout(
        BOUND,
        serve(listener, hello(), ServerLimits::new().max_connections(0)).into_future(),
    )
    .await
    .expect("serve ran with no connection allowed");
    let error = result.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}
