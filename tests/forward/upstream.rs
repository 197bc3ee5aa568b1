//! The app behind the forwarding service: a hyper HTTP/1.1 server on
//! loopback that records every request (when it arrived, from which
//! connection, method, URI, version, headers, body), answers from a script,
//! and counts how many requests it holds at once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// One request the upstream got.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) at: Instant,
    pub(crate) peer: SocketAddr,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// What the upstream answers to one request.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
    reset: bool,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
            reset: false,
        }
    }

    /// Closes the connection instead of answering.
    pub(crate) fn reset() -> Self {
        Self {
            reset: true,
            ..Self::status(200)
        }
    }

    pub(crate) fn body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// Answers after `delay`.
    pub(crate) fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Debug)]
struct State {
    seen: Mutex<Vec<Seen>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    in_flight: AtomicUsize,
    max_in_flight: Arc<AtomicUsize>,
}

/// The upstream app, serving until the test's runtime ends.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    /// The most requests it held at once.
    pub(crate) max_in_flight: Arc<AtomicUsize>,
    state: Arc<State>,
}

impl Upstream {
    /// On a free loopback port.
    pub(crate) async fn start() -> Self {
        Self::serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// On `addr` (a port found free before).
    pub(crate) async fn start_on(addr: SocketAddr) -> Self {
        Self::serve(TcpListener::bind(addr).await.unwrap())
    }

    fn serve(listener: TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(State {
            seen: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::status(200)),
            in_flight: AtomicUsize::new(0),
            max_in_flight: Arc::clone(&max_in_flight),
        });
        tokio::spawn(accept(listener, Arc::clone(&state)));
        Self {
            addr,
            max_in_flight,
            state,
        }
    }

    /// `http://<addr><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The answers to the next requests, in order (then the default).
    pub(crate) fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// The answer once the script is used up (at first `200`).
    pub(crate) fn default_reply(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = reply;
    }

    pub(crate) fn count(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }

    /// The `i`-th request (from 0).
    pub(crate) fn seen(&self, i: usize) -> Seen {
        self.state.seen.lock().unwrap()[i].clone()
    }

    /// The header `name` of the `i`-th request, as text.
    pub(crate) fn header(&self, i: usize, name: &str) -> String {
        let seen = self.seen(i);
        let value = seen
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name}"));
        value.to_str().unwrap().to_owned()
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req| answer(Arc::clone(&state), peer, req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Counts a request held from its arrival to its answer (or until hyper
/// drops it).
struct Held<'a>(&'a State);

impl<'a> Held<'a> {
    fn new(state: &'a State) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(state)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn answer(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let _held = Held::new(&state);
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    state.seen.lock().unwrap().push(Seen {
        at,
        peer,
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        body,
    });
    let reply = {
        let next = state.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| state.default.lock().unwrap().clone())
    };
    tokio::time::sleep(reply.delay).await;
    if reply.reset {
        // hyper closes the connection without an answer.
        return Err(std::io::Error::other("reset by the test"));
    }
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    Ok(response.body(Full::new(Bytes::from(reply.body))).unwrap())
}

/// A loopback address nothing listens on (bound, then released).
pub(crate) async fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
