//! The forwarding service over real HTTP on loopback, in front of a real
//! upstream: what the upstream gets (the body bytes, the headers), what
//! each answer of the upstream becomes, and through the whole stack
//! (payload -> dedup -> fast-ack -> forward): retries until delivered once,
//! refusals as dead letters, an upstream down then up, timeouts,
//! `Retry-After`, the concurrency cap.

mod upstream;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use taskhook::body::BufferedBody;
use taskhook::fast_ack::{Failure, FastAckBuilder, FastAckHandle, FastAckLayer, RetryPolicy};
use taskhook::forward::{Forward, InvalidForward};
use taskhook::CallbackStack;
use taskhook_test_support::{exchange, fixture, post, post_chunked, serve_axum, until};
use tower::ServiceExt;

use self::upstream::{Reply, Upstream};

/// The stack payload -> dedup -> fast-ack -> `forward`, served on loopback
/// at `/callback`.
async fn receiver(forward: Forward, fast_ack: FastAckBuilder) -> (SocketAddr, FastAckHandle) {
    let (service, handle) = CallbackStack::new().fast_ack(fast_ack).build(forward);
    let addr = serve_axum(Router::new().route_service("/callback", service)).await;
    handle.started().await;
    (addr, handle)
}

/// Fast retries without jitter: a retry that should not happen would.
fn quick_retries(attempts: u32) -> FastAckBuilder {
    FastAckLayer::builder().retry(
        RetryPolicy::new()
            .attempts(attempts)
            .base_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(50))
            .jitter(false),
    )
}

fn callback_body(id: &str) -> String {
    format!(r#"{{"code":200,"data":{{"id":"{id}","status":"completed"}}}}"#)
}

/// Pushes the callback of `id` to the receiver at `addr`.
async fn push(addr: SocketAddr, id: &str) -> u16 {
    post(
        addr,
        "/callback",
        Some("application/json"),
        callback_body(id).as_bytes(),
    )
    .await
    .status
}

/// Milliseconds since the epoch of `2025-12-22T00:00:00.123Z` (the form of
/// `taskhook-received-at`); panics on anything else.
fn rfc3339_millis(text: &str) -> u64 {
    let b = text.as_bytes();
    assert_eq!(b.len(), 24, "{text}");
    for (i, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ] {
        assert_eq!(b[i], c, "{text}");
    }
    let n = |r: std::ops::Range<usize>| text[r].parse::<u64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant), years from 1970.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + n(11..13) * 3_600 + n(14..16) * 60 + n(17..19);
    secs * 1_000 + n(20..23)
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test]
async fn the_upstream_gets_the_providers_bytes_and_end_to_end_headers() {
    let upstream = Upstream::start().await;
    let forward = Forward::builder(upstream.url("/app/hook?from=taskhook"))
        .header(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer app-secret"),
        )
        .header(
            http::HeaderName::from_static("x-tenant"),
            http::HeaderValue::from_static("acme"),
        )
        .build()
        .unwrap();
    let (addr, handle) = receiver(forward, FastAckLayer::builder()).await;

    // The sample with unknown fields, with its fields in another order, odd
    // whitespace and a non-ASCII string: nothing may be parsed and
    // rewritten on the way.
    let sample = String::from_utf8(fixture("completed-extra-fields")).unwrap();
    let data = sample
        .trim()
        .strip_prefix(r#"{"code":200,"data":"#)
        .and_then(|rest| rest.strip_suffix('}'))
        .expect("the fixture's envelope");
    let data = data.replace(r#""a1b2""#, "\"a1b2 \u{2014} \u{e9}\"");
    let body = format!("\r\n {{ \"data\" :\t{data} ,\n  \"code\" : 200 }}\n\n");
    let head = format!(
        "POST /callback HTTP/1.1\r\n\
         host: {addr}\r\n\
         content-type: application/json\r\n\
         content-length: {}\r\n\
         connection: x-hop, close\r\n\
         x-hop: hop-secret\r\n\
         keep-alive: timeout=5\r\n\
         proxy-authorization: Basic eA==\r\n\
         te: trailers\r\n\
         trailer: x-checksum\r\n\
         authorization: Bearer provider\r\n\
         taskhook-attempt: 99\r\n\
         taskhook-forged: yes\r\n\
         x-provider: kept\r\n\
         x-multi: a\r\n\
         x-multi: b\r\n\
         \r\n",
        body.len()
    );
    let before = millis(SystemTime::now());
    let ack = exchange(addr, &head, &[body.as_bytes()]).await;
    let after = millis(SystemTime::now());
    assert_eq!(ack.status, 202, "{}", ack.body);
    until("forwarded", || upstream.count() == 1).await;

    let seen = upstream.seen(0);
    assert_eq!(
        seen.body,
        body.as_bytes(),
        "the provider's bytes, unchanged"
    );
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.uri, "/app/hook?from=taskhook");
    assert_eq!(seen.version, Version::HTTP_11);
    let h = &seen.headers;
    assert_eq!(h["host"], upstream.addr.to_string());
    assert_eq!(h["content-length"], body.len().to_string());
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-provider"], "kept");
    let multi: Vec<_> = h.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["a", "b"]);
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "taskhook-forged",
    ] {
        assert!(!h.contains_key(gone), "{gone} was forwarded: {h:?}");
    }
    let auth: Vec<_> = h.get_all("authorization").iter().collect();
    assert_eq!(
        auth,
        ["Bearer app-secret"],
        "the extra replaces the provider's"
    );
    assert_eq!(h["x-tenant"], "acme");
    assert_eq!(h["taskhook-task-id"], "task_01KE11111111111111111EXTRA");
    let attempts: Vec<_> = h.get_all("taskhook-attempt").iter().collect();
    assert_eq!(attempts, ["1"], "ours, not the provider's");
    let received = rfc3339_millis(h["taskhook-received-at"].to_str().unwrap());
    assert!(
        before <= received && received <= after,
        "{before} <= {received} <= {after}"
    );

    // A chunked push: the upstream gets a Content-Length and the same bytes.
    let chunked = callback_body("task_chunked");
    let ack = post_chunked(addr, "/callback", chunked.as_bytes(), 7).await;
    assert_eq!(ack.status, 202);
    until("forwarded", || upstream.count() == 2).await;
    let seen = upstream.seen(1);
    assert_eq!(seen.body, chunked.as_bytes());
    assert!(!seen.headers.contains_key("transfer-encoding"));
    assert_eq!(seen.headers["content-length"], chunked.len().to_string());
    assert_eq!(seen.headers["taskhook-task-id"], "task_chunked");

    assert!(handle.shutdown(Duration::from_secs(5)).await.drained);
    assert_eq!(handle.stats().processed, 2);
}

