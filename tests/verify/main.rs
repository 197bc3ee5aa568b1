//! The verification layers: secret path token, IP allowlist,
//! confirm-by-refetch against a fake provider on loopback, and Standard
//! Webhooks signatures against the specification's test vectors; in the
//! modules, `v1a` signatures, fal's signatures against a JWKS server on
//! loopback, KIE's signatures, a static header secret, and hostile header
//! values for all of them.

mod fal;
mod header_secret;
mod hostile_headers;
mod kie;
mod standard_webhooks_v1a;

use taskhook_test_support as common;

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use taskhook::body::BufferedBody;
use taskhook::verify::refetch::{
    ConfirmError, ConfirmTask, Confirmation, HttpConfirm, RefetchLayer,
};
use taskhook::verify::{
    ClientIp, ForwardedHeader, IpAllowLayer, PathSecret, PathTokenLayer, PeerAddr,
    StandardWebhooksLayer, WebhookSecret,
};
use taskhook::{PayloadLayer, RawPayload, TaskEvent};
use tokio::net::TcpListener;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

const TOKEN: &str = "k3Qm9x_T2vLr8pZa-0123";
const NEW_TOKEN: &str = "Zr8pL2vT_x9mQ3k-4567";

/// Answers with what reached it: `uri|client ip|confirmed status`.
async fn echo<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    let client = req
        .extensions()
        .get::<ClientIp>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let confirmed = req
        .extensions()
        .get::<Confirmation>()
        .and_then(|c| c.event().status().map(|s| s.as_str().to_owned()))
        .unwrap_or_default();
    let text = format!("{}|{client}|{confirmed}", req.uri());
    Ok(Response::new(Full::new(Bytes::from(text))))
}

