//! The dedup layer over the real stack: `PayloadLayer` + `DedupLayer` + a
//! handler that counts its calls. Schedules, TTLs and waits run on paused
//! tokio time.

#[path = "../common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use taskhook::body::{BufferedBody, ResponseBody};
use taskhook::dedup::{ByIdAndStatus, Claim, DedupKey, DUPLICATE_HEADER};
use taskhook::{DedupLayer, DedupStore, MokaStore, PayloadLayer, TaskEvent};
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};

/// What the handler does on its n-th call (0-based).
#[derive(Debug, Clone, Copy)]
enum Act {
    Answer(StatusCode),
    /// Sleeps (tokio time), then answers.
    Slow(Duration, StatusCode),
    Hang,
    Fail,
    Panic,
}

type Stack = BoxCloneService<
    Request<Full<Bytes>>,
    Response<ResponseBody<ResponseBody<Full<Bytes>>>>,
    BoxError,
>;

/// `PayloadLayer` + `layer` + a handler acting per `script`; returns the
/// service and the handler's call counter.
fn stack<K, St>(
    layer: DedupLayer<K, St>,
    script: impl Fn(usize) -> Act + Clone + Send + Sync + 'static,
) -> (Stack, Arc<AtomicUsize>)
where
    K: taskhook::dedup::KeyExtractor + Clone + Send + Sync + 'static,
    St: DedupStore,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let handler = service_fn(move |req: Request<BufferedBody>| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let act = script(n);
        async move {
            assert!(req.extensions().get::<TaskEvent>().is_some());
            let status = match act {
                Act::Answer(status) => status,
                Act::Slow(delay, status) => {
                    tokio::time::sleep(delay).await;
                    status
                }
                Act::Hang => std::future::pending().await,
                Act::Fail => return Err(BoxError::from("handler failed")),
                Act::Panic => panic!("handler panicked"),
            };
            let mut response = Response::new(Full::new(Bytes::from("handled")));
            *response.status_mut() = status;
            Ok::<_, BoxError>(response)
        }
    });
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(handler);
    (BoxCloneService::new(service), calls)
}