#[tokio::test]
async fn alone_it_strips_every_hop_by_hop_header_and_speaks_http_1_1() {
    let upstream = Upstream::start().await;
    upstream.script([Reply::status(200).body("thanks")]);
    let forward = Forward::new(&upstream.url("/hook")).unwrap();
    let mut req = Request::post("/callback")
        .version(Version::HTTP_2)
        .body(BufferedBody::new(Bytes::from_static(b"{\"id\":\"x\"}")))
        .unwrap();
    for (name, value) in [
        ("connection", "upgrade, x-listed"),
        ("upgrade", "websocket"),
        ("transfer-encoding", "chunked"),
        ("proxy-connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "x-sum"),
        ("expect", "100-continue"),
        ("host", "provider.example"),
        ("content-length", "999"),
        ("x-listed", "1"),
        ("x-kept", "2"),
    ] {
        req.headers_mut().append(
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        );
    }
    let before = millis(SystemTime::now());
    let answer = forward.oneshot(req).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "thanks");

    let seen = upstream.seen(0);
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.body, "{\"id\":\"x\"}".as_bytes());
    let mut names: Vec<&str> = seen.headers.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "content-length",
            "host",
            "taskhook-attempt",
            "taskhook-received-at",
            "x-kept"
        ],
        "no task id without a parsed event"
    );
    assert_eq!(seen.headers["content-length"], "10");
    assert_eq!(seen.headers["host"], upstream.addr.to_string());
    // Not under fast-ack: the first attempt, received now.
    assert_eq!(seen.headers["taskhook-attempt"], "1");
    let received = rfc3339_millis(seen.headers["taskhook-received-at"].to_str().unwrap());
    assert!(received >= before);
}

