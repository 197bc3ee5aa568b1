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
    /// Sleeps (tokio time), then panics.
    SlowPanic(Duration),
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
                Act::SlowPanic(delay) => {
                    tokio::time::sleep(delay).await;
                    panic!("handler panicked late")
                }
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

/// A timeout layer outside drops the response future after 1 s, as a
/// server does when the client goes away.
async fn push_with_timeout(service: &Stack) {
    let outer = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .service(service.clone());
    let error = outer
        .oneshot(push("task_01", "completed"))
        .await
        .unwrap_err();
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
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

/// The client leaves, then the handler, still running, panics: the key is
/// released (not left in flight until the claim timeout).
#[tokio::test(start_paused = true)]
async fn a_handler_panicking_after_its_client_left_releases_its_key() {
    let layer = DedupLayer::new();
    let metrics = layer.metrics();
    let (service, calls) = stack(layer, |n| {
        if n == 0 {
            Act::SlowPanic(Duration::from_secs(3))
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    push_with_timeout(&service).await;

    // The retry waits for the outcome (a panic at 3 s), then runs.
    let started = Instant::now();
    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(metrics.released(), 1);
}

/// The runtime shuts down while a claimed call hangs: the request's task is
/// dropped with it; the guard's hand-over to a new task and its release end
/// there (no loop of tasks spawned on a runtime that is gone).
#[test]
fn a_runtime_shutting_down_under_a_pending_call_drops_it_cleanly() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (service, calls) = rt.block_on(async { stack(DedupLayer::new(), |_| Act::Hang) });
    let request = rt.spawn(send(&service, "task_01"));
    rt.block_on(until_calls(&calls, 1));
    drop(rt);
    assert!(request.is_finished());
}

tokio::task_local! {
    static REQUEST_TAG: &'static str;
}

/// The handler runs in the request's own task (no task between), so what
/// the request's task carries, such as a task-local set by an outer layer,
/// is there in the handler.
#[tokio::test]
async fn the_handler_runs_in_the_request_task() {
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(DedupLayer::new())
        .service(service_fn(|_req: Request<BufferedBody>| async move {
            let tag = REQUEST_TAG.try_with(|tag| *tag).unwrap_or("none");
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(tag))))
        }));
    let response = REQUEST_TAG
        .scope("outer", service.oneshot(push("task_01", "completed")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "outer");
}

/// A catch-panic wrapper outside catches the handler's panic and drops the
/// response future later, not while unwinding: the claim is released and
/// the call, which panicked, is never polled again on a task of its own.
#[tokio::test]
async fn a_panic_caught_outside_releases_the_key_and_is_not_polled_again() {
    static RESUMED: AtomicUsize = AtomicUsize::new(0);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.to_string().contains("resumed after panicking") {
            RESUMED.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
    let layer = DedupLayer::new();
    let metrics = layer.metrics();
    let (service, calls) = stack(layer, |n| {
        if n == 0 {
            Act::Panic
        } else {
            Act::Answer(StatusCode::OK)
        }
    });
    let mut future = Box::pin(service.clone().oneshot(push("task_01", "completed")));
    let caught = std::future::poll_fn(|cx| {
        let poll = std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx));
        std::task::Poll::Ready(std::panic::catch_unwind(poll))
    })
    .await;
    assert!(caught.is_err(), "the handler's panic reaches the caller");
    drop(future);

    let (status, headers, _) = send(&service, "task_01").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!is_duplicate(&headers));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(metrics.released(), 1);
    assert_eq!(RESUMED.load(Ordering::SeqCst), 0);
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

/// The store semantics above, run against every in-process store: each
/// test is written once, generic over the store, and instantiated per store
/// by `store_semantics!`.
mod stores {
    use super::*;
    use taskhook::CompactStore;

    /// An in-process store the tests can build and count.
    trait TestStore: DedupStore + Clone {
        fn build(capacity: u64, ttl: Duration, claim_timeout: Duration) -> Self;

        /// The number of keys held, after any pending maintenance ran.
        async fn count(&self) -> u64;

        fn with_defaults() -> Self {
            Self::build(
                1_000_000,
                Duration::from_secs(24 * 3600),
                Duration::from_secs(60),
            )
        }
    }

    impl TestStore for MokaStore {
        fn build(capacity: u64, ttl: Duration, claim_timeout: Duration) -> Self {
            MokaStore::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .claim_timeout(claim_timeout)
                .build()
        }

        async fn count(&self) -> u64 {
            self.run_pending_tasks().await;
            self.entry_count()
        }
    }

    impl TestStore for CompactStore {
        fn build(capacity: u64, ttl: Duration, claim_timeout: Duration) -> Self {
            CompactStore::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .claim_timeout(claim_timeout)
                .build()
        }

        async fn count(&self) -> u64 {
            self.entry_count()
        }
    }

