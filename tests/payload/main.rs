//! The payload layer: in-process edge cases, then real HTTP on loopback with
//! axum, plain hyper, and a tonic server.

use taskhook_test_support as common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use taskhook::body::BufferedBody;
use taskhook::{PayloadLayer, RawPayload, TaskEvent};
use tower::{service_fn, ServiceBuilder, ServiceExt};

/// An inner service that echoes what the layer handed it: the event id, the
/// raw payload length, and the body it can still read.
async fn echo(req: Request<BufferedBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let id = req.extensions().get::<TaskEvent>().unwrap().id().to_owned();
    let raw = req.extensions().get::<RawPayload>().unwrap().len();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let text = format!("{id} {raw} {}", body.len());
    Ok(Response::new(Full::new(Bytes::from(text))))
}

async fn call<B>(layer: PayloadLayer, req: Request<B>) -> (StatusCode, http::HeaderMap, String)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = ServiceBuilder::new().layer(layer).service(service_fn(echo));
    let response = service.oneshot(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn request(body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post("/callback")
        .body(Full::new(body.into()))
        .unwrap()
}

#[tokio::test]
async fn parsed_event_and_body_reach_the_inner_service() {
    let body = common::fixture("completed-video");
    let len = body.len();
    let (status, _, text) = call(PayloadLayer::new(), request(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, format!("task_01KBS40K78KGHZ9SDBWQSGSXRK {len} {len}"));
}

#[tokio::test]
async fn rejections_in_process() {
    let deep = format!(r#"{{"id":"t","x":{}{}}}"#, "[".repeat(300), "]".repeat(300));
    let cases: Vec<(Request<Full<Bytes>>, StatusCode, &str)> = vec![
        (request("{oops"), StatusCode::BAD_REQUEST, "malformed_json"),
        (
            request(&b"{\"id\":\"\xff\"}"[..]),
            StatusCode::BAD_REQUEST,
            "invalid_utf8",
        ),
        (request(deep), StatusCode::BAD_REQUEST, "nesting_too_deep"),
        (request("[]"), StatusCode::BAD_REQUEST, "not_an_object"),
        (
            request(r#"{"data":{"status":"completed"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            request(format!(r#"{{"id":"{}"}}"#, "x".repeat(10_000))),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            Request::post("/callback")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from_static(b"id=1")))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Request::get("/callback")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Request::post("/callback")
                .header("content-length", "999999999")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (req, expected, code) in cases {
        let (status, headers, body) = call(PayloadLayer::new(), req).await;
        assert_eq!(status, expected, "{body}");
        assert_eq!(headers["content-type"], "application/json");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"]["code"], code, "{body}");
        assert!(json["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn a_json_body_is_accepted_whatever_its_content_type_says() {
    for ct in [
        None,
        Some("application/json; charset=utf-8"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("text/html"),
        Some("image/png"),
    ] {
        let mut req = request(common::fixture("cancelled"));
        if let Some(ct) = ct {
            req.headers_mut()
                .insert("content-type", ct.parse().unwrap());
        }
        assert_eq!(
            call(PayloadLayer::new(), req).await.0,
            StatusCode::OK,
            "{ct:?}"
        );
    }
}

#[tokio::test]
async fn a_method_other_than_post_is_405_with_allow_post() {
    for method in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let mut req = request(common::fixture("cancelled"));
        *req.method_mut() = method.parse().unwrap();
        let (status, headers, _) = call(PayloadLayer::new(), req).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(headers["allow"], "POST", "{method}");
    }
}

#[tokio::test]
async fn a_hostile_id_is_not_echoed() {
    let body = r#"{"id":"evil\r\nX-Injected: 1"}"#;
    let (status, headers, text) = call(PayloadLayer::new(), request(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!text.contains("evil"), "{text}");
    assert!(headers.get("x-injected").is_none());
}

/// A body that yields `frame` bytes per frame, forever, and counts the frames
/// it gave out.
struct Endless {
    frame: usize,
    polled: Arc<AtomicUsize>,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polled.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; self.frame])))))
    }
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_limit() {
    let polled = Arc::new(AtomicUsize::new(0));
    let body = Endless {
        frame: 1024,
        polled: polled.clone(),
    };
    let req = Request::post("/callback").body(body).unwrap();
    let (status, _, _) = call(PayloadLayer::new().limit(8 * 1024), req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // 8 frames fit, the 9th crosses the limit; nothing more is read.
    assert_eq!(polled.load(Ordering::SeqCst), 9);
}

#[tokio::test]
async fn a_body_at_exactly_the_limit_is_read() {
    let mut body = br#"{"id":"t","pad":""#.to_vec();
    body.resize(1000 - 2, b'a');
    body.extend_from_slice(b"\"}");
    assert_eq!(
        call(PayloadLayer::new().limit(1000), request(body.clone()))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(PayloadLayer::new().limit(999), request(body)).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

/// A body that fails after one frame, like a reset connection.
struct Broken(bool);

impl Body for Broken {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if std::mem::replace(&mut self.0, true) {
            Poll::Ready(Some(Err(std::io::ErrorKind::ConnectionReset.into())))
        } else {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{\"id\":")))))
        }
    }
}

#[tokio::test]
async fn a_body_read_error_is_transient() {
    let req = Request::post("/callback").body(Broken(false)).unwrap();
    let (status, headers, body) = call(PayloadLayer::new(), req).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
}

#[tokio::test]
async fn an_outer_length_limit_is_still_a_413() {
    let service = ServiceBuilder::new()
        .layer(tower_http::limit::RequestBodyLimitLayer::new(100))
        .layer(PayloadLayer::new())
        .service(service_fn(echo));
    let polled = Arc::new(AtomicUsize::new(0));
    let req = Request::post("/callback")
        .body(Endless { frame: 64, polled })
        .unwrap();
    let response = service.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

// ---- real HTTP on loopback ----

#[cfg(feature = "axum")]
fn axum_app() -> axum::Router {
    use axum::routing::post;
    async fn handler(event: TaskEvent, raw: RawPayload) -> String {
        format!("{} {} {}", event.id(), event.urls().count(), raw.len())
    }
    axum::Router::new()
        .route(
            "/callback",
            post(handler).layer(PayloadLayer::new().limit(4096)),
        )
        .route(
            "/unlayered",
            post(|event: TaskEvent| async move { event.id().to_owned() }),
        )
        .route(
            "/optional",
            post(|event: Option<TaskEvent>| async move { format!("{}", event.is_some()) }),
        )
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_over_http() {
    let addr = common::serve_axum(axum_app()).await;
    let body = common::fixture("completed-audio");

    let ok = common::post(addr, "/callback", Some("application/json"), &body).await;
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (
            200,
            &*format!("task_01KC2Z7Q4M9R8T6V5W3X1Y0ZAB 2 {}", body.len())
        )
    );

    let chunked = common::post_chunked(addr, "/callback", &body, 7).await;
    assert_eq!(chunked.status, 200, "{chunked:?}");

    let malformed = common::post(addr, "/callback", Some("application/json"), b"{\"id\":").await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["error"]["code"], "malformed_json");

    let utf8 = common::post(addr, "/callback", None, b"{\"id\":\"\xc3\x28\"}").await;
    assert_eq!(utf8.json()["error"]["code"], "invalid_utf8");

    // The body decides, not the label: JSON sent as a form (`curl -d`) or
    // as HTML is accepted; a form body is a 400.
    for label in [
        "application/x-www-form-urlencoded",
        "text/html",
        "image/png",
    ] {
        let labelled = common::post(addr, "/callback", Some(label), &body).await;
        assert_eq!(labelled.status, 200, "{label}: {labelled:?}");
    }
    let form = common::post(
        addr,
        "/callback",
        Some("application/x-www-form-urlencoded"),
        b"id=task_1&status=completed",
    )
    .await;
    assert_eq!(form.status, 400);
    assert_eq!(form.json()["error"]["code"], "malformed_json");

    let big = vec![b' '; 1 << 20];
    let declared = common::post(addr, "/callback", None, &big).await;
    assert_eq!(declared.status, 413);
    let streamed = common::post_chunked(addr, "/callback", &big, 1024).await;
    assert_eq!(streamed.status, 413);
    assert_eq!(streamed.json()["error"]["code"], "payload_too_large");
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_extractor_without_the_layer_is_a_500_naming_the_type() {
    let addr = common::serve_axum(axum_app()).await;
    let body = common::fixture("cancelled");
    let response = common::post(addr, "/unlayered", None, &body).await;
    assert_eq!(response.status, 500);
    assert!(
        response.body.contains("taskhook::event::TaskEvent"),
        "{}",
        response.body
    );
    assert!(response.body.contains("PayloadLayer"), "{}", response.body);

    let optional = common::post(addr, "/optional", None, &body).await;
    assert_eq!((optional.status, optional.body.as_str()), (200, "false"));
}

#[tokio::test]
async fn hyper_service_fn_over_http() {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = ServiceBuilder::new()
                .layer(PayloadLayer::new())
                .service(service_fn(echo));
            tokio::spawn(
                http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)),
            );
        }
    });

    let body = common::fixture("failed-error-string");
    let ok = common::post(addr, "/callback", None, &body).await;
    assert_eq!(ok.status, 200);
    assert!(
        ok.body.starts_with("task_01K8SH0000000000000000FAIL "),
        "{}",
        ok.body
    );
    let bad = common::post(addr, "/callback", None, br#"{"id":""}"#).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["code"], "invalid_id");
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn tonic_server_with_a_grpc_service_and_the_callback_route() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let (_reporter, health) = tonic_health::server::health_reporter();
    let callback = axum::Router::new().route(
        "/callback",
        axum::routing::post(|event: TaskEvent| async move { event.id().to_owned() })
            .layer(PayloadLayer::new()),
    );
    let routes = tonic::service::Routes::from(callback).add_service(health);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(routes)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let body = common::fixture("completed-image-url-string");
    let response = common::post(addr, "/callback", Some("application/json"), &body).await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, "task-unified-1757156493-k9m2xpvw")
    );
    let bad = common::post(addr, "/callback", Some("application/json"), b"nope").await;
    assert_eq!(bad.status, 400);

    // The gRPC service on the same server is untouched by the layer.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let status = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(status.into_inner().status, 1 /* SERVING */);
}