async fn send<S, B, RB>(service: S, req: Request<B>) -> (StatusCode, HeaderMap, String)
where
    S: Service<Request<B>, Response = Response<RB>, Error = Infallible>,
    RB: Body<Data = Bytes>,
    RB::Error: std::fmt::Debug,
{
    let response = service.oneshot(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::post(path).body(Full::default()).unwrap()
}

fn secret(s: &str) -> PathSecret {
    s.parse().unwrap()
}

// ---- secret path token -----------------------------------------------------

#[tokio::test]
async fn token_checked_at_the_prefix_and_stripped() {
    let layer = PathTokenLayer::new(secret(TOKEN))
        .prefix("/hooks")
        .strip_token(true);
    let service = layer.layer(service_fn(echo::<Full<Bytes>>));

    let path = format!("/hooks/{TOKEN}/callback?x=1");
    let (status, _, body) = send(service.clone(), get(&path)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "/hooks/callback?x=1||");

    for wrong in [
        "/hooks/callback".to_owned(),
        format!("/hooks/{}/callback", &TOKEN[..TOKEN.len() - 1]),
        format!("/hooks/{TOKEN}x/callback"),
        format!("/hooks/{}/callback", TOKEN.to_uppercase()),
        format!("/hooksx/{TOKEN}/callback"),
        format!("/{TOKEN}/callback"),
        "/".to_owned(),
    ] {
        let (status, headers, body) = send(service.clone(), get(&wrong)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{wrong}");
        assert_eq!(body, "", "{wrong}");
        assert!(headers.get("content-type").is_none());
    }

    // Without stripping, the inner service sees the path unchanged.
    let service = PathTokenLayer::new(secret(TOKEN)).layer(service_fn(echo::<Full<Bytes>>));
    let (status, _, body) = send(service, get(&format!("/{TOKEN}/callback"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("/{TOKEN}/callback||"));
}

#[tokio::test]
async fn rotation_accepts_both_tokens() {
    let service = PathTokenLayer::new(secret(TOKEN))
        .also_accept(secret(NEW_TOKEN))
        .prefix("/hooks")
        .layer(service_fn(echo::<Full<Bytes>>));
    for token in [TOKEN, NEW_TOKEN] {
        let (status, _, _) = send(service.clone(), get(&format!("/hooks/{token}/callback"))).await;
        assert_eq!(status, StatusCode::OK, "{token}");
    }
    let (status, _, _) = send(service, get("/hooks/yet-another-token-00/callback")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn secrets_are_validated() {
    assert!("short".parse::<PathSecret>().is_err());
    assert!("has a space in it....".parse::<PathSecret>().is_err());
    assert!("percent%2Fencoded-000".parse::<PathSecret>().is_err());
    assert!("x".repeat(257).parse::<PathSecret>().is_err());
    assert!(TOKEN.parse::<PathSecret>().is_ok());
}

/// A wrong token answers the same bytes as a path no route matches (less
/// the `date` header), over real HTTP with axum.
#[tokio::test]
async fn wrong_token_is_indistinguishable_from_no_route() {
    let router = Router::new().route(
        "/hooks/{token}/callback",
        post(|| async { "accepted" }).layer(PathTokenLayer::new(secret(TOKEN)).prefix("/hooks")),
    );
    let addr = common::serve_axum(router).await;
    let ok = common::post(addr, &format!("/hooks/{TOKEN}/callback"), None, b"{}").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, "accepted");

    let wrong = common::post(addr, "/hooks/not-the-token-000000/callback", None, b"{}").await;
    let no_route = common::post(addr, "/no/such/route", None, b"{}").await;
    assert_eq!(wrong.status, 404);
    assert_eq!(no_route.status, 404);
    let without_date = |head: &str| -> Vec<String> {
        head.lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(without_date(&wrong.head), without_date(&no_route.head));
    assert_eq!(wrong.body, no_route.body);
}

/// Tracing output captured on one test thread.
///
/// One global subscriber (at TRACE, so no callsite is ever cached as
/// uninteresting by a test on another thread) writes each event into the
/// buffer of the thread that emitted it, if that thread installed one.
/// `#[tokio::test]` runs on the current thread, so a test sees exactly the
/// events of its own layers.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(captured) = &*c.borrow() {
                captured.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Captures this thread's tracing output while the guard lives.
    fn install() -> (Self, CaptureGuard) {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(|| ThreadWriter)
                .init();
        });
        let captured = Captured::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(captured.clone()));
        (captured, CaptureGuard)
    }
}

#[tokio::test]
async fn token_never_reaches_logs_or_debug_output() {
    let (captured, _guard) = Captured::install();

    let layer = PathTokenLayer::new(secret(TOKEN))
        .also_accept(secret(NEW_TOKEN))
        .prefix("/hooks")
        .strip_token(true);
    // An access log inside the token layer sees the stripped path.
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .service(service_fn(echo::<Full<Bytes>>));
    let (status, _, _) = send(service.clone(), get(&format!("/hooks/{TOKEN}/callback"))).await;
    assert_eq!(status, StatusCode::OK);
    let near_miss = format!("/hooks/{}X/callback", &TOKEN[..TOKEN.len() - 1]);
    let (status, _, body) = send(service.clone(), get(&near_miss)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "");

    let logs = captured.text();
    assert!(logs.contains("path token missing or wrong"), "{logs}");
    assert!(logs.contains("/hooks/callback"), "{logs}");
    let debug = format!("{layer:?} {service:?} {:?}", secret(TOKEN));
    for text in [&logs, &debug] {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains(NEW_TOKEN), "{text}");
        assert!(!text.contains(&TOKEN[..TOKEN.len() - 1]), "{text}");
    }
}

// ---- IP allowlist ----------------------------------------------------------

fn from(peer: &str, forwarded: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = get("/callback");
    req.extensions_mut()
        .insert(PeerAddr(peer.parse::<SocketAddr>().unwrap()));
    for (name, value) in forwarded {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    req
}

fn allowlist() -> IpAllowLayer {
    IpAllowLayer::new([
        "203.0.113.0/24".parse().unwrap(),
        "2001:db8:1::/48".parse().unwrap(),
    ])
}

#[tokio::test]
async fn allowed_and_denied_addresses() {
    let service = allowlist().layer(service_fn(echo::<Full<Bytes>>));
    for (peer, expected, client) in [
        ("203.0.113.7:443", StatusCode::OK, "203.0.113.7"),
        ("[::ffff:203.0.113.7]:443", StatusCode::OK, "203.0.113.7"),
        ("[2001:db8:1:2::9]:443", StatusCode::OK, "2001:db8:1:2::9"),
        ("203.0.114.7:443", StatusCode::FORBIDDEN, ""),
        ("[::ffff:203.0.114.7]:443", StatusCode::FORBIDDEN, ""),
        ("[2001:db8:2::9]:443", StatusCode::FORBIDDEN, ""),
        ("127.0.0.1:443", StatusCode::FORBIDDEN, ""),
    ] {
        let (status, headers, body) = send(service.clone(), from(peer, &[])).await;
        assert_eq!(status, expected, "{peer}");
        if status == StatusCode::OK {
            assert_eq!(body, format!("/callback|{client}|"));
        } else {
            assert_eq!(headers["content-type"], "application/json");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(json["error"]["code"], "forbidden");
        }
    }
}

#[tokio::test]
async fn forwarded_headers_only_from_trusted_proxies() {
    let trusting = allowlist()
        .trusted_proxies(["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()])
        .layer(service_fn(echo::<Full<Bytes>>));
    let xff = "x-forwarded-for";
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], StatusCode, &'a str);
    let cases: &[Case<'_>] = &[
        // A stranger claims to be forwarded for an allowed address: ignored.
        (
            "198.51.100.1:1",
            &[(xff, "203.0.113.7")],
            StatusCode::FORBIDDEN,
            "",
        ),
        // The header is read behind a trusted proxy.
        (
            "10.0.0.2:1",
            &[(xff, "203.0.113.7")],
            StatusCode::OK,
            "203.0.113.7",
        ),
        (
            "[::ffff:10.0.0.2]:1",
            &[(xff, "203.0.113.7")],
            StatusCode::OK,
            "203.0.113.7",
        ),
        // Walked from the right past trusted proxies; the client's own
        // left part is never looked at.
        (
            "10.0.0.2:1",
            &[(xff, "203.0.113.9, 198.51.100.1, 10.0.0.3")],
            StatusCode::FORBIDDEN,
            "",
        ),
        (
            "10.0.0.2:1",
            &[(xff, "198.51.100.1, 203.0.113.9, 10.0.0.3")],
            StatusCode::OK,
            "203.0.113.9",
        ),
        // Several header lines are one list, in order.
        (
            "10.0.0.2:1",
            &[(xff, "198.51.100.1"), (xff, "203.0.113.9:5555")],
            StatusCode::OK,
            "203.0.113.9",
        ),
        (
            "[fd00::1]:1",
            &[(xff, "2001:db8:1::5")],
            StatusCode::OK,
            "2001:db8:1::5",
        ),
        // A trusted proxy with nothing forwarded: the proxy is the client.
        ("10.0.0.2:1", &[], StatusCode::FORBIDDEN, ""),
        // Garbage where an address should be.
        (
            "10.0.0.2:1",
            &[(xff, "203.0.113.7, unknown")],
            StatusCode::FORBIDDEN,
            "",
        ),
        // Only the configured header is read.
        (
            "10.0.0.2:1",
            &[("forwarded", "for=203.0.113.7")],
            StatusCode::FORBIDDEN,
            "",
        ),
    ];
    for (peer, headers, expected, client) in cases {
        let (status, _, body) = send(trusting.clone(), from(peer, headers)).await;
        assert_eq!(status, *expected, "{peer} {headers:?}: {body}");
        if status == StatusCode::OK {
            assert_eq!(body, format!("/callback|{client}|"));
        }
    }

    let rfc7239 = allowlist()
        .trusted_proxies(["10.0.0.0/8".parse().unwrap()])
        .forwarded_header(ForwardedHeader::Forwarded)
        .layer(service_fn(echo::<Full<Bytes>>));
    for (value, expected) in [
        (r#"for="[2001:db8:1::5]:4711";proto=https"#, StatusCode::OK),
        (
            "for=198.51.100.1, for=203.0.113.7;by=10.0.0.2",
            StatusCode::OK,
        ),
        ("for=203.0.113.7, for=198.51.100.1", StatusCode::FORBIDDEN),
        ("for=_hidden", StatusCode::FORBIDDEN),
    ] {
        let req = from("10.0.0.2:1", &[("forwarded", value)]);
        let (status, _, _) = send(rfc7239.clone(), req).await;
        assert_eq!(status, expected, "{value}");
    }
    let req = from("10.0.0.2:1", &[(xff, "203.0.113.7")]);
    let (status, _, _) = send(rfc7239, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn missing_peer_address_is_our_error() {
    let service = allowlist().layer(service_fn(echo::<Full<Bytes>>));
    let (status, _, body) = send(service, get("/callback")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("peer_address_missing"), "{body}");
}

/// Real HTTP on loopback, with axum's `ConnectInfo` as the peer address.
#[tokio::test]
async fn axum_connect_info_over_loopback() {
    async fn serve(layer: IpAllowLayer) -> SocketAddr {
        let router = Router::new().route("/callback", post(|| async { "ok" }).layer(layer));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let make = router.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, make).await.unwrap() });
        addr
    }
    let loopback = serve(IpAllowLayer::new(["127.0.0.0/8".parse().unwrap()])).await;
    assert_eq!(
        common::post(loopback, "/callback", None, b"{}")
            .await
            .status,
        200
    );

    let elsewhere = serve(allowlist()).await;
    let spoof = concat!(
        "POST /callback HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 203.0.113.7\r\n",
        "forwarded: for=203.0.113.7\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    assert_eq!(common::exchange(elsewhere, spoof, &[]).await.status, 403);

    let behind_proxy = serve(allowlist().trusted_proxies(["127.0.0.1".parse().unwrap()])).await;
    assert_eq!(common::exchange(behind_proxy, spoof, &[]).await.status, 200);
}

// ---- confirm-by-refetch ----------------------------------------------------

const API_KEY: &str = "sk-test-0123456789";

/// A fake provider API: `GET /v1/tasks/{id}` answers by id, records the
/// paths asked for, and checks the API key.
#[derive(Default)]
struct Fake {
    asked: Mutex<Vec<String>>,
}

async fn provider(State(fake): State<Arc<Fake>>, uri: Uri, headers: HeaderMap) -> Response<String> {
    let path = uri.path().to_owned();
    fake.asked.lock().unwrap().push(path.clone());
    let reply = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body)
            .unwrap()
    };
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {API_KEY}"))
    {
        return reply(401, r#"{"error":{"code":401,"message":"bad key"}}"#.into());
    }
    let Some(id) = path.strip_prefix("/v1/tasks/") else {
        return reply(404, String::new());
    };
    // Enough percent-decoding for the ids used here.
    let decoded = id.replace("%20", " ").replace("%2F", "/");
    let task = |status: &str| {
        let id = &decoded;
        format!(
            r#"{{"code":200,"data":{{"id":"{id}","status":"{status}","result":{{"images":[{{"url":"https://cdn.example/{id}.png"}}]}}}}}}"#
        )
    };
    match id {
        "task_done" | "task%20with%2Fslash" => reply(200, task("completed")),
        "task_failed" => reply(200, task("failed")),
        "task_running" => reply(200, task("processing")),
        "task_broken" => reply(500, "oops".into()),
        "task_garbage" => reply(200, "<html>".into()),
        "task_ghost" => reply(
            200,
            r#"{"error":{"code":404,"message":"no such task"}}"#.into(),
        ),
        _ => reply(
            404,
            r#"{"error":{"code":404,"message":"task not found"}}"#.into(),
        ),
    }
}

async fn fake_provider() -> (SocketAddr, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let router = Router::new()
        .fallback(provider)
        .with_state(Arc::clone(&fake));
    (common::serve_axum(router).await, fake)
}

fn push(id: &str, status: &str) -> Request<Full<Bytes>> {
    let body = format!(
        r#"{{"code":200,"data":{{"id":"{id}","status":"{status}","result":{{"images":[{{"url":"https://evil.example/x.png"}}]}}}}}}"#
    );
    Request::post("/callback")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn refetching<C: ConfirmTask>(
    layer: RefetchLayer<C>,
) -> (
    impl Service<
            Request<Full<Bytes>>,
            Response = Response<impl Body<Data = Bytes, Error = impl std::fmt::Debug>>,
            Error = Infallible,
        > + Clone,
    RefetchLayer<C>,
) {
    let counted = layer.clone(); // shares the counters

    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(service_fn(echo::<BufferedBody>));
    (service, counted)
}

fn error_code(body: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    json["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn refetch_confirms_real_pushes_and_catches_forged_ones() {
    let (captured, _guard) = Captured::install();

    let (addr, fake) = fake_provider().await;
    let confirm = HttpConfirm::new(&format!("http://{addr}/"), API_KEY).unwrap();
    let (service, counted) = refetching(RefetchLayer::new(confirm));

    // Confirmed: the handler gets the event and the provider's state.
    let (status, _, body) = send(service.clone(), push("task_done", "completed")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "/callback||completed");

    // Forged: another final status, a running push for a final task, and
    // an id the provider does not know (404, or its error shape in a 200).
    for (id, pushed) in [
        ("task_failed", "completed"),
        ("task_done", "processing"),
        ("task_nobody_knows", "completed"),
        ("task_ghost", "completed"),
    ] {
        let (status, headers, body) = send(service.clone(), push(id, pushed)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{id}: {body}");
        assert!(headers.get("retry-after").is_none());
        assert_eq!(error_code(&body), "not_confirmed");
        assert!(!body.contains(id) && !body.contains("failed"), "{body}");
    }
    let stats = counted.stats();
    assert_eq!(
        (stats.confirmed, stats.forged, stats.unavailable),
        (1, 4, 0)
    );
    // Each refusal is logged with the task id; the API key never is.
    let logs = captured.text();
    for id in ["task_failed", "task_nobody_knows", "task_ghost"] {
        assert!(logs.contains(&format!("task_id={id}")), "{logs}");
    }
    assert_eq!(
        logs.matches("not confirmed by the provider").count(),
        4,
        "{logs}"
    );
    assert!(!logs.contains(API_KEY));

    // The id is percent-encoded into the path.
    let (status, _, body) = send(service.clone(), push("task with/slash", "completed")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let asked = fake.asked.lock().unwrap().clone();
    assert_eq!(
        asked,
        [
            "/v1/tasks/task_done",
            "/v1/tasks/task_failed",
            "/v1/tasks/task_done",
            "/v1/tasks/task_nobody_knows",
            "/v1/tasks/task_ghost",
            "/v1/tasks/task%20with%2Fslash"
        ]
    );
}

#[tokio::test]
async fn refetch_compares_urls_when_asked() {
    let (addr, _) = fake_provider().await;
    let confirm = HttpConfirm::new(&format!("http://{addr}"), API_KEY).unwrap();
    let (service, counted) = refetching(RefetchLayer::new(confirm).compare_urls(true));
    // The push links to evil.example, the provider to cdn.example.
    let (status, _, _) = send(service, push("task_done", "completed")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(counted.stats().forged, 1);
}

#[tokio::test]
async fn provider_trouble_is_503_with_retry_after() {
    let (addr, _) = fake_provider().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let cases = [
        // Connection refused.
        (
            format!("http://{closed}"),
            API_KEY,
            "task_done",
            "completed",
            "provider_unavailable",
        ),
        // The provider's 5xx, and an answer that is not a task.
        (
            format!("http://{addr}"),
            API_KEY,
            "task_broken",
            "completed",
            "provider_unavailable",
        ),
        (
            format!("http://{addr}"),
            API_KEY,
            "task_garbage",
            "completed",
            "provider_unavailable",
        ),
        // Our API key refused: our misconfiguration, retried.
        (
            format!("http://{addr}"),
            "sk-wrong",
            "task_done",
            "completed",
            "provider_unavailable",
        ),
        // Final push, the provider still shows it running: may lag, retried.
        (
            format!("http://{addr}"),
            API_KEY,
            "task_running",
            "completed",
            "not_confirmed_yet",
        ),
    ];
    for (base, key, id, pushed, code) in cases {
        let confirm = HttpConfirm::new(&base, key).unwrap();
        let (service, counted) =
            refetching(RefetchLayer::new(confirm).retry_after(Duration::from_secs(30)));
        let (status, headers, body) = send(service, push(id, pushed)).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{base} {id}: {body}"
        );
        assert_eq!(headers["retry-after"], "30");
        assert_eq!(error_code(&body), code);
        let stats = counted.stats();
        assert_eq!((stats.unavailable, stats.forged), (1, 0));
    }
}

/// Never answers.
struct Silent;

impl ConfirmTask for Silent {
    async fn confirm(&self, _: &TaskEvent) -> Result<Confirmation, ConfirmError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn refetch_timeout_is_503() {
    let started = tokio::time::Instant::now();
    let (service, counted) = refetching(RefetchLayer::new(Silent).timeout(Duration::from_secs(3)));
    let (status, headers, body) = send(service, push("task_done", "completed")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "10");
    assert_eq!(error_code(&body), "confirmation_timeout");
    assert_eq!(counted.stats().unavailable, 1);
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// The ready-made client is bounded by the layer's timeout too: a provider
/// that accepts the connection and never answers.
#[tokio::test(start_paused = true)]
async fn http_confirm_against_a_provider_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let confirm = HttpConfirm::new(&format!("http://{addr}"), API_KEY).unwrap();
    let (service, _) = refetching(RefetchLayer::new(confirm));
    let (status, _, body) = send(service, push("task_done", "completed")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "confirmation_timeout");
    hold.abort();
}

#[tokio::test]
async fn refetch_without_payload_layer_is_500() {
    struct Never;
    impl ConfirmTask for Never {
        async fn confirm(&self, _: &TaskEvent) -> Result<Confirmation, ConfirmError> {
            unreachable!("no event to confirm")
        }
    }
    let service = RefetchLayer::new(Never).layer(service_fn(echo::<Full<Bytes>>));
    let (status, _, body) = send(service, push("task_done", "completed")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&body), "payload_layer_missing");
    assert!(
        body.contains("RefetchLayer"),
        "the message names the layer: {body}"
    );
}

#[test]
fn http_confirm_config_is_checked_and_redacted() {
    assert!(HttpConfirm::new("not a url", API_KEY).is_err());
    assert!(HttpConfirm::new("/relative", API_KEY).is_err());
    assert!(HttpConfirm::new("http://x", "bad\nkey").is_err());
    let confirm = HttpConfirm::new("http://127.0.0.1:1/api/", API_KEY).unwrap();
    let debug = format!("{confirm:?}");
    assert!(!debug.contains(API_KEY), "{debug}");
    assert!(debug.contains("http://127.0.0.1:1/api"), "{debug}");
}

// ---- Standard Webhooks -----------------------------------------------------

struct Vectors {
    secret: String,
    secret_without_prefix: String,
    id: String,
    timestamp: i64,
    payload: String,
    signature: String,
    invalid: Vec<String>,
    others: Vec<String>,
    tolerance: i64,
}

fn vectors() -> Vectors {
    let path = format!(
        "{}/tests/verify/standard-webhooks.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let s = |k: &str| json[k].as_str().unwrap().to_owned();
    let list = |k: &str| {
        json[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    Vectors {
        secret: s("secret"),
        secret_without_prefix: s("secret_without_prefix"),
        id: s("id"),
        timestamp: json["timestamp"].as_i64().unwrap(),
        payload: s("payload"),
        signature: s("signature"),
        invalid: list("invalid_signatures"),
        others: list("multi_signature_others"),
        tolerance: json["tolerance_seconds"].as_i64().unwrap(),
    }
}

/// A request as the payload layer leaves it: raw body in the extensions.
fn signed(id: &str, timestamp: &str, signature: &str, payload: &str) -> Request<Full<Bytes>> {
    let mut req = Request::post("/callback")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature)
        .body(Full::new(Bytes::from(payload.to_owned())))
        .unwrap();
    req.extensions_mut()
        .insert(RawPayload::new(Bytes::from(payload.to_owned())));
    req
}

fn at(unix: i64) -> impl Fn() -> std::time::SystemTime + Send + Sync + 'static {
    move || UNIX_EPOCH + Duration::from_secs(unix as u64)
}

#[test]
fn signing_matches_the_spec_vector() {
    let v = vectors();
    for secret in [&v.secret, &v.secret_without_prefix] {
        let secret = WebhookSecret::new(secret).unwrap();
        assert_eq!(
            secret.sign(&v.id, v.timestamp, v.payload.as_bytes()),
            v.signature
        );
        assert!(!format!("{secret:?}").contains(&v.secret_without_prefix));
    }
    assert!(WebhookSecret::new("whsec_not base64!").is_err());
    assert!(WebhookSecret::new("whsec_").is_err());
}

#[tokio::test]
async fn standard_webhooks_vectors() {
    let v = vectors();
    let layer = |now: i64| {
        StandardWebhooksLayer::new(WebhookSecret::new(&v.secret).unwrap())
            .now(at(now))
            .layer(service_fn(echo::<Full<Bytes>>))
    };
    let ts = v.timestamp.to_string();
    let check = |req, now, expected: StatusCode, why: &'static str| {
        let service = layer(now);
        async move {
            let (status, _, body) = send(service, req).await;
            assert_eq!(status, expected, "{why}: {body}");
            if expected == StatusCode::UNAUTHORIZED {
                assert_eq!(error_code(&body), "invalid_signature", "{why}");
            }
        }
    };
    let t = v.timestamp;
    check(
        signed(&v.id, &ts, &v.signature, &v.payload),
        t,
        StatusCode::OK,
        "valid",
    )
    .await;
    let mut multi = v.others.clone();
    multi.insert(1, v.signature.clone());
    check(
        signed(&v.id, &ts, &multi.join(" "), &v.payload),
        t,
        StatusCode::OK,
        "multi",
    )
    .await;
    for bad in &v.invalid {
        check(
            signed(&v.id, &ts, bad, &v.payload),
            t,
            StatusCode::UNAUTHORIZED,
            "invalid",
        )
        .await;
    }
    check(
        signed(&v.id, &ts, &v.others.join(" "), &v.payload),
        t,
        StatusCode::UNAUTHORIZED,
        "only others",
    )
    .await;
    let tampered = v.payload.replace("2432232314", "2432232315");
    check(
        signed(&v.id, &ts, &v.signature, &tampered),
        t,
        StatusCode::UNAUTHORIZED,
        "tampered body",
    )
    .await;
    check(
        signed("msg_other", &ts, &v.signature, &v.payload),
        t,
        StatusCode::UNAUTHORIZED,
        "other id",
    )
    .await;
    let other_ts = (t + 1).to_string();
    check(
        signed(&v.id, &other_ts, &v.signature, &v.payload),
        t + 1,
        StatusCode::UNAUTHORIZED,
        "other timestamp",
    )
    .await;
    check(
        signed(&v.id, "hello", &v.signature, &v.payload),
        t,
        StatusCode::UNAUTHORIZED,
        "timestamp not a number",
    )
    .await;
    check(
        signed(&v.id, &ts, "", &v.payload),
        t,
        StatusCode::UNAUTHORIZED,
        "empty signature",
    )
    .await;
    check(
        signed(&v.id, &ts, "v1,%%%", &v.payload),
        t,
        StatusCode::UNAUTHORIZED,
        "not base64",
    )
    .await;

    // The tolerance window, both directions, on a clock we control.
    let tol = v.tolerance;
    for (now, expected) in [
        (t + tol, StatusCode::OK),
        (t - tol, StatusCode::OK),
        (t + tol + 1, StatusCode::UNAUTHORIZED),
        (t - tol - 1, StatusCode::UNAUTHORIZED),
    ] {
        check(
            signed(&v.id, &ts, &v.signature, &v.payload),
            now,
            expected,
            "tolerance",
        )
        .await;
    }

    // A wrong secret; then the same secret accepted during a rotation.
    let wrong = WebhookSecret::from_bytes(b"some other secret").unwrap();
    let service = StandardWebhooksLayer::new(wrong.clone())
        .now(at(t))
        .layer(service_fn(echo::<Full<Bytes>>));
    let (status, _, _) = send(service, signed(&v.id, &ts, &v.signature, &v.payload)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let rotating = StandardWebhooksLayer::new(wrong)
        .also_accept(WebhookSecret::new(&v.secret).unwrap())
        .now(at(t))
        .layer(service_fn(echo::<Full<Bytes>>));
    let (status, _, _) = send(rotating, signed(&v.id, &ts, &v.signature, &v.payload)).await;
    assert_eq!(status, StatusCode::OK);

    // Missing headers.
    for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut req = signed(&v.id, &ts, &v.signature, &v.payload);
        req.headers_mut().remove(header);
        check(req, t, StatusCode::UNAUTHORIZED, header).await;
    }
    // Without the payload layer there are no raw bytes to check: our error.
    let mut req = signed(&v.id, &ts, &v.signature, &v.payload);
    req.extensions_mut().remove::<RawPayload>();
    check(req, t, StatusCode::INTERNAL_SERVER_ERROR, "no raw payload").await;
}

/// A signed task callback through the payload layer, over loopback.
#[tokio::test]
async fn signed_callback_over_loopback() {
    let secret = WebhookSecret::new("whsec_c2lnbmVkIGNhbGxiYWNrcyBvbmx5").unwrap();
    let now = 1_763_000_000;
    let router = Router::new().route(
        "/callback",
        post(|event: TaskEvent| async move { event.id().to_owned() }).layer(
            ServiceBuilder::new()
                .layer(PayloadLayer::new())
                .layer(StandardWebhooksLayer::new(secret.clone()).now(at(now))),
        ),
    );
    let addr = common::serve_axum(router).await;
    let body = common::fixture("completed-video");
    let signature = secret.sign("msg_1", now, &body);
    let request = |signature: &str, body: &[u8]| {
        format!(
            "POST /callback HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             webhook-id: msg_1\r\nwebhook-timestamp: {now}\r\nwebhook-signature: {signature}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
    };
    let ok = common::exchange(addr, &request(&signature, &body), &[&body]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body, "task_01KBS40K78KGHZ9SDBWQSGSXRK");

    let mut tampered = body.clone();
    let at_status = String::from_utf8_lossy(&tampered)
        .find("completed")
        .unwrap();
    tampered[at_status..at_status + 9].copy_from_slice(b"cancelled");
    let refused = common::exchange(addr, &request(&signature, &tampered), &[&tampered]).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
}