    async fn duplicate_after_success_and_retry_after_5xx<St: TestStore>() {
        let layer = DedupLayer::with_store(St::with_defaults());
        let (service, calls) = stack(layer, |n| {
            Act::Answer(if n == 0 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            })
        });
        let (status, _, _) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let (status, headers, _) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(!is_duplicate(&headers));
        for _ in 0..2 {
            let (status, headers, _) = send(&service, "task_01").await.unwrap();
            assert_eq!(status, StatusCode::OK);
            assert!(is_duplicate(&headers));
        }
        let (_, headers, _) = send(&service, "task_02").await.unwrap();
        assert!(!is_duplicate(&headers));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    async fn concurrent_identical_ids_run_once<St: TestStore>() {
        let layer = DedupLayer::with_store(St::with_defaults());
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

    async fn concurrent_identical_ids_run_once_across_threads<St: TestStore>() {
        let (service, calls) = stack(DedupLayer::with_store(St::with_defaults()), |_| {
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

    async fn a_dropped_response_future_does_not_cancel_the_handler<St: TestStore>() {
        let layer = DedupLayer::with_store(St::with_defaults());
        let metrics = layer.metrics();
        let (service, calls) = stack(layer, |n| {
            if n == 0 {
                Act::Slow(Duration::from_secs(10), StatusCode::OK)
            } else {
                Act::Answer(StatusCode::OK)
            }
        });
        push_with_timeout(&service).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // The handler goes on (it may already have accepted the event): the
        // provider's retry is not run beside it, it waits, then gets a 503.
        let (status, headers, _) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains_key("retry-after"));

        // Once the handler succeeded, the next retry is a duplicate.
        tokio::time::advance(Duration::from_secs(10)).await;
        let (status, headers, _) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(is_duplicate(&headers));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(metrics.released(), 0);
    }

    async fn a_handler_failing_after_its_client_left_releases_its_key<St: TestStore>() {
        let layer = DedupLayer::with_store(St::with_defaults());
        let metrics = layer.metrics();
        let (service, calls) = stack(layer, |n| {
            if n == 0 {
                Act::Slow(Duration::from_secs(3), StatusCode::INTERNAL_SERVER_ERROR)
            } else {
                Act::Answer(StatusCode::OK)
            }
        });
        push_with_timeout(&service).await;

        // The retry waits for the outcome (a 500 at 3 s) and then runs.
        let started = Instant::now();
        let (status, headers, _) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(!is_duplicate(&headers));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(metrics.released(), 1);
    }

    async fn forget_clears_only_done_keys<St: TestStore>() {
        let store = St::with_defaults();
        let done = DedupKey::new("task_done");
        let Claim::Acquired(token) = store.claim(&done).await.unwrap() else {
            panic!("a new key is claimed");
        };
        store.complete(&done, &token).await.unwrap();
        assert!(matches!(store.claim(&done).await.unwrap(), Claim::Done));
        store.forget(&done).await.unwrap();
        assert!(matches!(
            store.claim(&done).await.unwrap(),
            Claim::Acquired(_)
        ));

        let flying = DedupKey::new("task_flying");
        assert!(matches!(
            store.claim(&flying).await.unwrap(),
            Claim::Acquired(_)
        ));
        store.forget(&flying).await.unwrap();
        assert!(matches!(
            store.claim(&flying).await.unwrap(),
            Claim::InFlight
        ));
    }

    async fn a_stuck_in_flight_claim_expires<St: TestStore>() {
        let store = St::build(
            1_000_000,
            Duration::from_secs(3600),
            Duration::from_secs(60),
        );
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
        tokio::time::advance(Duration::from_secs(50)).await;
        let (status, headers, _) = send(&service, "task_01").await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains_key("retry-after"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The wait took 5 s: the claim is 55 s old. At 60 s it is free.
        tokio::time::advance(Duration::from_secs(5)).await;
        let started = Instant::now();
        let (status, headers, _) = send(&service, "task_01").await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(status, StatusCode::OK);
        assert!(!is_duplicate(&headers));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(!stuck.is_finished());
        stuck.abort();
    }

    async fn waiters_get_the_outcome_or_run_after_a_release<St: TestStore>() {
        // Done: the waiter answers as soon as the first request finished.
        let layer =
            DedupLayer::with_store(St::with_defaults()).wait_timeout(Duration::from_secs(3));
        let (service, calls) = stack(layer, |_| Act::Slow(Duration::from_secs(2), StatusCode::OK));
        let first = {
            let service = service.clone();
            tokio::spawn(async move { send(&service, "task_01").await })
        };
        until_calls(&calls, 1).await;
        let started = Instant::now();
        let (status, headers, _) = send(&service, "task_01").await.unwrap();
        assert_eq!((status, is_duplicate(&headers)), (StatusCode::OK, true));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(!is_duplicate(&first.await.unwrap().unwrap().1));

        // Released: exactly one waiter runs.
        let layer = DedupLayer::with_store(St::with_defaults());
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
        assert_eq!((ran, calls.load(Ordering::SeqCst)), (1, 2));
        assert_eq!((metrics.first(), metrics.released()), (2, 1));

        // Still in flight after the bound: 503.
        let (service, calls) = stack(DedupLayer::with_store(St::with_defaults()), |_| {
            Act::Slow(Duration::from_secs(30), StatusCode::OK)
        });
        let first = {
            let service = service.clone();
            tokio::spawn(async move { send(&service, "task_01").await })
        };
        until_calls(&calls, 1).await;
        let started = Instant::now();
        let (status, headers, _) = send(&service, "task_01").await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains_key("retry-after"));
        assert_eq!(first.await.unwrap().unwrap().0, StatusCode::OK);
    }

    async fn ttl_expiry_makes_an_id_new_again<St: TestStore>() {
        let store = St::build(
            1_000_000,
            Duration::from_secs(3600),
            Duration::from_secs(60),
        );
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

    async fn memory_stays_bounded_past_capacity<St: TestStore>() {
        let store = St::build(100, Duration::from_secs(3600), Duration::from_secs(60));
        let layer = DedupLayer::with_store(store);
        let store = layer.store().clone();
        let (service, calls) = stack(layer, always(StatusCode::OK));
        for i in 0..1000 {
            send(&service, &format!("task_{i:04}")).await.unwrap();
            if i == 99 {
                assert_eq!(store.count().await, 100);
            }
        }
        assert!(store.count().await <= 100);
        assert_eq!(calls.load(Ordering::SeqCst), 1000);
        let (_, headers, _) = send(&service, "task_0999").await.unwrap();
        assert!(is_duplicate(&headers));
        let (_, headers, _) = send(&service, "task_0000").await.unwrap();
        assert!(!is_duplicate(&headers));
    }

    async fn only_the_callers_own_claim_is_touched<St: TestStore>() {
        let store = St::with_defaults();
        let key = DedupKey::new("task_01");
        let Claim::Acquired(stale) = store.claim(&key).await.unwrap() else {
            panic!("a new key is claimed");
        };
        assert!(matches!(store.claim(&key).await.unwrap(), Claim::InFlight));
        tokio::time::advance(Duration::from_secs(60)).await;
        let Claim::Acquired(current) = store.claim(&key).await.unwrap() else {
            panic!("an expired claim is claimed again");
        };
        store.release(&key, &stale).await.unwrap();
        assert!(matches!(store.claim(&key).await.unwrap(), Claim::InFlight));
        store.complete(&key, &stale).await.unwrap();
        assert!(matches!(store.claim(&key).await.unwrap(), Claim::InFlight));
        store.complete(&key, &current).await.unwrap();
        assert!(matches!(store.claim(&key).await.unwrap(), Claim::Done));
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

    macro_rules! store_semantics {
        ($name:ident, $store:ty) => {
            mod $name {
                use super::*;

                #[tokio::test(start_paused = true)]
                async fn duplicate_after_success_and_retry_after_5xx() {
                    super::duplicate_after_success_and_retry_after_5xx::<$store>().await;
                }

                #[tokio::test(start_paused = true)]
                async fn concurrent_identical_ids_run_once() {
                    super::concurrent_identical_ids_run_once::<$store>().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn concurrent_identical_ids_run_once_across_threads() {
                    super::concurrent_identical_ids_run_once_across_threads::<$store>().await;
                }

                #[tokio::test(start_paused = true)]
                async fn a_dropped_response_future_does_not_cancel_the_handler() {
                    super::a_dropped_response_future_does_not_cancel_the_handler::<$store>().await;
                }

                #[tokio::test(start_paused = true)]
                async fn a_handler_failing_after_its_client_left_releases_its_key() {
                    super::a_handler_failing_after_its_client_left_releases_its_key::<$store>()
                        .await;
                }

                #[tokio::test(start_paused = true)]
                async fn forget_clears_only_done_keys() {
                    super::forget_clears_only_done_keys::<$store>().await;
                }

                #[tokio::test(start_paused = true)]
                async fn a_stuck_in_flight_claim_expires() {
                    super::a_stuck_in_flight_claim_expires::<$store>().await;
                }

                #[tokio::test(start_paused = true)]
                async fn waiters_get_the_outcome_or_run_after_a_release() {
                    super::waiters_get_the_outcome_or_run_after_a_release::<$store>().await;
                }

                #[tokio::test(start_paused = true)]
                async fn ttl_expiry_makes_an_id_new_again() {
                    super::ttl_expiry_makes_an_id_new_again::<$store>().await;
                }

                #[tokio::test]
                async fn memory_stays_bounded_past_capacity() {
                    super::memory_stays_bounded_past_capacity::<$store>().await;
                }

                #[tokio::test(start_paused = true)]
                async fn only_the_callers_own_claim_is_touched() {
                    super::only_the_callers_own_claim_is_touched::<$store>().await;
                }
            }
        };
    }

    store_semantics!(moka, MokaStore);
    store_semantics!(compact, CompactStore);

    /// What only the compact store promises: expiry on tokio time (so its
    /// maintenance runs on paused time), rounding to whole seconds in the
    /// safe direction, and its eviction order.
    mod compact_store {
        use super::*;

        async fn claim_and_complete(store: &CompactStore, id: &str) {
            let key = DedupKey::new(id);
            let Claim::Acquired(token) = store.claim(&key).await.unwrap() else {
                panic!("{id} is new");
            };
            store.complete(&key, &token).await.unwrap();
        }

        async fn claim(store: &CompactStore, id: &str) -> Claim<taskhook::backend::CompactToken> {
            store.claim(&DedupKey::new(id)).await.unwrap()
        }

        #[tokio::test(start_paused = true)]
        async fn expired_entries_leave_memory_by_themselves() {
            let store = CompactStore::builder()
                .time_to_live(Duration::from_secs(3600))
                .maintenance_interval(Duration::from_secs(10))
                .build();
            for i in 0..50 {
                claim_and_complete(&store, &format!("task_{i}")).await;
            }
            tokio::time::sleep(Duration::from_secs(3590)).await;
            assert_eq!(store.entry_count(), 50);
            // No request: the maintenance task alone removes them.
            tokio::time::sleep(Duration::from_secs(20)).await;
            assert_eq!(store.entry_count(), 0);
        }

        #[tokio::test(start_paused = true)]
        async fn a_key_is_remembered_at_least_its_ttl() {
            let store = CompactStore::builder()
                .time_to_live(Duration::from_secs(10))
                .build();
            // Completed mid-second: the deadline rounds up, never down.
            tokio::time::advance(Duration::from_millis(500)).await;
            claim_and_complete(&store, "task_01").await;
            tokio::time::advance(Duration::from_millis(9_999)).await;
            assert!(matches!(claim(&store, "task_01").await, Claim::Done));
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(matches!(claim(&store, "task_01").await, Claim::Acquired(_)));
        }

        #[tokio::test(start_paused = true)]
        async fn a_full_store_forgets_its_oldest_done_keys_and_keeps_claims() {
            let store = CompactStore::builder()
                .max_capacity(100)
                .claim_timeout(Duration::from_secs(3600))
                .build();
            let mut in_flight = Vec::new();
            for i in 0..100 {
                if i % 10 == 0 {
                    let Claim::Acquired(token) = claim(&store, &format!("task_{i:03}")).await
                    else {
                        panic!("a new key is claimed");
                    };
                    in_flight.push(token);
                } else {
                    claim_and_complete(&store, &format!("task_{i:03}")).await;
                }
                tokio::time::advance(Duration::from_secs(1)).await;
            }
            assert_eq!(store.entry_count(), 100);
            // Full: a new claim is never refused; the oldest done keys go.
            assert!(matches!(
                claim(&store, "task_100").await,
                Claim::Acquired(_)
            ));
            assert!(store.entry_count() <= 100);
            for i in [1, 2, 3] {
                assert!(
                    matches!(
                        claim(&store, &format!("task_{i:03}")).await,
                        Claim::Acquired(_)
                    ),
                    "task_{i:03} was forgotten"
                );
            }
            for i in [97, 98, 99] {
                assert!(matches!(
                    claim(&store, &format!("task_{i:03}")).await,
                    Claim::Done
                ));
            }
            // The in-flight claims outlive the eviction.
            for i in (0..100).step_by(10) {
                assert!(matches!(
                    claim(&store, &format!("task_{i:03}")).await,
                    Claim::InFlight
                ));
            }
            assert!(store.entry_count() <= 100);
        }

        #[tokio::test(start_paused = true)]
        async fn within_one_second_the_first_completed_are_forgotten_first() {
            let store = CompactStore::builder().max_capacity(16).build();
            // All in the same second: the deadlines are equal.
            for i in 0..17 {
                claim_and_complete(&store, &format!("task_{i:02}")).await;
            }
            // The 17th made room: 16 / 8 = 2 keys went, the first two.
            assert_eq!(store.entry_count(), 15);
            for i in 2..17 {
                assert!(matches!(
                    claim(&store, &format!("task_{i:02}")).await,
                    Claim::Done
                ));
            }
            for i in 0..2 {
                assert!(matches!(
                    claim(&store, &format!("task_{i:02}")).await,
                    Claim::Acquired(_)
                ));
            }
        }
    }
}
