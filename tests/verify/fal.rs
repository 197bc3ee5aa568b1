//! fal's Ed25519 signatures: an independent vector, the headers and the
//! tolerance, and the JWKS cache against a JWKS server on loopback (found,
//! rotated, down before and after a fetch, a flood of unknown keys, a
//! server that never answers), and a JWKS file.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use taskhook::verify::{
    FalSignature, FalSignatureLayer, HttpJwks, InvalidJwksUrl, JwksErrorKind, JwksSource,
    WebhookPublicKey, WebhookSigningKey,
};
use taskhook::RawPayload;
use tower::{service_fn, Layer};

use super::standard_webhooks_v1a::generated;
use super::{common, echo, error_code, send};

const USER: &str = "user_42";
const T0: u64 = 1_763_000_000;
const BODY: &str = r#"{"request_id":"req_1","status":"OK","payload":{"images":[{"url":"https://cdn.example/a.png"}]}}"#;

/// A clock the test moves by hand.
#[derive(Clone)]
struct Clock(Arc<AtomicU64>);

impl Clock {
    fn new() -> Self {
        Self(Arc::new(AtomicU64::new(T0)))
    }
    fn secs(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    fn reader(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let clock = Arc::clone(&self.0);
        move || UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::SeqCst))
    }
}

fn key(seed: u8) -> WebhookSigningKey {
    WebhookSigningKey::from_seed(&[seed; 32])
}

fn jwks(keys: &[(&str, WebhookPublicKey)]) -> String {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|(kid, key)| {
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                               "kid": kid, "x": key.to_base64url()})
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// A push as the payload layer leaves it (raw body in the extensions),
/// signed by `by` at `timestamp`.
fn push_at(by: &WebhookSigningKey, user: &str, timestamp: u64, body: &str) -> Request<Full<Bytes>> {
    let signature = by.sign_fal("req_1", user, timestamp as i64, body.as_bytes());
    raw_push(
        &[
            ("x-fal-webhook-request-id", "req_1"),
            ("x-fal-webhook-user-id", user),
            ("x-fal-webhook-timestamp", &timestamp.to_string()),
            ("x-fal-webhook-signature", &signature),
        ],
        body,
    )
}

/// The same push again (headers, body and raw payload).
fn clone_push(req: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let raw = req.extensions().get::<RawPayload>().unwrap().clone();
    let mut copy = Request::post("/callback")
        .body(Full::new(raw.bytes().clone()))
        .unwrap();
    *copy.headers_mut() = req.headers().clone();
    copy.extensions_mut().insert(raw);
    copy
}

fn raw_push(headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
    let mut req = Request::post("/callback");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let mut req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    req.extensions_mut()
        .insert(RawPayload::new(Bytes::from(body.to_owned())));
    req
}

type Service = FalSignature<tower::util::ServiceFn<fn(Request<Full<Bytes>>) -> EchoFuture>>;
type EchoFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>,
>;

fn service(layer: &FalSignatureLayer) -> Service {
    fn boxed(req: Request<Full<Bytes>>) -> EchoFuture {
        Box::pin(echo(req))
    }
    layer.layer(service_fn(boxed as fn(_) -> _))
}

async fn status(service: &Service, req: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, String) {
    send(service.clone(), req).await
}

// ---- the scheme ------------------------------------------------------------