/// Sends one callback through `forward` alone; the answer's status,
/// `Retry-After` and JSON body (`Null` if not JSON) or text.
async fn forward_once(
    forward: &Forward,
) -> (StatusCode, Option<String>, serde_json::Value, String) {
    let req = Request::post("/callback")
        .body(BufferedBody::new(Bytes::from(callback_body("task_x"))))
        .unwrap();
    let answer = forward.clone().oneshot(req).await.unwrap();
    let status = answer.status();
    let retry_after = answer
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (
        status,
        retry_after,
        json,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn each_answer_of_the_upstream_maps_to_done_refused_or_retry() {
    let upstream = Upstream::start().await;
    let forward = Forward::builder(upstream.url("/hook"))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let retrying = Forward::builder(upstream.url("/hook"))
        .retry_client_errors(true)
        .build()
        .unwrap();

    // Done: the upstream's status and body.
    upstream.script([Reply::status(204)]);
    assert_eq!(forward_once(&forward).await.0, StatusCode::NO_CONTENT);

    // Refused for good: passed through, body and all.
    upstream.script([Reply::status(422).body("unknown tenant")]);
    let (status, retry_after, _, text) = forward_once(&forward).await;
    assert_eq!(
        (status, retry_after, text.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, None, "unknown tenant")
    );

    // ... unless 4xx are retried.
    upstream.script([Reply::status(404).body("not deployed yet")]);
    let (status, _, json, _) = forward_once(&retrying).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"]["code"], "upstream_status");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("404 Not Found") && message.contains("not deployed yet"),
        "{message}"
    );

    // Retried, with the upstream's Retry-After when it sent one.
    for (code, after) in [
        (500, None),
        (502, None),
        (503, Some("7")),
        (408, None),
        (429, Some("2")),
    ] {
        let mut reply = Reply::status(code).body("busy");
        if let Some(after) = after {
            reply = reply.header("retry-after", after);
        }
        upstream.script([reply]);
        let (status, retry_after, json, _) = forward_once(&forward).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{code}");
        assert_eq!(retry_after.as_deref(), after, "{code}");
        assert_eq!(json["error"]["code"], "upstream_status", "{code}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&code.to_string()) && message.ends_with(": busy"),
            "{message}"
        );
    }
    // An HTTP date is turned into seconds.
    upstream.script([Reply::status(503).header("retry-after", "Fri, 01 Jan 2100 00:00:00 GMT")]);
    let (_, retry_after, _, _) = forward_once(&forward).await;
    let secs: u64 = retry_after.unwrap().parse().unwrap();
    assert!(secs > 2_000_000_000, "{secs}");

    // A redirect is not followed, and not taken for a delivery.
    upstream.script([Reply::status(301).header("location", "/elsewhere")]);
    let (status, _, json, _) = forward_once(&forward).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("redirect"));

    // No answer in time.
    upstream.script([Reply::status(200).after(Duration::from_secs(5))]);
    let (status, retry_after, json, _) = forward_once(&forward).await;
    assert_eq!(
        (status, retry_after),
        (StatusCode::SERVICE_UNAVAILABLE, None)
    );
    assert_eq!(json["error"]["code"], "upstream_timeout");

    // The connection reset before an answer.
    upstream.script([Reply::reset()]);
    let (status, _, json, _) = forward_once(&forward).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"]["code"], "upstream_connection_error", "{json}");

    // Nobody listening.
    let closed = upstream::free_port().await;
    let nobody = Forward::new(&format!("http://{closed}/hook")).unwrap();
    let (status, retry_after, json, _) = forward_once(&nobody).await;
    assert_eq!(
        (status, retry_after),
        (StatusCode::SERVICE_UNAVAILABLE, None)
    );
    assert_eq!(json["error"]["code"], "upstream_unreachable");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.to_lowercase().contains("refused"), "{message}");
}

#[tokio::test]
async fn a_timeout_too_long_to_add_is_no_timeout_not_a_panic() {
    let upstream = Upstream::start().await;
    let forward = Forward::builder(upstream.url("/hook"))
        .timeout(Duration::MAX)
        .build()
        .unwrap();
    assert_eq!(forward_once(&forward).await.0, StatusCode::OK);
}

#[test]
fn a_bad_configuration_fails_at_build() {
    let header = |name: &'static str| {
        Forward::builder("http://127.0.0.1:8000/hook")
            .header(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static("x"),
            )
            .build()
            .unwrap_err()
    };
    for name in [
        "host",
        "content-length",
        "connection",
        "transfer-encoding",
        "proxy-authorization",
        "taskhook-attempt",
        "upgrade",
    ] {
        assert_eq!(
            header(name),
            InvalidForward::Header(http::HeaderName::from_static(name))
        );
    }
    for url in [
        "",
        "/hook",
        "127.0.0.1:8000",
        "ftp://host/x",
        "http://user:pw@host/x",
        "http:///x",
    ] {
        assert_eq!(
            Forward::new(url).unwrap_err(),
            InvalidForward::Url,
            "{url:?}"
        );
    }
    assert_eq!(
        Forward::new("HTTPS://host/x").unwrap_err(),
        InvalidForward::Https
    );
    let zero = Forward::builder("http://host/x")
        .timeout(Duration::ZERO)
        .build();
    assert_eq!(zero.unwrap_err(), InvalidForward::ZeroTimeout);
    let forward = Forward::new(" http://host:81 ").unwrap();
    assert_eq!(forward.upstream(), "http://host:81/");
}