/// `parse_in_full(true)` answers every body as the default two-step parse
/// does, and hands the inner service the same event.
#[tokio::test]
async fn parse_in_full_answers_like_the_two_step_parse() {
    let bodies: [&[u8]; 6] = [
        br#"{"code":200,"data":{"id":"t1","status":"completed","result":{"images":[{"url":"https://cdn.example/a.png"}]}}}"#,
        br#"{"id":"t2","status":"failed","error":"timeout"}"#,
        br#"{"id":"t3","note":"\ud800"}"#,
        br#"{"status":"completed"}"#,
        b"{\"id\":\"t4\",\"x\":\"\xff\"}",
        b"not json",
    ];
    for body in bodies {
        let mut answers = Vec::new();
        for in_full in [false, true] {
            let inner = service_fn(|req: Request<BufferedBody>| async move {
                let event = req.extensions().get::<TaskEvent>().cloned();
                let text = format!("{event:?}");
                Ok::<_, Infallible>(Response::new(text))
            });
            let service = ServiceBuilder::new()
                .layer(PayloadLayer::new().parse_in_full(in_full))
                .service(inner);
            let request = Request::post("/callback")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::copy_from_slice(body)))
                .unwrap();
            let response = service.oneshot(request).await.unwrap();
            let status = response.status();
            let text = response.into_body().collect().await.unwrap().to_bytes();
            answers.push((status, text));
        }
        assert_eq!(answers[0], answers[1], "{}", String::from_utf8_lossy(body));
    }
}

#[tokio::test]
async fn a_second_payload_layer_passes_on_what_the_first_read() {
    // The first layer parses a Replicate body; the second (the default
    // shape, which would refuse it) reuses that event and those bytes.
    let parses = Arc::new(AtomicUsize::new(0));
    #[derive(Debug)]
    struct Counting(Arc<AtomicUsize>);
    impl taskhook::provider::Profile for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn parse(
            &self,
            body: &Bytes,
            headers: &http::HeaderMap,
        ) -> Result<TaskEvent, taskhook::event::PayloadError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            taskhook::provider::Replicate::new().parse(body, headers)
        }
        fn retry_horizon(&self) -> std::time::Duration {
            std::time::Duration::from_secs(60)
        }
    }
    let body = r#"{"id":"pred_1","status":"succeeded","output":"https://cdn.example/a.png"}"#;
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new().profile(Counting(Arc::clone(&parses))))
        .layer(PayloadLayer::new())
        .service(service_fn(echo));
    let response = service.oneshot(request(body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    let len = body.len();
    assert_eq!(text, format!("pred_1 {len} {len}"));
    assert_eq!(parses.load(Ordering::SeqCst), 1);
}
