//! The provider simulator: the URL rule and checks as tables, then delivery
//! against scripted receivers on loopback under paused tokio time.

use taskhook_test_support as common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use taskhook::{PayloadLayer, TaskEvent, TaskStatus};
use taskhook_sim::{
    callback_url, AddressKind, AttemptResult, DuplicateKind, Mix, Outcome, PushKind, RunError,
    Schedule, Simulator, Task, TaskKind, UrlError, UrlPolicy, Workload,
};
use tokio::net::TcpListener;
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------
// The callback URL rule

#[test]
fn callback_url_table() {
    let cases: &[(&str, Option<&str>)] = &[
        // The provider's own examples.
        ("https://x.com", Some("https://x.com/callback")),
        ("https://x.com/", Some("https://x.com/callback")),
        ("https://x.com/api", Some("https://x.com/api/callback")),
        ("https://x.com/api/", Some("https://x.com/api/callback")),
        // One slash, however many trailing slashes.
        ("https://x.com/api//", Some("https://x.com/api/callback")),
        // A secret path segment survives, case and all.
        (
            "https://x.com/hooks/S3cr3T-t0k3n",
            Some("https://x.com/hooks/S3cr3T-t0k3n/callback"),
        ),
        (
            "https://x.com/hooks/S3cr3T-t0k3n/",
            Some("https://x.com/hooks/S3cr3T-t0k3n/callback"),
        ),
        // Query kept after the new path; fragment dropped.
        (
            "https://x.com/api?k=v",
            Some("https://x.com/api/callback?k=v"),
        ),
        (
            "https://x.com/api/?k=v&t=1",
            Some("https://x.com/api/callback?k=v&t=1"),
        ),
        ("https://x.com?k=v", Some("https://x.com/callback?k=v")),
        ("https://x.com/api#frag", Some("https://x.com/api/callback")),
        (
            "https://x.com/api/?k=v#frag",
            Some("https://x.com/api/callback?k=v"),
        ),
        // Ports and IP hosts pass through untouched.
        (
            "http://127.0.0.1:8080",
            Some("http://127.0.0.1:8080/callback"),
        ),
        ("http://[::1]:8080/a", Some("http://[::1]:8080/a/callback")),
        // Appended even when the base already ends with /callback.
        (
            "https://x.com/callback",
            Some("https://x.com/callback/callback"),
        ),
        // Percent-encoding is kept as written.
        ("https://x.com/a%2Fb", Some("https://x.com/a%2Fb/callback")),
        // Not absolute URLs.
        ("x.com", None),
        ("/api", None),
        ("", None),
        ("https://", None),
        ("https://x.com/a b", None),
    ];
    for (base, expected) in cases {
        let got = callback_url(base);
        match expected {
            Some(expected) => {
                let got = got.unwrap_or_else(|e| panic!("{base:?}: {e}"));
                assert_eq!(got, *expected, "{base:?}");
            }
            None => assert!(
                matches!(got, Err(UrlError::Malformed(_))),
                "{base:?} -> {got:?}"
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// The URL checks

/// What a check must say.
#[derive(Debug)]
enum Want {
    Ok,
    Malformed,
    Scheme,
    UserInfo,
    Port(u16),
    ProviderDomain,
    Address(&'static str, AddressKind),
}

fn assert_check(policy: &UrlPolicy, base: &str, want: &Want) {
    let got = callback_url(base).and_then(|uri| policy.check(&uri));
    let ok = match (want, &got) {
        (Want::Ok, Ok(())) => true,
        (Want::Malformed, Err(UrlError::Malformed(_))) => true,
        (Want::Scheme, Err(UrlError::Scheme(_))) => true,
        (Want::UserInfo, Err(UrlError::UserInfo)) => true,
        (Want::Port(want), Err(UrlError::Port(got))) => want == got,
        (Want::ProviderDomain, Err(UrlError::ProviderDomain(_))) => true,
        (Want::Address(ip, kind), Err(UrlError::Address(got_ip, got_kind))) => {
            ip.parse::<IpAddr>().ok() == Some(*got_ip) && kind == got_kind
        }
        _ => false,
    };
    assert!(ok, "{base:?}: wanted {want:?}, got {got:?}");
}

#[test]
fn url_rules_table() {
    use AddressKind::*;
    use Want::*;
    let cases: &[(&str, Want)] = &[
        // Public hosts, standard ports.
        ("https://example.com", Ok),
        ("http://example.com", Ok),
        ("https://example.com:443", Ok),
        ("http://example.com:80", Ok),
        ("https://example.com:80", Ok),
        ("http://example.com:443", Ok),
        ("http://example.com:", Ok),
        ("HTTPS://Hooks.Example.COM/s3cr3t", Ok),
        ("https://example.com/hooks?token=t#x", Ok),
        ("http://93.184.215.14", Ok),
        ("http://8.8.8.8:80", Ok),
        ("http://134744072", Ok), // 8.8.8.8
        ("http://172.32.0.1", Ok),
        ("http://100.128.0.1", Ok),
        ("http://100.63.255.255", Ok),
        ("http://[2606:4700:4700::1111]", Ok),
        ("http://[::ffff:8.8.8.8]", Ok),
        ("http://[64:ff9b::808:808]", Ok),
        // Scheme.
        ("ftp://example.com", Scheme),
        ("ws://example.com", Scheme),
        ("gopher://example.com:80", Scheme),
        // Port.
        ("https://example.com:8443", Port(8443)),
        ("http://example.com:8080", Port(8080)),
        ("http://example.com:0", Port(0)),
        ("http://example.com:22", Port(22)),
        ("http://8.8.8.8:8080", Port(8080)),
        // The provider's own domain and its subdomains.
        ("https://apimart.ai", ProviderDomain),
        ("https://api.apimart.ai/hooks", ProviderDomain),
        ("https://APIMART.AI.", ProviderDomain),
        ("https://a.b.apimart.ai", ProviderDomain),
        ("https://notapimart.ai", Ok),
        ("https://apimart.ai.example.com", Ok),
        // User information.
        ("https://user:pw@example.com", UserInfo),
        ("https://apimart.ai@evil.example", UserInfo),
        // IPv4: every non-public range.
        ("http://127.0.0.1", Address("127.0.0.1", Loopback)),
        (
            "http://127.255.255.254",
            Address("127.255.255.254", Loopback),
        ),
        ("http://10.0.0.1", Address("10.0.0.1", Private)),
        ("http://172.16.0.1", Address("172.16.0.1", Private)),
        ("http://172.31.255.255", Address("172.31.255.255", Private)),
        ("http://192.168.1.1", Address("192.168.1.1", Private)),
        (
            "http://169.254.169.254",
            Address("169.254.169.254", LinkLocal),
        ),
        ("http://100.64.0.1", Address("100.64.0.1", SharedCgnat)),
        (
            "http://100.127.255.255",
            Address("100.127.255.255", SharedCgnat),
        ),
        ("http://0.0.0.0", Address("0.0.0.0", Unspecified)),
        ("http://0.1.2.3", Address("0.1.2.3", Unspecified)),
        (
            "http://255.255.255.255",
            Address("255.255.255.255", Broadcast),
        ),
        ("http://192.0.2.1", Address("192.0.2.1", Documentation)),
        (
            "http://198.51.100.7",
            Address("198.51.100.7", Documentation),
        ),
        ("http://203.0.113.9", Address("203.0.113.9", Documentation)),
        ("http://224.0.0.1", Address("224.0.0.1", Multicast)),
        (
            "http://239.255.255.250",
            Address("239.255.255.250", Multicast),
        ),
        ("http://240.0.0.1", Address("240.0.0.1", Reserved)),
        ("http://198.18.0.1", Address("198.18.0.1", Reserved)),
        ("http://192.0.0.8", Address("192.0.0.8", Reserved)),
        // IPv4 in numeric forms resolvers accept.
        ("http://2130706433", Address("127.0.0.1", Loopback)),
        ("http://0x7f.1", Address("127.0.0.1", Loopback)),
        ("http://0X7F.0.0.1", Address("127.0.0.1", Loopback)),
        ("http://127.1", Address("127.0.0.1", Loopback)),
        ("http://127.0.1", Address("127.0.0.1", Loopback)),
        ("http://017700000001", Address("127.0.0.1", Loopback)),
        ("http://0x7f000001", Address("127.0.0.1", Loopback)),
        ("http://0177.0.0.01", Address("127.0.0.1", Loopback)),
        ("http://127.0.0.1.", Address("127.0.0.1", Loopback)),
        ("http://167772161", Address("10.0.0.1", Private)),
        (
            "http://0xa9.0xfe.0xa9.0xfe",
            Address("169.254.169.254", LinkLocal),
        ),
        ("http://0", Address("0.0.0.0", Unspecified)),
        // IPv6.
        ("http://[::1]", Address("::1", Loopback)),
        ("http://[0:0:0:0:0:0:0:1]:80", Address("::1", Loopback)),
        ("http://[::]", Address("::", Unspecified)),
        (
            "http://[::ffff:127.0.0.1]",
            Address("::ffff:127.0.0.1", Loopback),
        ),
        (
            "http://[::ffff:7f00:1]",
            Address("::ffff:127.0.0.1", Loopback),
        ),
        ("http://[::127.0.0.1]", Address("::127.0.0.1", Loopback)),
        (
            "http://[::ffff:10.0.0.1]",
            Address("::ffff:10.0.0.1", Private),
        ),
        (
            "http://[::ffff:169.254.169.254]",
            Address("::ffff:169.254.169.254", LinkLocal),
        ),
        (
            "http://[::ffff:100.64.0.1]",
            Address("::ffff:100.64.0.1", SharedCgnat),
        ),
        ("http://[::8.8.8.8]", Address("::8.8.8.8", Reserved)),
        ("http://[fc00::1]", Address("fc00::1", UniqueLocal)),
        (
            "http://[fd12:3456:789a::1]",
            Address("fd12:3456:789a::1", UniqueLocal),
        ),
        ("http://[fe80::1]", Address("fe80::1", LinkLocal)),
        ("http://[fec0::1]", Address("fec0::1", Private)),
        ("http://[ff02::1]", Address("ff02::1", Multicast)),
        (
            "http://[2001:db8::1]",
            Address("2001:db8::1", Documentation),
        ),
        (
            "http://[64:ff9b::7f00:1]",
            Address("64:ff9b::7f00:1", Loopback),
        ),
        ("http://[2002:a00:1::1]", Address("2002:a00:1::1", Private)),
        ("http://[100::1]", Address("100::1", Reserved)),
        // Malformed hosts and ports.
        ("http://1.2.3.4.5", Malformed),
        ("http://256.0.0.1", Malformed),
        ("http://0x100.0.0.1", Malformed),
        ("http://08.0.0.1", Malformed),
        ("http://4294967296", Malformed),
        ("http://example.com:99999", Malformed),
        ("http://example.com:8o", Malformed),
        ("http://x..com", Malformed),
        ("http://ex!ample.com", Malformed),
        ("http://ex$ample.com", Malformed),
        ("http://a_b.example.com", Ok),
        ("http://example.com.", Ok),
        ("http://[::1", Malformed),
        ("http://[fe80::1%25eth0]", Malformed),
    ];
    let policy = UrlPolicy::new();
    for (base, want) in cases {
        assert_check(&policy, base, want);
    }
}

#[test]
fn loopback_for_local_testing_lifts_only_loopback_and_port() {
    use AddressKind::*;
    use Want::*;
    let policy = UrlPolicy::new().allow_loopback_for_local_testing();
    assert!(policy.allows_loopback());
    assert!(!UrlPolicy::new().allows_loopback());
    let cases: &[(&str, Want)] = &[
        ("http://127.0.0.1:54321", Ok),
        ("http://127.0.0.1", Ok),
        ("http://[::1]:8080", Ok),
        ("http://[::ffff:127.0.0.1]:1", Ok),
        ("http://2130706433:9999", Ok),
        ("http://example.com:8080", Ok),
        // Everything else still holds.
        ("http://10.0.0.1:8080", Address("10.0.0.1", Private)),
        ("http://192.168.0.10", Address("192.168.0.10", Private)),
        (
            "http://169.254.169.254",
            Address("169.254.169.254", LinkLocal),
        ),
        ("http://100.64.0.1:80", Address("100.64.0.1", SharedCgnat)),
        ("http://0.0.0.0:8080", Address("0.0.0.0", Unspecified)),
        ("http://[::]:8080", Address("::", Unspecified)),
        ("http://[fd00::1]:8080", Address("fd00::1", UniqueLocal)),
        ("http://apimart.ai:8080", ProviderDomain),
        ("ftp://127.0.0.1", Scheme),
        ("http://u@127.0.0.1:1", UserInfo),
    ];
    for (base, want) in cases {
        assert_check(&policy, base, want);
    }
}

#[test]
fn provider_domains_are_configurable() {
    let policy = UrlPolicy::new().provider_domains(["Provider.example.", "other.test"]);
    assert_check(&policy, "https://provider.example", &Want::ProviderDomain);
    assert_check(&policy, "https://a.other.test/x", &Want::ProviderDomain);
    // Replaced, not added to.
    assert_check(&policy, "https://apimart.ai", &Want::Ok);
}

#[tokio::test]
async fn resolution_checks_every_resolved_address() {
    let uri = callback_url("http://localhost").unwrap();
    // No traffic in the pure check: a host name passes it...
    assert!(UrlPolicy::new().check(&uri).is_ok());
    // ... but it resolves to loopback, which is refused.
    match UrlPolicy::new().resolve(&uri).await {
        Err(UrlError::Address(ip, AddressKind::Loopback)) => assert!(ip.is_loopback()),
        other => panic!("localhost: {other:?}"),
    }
    // The same name passes for local testing, with any port.
    let uri = callback_url("http://localhost:4321/hooks").unwrap();
    let addrs = UrlPolicy::new()
        .allow_loopback_for_local_testing()
        .resolve(&uri)
        .await
        .unwrap();
    assert!(!addrs.is_empty());
    assert!(addrs
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == 4321));

    // A numeric host is not sent to the resolver, and keeps its port.
    let uri = callback_url("http://0x7f.1:8080").unwrap();
    let addrs = UrlPolicy::new()
        .allow_loopback_for_local_testing()
        .resolve(&uri)
        .await
        .unwrap();
    assert_eq!(addrs, ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);

    // A name that cannot resolve: a label over 63 bytes is refused by the
    // resolver before any query goes out (no traffic leaves the machine).
    let uri = callback_url(&format!("http://{}.example", "a".repeat(70))).unwrap();
    assert!(matches!(
        UrlPolicy::new().resolve(&uri).await,
        Err(UrlError::Resolve(_))
    ));
}

#[tokio::test]
async fn connect_refuses_what_the_rules_refuse() {
    let simulator = Simulator::new();
    assert!(matches!(
        simulator.connect("http://localhost").await,
        Err(RunError::InvalidUrl(UrlError::Address(
            _,
            AddressKind::Loopback
        )))
    ));
    assert!(matches!(
        simulator.connect("http://127.0.0.1:8080").await,
        Err(RunError::InvalidUrl(UrlError::Port(8080)))
    ));
    let local = Simulator::new().url_policy(UrlPolicy::new().allow_loopback_for_local_testing());
    assert!(matches!(
        local.connect("https://127.0.0.1:8443").await,
        Err(RunError::TlsUnsupported(_))
    ));
    let sender = local.connect("http://127.0.0.1:9/s3cr3t/").await.unwrap();
    assert_eq!(sender.uri(), "http://127.0.0.1:9/s3cr3t/callback");
    assert_eq!(
        sender.addrs(),
        ["127.0.0.1:9".parse::<SocketAddr>().unwrap()]
    );
}

// ---------------------------------------------------------------------------
// A scripted receiver

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    peer: SocketAddr,
    method: http::Method,
    path: String,
    content_type: Option<String>,
    id: String,
    body: Bytes,
}

/// A receiver that answers each request with the next scripted
/// `(status, delay)`, then `fallback` once the script is used up, and
/// records every request.
#[derive(Clone)]
struct Receiver {
    script: Arc<Mutex<VecDeque<(u16, Duration)>>>,
    fallback: (u16, Duration),
    hits: Arc<Mutex<Vec<Hit>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    addr: SocketAddr,
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Receiver {
    async fn start(script: &[(u16, Duration)], fallback: (u16, Duration)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            fallback,
            hits: Arc::default(),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
            addr: listener.local_addr().unwrap(),
        };
        let app = Router::new()
            .fallback(Self::handle)
            .with_state(receiver.clone());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap()
        });
        receiver
    }

    /// Answers `status` at once, always.
    async fn always(status: u16) -> Self {
        Self::start(&[], (status, Duration::ZERO)).await
    }

    async fn handle(
        State(receiver): State<Receiver>,
        ConnectInfo(peer): ConnectInfo<SocketAddr>,
        request: Request,
    ) -> StatusCode {
        let at = Instant::now();
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let id = TaskEvent::from_slice(&body)
            .map(|e| e.id().to_owned())
            .unwrap_or_default();
        receiver.hits.lock().unwrap().push(Hit {
            at,
            peer,
            method: parts.method,
            path: parts.uri.to_string(),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            id,
            body,
        });
        let now = receiver.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        receiver.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let _guard = InFlight(Arc::clone(&receiver.in_flight));
        let (status, delay) = receiver
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(receiver.fallback);
        tokio::time::sleep(delay).await;
        StatusCode::from_u16(status).unwrap()
    }

    fn base(&self) -> String {
        format!("http://{}/hooks/s3cr3t", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

fn local(factor: f64) -> Simulator {
    Simulator::new()
        .url_policy(UrlPolicy::new().allow_loopback_for_local_testing())
        .schedule(Schedule::provider().time_factor(factor))
}

fn one_task() -> Task {
    Task::from_payload(common::fixture("completed-image-url-array")).unwrap()
}

fn statuses(push: &taskhook_sim::Push) -> Vec<Option<u16>> {
    push.attempts
        .iter()
        .map(|a| a.result.status().map(|s| s.as_u16()))
        .collect()
}

/// `got` is `want` or at most `slack` later (a few scheduler ticks).
fn assert_near(got: Duration, want: Duration, slack: Duration) {
    assert!(
        got >= want && got <= want + slack,
        "{got:?} is not within {slack:?} after {want:?}"
    );
}

// ---------------------------------------------------------------------------
// Delivery

#[tokio::test(start_paused = true)]
async fn retries_5xx_and_delivers_on_the_third_attempt() {
    let zero = Duration::ZERO;
    let receiver = Receiver::start(&[(503, zero), (503, zero)], (200, zero)).await;
    let report = local(1.0)
        .run_tasks(&receiver.base(), vec![one_task()])
        .await
        .unwrap();

    let push = &report.tasks()[0].pushes[0];
    assert_eq!(push.kind, PushKind::First);
    assert_eq!(push.outcome, Outcome::Delivered);
    assert_eq!(statuses(push), [Some(503), Some(503), Some(200)]);
    let offsets: Vec<Duration> = push.attempts.iter().map(|a| a.offset).collect();
    let slack = Duration::from_millis(20);
    assert_near(offsets[0], zero, slack);
    assert_near(offsets[1], 10 * SECOND, slack);
    assert_near(offsets[2], 40 * SECOND, slack);

    // The receiver saw the same three requests at the same moments.
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3);
    assert_near(hits[1].at - hits[0].at, 10 * SECOND, slack);
    assert_near(hits[2].at - hits[0].at, 40 * SECOND, slack);
    let summary = report.summary();
    assert_eq!(
        (summary.attempts, summary.retries, summary.delivered),
        (3, 2, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_spaces_the_first_pushes_evenly() {
    let receiver = Receiver::always(200).await;
    let tasks = Workload::new(5).generate();
    let report = local(1.0)
        .rate(4.0)
        .run_tasks(&receiver.base(), tasks)
        .await
        .unwrap();
    assert_eq!(report.summary().delivered, 5);
    let hits = receiver.hits();
    let slack = Duration::from_millis(20);
    for (i, hit) in hits.iter().enumerate() {
        assert_near(
            hit.at - hits[0].at,
            Duration::from_millis(250) * i as u32,
            slack,
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_time_factor_scales_the_retry_schedule() {
    let zero = Duration::ZERO;
    let receiver = Receiver::start(&[(503, zero), (503, zero)], (200, zero)).await;
    let report = local(0.01)
        .run_tasks(&receiver.base(), vec![one_task()])
        .await
        .unwrap();
    let push = &report.tasks()[0].pushes[0];
    assert_eq!(push.outcome, Outcome::Delivered);
    let slack = Duration::from_millis(5);
    assert_near(push.attempts[1].offset, Duration::from_millis(100), slack);
    assert_near(push.attempts[2].offset, Duration::from_millis(400), slack);
}

#[tokio::test(start_paused = true)]
async fn a_4xx_is_given_up_at_once() {
    for status in [400, 401, 404, 409, 410, 413, 422, 429] {
        let receiver = Receiver::always(status).await;
        let report = local(1.0)
            .run_tasks(&receiver.base(), vec![one_task()])
            .await
            .unwrap();
        let push = &report.tasks()[0].pushes[0];
        assert_eq!(
            push.outcome,
            Outcome::Rejected(StatusCode::from_u16(status).unwrap())
        );
        assert_eq!(push.attempts.len(), 1, "{status}");
        // Nothing more arrives, however long we wait.
        tokio::time::sleep(300 * SECOND).await;
        assert_eq!(receiver.hits().len(), 1, "{status}");
        let summary = report.summary();
        assert_eq!((summary.rejected, summary.tasks_undelivered), (1, 1));
    }
}

#[tokio::test(start_paused = true)]
async fn always_5xx_makes_four_attempts_then_gives_up() {
    for status in [500, 502, 503, 504] {
        let receiver = Receiver::always(status).await;
        let report = local(1.0)
            .run_tasks(&receiver.base(), vec![one_task()])
            .await
            .unwrap();
        let push = &report.tasks()[0].pushes[0];
        assert_eq!(push.outcome, Outcome::Exhausted);
        assert_eq!(statuses(push), [Some(status); 4]);
        let slack = Duration::from_millis(20);
        for (attempt, want) in push.attempts.iter().zip([0, 10, 40, 100]) {
            assert_near(attempt.offset, want * SECOND, slack);
        }
        tokio::time::sleep(300 * SECOND).await;
        assert_eq!(receiver.hits().len(), 4);
        assert_eq!(report.summary().exhausted, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_answer_times_out_and_is_retried() {
    let receiver = Receiver::start(&[(200, 15 * SECOND)], (200, Duration::ZERO)).await;
    let report = local(1.0)
        .run_tasks(&receiver.base(), vec![one_task()])
        .await
        .unwrap();
    let push = &report.tasks()[0].pushes[0];
    assert_eq!(push.outcome, Outcome::Delivered);
    assert_eq!(push.attempts.len(), 2);
    assert_eq!(push.attempts[0].result, AttemptResult::TimedOut);
    let slack = Duration::from_millis(20);
    assert_near(push.attempts[0].latency, 10 * SECOND, slack);
    // 10 s of timeout, then 10 s before the retry.
    assert_near(push.attempts[1].offset, 20 * SECOND, slack);
    assert_eq!(receiver.hits().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_answer_within_the_timeout_is_delivered() {
    let receiver = Receiver::start(&[(200, 9 * SECOND)], (200, Duration::ZERO)).await;
    let report = local(1.0)
        .run_tasks(&receiver.base(), vec![one_task()])
        .await
        .unwrap();
    let push = &report.tasks()[0].pushes[0];
    assert_eq!(push.outcome, Outcome::Delivered);
    assert_eq!(push.attempts.len(), 1);
    assert_near(
        push.attempts[0].latency,
        9 * SECOND,
        Duration::from_millis(20),
    );
    assert_near(
        report.ack_latencies().max().unwrap(),
        9 * SECOND,
        Duration::from_millis(20),
    );
}

#[tokio::test(start_paused = true)]
async fn a_3xx_is_a_failure_and_retried() {
    let zero = Duration::ZERO;
    let receiver = Receiver::start(&[(302, zero), (304, zero)], (204, zero)).await;
    let report = local(1.0)
        .run_tasks(&receiver.base(), vec![one_task()])
        .await
        .unwrap();
    let push = &report.tasks()[0].pushes[0];
    assert_eq!(statuses(push), [Some(302), Some(304), Some(204)]);
    assert_eq!(push.outcome, Outcome::Delivered);
}

#[tokio::test(start_paused = true)]
async fn connection_errors_are_retried_then_exhausted() {
    // A port that was free a moment ago: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let report = local(1.0)
        .run_tasks(&format!("http://{addr}"), vec![one_task()])
        .await
        .unwrap();
    let push = &report.tasks()[0].pushes[0];
    assert_eq!(push.outcome, Outcome::Exhausted);
    assert_eq!(push.attempts.len(), 4);
    for attempt in &push.attempts {
        assert!(
            matches!(&attempt.result, AttemptResult::Failed(why) if !why.is_empty()),
            "{attempt:?}"
        );
    }
    assert!(report.ack_latencies().is_empty());
}

#[tokio::test(start_paused = true)]
async fn pushes_look_like_the_providers() {
    let receiver = Receiver::always(200).await;
    let tasks = Workload::new(20).seed(3).generate();
    let simulator = local(1.0).concurrency(1);
    let report = simulator
        .run_tasks(&format!("{}/?k=v#frag", receiver.base()), tasks.clone())
        .await
        .unwrap();
    assert_eq!(report.summary().delivered, 20);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 20);
    for (hit, task) in hits.iter().zip(&tasks) {
        assert_eq!(hit.method, http::Method::POST);
        assert_eq!(hit.path, "/hooks/s3cr3t/callback?k=v");
        assert_eq!(hit.content_type.as_deref(), Some("application/json"));
        assert_eq!(&hit.body, task.payload());
    }
    // One request at a time on one kept-alive connection.
    let peers: HashSet<SocketAddr> = hits.iter().map(|h| h.peer).collect();
    assert_eq!(peers.len(), 1);
    assert_eq!(receiver.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_and_retry_waits_hold_no_slot() {
    // Every request takes 1 s; 40 tasks with 8 in flight.
    let receiver = Receiver::start(&[], (200, SECOND)).await;
    let report = local(1.0)
        .concurrency(8)
        .run(&receiver.base(), &Workload::new(40))
        .await
        .unwrap();
    assert_eq!(report.summary().delivered, 40);
    assert_eq!(receiver.max_in_flight.load(Ordering::SeqCst), 8);
    // 40 / 8 rounds of 1 s.
    assert_near(report.elapsed(), 5 * SECOND, Duration::from_millis(100));

    // With 1 slot, one task that keeps getting 503 does not hold up the
    // others while it waits for its retries.
    let zero = Duration::ZERO;
    let receiver = Receiver::start(&[(503, zero)], (200, zero)).await;
    let report = local(1.0)
        .concurrency(1)
        .run(&receiver.base(), &Workload::new(10))
        .await
        .unwrap();
    let hits = receiver.hits();
    assert_eq!(hits.len(), 11);
    // The retry (after 10 s) is the last request; the 9 others went first.
    assert_eq!(hits[10].id, hits[0].id);
    assert_near(
        hits[10].at - hits[0].at,
        10 * SECOND,
        Duration::from_millis(20),
    );
    assert_eq!(report.summary().tasks_undelivered, 0);
}

/// A receiver with the crate's payload layer in front of a handler that
/// records each event.
async fn payload_receiver() -> (String, Arc<Mutex<Vec<TaskEvent>>>) {
    let seen: Arc<Mutex<Vec<TaskEvent>>> = Arc::default();
    let handler_seen = Arc::clone(&seen);
    let app = Router::new().route(
        "/callback",
        axum::routing::post(
            move |axum::Extension(event): axum::Extension<TaskEvent>| async move {
                handler_seen.lock().unwrap().push(event);
            },
        )
        .layer(PayloadLayer::new()),
    );
    let addr = common::serve_axum(app).await;
    (format!("http://{addr}"), seen)
}

#[tokio::test(start_paused = true)]
async fn the_payload_layer_accepts_every_generated_payload() {
    let (base, seen) = payload_receiver().await;
    let tasks = Workload::new(200).seed(5).generate();
    let report = local(1.0).run_tasks(&base, tasks.clone()).await.unwrap();
    let summary = report.summary();
    assert_eq!((summary.delivered, summary.attempts), (200, 200));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 200);
    let by_id: HashMap<&str, &TaskEvent> = seen.iter().map(|e| (e.id(), e)).collect();
    for task in &tasks {
        let event = by_id[task.id()];
        assert_eq!(
            event.status().unwrap().as_str(),
            task.kind().unwrap().status()
        );
        let urls: Vec<&str> = event.urls().map(|u| u.url()).collect();
        assert_eq!(urls, task.urls());
    }
}

#[tokio::test(start_paused = true)]
async fn a_malformed_body_gets_a_4xx_and_the_simulator_gives_up() {
    let (base, seen) = payload_receiver().await;
    let tasks = vec![
        Task::new("task_broken", "{not json"),
        Task::new(
            "task_no_id",
            r#"{"code":200,"data":{"status":"completed"}}"#,
        ),
        one_task(),
    ];
    let report = local(1.0).run_tasks(&base, tasks).await.unwrap();
    for id in ["task_broken", "task_no_id"] {
        let pushes = &report.task(id).unwrap().pushes;
        assert_eq!(
            pushes[0].outcome,
            Outcome::Rejected(StatusCode::BAD_REQUEST)
        );
        assert_eq!(pushes[0].attempts.len(), 1);
    }
    let summary = report.summary();
    assert_eq!(
        (summary.rejected, summary.delivered, summary.retries),
        (2, 1, 0)
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------
// Duplicates

#[tokio::test(start_paused = true)]
async fn duplicates_produce_the_configured_extra_pushes() {
    let receiver = Receiver::always(200).await;
    let workload = Workload::new(300)
        .seed(11)
        .immediate_duplicates(0.2)
        .concurrent_duplicates(0.1)
        .later_duplicates(0.1, 300 * SECOND);
    let tasks = workload.generate();
    let planned: usize = tasks.iter().map(|t| t.duplicates().len()).sum();
    // The probabilities are honoured (seeded, so this is exact per seed).
    assert!((90..=150).contains(&planned), "{planned}");

    let report = local(0.01).run(&receiver.base(), &workload).await.unwrap();
    let summary = report.summary();
    assert_eq!(summary.first_pushes, 300);
    assert_eq!(summary.duplicate_pushes, planned);
    assert_eq!(summary.delivered, 300 + planned);

    // The receiver got every task once plus once per duplicate.
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for hit in receiver.hits() {
        *per_id.entry(hit.id).or_default() += 1;
    }
    for task in &tasks {
        assert_eq!(
            per_id[task.id()],
            1 + task.duplicates().len(),
            "{}",
            task.id()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn each_kind_of_duplicate_arrives_when_it_should() {
    // Each request takes 1 s, so overlapping pushes are visible.
    let receiver = Receiver::start(&[], (200, SECOND)).await;
    let task = one_task()
        .duplicate(DuplicateKind::Immediate)
        .duplicate(DuplicateKind::Concurrent)
        .duplicate(DuplicateKind::After(300 * SECOND));
    let report = local(1.0)
        .run_tasks(&receiver.base(), vec![task])
        .await
        .unwrap();
    let pushes = &report.tasks()[0].pushes;
    let kinds: Vec<PushKind> = pushes.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            PushKind::First,
            PushKind::Duplicate(DuplicateKind::Concurrent),
            PushKind::Duplicate(DuplicateKind::Immediate),
            PushKind::Duplicate(DuplicateKind::After(300 * SECOND)),
        ]
    );
    let slack = Duration::from_millis(20);
    let first = pushes[0].started;
    assert_near(pushes[1].started - first, Duration::ZERO, slack);
    // Right after the first push's 1 s answer.
    assert_near(pushes[2].started - first, SECOND, slack);
    assert_near(pushes[3].started - first, 300 * SECOND, slack);
    // The concurrent pair was in flight together.
    assert_eq!(receiver.max_in_flight.load(Ordering::SeqCst), 2);
    assert!(pushes.iter().all(|p| p.outcome == Outcome::Delivered));
    assert_eq!(receiver.hits().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_has_its_own_retries() {
    let zero = Duration::ZERO;
    // The first push is delivered; its immediate duplicate gets 503 once.
    let receiver = Receiver::start(&[(200, zero), (503, zero)], (200, zero)).await;
    let task = one_task().duplicate(DuplicateKind::Immediate);
    let report = local(1.0)
        .run_tasks(&receiver.base(), vec![task])
        .await
        .unwrap();
    let pushes = &report.tasks()[0].pushes;
    assert_eq!(statuses(&pushes[0]), [Some(200)]);
    assert_eq!(statuses(&pushes[1]), [Some(503), Some(200)]);
    assert_eq!(report.summary().retries, 1);
}

// ---------------------------------------------------------------------------
// The workload

#[test]
fn workload_builds_payloads_like_the_samples() {
    let tasks = Workload::new(2000).seed(42).generate();
    let mut ids = HashSet::new();
    let mut counts: HashMap<TaskKind, usize> = HashMap::new();
    let mut url_forms = (0, 0);
    let mut error_forms = (0, 0);
    for task in &tasks {
        assert!(
            ids.insert(task.id().to_owned()),
            "duplicate id {}",
            task.id()
        );
        let ulid = task.id().strip_prefix("task_").unwrap();
        assert_eq!(ulid.len(), 26);
        assert!(ulid
            .chars()
            .all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)));

        let kind = task.kind().unwrap();
        *counts.entry(kind).or_default() += 1;
        let json: serde_json::Value = serde_json::from_slice(task.payload()).unwrap();
        assert_eq!(json["code"], 200);
        let data = &json["data"];
        let event = TaskEvent::from_slice(task.payload()).unwrap();
        assert_eq!(event.id(), task.id());
        assert_eq!(event.status().unwrap().as_str(), kind.status());
        let urls: Vec<&str> = event.urls().map(|u| u.url()).collect();
        assert_eq!(urls, task.urls());
        match kind {
            TaskKind::ImageUrlString => {
                assert!(data["result"]["images"][0]["url"].is_string());
                url_forms.0 += 1;
            }
            TaskKind::ImageUrlArray => {
                assert_eq!(
                    data["result"]["images"][0]["url"].as_array().unwrap().len(),
                    2
                );
                url_forms.1 += 1;
            }
            TaskKind::Video => assert!(event.result().unwrap().videos()[0].duration().is_some()),
            TaskKind::Audio => assert_eq!(event.result().unwrap().audios().len(), 1),
            TaskKind::FailedErrorObject => {
                assert!(data["error"].is_object());
                error_forms.0 += 1;
            }
            TaskKind::FailedErrorString => {
                assert!(data["error"].is_string());
                error_forms.1 += 1;
            }
            TaskKind::Cancelled => assert_eq!(event.status(), Some(&TaskStatus::Cancelled)),
            _ => {}
        }
        if kind.status() == "completed" {
            assert!(!task.urls().is_empty());
            let expires = event.urls().next().unwrap().expires_at().unwrap();
            assert_eq!(expires, event.completed().unwrap() + 24 * 3600);
        } else {
            assert!(task.urls().is_empty());
        }
    }
    // The default mix, within a few percent (seeded: the same every run).
    let share = |kind| counts.get(&kind).copied().unwrap_or(0) as f64 / 2000.0;
    for (kind, want) in [
        (TaskKind::ImageUrlString, 0.25),
        (TaskKind::ImageUrlArray, 0.25),
        (TaskKind::Video, 0.15),
        (TaskKind::Audio, 0.10),
        (TaskKind::FailedErrorObject, 0.10),
        (TaskKind::FailedErrorString, 0.05),
        (TaskKind::Cancelled, 0.10),
    ] {
        assert!(
            (share(kind) - want).abs() < 0.03,
            "{kind:?}: {}",
            share(kind)
        );
    }
    assert!(url_forms.0 > 0 && url_forms.1 > 0 && error_forms.0 > 0 && error_forms.1 > 0);
}

#[test]
fn workload_is_reproducible_and_configurable() {
    let workload = Workload::new(100).seed(9).immediate_duplicates(0.5);
    assert_eq!(workload.generate(), workload.generate());
    assert_ne!(workload.generate(), workload.clone().seed(10).generate());
    // Duplicate settings do not change the tasks themselves.
    let plain: Vec<String> = Workload::new(100)
        .seed(9)
        .generate()
        .iter()
        .map(|t| t.id().to_owned())
        .collect();
    let dup: Vec<String> = workload
        .generate()
        .iter()
        .map(|t| t.id().to_owned())
        .collect();
    assert_eq!(plain, dup);

    let videos = Workload::new(50).mix(Mix::only(TaskKind::Video)).generate();
    assert!(videos.iter().all(|t| t.kind() == Some(TaskKind::Video)));
    let no_failures = Workload::new(500)
        .mix(
            Mix::default()
                .weight(TaskKind::FailedErrorObject, 0)
                .weight(TaskKind::FailedErrorString, 0),
        )
        .generate();
    assert!(no_failures
        .iter()
        .all(|t| t.kind().unwrap().status() != "failed"));

    // Probabilities are clamped: above 1 is always, below 0 and NaN never.
    let always = Workload::new(50)
        .immediate_duplicates(7.0)
        .concurrent_duplicates(f64::NAN)
        .later_duplicates(-1.0, SECOND);
    assert!(always
        .generate()
        .iter()
        .all(|t| t.duplicates() == [DuplicateKind::Immediate]));
}

#[tokio::test(start_paused = true)]
async fn progress_matches_the_report() {
    let receiver = Receiver::start(&[(503, Duration::ZERO)], (200, Duration::ZERO)).await;
    let simulator = local(0.01);
    let progress = simulator.progress();
    let report = simulator
        .run(
            &receiver.base(),
            &Workload::new(30).immediate_duplicates(0.5),
        )
        .await
        .unwrap();
    let summary = report.summary();
    assert_eq!(progress.tasks_total(), 30);
    assert_eq!(progress.tasks_done(), 30);
    assert_eq!(progress.pushes_done() as usize, summary.pushes);
    assert_eq!(progress.attempts() as usize, summary.attempts);
    assert_eq!(progress.delivered() as usize, summary.delivered);
    assert_eq!(summary.retries, 1);
    assert!(report.throughput() > 0.0);
}