#[tokio::test]
async fn a_5xx_is_retried_until_delivered_then_never_again() {
    let upstream = Upstream::start().await;
    upstream.script([
        Reply::status(500),
        Reply::status(502).body("bad gateway"),
        Reply::status(200),
    ]);
    let forward = Forward::new(&upstream.url("/hook")).unwrap();
    let (addr, handle) = receiver(forward, quick_retries(5)).await;

    assert_eq!(push(addr, "task_retry").await, 202);
    until("delivered", || handle.stats().processed == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(upstream.count(), 3, "delivered once, then no more");
    let attempts: Vec<String> = (0..3)
        .map(|i| upstream.header(i, "taskhook-attempt"))
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let received: Vec<String> = (0..3)
        .map(|i| upstream.header(i, "taskhook-received-at"))
        .collect();
    assert!(received.iter().all(|r| *r == received[0]), "{received:?}");
    assert!((0..3).all(|i| upstream.seen(i).body == callback_body("task_retry").as_bytes()));
    let stats = handle.stats();
    assert_eq!(
        (stats.failed_attempts, stats.retried, stats.dead_lettered),
        (2, 2, 0)
    );

    // The provider's duplicate push is absorbed, not forwarded.
    assert_eq!(push(addr, "task_retry").await, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(upstream.count(), 3);
    assert!(handle.shutdown(Duration::from_secs(5)).await.drained);
}

#[tokio::test]
async fn a_4xx_is_a_dead_letter_at_once_never_retried() {
    let upstream = Upstream::start().await;
    upstream.script([Reply::status(422).body("unknown tenant")]);
    let forward = Forward::new(&upstream.url("/hook")).unwrap();
    let (addr, handle) = receiver(forward, quick_retries(5)).await;

    assert_eq!(push(addr, "task_refused").await, 202);
    until("dead-lettered", || handle.stats().refused == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(upstream.count(), 1, "not retried");
    let letters = handle.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].task_id(), Some("task_refused"));
    assert_eq!(letters[0].attempts(), 1);
    assert_eq!(
        letters[0].failure(),
        &Failure::status(StatusCode::UNPROCESSABLE_ENTITY, "unknown tenant")
    );
    assert_eq!(handle.stats().processed, 0);

    // Replayed once the app is fixed: forwarded again, as attempt 1.
    handle.replay(letters[0].seq()).await.unwrap();
    until("replayed", || handle.stats().processed == 1).await;
    assert_eq!(upstream.count(), 2);
    assert_eq!(upstream.header(1, "taskhook-attempt"), "1");
    assert_eq!(
        upstream.header(1, "taskhook-received-at"),
        upstream.header(0, "taskhook-received-at"),
        "a replay keeps the time of acceptance"
    );
}

#[tokio::test]
async fn with_retry_client_errors_a_4xx_is_retried() {
    let upstream = Upstream::start().await;
    upstream.script([Reply::status(404), Reply::status(200)]);
    let forward = Forward::builder(upstream.url("/hook"))
        .retry_client_errors(true)
        .build()
        .unwrap();
    let (addr, handle) = receiver(forward, quick_retries(5)).await;
    assert_eq!(push(addr, "task_404").await, 202);
    until("delivered", || handle.stats().processed == 1).await;
    assert_eq!(upstream.count(), 2);
    assert_eq!(handle.stats().refused, 0);
}

#[tokio::test]
async fn an_upstream_that_is_down_gets_the_event_once_it_is_up() {
    let addr_of_app = upstream::free_port().await;
    let forward = Forward::new(&format!("http://{addr_of_app}/hook")).unwrap();
    let (addr, handle) = receiver(forward, quick_retries(100)).await;

    assert_eq!(push(addr, "task_down").await, 202);
    until("refused connections", || {
        handle.stats().failed_attempts >= 3
    })
    .await;
    assert_eq!(handle.stats().processed, 0);

    let upstream = Upstream::start_on(addr_of_app).await;
    until("delivered", || handle.stats().processed == 1).await;
    assert_eq!(upstream.count(), 1);
    assert_eq!(upstream.header(0, "taskhook-task-id"), "task_down");
    let attempt: u32 = upstream.header(0, "taskhook-attempt").parse().unwrap();
    assert!(attempt >= 4, "{attempt}");
    assert!(handle.dead_letters().is_empty());
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_is_retried() {
    let upstream = Upstream::start().await;
    upstream.script([
        Reply::status(200).after(Duration::from_secs(10)),
        Reply::status(200),
    ]);
    let forward = Forward::builder(upstream.url("/hook"))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let (addr, handle) = receiver(forward, quick_retries(5)).await;

    assert_eq!(push(addr, "task_slow").await, 202);
    until("delivered", || handle.stats().processed == 1).await;
    assert_eq!(handle.stats().failed_attempts, 1);
    assert_eq!(upstream.count(), 2);
    assert_eq!(upstream.header(1, "taskhook-attempt"), "2");
}

#[tokio::test]
async fn the_upstreams_retry_after_holds_the_retry_back() {
    let upstream = Upstream::start().await;
    upstream.script([
        Reply::status(503).header("retry-after", "30"),
        Reply::status(200),
    ]);
    let forward = Forward::new(&upstream.url("/hook")).unwrap();
    // Without the upstream's Retry-After, the retry would follow in 10 ms.
    let (addr, handle) = receiver(forward, quick_retries(5)).await;

    assert_eq!(push(addr, "task_later").await, 202);
    until("the first attempt failed", || handle.stats().retried == 1).await;
    // The retry waits on a timer now: from here on, tokio's time is
    // stepped by hand (the exchanges themselves ran on real time).
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(28)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(upstream.count(), 1, "not retried before the Retry-After");
    tokio::time::advance(Duration::from_secs(3)).await;
    tokio::time::resume();
    until("delivered", || handle.stats().processed == 1).await;
    assert_eq!(upstream.count(), 2);
    let gap = upstream.seen(1).at - upstream.seen(0).at;
    assert!(
        gap >= Duration::from_secs(30) && gap < Duration::from_secs(32),
        "{gap:?}"
    );
}

#[tokio::test]
async fn the_concurrency_cap_holds() {
    let upstream = Upstream::start().await;
    upstream.default_reply(Reply::status(200).after(Duration::from_millis(100)));
    let forward = Forward::builder(upstream.url("/hook"))
        .concurrency(3)
        .build()
        .unwrap();
    let (addr, handle) = receiver(forward, FastAckLayer::builder().concurrency(12)).await;

    push_at_once(addr, 12).await;
    until("all delivered", || handle.stats().processed == 12).await;
    assert_eq!(upstream.count(), 12);
    assert_eq!(upstream.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn waiting_for_the_cap_does_not_count_against_the_timeout() {
    let upstream = Upstream::start().await;
    upstream.default_reply(Reply::status(200).after(Duration::from_millis(100)));
    // One at a time, 100 ms each: the sixth waits 500 ms for its turn,
    // longer than the timeout.
    let forward = Forward::builder(upstream.url("/hook"))
        .concurrency(1)
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let (addr, handle) = receiver(forward, FastAckLayer::builder().concurrency(6)).await;

    push_at_once(addr, 6).await;
    until("all delivered", || handle.stats().processed == 6).await;
    assert_eq!(handle.stats().failed_attempts, 0, "no attempt timed out");
    assert_eq!(upstream.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn connections_are_pooled() {
    let upstream = Upstream::start().await;
    upstream.default_reply(Reply::status(200).body(&"x".repeat(10_000)));
    let forward = Forward::new(&upstream.url("/hook")).unwrap();
    for _ in 0..5 {
        assert_eq!(forward_once(&forward).await.0, StatusCode::OK);
    }
    let peers: std::collections::HashSet<SocketAddr> =
        (0..5).map(|i| upstream.seen(i).peer).collect();
    assert_eq!(peers.len(), 1, "one connection, reused: {peers:?}");
}

/// Pushes the callbacks of `task_0`, `task_1`, ... at once, each on its
/// own connection; all must be accepted.
async fn push_at_once(addr: SocketAddr, count: usize) {
    let mut pushes = tokio::task::JoinSet::new();
    for i in 0..count {
        pushes.spawn(async move { push(addr, &format!("task_{i}")).await });
    }
    while let Some(status) = pushes.join_next().await {
        assert_eq!(status.unwrap(), 202);
    }
}