#[tokio::test]
async fn independent_vector() {
    let v = generated();
    let f = &v["fal"];
    let s = |k: &str| f[k].as_str().unwrap().to_owned();
    let t = f["timestamp"].as_u64().unwrap();
    let document = format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"fal-1","x":"{}"}}]}}"#,
        v["jwk_x"].as_str().unwrap()
    );
    // Our signing agrees with Python's.
    let signing = WebhookSigningKey::new(v["whsk"].as_str().unwrap()).unwrap();
    assert_eq!(
        signing.sign_fal(
            &s("request_id"),
            &s("user_id"),
            t as i64,
            s("body").as_bytes()
        ),
        s("signature")
    );

    let layer = FalSignatureLayer::new(JwksSource::json(document.as_bytes()).unwrap())
        .user_id(s("user_id"))
        .now(move || UNIX_EPOCH + Duration::from_secs(t));
    let service = service(&layer);
    let headers = |user: &str, signature: &str, body: &str| {
        raw_push(
            &[
                ("x-fal-webhook-request-id", &s("request_id")),
                ("x-fal-webhook-user-id", user),
                ("x-fal-webhook-timestamp", &t.to_string()),
                ("x-fal-webhook-signature", signature),
            ],
            body,
        )
    };
    let (ok, _, body) = status(
        &service,
        headers(&s("user_id"), &s("signature"), &s("body")),
    )
    .await;
    assert_eq!(ok, StatusCode::OK, "{body}");
    // Upper-case hex is the same signature.
    let (ok, _, _) = status(
        &service,
        headers(&s("user_id"), &s("signature").to_uppercase(), &s("body")),
    )
    .await;
    assert_eq!(ok, StatusCode::OK);
    let tampered = s("body").replace("img.png", "evil.png");
    let (refused, _, body) =
        status(&service, headers(&s("user_id"), &s("signature"), &tampered)).await;
    assert_eq!(refused, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_signature");
    // The user id is signed: another one in the header breaks the signature
    // (and is not an accepted user either).
    let (refused, _, _) = status(&service, headers("someone", &s("signature"), &s("body"))).await;
    assert_eq!(refused, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn headers_tolerance_and_users() {
    let fal = key(1);
    let clock = Clock::new();
    let layer =
        FalSignatureLayer::new(JwksSource::keys([fal.public_key()]).unwrap()).now(clock.reader());
    let service = service(&layer);
    let refused = |req| {
        let service = service.clone();
        async move {
            let (code, _, body) = status(&service, req).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(error_code(&body), "invalid_signature");
            body
        }
    };
    let (ok, _, _) = status(&service, push_at(&fal, USER, T0, BODY)).await;
    assert_eq!(ok, StatusCode::OK);

    // Each header missing, or empty.
    for name in [
        "x-fal-webhook-request-id",
        "x-fal-webhook-user-id",
        "x-fal-webhook-timestamp",
        "x-fal-webhook-signature",
    ] {
        let mut req = push_at(&fal, USER, T0, BODY);
        req.headers_mut().remove(name);
        let body = refused(req).await;
        assert!(body.to_ascii_lowercase().contains(name), "{body}");
        let mut req = push_at(&fal, USER, T0, BODY);
        req.headers_mut().insert(name, "".parse().unwrap());
        refused(req).await;
    }
    // A signature that is not 128 hex digits; a timestamp that is not one.
    for (name, value) in [
        ("x-fal-webhook-signature", "abcd"),
        ("x-fal-webhook-signature", &"zz".repeat(64)),
        ("x-fal-webhook-timestamp", "1763000000.5"),
        ("x-fal-webhook-timestamp", "-1"),
    ] {
        let mut req = push_at(&fal, USER, T0, BODY);
        req.headers_mut().insert(name, value.parse().unwrap());
        refused(req).await;
    }
    // Another request id under the same signature.
    let mut req = push_at(&fal, USER, T0, BODY);
    req.headers_mut()
        .insert("x-fal-webhook-request-id", "req_2".parse().unwrap());
    refused(req).await;

    // The tolerance, both ways, on a clock we move.
    for (sent, expected) in [
        (T0 - 300, StatusCode::OK),
        (T0 + 300, StatusCode::OK),
        (T0 - 301, StatusCode::UNAUTHORIZED),
        (T0 + 301, StatusCode::UNAUTHORIZED),
    ] {
        let (code, _, body) = status(&service, push_at(&fal, USER, sent, BODY)).await;
        assert_eq!(code, expected, "sent at {sent}: {body}");
    }
    let strict = service_with(layer.clone().tolerance(Duration::from_secs(10)));
    let (code, _, _) = status(&strict, push_at(&fal, USER, T0 - 11, BODY)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    // Only the accepted users, when any is named.
    let ours = service_with(layer.clone().user_id(USER).user_id("user_43"));
    for (user, expected) in [
        (USER, StatusCode::OK),
        ("user_43", StatusCode::OK),
        ("user_44", StatusCode::UNAUTHORIZED),
    ] {
        let (code, _, _) = status(&ours, push_at(&fal, user, T0, BODY)).await;
        assert_eq!(code, expected, "{user}");
    }

    // A key that is not fal's.
    refused(push_at(&key(2), USER, T0, BODY)).await;

    // Without the payload layer there is no raw body: our error.
    let mut req = push_at(&fal, USER, T0, BODY);
    req.extensions_mut().remove::<RawPayload>();
    let (code, _, body) = status(&service, req).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&body), "payload_layer_missing");
}

fn service_with(layer: FalSignatureLayer) -> Service {
    service(&layer)
}

#[test]
fn sources_are_checked() {
    assert_eq!(
        JwksSource::keys([]).unwrap_err().kind(),
        JwksErrorKind::Invalid
    );
    for bad in [
        &b"{}"[..],
        br#"{"keys":[]}"#,
        b"<html>",
        br#"{"keys":[{"kty":"RSA"}]}"#,
    ] {
        assert_eq!(
            JwksSource::json(bad).unwrap_err().kind(),
            JwksErrorKind::Invalid
        );
    }
    assert_eq!(
        JwksSource::url("ftp://example.com/jwks").unwrap_err(),
        InvalidJwksUrl::NotAbsolute
    );
    assert!(JwksSource::url("/relative").is_err());
    // The plain client cannot speak TLS: refused when built, not at every push.
    assert_eq!(
        JwksSource::url("https://rest.alpha.fal.ai/.well-known/jwks.json").unwrap_err(),
        InvalidJwksUrl::NeedsTls
    );
    assert!(HttpJwks::new("https://rest.alpha.fal.ai/.well-known/jwks.json").is_ok());
}

// ---- a JWKS file -------------------------------------------------------------

#[tokio::test]
async fn file_source() {
    let dir = std::env::temp_dir().join(format!("taskhook-fal-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(
        &path,
        jwks(&[("k1", key(1).public_key()), ("k2", key(2).public_key())]),
    )
    .unwrap();

    let source = JwksSource::file(&path).unwrap();
    // Read once: a later change of the file changes nothing.
    std::fs::write(&path, "not json").unwrap();
    let layer = FalSignatureLayer::new(source).now(move || UNIX_EPOCH + Duration::from_secs(T0));
    assert_eq!(layer.fetch_keys().await.unwrap(), 2);
    let service = service(&layer);
    for signer in [key(1), key(2)] {
        let (code, _, _) = status(&service, push_at(&signer, USER, T0, BODY)).await;
        assert_eq!(code, StatusCode::OK);
    }
    let (code, _, _) = status(&service, push_at(&key(3), USER, T0, BODY)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    assert_eq!(
        JwksSource::file(&path).unwrap_err().kind(),
        JwksErrorKind::Invalid
    );
    assert_eq!(
        JwksSource::file(dir.join("missing.json"))
            .unwrap_err()
            .kind(),
        JwksErrorKind::Unavailable
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- a JWKS URL on loopback --------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Up,
    Down,
    Hang,
}

/// A JWKS server: serves `document` (or fails, or never answers), counts
/// the requests.
struct Jwks {
    document: Mutex<String>,
    mode: Mutex<Mode>,
    hits: AtomicUsize,
}

impl Jwks {
    fn serve(&self, keys: &[(&str, WebhookPublicKey)]) {
        *self.document.lock().unwrap() = jwks(keys);
    }
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn jwks_route(State(jwks): State<Arc<Jwks>>) -> Response<String> {
    jwks.hits.fetch_add(1, Ordering::SeqCst);
    let mode = *jwks.mode.lock().unwrap();
    match mode {
        Mode::Up => {
            let document = jwks.document.lock().unwrap().clone();
            Response::builder()
                .header("content-type", "application/json")
                .body(document)
                .unwrap()
        }
        Mode::Down => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(String::new())
            .unwrap(),
        Mode::Hang => std::future::pending().await,
    }
}

async fn jwks_server(keys: &[(&str, WebhookPublicKey)]) -> (SocketAddr, Arc<Jwks>) {
    let jwks = Arc::new(Jwks {
        document: Mutex::new(String::new()),
        mode: Mutex::new(Mode::Up),
        hits: AtomicUsize::new(0),
    });
    jwks.serve(keys);
    let router = Router::new()
        .route("/.well-known/jwks.json", get(jwks_route))
        .with_state(Arc::clone(&jwks));
    (common::serve_axum(router).await, jwks)
}

fn url_layer(addr: SocketAddr, clock: &Clock) -> FalSignatureLayer {
    let url = format!("http://{addr}/.well-known/jwks.json");
    FalSignatureLayer::new(JwksSource::url(&url).unwrap()).now(clock.reader())
}

#[tokio::test]
async fn url_key_found_and_cached() {
    let (addr, server) = jwks_server(&[("k1", key(1).public_key())]).await;
    let clock = Clock::new();
    let service = service(&url_layer(addr, &clock));
    for _ in 0..3 {
        let (code, _, body) = status(&service, push_at(&key(1), USER, clock.secs(), BODY)).await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    assert_eq!(server.hits(), 1, "fetched once, then cached");

    // Past the time to live (1 hour), fetched again.
    clock.advance(3601);
    let (code, _, _) = status(&service, push_at(&key(1), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn url_key_rotated() {
    let (addr, server) = jwks_server(&[("k1", key(1).public_key())]).await;
    let clock = Clock::new();
    let service = service(&url_layer(addr, &clock));
    let (code, _, _) = status(&service, push_at(&key(1), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(server.hits(), 1);

    // fal rotates: k2 in, k1 out.
    server.serve(&[("k2", key(2).public_key())]);
    // Within the refresh interval of the last fetch, no second fetch: the
    // unknown key is refused.
    let (code, _, _) = status(&service, push_at(&key(2), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(server.hits(), 1);
    // After it, the unknown key prompts a fetch, which finds it.
    clock.advance(31);
    let (code, _, body) = status(&service, push_at(&key(2), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(server.hits(), 2);
    // The retired key no longer verifies, and costs no fetch.
    let (code, _, _) = status(&service, push_at(&key(1), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn url_down_with_nothing_cached_is_503() {
    // Nothing listens on the port.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let clock = Clock::new();
    let layer = url_layer(closed, &clock);
    let service = service(&layer);
    let (code, headers, body) = status(&service, push_at(&key(1), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_code(&body), "signing_keys_unavailable");
    assert_eq!(headers["retry-after"], "30");
    assert_eq!(
        layer.fetch_keys().await.unwrap_err().kind(),
        JwksErrorKind::Unavailable
    );

    // A server that answers 503, then comes back.
    let (addr, server) = jwks_server(&[("k1", key(1).public_key())]).await;
    server.set(Mode::Down);
    let service = service_with(url_layer(addr, &clock).retry_after(Duration::from_secs(90)));
    for _ in 0..3 {
        let (code, headers, _) = status(&service, push_at(&key(1), USER, clock.secs(), BODY)).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["retry-after"], "90");
    }
    assert_eq!(
        server.hits(),
        1,
        "a failed fetch is not retried within the interval"
    );
    server.set(Mode::Up);
    clock.advance(31);
    let (code, _, _) = status(&service, push_at(&key(1), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn url_down_after_a_fetch_keeps_the_cached_keys() {
    let (addr, server) = jwks_server(&[("k1", key(1).public_key())]).await;
    let clock = Clock::new();
    let layer = url_layer(addr, &clock);
    assert_eq!(layer.fetch_keys().await.unwrap(), 1);
    let service = service(&layer);
    server.set(Mode::Down);

    // Within the time to live: no fetch at all.
    let (code, _, _) = status(&service, push_at(&key(1), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(server.hits(), 1);
    // Past it: the fetch fails, the cached keys still verify.
    clock.advance(3601);
    let (code, _, body) = status(&service, push_at(&key(1), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(server.hits(), 2);
    // An unknown key now cannot be told from a rotated one we could not
    // learn: 503, not 401.
    let (code, _, body) = status(&service, push_at(&key(2), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(server.hits(), 2, "within the interval of the failed fetch");
    clock.advance(31);
    let (code, _, _) = status(&service, push_at(&key(2), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.hits(), 3);
    // Back up: the unknown key is refused for good once the set is current.
    server.set(Mode::Up);
    clock.advance(31);
    let (code, _, _) = status(&service, push_at(&key(2), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(server.hits(), 4);
}

/// A flood of signatures by made-up keys, concurrent and then sequential:
/// at most one fetch per refresh interval, the concurrent ones sharing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_unknown_keys_fetches_once_per_interval() {
    let (addr, server) = jwks_server(&[("k1", key(1).public_key())]).await;
    let clock = Clock::new();
    let layer = url_layer(addr, &clock);
    let service = service(&layer);
    // Signed once per forger: in a debug build, Ed25519 costs milliseconds.
    let forgers: Vec<Request<Full<Bytes>>> = (0..5)
        .map(|i| push_at(&key(100 + i), USER, clock.secs(), BODY))
        .collect();
    let flood = |n: usize| {
        let service = service.clone();
        let pushes: Vec<Request<Full<Bytes>>> = (0..n)
            .map(|i| clone_push(&forgers[i % forgers.len()]))
            .collect();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for push in pushes {
                let service = service.clone();
                tasks.spawn(async move { status(&service, push).await.0 });
            }
            while let Some(code) = tasks.join_next().await {
                assert_eq!(code.unwrap(), StatusCode::UNAUTHORIZED);
            }
        }
    };
    // The first flood finds an empty cache: one fetch for all of it.
    flood(30).await;
    assert_eq!(server.hits(), 1);
    flood(10).await;
    assert_eq!(server.hits(), 1);
    for _ in 0..3 {
        // Within the tolerance of the forgers' timestamp.
        clock.advance(31);
        flood(30).await;
        flood(10).await;
    }
    assert_eq!(server.hits(), 4, "one fetch per interval");
    // Real pushes still pass, from the cache.
    let (code, _, _) = status(&service, push_at(&key(1), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn url_that_never_answers_times_out() {
    let (addr, server) = jwks_server(&[("k1", key(1).public_key())]).await;
    server.set(Mode::Hang);
    let clock = Clock::new();
    let layer = url_layer(addr, &clock).jwks_fetch_timeout(Duration::from_millis(200));
    let service = service(&layer);
    let started = std::time::Instant::now();
    let (code, headers, _) = status(&service, push_at(&key(1), USER, clock.secs(), BODY)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.hits(), 1);
}

#[test]
fn debug_output() {
    let layer =
        FalSignatureLayer::new(JwksSource::keys([key(1).public_key()]).unwrap()).user_id(USER);
    let debug = format!("{layer:?}");
    assert!(debug.contains("JwksSource::Keys(1)"), "{debug}");
    assert!(debug.contains(USER), "{debug}");
}