fn push(id: &str, status: &str) -> Request<Full<Bytes>> {
    let body = format!(r#"{{"code":200,"data":{{"id":"{id}","status":"{status}"}}}}"#);
    Request::post("/callback")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Pushes a completed callback for `id`; returns status, headers and body.
fn send(
    service: &Stack,
    id: &str,
) -> impl Future<Output = Result<(StatusCode, HeaderMap, String), BoxError>> + Send {
    let (service, request) = (service.clone(), push(id, "completed"));
    async move {
        let response = service.oneshot(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Ok((
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        ))
    }
}

fn is_duplicate(headers: &HeaderMap) -> bool {
    headers.get(&DUPLICATE_HEADER).is_some_and(|v| v == "done")
}

fn always(status: StatusCode) -> impl Fn(usize) -> Act + Clone + Send + Sync + 'static {
    move |_| Act::Answer(status)
}

/// Waits (yielding) until the handler was called `n` times.
async fn until_calls(calls: &AtomicUsize, n: usize) {
    for _ in 0..1000 {
        if calls.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("handler not called {n} times");
}

#[tokio::test]
async fn duplicate_after_success_is_absorbed() {
    let layer = DedupLayer::new();
    let metrics = layer.metrics();
    let (service, calls) = stack(layer, always(StatusCode::OK));

    let (status, headers, body) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(body, "handled");

    for _ in 0..3 {
        let (status, headers, body) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(is_duplicate(&headers), "{headers:?}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, r#"{"status":"duplicate","id":"task_01"}"#);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Another id is not a duplicate.
    let (status, headers, _) = send(&service, "task_02").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!((metrics.first(), metrics.duplicate_done()), (2, 3));
}

#[tokio::test]
async fn retry_after_a_5xx_runs_again() {
    let layer = DedupLayer::new();
    let metrics = layer.metrics();
    let (service, calls) = stack(layer, |n| {
        Act::Answer(if n == 0 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        })
    });
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!is_duplicate(&headers));

    let (status, headers, body) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(body, "handled");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let (_, headers, _) = send(&service, "task_01").await.unwrap();
    assert!(is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!((metrics.first(), metrics.released()), (2, 1));
}

#[tokio::test]
async fn an_inner_error_releases_the_key() {
    let (service, calls) = stack(DedupLayer::new(), |n| {
        if n == 0 {
            Act::Fail
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    assert!(send(&service, "task_01").await.is_err());
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_4xx_is_remembered_by_default_and_released_on_request() {
    let (service, calls) = stack(DedupLayer::new(), always(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(
        send(&service, "task_01").await.unwrap().0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let layer = DedupLayer::new().remember_client_errors(false);
    let (service, calls) = stack(layer, always(StatusCode::CONFLICT));
    for _ in 0..2 {
        let (status, headers, _) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(!is_duplicate(&headers));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn concurrent_identical_ids_run_once_and_all_get_2xx() {
    let layer = DedupLayer::new();
    let metrics = layer.metrics();
    let (service, calls) = stack(layer, |_| {
        Act::Slow(Duration::from_millis(300), StatusCode::OK)
    });
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let service = service.clone();
        set.spawn(async move { send(&service, "task_01").await.unwrap() });
    }
    let mut duplicates = 0;
    while let Some(result) = set.join_next().await {
        let (status, headers, _) = result.unwrap();
        assert_eq!(status, StatusCode::OK);
        duplicates += usize::from(is_duplicate(&headers));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(duplicates, 63);
    assert_eq!(metrics.first(), 1);
    assert_eq!(metrics.duplicate_done(), 63);
    assert_eq!(metrics.duplicate_in_flight(), 63);
    assert_eq!(metrics.wait_timeouts(), 0);
}

/// The same on a multi-threaded runtime, where the claims really race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_ids_run_once_across_threads() {
    let (service, calls) = stack(DedupLayer::new(), |_| {
        Act::Slow(Duration::from_millis(50), StatusCode::OK)
    });
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let service = service.clone();
        set.spawn(async move { send(&service, "task_01").await.unwrap().0 });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_in_flight_future_releases_its_key() {
    let layer = DedupLayer::new();
    let metrics = layer.metrics();
    let (service, calls) = stack(layer, |n| {
        if n == 0 {
            Act::Slow(Duration::from_secs(3600), StatusCode::OK)
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    // A timeout layer outside drops the response future after 1 s, as a
    // server does when the client goes away.
    let outer = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .service(service.clone());
    let error = outer
        .oneshot(push("task_01", "completed"))
        .await
        .unwrap_err();
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The retry runs at once: no wait for the claim timeout (60 s).
    let started = Instant::now();
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(metrics.released(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_releases_its_key() {
    let (service, calls) = stack(DedupLayer::new(), |n| {
        if n == 0 {
            Act::Panic
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    let first = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    assert!(first.await.unwrap_err().is_panic());

    let started = Instant::now();
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stuck_in_flight_claim_expires() {
    let store = MokaStore::builder()
        .claim_timeout(Duration::from_secs(60))
        .build();
    let (service, calls) = stack(DedupLayer::with_store(store), |n| {
        if n == 0 {
            Act::Hang
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    let stuck = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    until_calls(&calls, 1).await;

    // Before the claim timeout, a retry is not run twice.
    tokio::time::advance(Duration::from_secs(50)).await;
    let (status, _, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // After it, the key is free although its handler never returned.
    tokio::time::advance(Duration::from_secs(10)).await;
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(!stuck.is_finished());
    stuck.abort();
}

#[tokio::test(start_paused = true)]
async fn the_in_flight_wait_is_bounded_then_503_with_retry_after() {
    let layer = DedupLayer::new().retry_after(Duration::from_secs(20));
    let metrics = layer.metrics();
    let (service, calls) = stack(layer, |_| {
        Act::Slow(Duration::from_secs(30), StatusCode::OK)
    });
    let first = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    until_calls(&calls, 1).await;

    let started = Instant::now();
    let (status, headers, body) = send(&service, "task_01").await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "20");
    assert!(body.contains(r#""code":"duplicate_in_flight""#), "{body}");
    assert_eq!(metrics.wait_timeouts(), 1);

    // The first one still succeeds, and later pushes are duplicates.
    assert_eq!(first.await.unwrap().unwrap().0, StatusCode::OK);
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gets_the_outcome_as_soon_as_it_is_known() {
    let layer = DedupLayer::new().wait_timeout(Duration::from_secs(3));
    let (service, calls) = stack(layer, |_| Act::Slow(Duration::from_secs(2), StatusCode::OK));
    let first = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    until_calls(&calls, 1).await;
    let started = Instant::now();
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(is_duplicate(&headers));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(!is_duplicate(&first.await.unwrap().unwrap().1));
}

#[tokio::test(start_paused = true)]
async fn a_released_claim_lets_one_waiter_run() {
    let layer = DedupLayer::new();
    let metrics = layer.metrics();
    let (service, calls) = stack(layer, |n| {
        let status = if n == 0 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        Act::Slow(Duration::from_secs(1), status)
    });
    let first = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "task_01").await })
    };
    until_calls(&calls, 1).await;
    let mut waiters = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let service = service.clone();
        waiters.spawn(async move { send(&service, "task_01").await.unwrap() });
    }
    assert_eq!(
        first.await.unwrap().unwrap().0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let mut ran = 0;
    while let Some(result) = waiters.join_next().await {
        let (status, headers, _) = result.unwrap();
        assert_eq!(status, StatusCode::OK);
        ran += usize::from(!is_duplicate(&headers));
    }
    assert_eq!(ran, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!((metrics.first(), metrics.released()), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn ttl_expiry_makes_an_id_new_again() {
    let store = MokaStore::builder()
        .time_to_live(Duration::from_secs(3600))
        .build();
    let (service, calls) = stack(DedupLayer::with_store(store), always(StatusCode::OK));
    send(&service, "task_01").await.unwrap();

    tokio::time::advance(Duration::from_secs(3599)).await;
    let (_, headers, _) = send(&service, "task_01").await.unwrap();
    assert!(is_duplicate(&headers));

    tokio::time::advance(Duration::from_secs(1)).await;
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn memory_stays_bounded_past_capacity() {
    let store = MokaStore::builder().max_capacity(100).build();
    let layer = DedupLayer::with_store(store);
    let store = layer.store().clone();
    let (service, calls) = stack(layer, always(StatusCode::OK));
    for i in 0..1000 {
        send(&service, &format!("task_{i:04}")).await.unwrap();
        if i == 99 {
            store.run_pending_tasks().await;
            assert_eq!(store.entry_count(), 100);
        }
    }
    store.run_pending_tasks().await;
    assert!(store.entry_count() <= 100, "{}", store.entry_count());
    assert_eq!(calls.load(Ordering::SeqCst), 1000);

    // The least recently used were forgotten, the latest are remembered.
    let (_, headers, _) = send(&service, "task_0999").await.unwrap();
    assert!(is_duplicate(&headers));
    let (_, headers, _) = send(&service, "task_0000").await.unwrap();
    assert!(!is_duplicate(&headers));
}

/// moka measures its own time-to-live on the real clock, so this one test
/// uses a short real TTL: expired entries must leave memory without any
/// request, driven by the store's maintenance task alone.
#[tokio::test]
async fn expired_entries_leave_memory_by_themselves() {
    let ttl = Duration::from_millis(300);
    let store = MokaStore::builder()
        .time_to_live(ttl)
        .claim_timeout(ttl)
        .maintenance_interval(Duration::from_millis(10))
        .build();
    let started = std::time::Instant::now();
    for i in 0..50 {
        let key = DedupKey::new(format!("task_{i}"));
        let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
            panic!("a new key is claimed");
        };
        store.complete(&key, &token).await.unwrap();
    }
    store.run_pending_tasks().await;
    if started.elapsed() < ttl {
        assert_eq!(store.entry_count(), 50);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.entry_count() > 0 {
        assert!(std::time::Instant::now() < deadline, "entries never left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        store.claim(&DedupKey::new("task_0")).await.unwrap(),
        Claim::Acquired(_)
    ));
}

/// A store whose backend is down for the chosen operations.
#[derive(Debug, Default)]
struct FailingStore {
    claim: bool,
    complete: bool,
}

impl DedupStore for FailingStore {
    type Token = ();
    type Error = std::io::Error;

    async fn claim(&self, _key: &DedupKey) -> Result<Claim<()>, std::io::Error> {
        if self.claim {
            Err(std::io::Error::other("connection refused"))
        } else {
            Ok(Claim::Acquired(()))
        }
    }

    async fn complete(&self, _key: &DedupKey, _token: &()) -> Result<(), std::io::Error> {
        if self.complete {
            Err(std::io::Error::other("connection reset"))
        } else {
            Ok(())
        }
    }

    async fn release(&self, _key: &DedupKey, _token: &()) -> Result<(), std::io::Error> {
        Ok(())
    }

    async fn forget(&self, _key: &DedupKey) -> Result<(), std::io::Error> {
        Ok(())
    }
}

#[tokio::test]
async fn a_store_failure_is_a_503_unless_fail_open() {
    let layer = DedupLayer::with_store(FailingStore {
        claim: true,
        ..FailingStore::default()
    });
    let metrics = layer.metrics();
    let (service, calls) = stack(layer, always(StatusCode::OK));
    let (status, headers, body) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "10");
    assert!(
        body.contains(r#""code":"dedup_store_unavailable""#),
        "{body}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(metrics.store_errors(), 1);

    let layer = DedupLayer::with_store(FailingStore {
        claim: true,
        ..FailingStore::default()
    })
    .fail_open(true);
    let (service, calls) = stack(layer, always(StatusCode::OK));
    for _ in 0..2 {
        let (status, headers, body) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(!is_duplicate(&headers));
        assert_eq!(body, "handled");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_complete_keeps_the_handlers_answer() {
    let layer = DedupLayer::with_store(FailingStore {
        complete: true,
        ..FailingStore::default()
    });
    let metrics = layer.metrics();
    let (service, _) = stack(layer, always(StatusCode::OK));
    let (status, _, body) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "handled");
    assert_eq!(metrics.store_errors(), 1);
}

#[tokio::test]
async fn without_the_payload_layer_it_is_a_500_naming_it() {
    let service = ServiceBuilder::new()
        .layer(DedupLayer::new())
        .service(service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }));
    let response = service.oneshot(push("task_01", "completed")).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("PayloadLayer"), "{body}");
}

#[tokio::test]
async fn the_key_strategy_is_pluggable() {
    let (service, calls) = stack(DedupLayer::new().key(ByIdAndStatus), always(StatusCode::OK));
    for status in ["failed", "completed", "completed"] {
        service
            .clone()
            .oneshot(push("task_01", status))
            .await
            .unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // `None` skips deduplication: here, for pushes that are not final.
    let layer = DedupLayer::new()
        .key(|event: &TaskEvent| event.is_final().then(|| DedupKey::from(event.id())));
    let (service, calls) = stack(layer, always(StatusCode::OK));
    for status in ["processing", "processing", "completed", "completed"] {
        let response = service
            .clone()
            .oneshot(push("task_01", status))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn over_http_a_duplicate_is_acknowledged_with_the_header() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let handler = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(DedupLayer::new())
        .service(service_fn(move |_: Request<BufferedBody>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(String::from("stored"))) }
        }));
    let router = axum::Router::new().route_service("/callback", handler);
    let addr = common::serve_axum(router).await;
    let body = common::fixture("completed-image-url-array");

    let first = common::post(addr, "/callback", Some("application/json"), &body).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, "stored");
    assert_eq!(first.header("taskhook-duplicate"), None);

    let again = common::post(addr, "/callback", Some("application/json"), &body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("taskhook-duplicate"), Some("done"));
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_moka_store_only_touches_the_callers_own_claim() {
    let store = MokaStore::builder()
        .claim_timeout(Duration::from_secs(60))
        .build();
    let key = DedupKey::new("task_01");
    let Claim::Acquired(stale) = store.claim(&key).await.unwrap() else {
        panic!("a new key is claimed");
    };
    assert!(matches!(store.claim(&key).await.unwrap(), Claim::InFlight));

    // The first claim expires; a second caller takes the key.
    tokio::time::advance(Duration::from_secs(60)).await;
    let Claim::Acquired(current) = store.claim(&key).await.unwrap() else {
        panic!("an expired claim is claimed again");
    };
    // The first owner's release and complete leave the live claim alone.
    store.release(&key, &stale).await.unwrap();
    assert!(matches!(store.claim(&key).await.unwrap(), Claim::InFlight));
    store.complete(&key, &stale).await.unwrap();
    assert!(matches!(store.claim(&key).await.unwrap(), Claim::InFlight));

    store.complete(&key, &current).await.unwrap();
    assert!(matches!(store.claim(&key).await.unwrap(), Claim::Done));
    // A released key is unknown again.
    let other = DedupKey::new("task_02");
    let Claim::Acquired(token) = store.claim(&other).await.unwrap() else {
        panic!("a new key is claimed");
    };
    store.release(&other, &token).await.unwrap();
    assert!(matches!(
        store.claim(&other).await.unwrap(),
        Claim::Acquired(_)
    ));
}
