//! A static secret header or bearer token: accepted, rotated, refused,
//! removed before the handler, never in the logs, and over loopback with
//! axum in front of the payload layer.

use std::convert::Infallible;

use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use taskhook::verify::{HeaderSecretLayer, InvalidHeaderSecret};
use taskhook::{PayloadLayer, TaskEvent};
use tower::{service_fn, Layer, ServiceBuilder};

use super::{common, error_code, send, Captured};

/// Answers with the headers that reached it, `name=value;...`.
async fn headers_seen(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut seen: Vec<String> = req
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    seen.sort();
    Ok(Response::new(Full::new(Bytes::from(seen.join(";")))))
}

fn with(headers: &[(&str, &[u8])]) -> Request<Full<Bytes>> {
    let mut req = Request::post("/callback").body(Full::default()).unwrap();
    for (name, value) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    req
}

#[tokio::test]
async fn custom_header_accepted_rotated_refused_and_removed() {
    let (captured, _guard) = Captured::install();
    let layer = HeaderSecretLayer::header("X-AssemblyAI-Auth", "s3cret one")
        .unwrap()
        .also_accept("n3w-s3cret")
        .unwrap();
    let service = layer.layer(service_fn(headers_seen));
    for secret in ["s3cret one", "n3w-s3cret"] {
        let (status, _, body) = send(
            service.clone(),
            with(&[("x-assemblyai-auth", secret.as_bytes()), ("x-other", b"1")]),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{secret}");
        assert_eq!(body, "x-other=1", "the secret header is removed");
    }
    for wrong in [
        &b"s3cret"[..],
        b"s3cret one ",
        b"S3CRET ONE",
        b"s3cret onex",
        b"",
        b"\xff\xfe s3cret one",
    ] {
        let (status, headers, body) =
            send(service.clone(), with(&[("x-assemblyai-auth", wrong)])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert_eq!(error_code(&body), "invalid_secret");
        assert!(!body.contains("s3cret"), "{body}");
        assert_eq!(headers["content-type"], "application/json");
    }
    let (status, _, _) = send(service.clone(), with(&[("x-other", b"s3cret one")])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "missing");
    // Another header with the secret does not count; only the first value
    // of the configured one is read.
    let (status, _, _) = send(
        service.clone(),
        with(&[
            ("x-assemblyai-auth", b"wrong"),
            ("x-assemblyai-auth", b"s3cret one"),
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Kept when asked.
    let keeping = layer
        .clone()
        .keep_header(true)
        .layer(service_fn(headers_seen));
    let (status, _, body) = send(keeping, with(&[("x-assemblyai-auth", b"n3w-s3cret")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "x-assemblyai-auth=n3w-s3cret");

    let debug = format!("{layer:?} {service:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    let logs = captured.text();
    assert!(logs.contains("401"), "{logs}");
    assert!(!logs.contains("s3cret"), "{logs}");
}

#[tokio::test]
async fn bearer_token() {
    let service = HeaderSecretLayer::bearer("tok_9f8e7d6c")
        .unwrap()
        .layer(service_fn(headers_seen));
    for ok in [
        &b"Bearer tok_9f8e7d6c"[..],
        b"bearer tok_9f8e7d6c",
        b"BEARER   tok_9f8e7d6c",
    ] {
        let (status, _, body) = send(service.clone(), with(&[("authorization", ok)])).await;
        assert_eq!(status, StatusCode::OK, "{ok:?}");
        assert_eq!(body, "", "authorization removed");
    }
    for wrong in [
        &b"tok_9f8e7d6c"[..],
        b"Basic tok_9f8e7d6c",
        b"Bearer",
        b"Bearer tok_9f8e7d6",
        b"Bearer tok_9f8e7d6c extra",
        b"Bearertok_9f8e7d6c",
    ] {
        let (status, _, body) = send(service.clone(), with(&[("authorization", wrong)])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert_eq!(error_code(&body), "invalid_secret");
    }
}

#[test]
fn configuration_is_checked() {
    assert_eq!(
        HeaderSecretLayer::header("not a header", "s").unwrap_err(),
        InvalidHeaderSecret::HeaderName
    );
    assert_eq!(
        HeaderSecretLayer::header("x-auth", "").unwrap_err(),
        InvalidHeaderSecret::Empty
    );
    assert_eq!(
        HeaderSecretLayer::bearer("has space").unwrap_err(),
        InvalidHeaderSecret::InvalidCharacter
    );
    assert_eq!(
        HeaderSecretLayer::bearer("ok")
            .unwrap()
            .also_accept("bad\nline")
            .unwrap_err(),
        InvalidHeaderSecret::InvalidCharacter
    );
}

/// The layer needs no body: in front of the payload layer, a request
/// without the secret is refused before its body is read.
#[tokio::test]
async fn over_loopback_before_the_payload_layer() {
    let router = Router::new().route(
        "/callback",
        post(|event: TaskEvent| async move { event.id().to_owned() }).layer(
            ServiceBuilder::new()
                .layer(HeaderSecretLayer::header("x-assemblyai-auth", "s3cret").unwrap())
                .layer(PayloadLayer::new()),
        ),
    );
    let addr = common::serve_axum(router).await;
    let body = common::fixture("completed-video");
    let head = |secret: Option<&str>, len: usize| {
        let auth = secret
            .map(|s| format!("x-assemblyai-auth: {s}\r\n"))
            .unwrap_or_default();
        format!(
            "POST /callback HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth}\
             content-length: {len}\r\nconnection: close\r\n\r\n"
        )
    };
    let ok = common::exchange(addr, &head(Some("s3cret"), body.len()), &[&body]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body, "task_01KBS40K78KGHZ9SDBWQSGSXRK");
    // Announces a body it never sends: answered without waiting for it.
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        common::exchange(addr, &head(None, 1_000_000), &[]),
    )
    .await
    .expect("answered before the body");
    assert_eq!(refused.status, 401, "{}", refused.body);
}
