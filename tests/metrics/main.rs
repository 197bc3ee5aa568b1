//! The feature `metrics`: a full `CallbackStack` with `MetricsLayer`
//! outermost, driven through each path an event can take, and the exact
//! values recorded.
//!
//! Each test installs a `DebuggingRecorder` of its own as the thread's
//! recorder; `#[tokio::test]` runs the stack's workers on that same thread
//! (a current-thread runtime), so every recording lands in it, and the tests
//! run in parallel without seeing each other's metrics.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use taskhook::body::BufferedBody;
use taskhook::dedup::DedupLayer;
use taskhook::fast_ack::journal::{
    Appended, BoxFuture, Entry, Journal, JournalError, MemoryJournal, Record,
};
use taskhook::fast_ack::{DeadLetter, FastAckHandle, FastAckLayer, RetryPolicy};
use taskhook::metrics::{Metrics, MetricsLayer};
use taskhook::{CallbackStack, PayloadLayer};
use taskhook_test_support::{send, until};
use tokio::sync::Semaphore;
use tower::{service_fn, BoxError, Service, ServiceBuilder};

// ---- the recorder -----------------------------------------------------------------

/// A `DebuggingRecorder` whose snapshots (which reset what they read) are
/// added up, so a test can read the values at any point and again later.
struct Recorded {
    recorder: DebuggingRecorder,
    snapshotter: Snapshotter,
    /// `(kind, name) -> labels ("k=v,..") -> value`; a gauge only ever
    /// moves by increments, so its snapshots add up too.
    sums: RefCell<BTreeMap<(String, String), BTreeMap<String, f64>>>,
    samples: RefCell<BTreeMap<String, Vec<f64>>>,
}

impl Recorded {
    fn new() -> Self {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        Self {
            recorder,
            snapshotter,
            sums: RefCell::default(),
            samples: RefCell::default(),
        }
    }

    /// Makes it the recorder of this thread until the guard is dropped.
    fn install(&self) -> metrics::LocalRecorderGuard<'_> {
        metrics::set_default_local_recorder(&self.recorder)
    }

    fn refresh(&self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let name = key.name().to_owned();
            let mut labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            let labels = labels.join(",");
            let kind = match kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
                MetricKind::Histogram => "histogram",
            };
            match value {
                DebugValue::Counter(n) => self.add(kind, &name, labels, n as f64),
                DebugValue::Gauge(v) => self.add(kind, &name, labels, v.into_inner()),
                DebugValue::Histogram(values) => {
                    assert!(labels.is_empty(), "{name} has labels: {labels}");
                    self.samples
                        .borrow_mut()
                        .entry(name)
                        .or_default()
                        .extend(values.into_iter().map(|v| v.into_inner()));
                }
            }
        }
    }

    fn add(&self, kind: &str, name: &str, labels: String, value: f64) {
        *self
            .sums
            .borrow_mut()
            .entry((kind.to_owned(), name.to_owned()))
            .or_default()
            .entry(labels)
            .or_default() += value;
    }

    /// Every series of the counter `name`: labels -> value (series never
    /// incremented are left out).
    fn counter(&self, name: &str) -> BTreeMap<String, u64> {
        self.refresh();
        let sums = self.sums.borrow();
        sums.get(&("counter".to_owned(), name.to_owned()))
            .map(|series| {
                series
                    .iter()
                    .filter(|(_, v)| **v != 0.0)
                    .map(|(k, v)| (k.clone(), *v as u64))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn gauge(&self, name: &str) -> f64 {
        self.refresh();
        let sums = self.sums.borrow();
        let series = sums.get(&("gauge".to_owned(), name.to_owned()));
        series.map(|s| s.values().sum()).unwrap_or(0.0)
    }

    fn histogram(&self, name: &str) -> Vec<f64> {
        self.refresh();
        self.samples.borrow().get(name).cloned().unwrap_or_default()
    }

    /// Every metric name recorded so far.
    fn names(&self) -> HashSet<String> {
        self.refresh();
        let mut names: HashSet<String> =
            self.sums.borrow().keys().map(|(_, n)| n.clone()).collect();
        names.extend(self.samples.borrow().keys().cloned());
        names
    }
}

/// `[("outcome=ok", 1)]` as a map, to compare with [`Recorded::counter`].
fn series(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

const DEPTH: &str = "taskhook_queue_depth";

// ---- the stack ----------------------------------------------------------------------

type Handler = tower::util::BoxCloneService<Request<BufferedBody>, Response<String>, BoxError>;

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<BufferedBody>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<String>, BoxError>> + Send + 'static,
{
    tower::util::BoxCloneService::new(service_fn(f))
}

fn status(code: StatusCode) -> Result<Response<String>, BoxError> {
    let mut response = Response::new(String::new());
    *response.status_mut() = code;
    Ok(response)
}

/// A handler that answers `codes[n]` on its `n`th call (the last one after
/// that), after `delay`.
fn scripted(codes: &'static [StatusCode], delay: Duration) -> (Handler, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let handler = handler(move |_req| {
        let n = counted.fetch_add(1, Ordering::SeqCst) as usize;
        async move {
            tokio::time::sleep(delay).await;
            status(codes[n.min(codes.len() - 1)])
        }
    });
    (handler, calls)
}

/// The route as the relay mounts it: `MetricsLayer` outermost, then the
/// whole `CallbackStack`.
fn mount(
    stack: CallbackStack,
    handler: Handler,
) -> (
    impl Service<
            Request<Full<Bytes>>,
            Response = Response<impl http_body::Body<Data = Bytes, Error = impl std::fmt::Debug>>,
            Error = Infallible,
            Future = impl Send,
        > + Clone
        + Send
        + 'static,
    FastAckHandle,
) {
    let (callback, handle) = stack.build(handler);
    let route = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .service(callback);
    (route, handle)
}

fn fast_ack() -> taskhook::fast_ack::FastAckBuilder {
    FastAckLayer::builder().retry(
        RetryPolicy::new()
            .attempts(3)
            .base_delay(Duration::from_millis(100))
            .jitter(false),
    )
}

// ---- the tests ----------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_new_task_is_accepted_and_processed_and_its_duplicate_counted() {
    let recorded = Recorded::new();
    let _guard = recorded.install();
    let (handler, calls) = scripted(&[StatusCode::OK], Duration::ZERO);
    let (route, handle) = mount(CallbackStack::new().fast_ack(fast_ack()), handler);
    handle.started().await;

    assert_eq!(send(&route, "task_a").await.status, StatusCode::ACCEPTED);
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(send(&route, "task_a").await.status, StatusCode::OK);

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        recorded.counter("taskhook_callbacks_total"),
        series(&[("status=200", 1), ("status=202", 1)])
    );
    assert_eq!(recorded.histogram("taskhook_ack_duration_seconds").len(), 2);
    assert_eq!(
        recorded.counter("taskhook_duplicates_total"),
        series(&[("kind=done", 1)])
    );
    assert_eq!(
        recorded.counter("taskhook_accepted_total"),
        series(&[("", 1)])
    );
    assert_eq!(
        recorded.counter("taskhook_attempts_total"),
        series(&[("outcome=ok", 1)])
    );
    assert_eq!(
        recorded
            .histogram("taskhook_attempt_duration_seconds")
            .len(),
        1
    );
    assert!(recorded.counter("taskhook_rejected_total").is_empty());
    assert!(recorded.counter("taskhook_dead_letters_total").is_empty());
    assert_eq!(recorded.gauge(DEPTH), 0.0);
    // Nothing else, and no label names a task.
    let expected: HashSet<String> = [
        "taskhook_callbacks_total",
        "taskhook_ack_duration_seconds",
        "taskhook_duplicates_total",
        "taskhook_accepted_total",
        "taskhook_attempts_total",
        "taskhook_attempt_duration_seconds",
        DEPTH,
    ]
    .map(String::from)
    .into();
    assert_eq!(recorded.names(), expected);
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_then_a_success_is_one_retry_and_each_attempt_is_timed() {
    let recorded = Recorded::new();
    let _guard = recorded.install();
    let codes = &[StatusCode::INTERNAL_SERVER_ERROR, StatusCode::OK];
    // The handler takes 250 ms of (paused) tokio time per attempt.
    let (handler, calls) = scripted(codes, Duration::from_millis(250));
    let (route, handle) = mount(CallbackStack::new().fast_ack(fast_ack()), handler);
    handle.started().await;

    assert_eq!(send(&route, "task_a").await.status, StatusCode::ACCEPTED);
    assert_eq!(recorded.gauge(DEPTH), 1.0, "queued");
    until("processed", || handle.stats().processed == 1).await;

    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        recorded.counter("taskhook_attempts_total"),
        series(&[("outcome=ok", 1), ("outcome=retry", 1)])
    );
    assert_eq!(
        recorded.histogram("taskhook_attempt_duration_seconds"),
        [0.25, 0.25],
        "the handler's time, not the retry delay"
    );
    assert_eq!(
        recorded.counter("taskhook_accepted_total"),
        series(&[("", 1)])
    );
    assert!(recorded.counter("taskhook_dead_letters_total").is_empty());
    assert_eq!(recorded.gauge(DEPTH), 0.0);
}

#[tokio::test(start_paused = true)]
async fn failing_every_attempt_is_a_dead_letter_and_its_replay_is_counted() {
    let recorded = Recorded::new();
    let _guard = recorded.install();
    let healthy = Arc::new(AtomicBool::new(false));
    let handler = {
        let healthy = Arc::clone(&healthy);
        handler(move |_req| {
            let healthy = healthy.load(Ordering::SeqCst);
            async move {
                status(if healthy {
                    StatusCode::OK
                } else {
                    StatusCode::BAD_GATEWAY
                })
            }
        })
    };
    let (route, handle) = mount(CallbackStack::new().fast_ack(fast_ack()), handler);
    handle.started().await;

    assert_eq!(send(&route, "task_a").await.status, StatusCode::ACCEPTED);
    until("dead-lettered", || handle.stats().dead_lettered == 1).await;
    assert_eq!(
        recorded.counter("taskhook_attempts_total"),
        series(&[("outcome=dead_letter", 1), ("outcome=retry", 2)])
    );
    assert_eq!(
        recorded.counter("taskhook_dead_letters_total"),
        series(&[("", 1)])
    );
    assert_eq!(
        recorded.gauge(DEPTH),
        0.0,
        "a dead letter is out of the queue"
    );

    healthy.store(true, Ordering::SeqCst);
    let letter: DeadLetter = handle.dead_letters().pop().unwrap();
    handle.replay(letter.seq()).await.unwrap();
    assert_eq!(recorded.gauge(DEPTH), 1.0, "replayed: queued again");
    until("processed", || handle.stats().processed == 1).await;

    assert_eq!(
        recorded.counter("taskhook_replayed_total"),
        series(&[("", 1)])
    );
    assert_eq!(
        recorded.counter("taskhook_accepted_total"),
        series(&[("", 2)]),
        "the replay is accepted again"
    );
    assert_eq!(
        recorded.counter("taskhook_attempts_total"),
        series(&[
            ("outcome=dead_letter", 1),
            ("outcome=ok", 1),
            ("outcome=retry", 2)
        ])
    );
    assert_eq!(
        recorded
            .histogram("taskhook_attempt_duration_seconds")
            .len(),
        4
    );
    assert_eq!(
        recorded.counter("taskhook_callbacks_total"),
        series(&[("status=202", 1)]),
        "a replay is no answer of the route"
    );
    assert_eq!(recorded.gauge(DEPTH), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_counted_refused_and_kept_as_a_dead_letter() {
    let recorded = Recorded::new();
    let _guard = recorded.install();
    let (handler, calls) = scripted(&[StatusCode::UNPROCESSABLE_ENTITY], Duration::ZERO);
    let (route, handle) = mount(CallbackStack::new().fast_ack(fast_ack()), handler);
    handle.started().await;

    assert_eq!(send(&route, "task_a").await.status, StatusCode::ACCEPTED);
    until("refused", || handle.stats().refused == 1).await;

    assert_eq!(calls.load(Ordering::SeqCst), 1, "not retried");
    assert_eq!(
        recorded.counter("taskhook_attempts_total"),
        series(&[("outcome=refused", 1)])
    );
    assert_eq!(
        recorded.counter("taskhook_dead_letters_total"),
        series(&[("", 1)])
    );
    assert_eq!(recorded.gauge(DEPTH), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_and_a_shutdown_are_counted_as_rejections() {
    let recorded = Recorded::new();
    let _guard = recorded.install();
    let gate = Arc::new(Semaphore::new(0));
    let handler = {
        let gate = Arc::clone(&gate);
        handler(move |_req| {
            let gate = Arc::clone(&gate);
            async move {
                gate.acquire().await.unwrap().forget();
                status(StatusCode::OK)
            }
        })
    };
    let stack = CallbackStack::new().fast_ack(fast_ack().capacity(1));
    let (route, handle) = mount(stack, handler);
    handle.started().await;

    assert_eq!(send(&route, "task_a").await.status, StatusCode::ACCEPTED);
    until("running", || handle.stats().in_flight == 1).await;
    assert_eq!(recorded.gauge(DEPTH), 1.0, "in flight");
    let full = send(&route, "task_b").await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.json["error"]["code"], "queue_full");
    assert_eq!(
        recorded.counter("taskhook_rejected_total"),
        series(&[("reason=queue_full", 1)])
    );
    assert_eq!(recorded.gauge(DEPTH), 1.0, "a rejection queues nothing");

    gate.add_permits(1);
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(recorded.gauge(DEPTH), 0.0);
    assert!(handle.shutdown(Duration::from_secs(1)).await.drained);
    let closed = send(&route, "task_c").await;
    assert_eq!(closed.json["error"]["code"], "shutting_down");

    assert_eq!(
        recorded.counter("taskhook_rejected_total"),
        series(&[("reason=queue_full", 1), ("reason=shutting_down", 1)])
    );
    assert_eq!(
        recorded.counter("taskhook_callbacks_total"),
        series(&[("status=202", 1), ("status=503", 2)])
    );
    assert_eq!(recorded.histogram("taskhook_ack_duration_seconds").len(), 3);
    assert_eq!(
        recorded.counter("taskhook_accepted_total"),
        series(&[("", 1)])
    );
    assert_eq!(recorded.gauge(DEPTH), 0.0);
}

#[tokio::test(start_paused = true)]
async fn an_event_left_at_shutdown_stays_in_the_gauge_until_its_layer_is_dropped() {
    let recorded = Recorded::new();
    let _guard = recorded.install();
    let journal = Arc::new(TestJournal::default());
    // A handler that never answers: the event is in flight at shutdown.
    let stuck = handler(|_req| std::future::pending());
    let (route, handle) = mount(CallbackStack::new().journal(Arc::clone(&journal)), stuck);
    handle.started().await;
    assert_eq!(send(&route, "task_a").await.status, StatusCode::ACCEPTED);
    until("running", || handle.stats().in_flight == 1).await;

    let report = handle.shutdown(Duration::from_millis(100)).await;
    assert_eq!(report.in_flight.len(), 1);
    assert_eq!(recorded.gauge(DEPTH), 1.0, "still pending");
    drop((route, handle));
    assert_eq!(recorded.gauge(DEPTH), 0.0, "the layer is gone");

    // "Restarted" on the same journal: the pending entry is recovered and
    // processed; a duplicate push reaches the journal (a new dedup store)
    // and is recognised there.
    let (handler, _) = scripted(&[StatusCode::OK], Duration::ZERO);
    let (route, handle) = mount(CallbackStack::new().journal(Arc::clone(&journal)), handler);
    handle.started().await;
    until("processed", || handle.stats().processed == 1).await;
    let duplicate = send(&route, "task_a").await;
    assert_eq!(duplicate.status, StatusCode::OK);
    assert_eq!(duplicate.duplicate.as_deref(), Some("journaled"));

    assert_eq!(
        recorded.counter("taskhook_recovered_total"),
        series(&[("", 1)])
    );
    assert_eq!(
        recorded.counter("taskhook_duplicates_total"),
        series(&[("kind=journaled", 1)])
    );
    assert_eq!(
        recorded.counter("taskhook_attempts_total"),
        series(&[("outcome=ok", 1)]),
        "the attempt dropped at shutdown ended in nothing"
    );
    assert_eq!(recorded.gauge(DEPTH), 0.0);

    // A journal that fails: 503.
    journal.failing.store(true, Ordering::SeqCst);
    let failed = send(&route, "task_b").await;
    assert_eq!(failed.json["error"]["code"], "journal_unavailable");
    assert_eq!(
        recorded.counter("taskhook_rejected_total"),
        series(&[("reason=journal_unavailable", 1)])
    );
    assert_eq!(
        recorded.counter("taskhook_callbacks_total"),
        series(&[("status=200", 1), ("status=202", 1), ("status=503", 1)])
    );
    assert_eq!(recorded.gauge(DEPTH), 0.0);
}

#[tokio::test(start_paused = true)]
async fn intake_before_the_start_up_replay_is_rejected_as_starting() {
    let recorded = Recorded::new();
    let _guard = recorded.install();
    let journal = Arc::new(TestJournal::default());
    journal.hold_pending.store(true, Ordering::SeqCst);
    let (handler, _) = scripted(&[StatusCode::OK], Duration::ZERO);
    let (route, handle) = mount(CallbackStack::new().journal(Arc::clone(&journal)), handler);

    let starting = send(&route, "task_a").await;
    assert_eq!(starting.json["error"]["code"], "starting");
    assert_eq!(
        recorded.counter("taskhook_rejected_total"),
        series(&[("reason=starting", 1)])
    );
    journal.release.add_permits(1);
    handle.started().await;
    assert_eq!(send(&route, "task_a").await.status, StatusCode::ACCEPTED);
    assert_eq!(
        recorded.counter("taskhook_callbacks_total"),
        series(&[("status=202", 1), ("status=503", 1)])
    );
}

#[tokio::test(start_paused = true)]
async fn an_append_outlived_by_the_shutdown_is_rejected_as_shutting_down() {
    let recorded = Recorded::new();
    let _guard = recorded.install();
    let journal = Arc::new(TestJournal::default());
    let (handler, calls) = scripted(&[StatusCode::OK], Duration::ZERO);
    let (route, handle) = mount(CallbackStack::new().journal(Arc::clone(&journal)), handler);
    handle.started().await;
    journal.hold_appends.store(true, Ordering::SeqCst);

    // The append is still running when the shutdown's deadline passes:
    // journaled, but nobody would process it, so withdrawn and `503`.
    let pushed = tokio::spawn({
        let route = route.clone();
        async move { send(&route, "task_a").await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await; // now in the append
    let report = handle.shutdown(Duration::from_millis(100)).await;
    journal.release_appends.add_permits(1);
    let answer = pushed.await.unwrap();
    assert_eq!(answer.json["error"]["code"], "shutting_down");
    assert!(report.drained, "a reserved slot is never reported as left");

    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        recorded.counter("taskhook_rejected_total"),
        series(&[("reason=shutting_down", 1)])
    );
    assert!(recorded.counter("taskhook_accepted_total").is_empty());
    assert_eq!(recorded.gauge(DEPTH), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_still_in_flight_after_the_wait_bound_is_counted_in_flight() {
    let recorded = Recorded::new();
    let _guard = recorded.install();
    // Dedup alone in front of a slow handler (no fast-ack): the first push
    // holds the claim for a second.
    let slow = service_fn(|_req: Request<BufferedBody>| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let route = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .layer(PayloadLayer::new())
        .layer(DedupLayer::new().wait_timeout(Duration::from_millis(100)))
        .service(slow);

    let first = tokio::spawn({
        let route = route.clone();
        async move { send(&route, "task_a").await.status }
    });
    tokio::task::yield_now().await;
    let second = send(&route, "task_a").await;
    assert_eq!(second.json["error"]["code"], "duplicate_in_flight");
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    let third = send(&route, "task_a").await;
    assert_eq!(third.duplicate.as_deref(), Some("done"));

    assert_eq!(
        recorded.counter("taskhook_duplicates_total"),
        series(&[("kind=done", 1), ("kind=in_flight", 1)])
    );
    assert_eq!(
        recorded.counter("taskhook_callbacks_total"),
        series(&[("status=200", 2), ("status=503", 1)])
    );
    let acks = recorded.histogram("taskhook_ack_duration_seconds");
    assert!(
        acks.contains(&1.0),
        "the first answer took the handler's second: {acks:?}"
    );
    assert!(acks.contains(&0.1), "the second waited the bound: {acks:?}");
}

#[tokio::test]
async fn an_error_of_the_inner_service_is_counted_as_error() {
    let recorded = Recorded::new();
    let _guard = recorded.install();
    let mut route = Metrics::new(service_fn(|_req: Request<()>| async {
        Err::<Response<()>, _>("down")
    }));
    let error = tower::ServiceExt::ready(&mut route)
        .await
        .unwrap()
        .call(Request::new(()))
        .await;
    assert!(error.is_err());
    assert_eq!(
        recorded.counter("taskhook_callbacks_total"),
        series(&[("status=error", 1)])
    );
}

/// The text a `GET /metrics` serves with `metrics-exporter-prometheus`:
/// described, with buckets, and parseable line by line.
#[tokio::test(start_paused = true)]
async fn the_prometheus_text_has_every_metric_described_and_no_task_id() {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Prefix("taskhook_".into()),
            taskhook::metrics::DURATION_BUCKETS,
        )
        .unwrap()
        .build_recorder();
    let prometheus = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    taskhook::metrics::describe();

    let (handler, _) = scripted(
        &[StatusCode::INTERNAL_SERVER_ERROR, StatusCode::OK],
        Duration::from_millis(3),
    );
    let (route, handle) = mount(CallbackStack::new().fast_ack(fast_ack()), handler);
    handle.started().await;
    assert_eq!(
        send(&route, "task_secret_id").await.status,
        StatusCode::ACCEPTED
    );
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(send(&route, "task_secret_id").await.status, StatusCode::OK);

    let text = prometheus.render();
    for line in [
        "# TYPE taskhook_callbacks_total counter",
        r#"taskhook_callbacks_total{status="202"} 1"#,
        r#"taskhook_callbacks_total{status="200"} 1"#,
        r#"taskhook_duplicates_total{kind="done"} 1"#,
        "taskhook_accepted_total 1",
        r#"taskhook_attempts_total{outcome="retry"} 1"#,
        r#"taskhook_attempts_total{outcome="ok"} 1"#,
        "# TYPE taskhook_queue_depth gauge",
        "taskhook_queue_depth 0",
        "# TYPE taskhook_ack_duration_seconds histogram",
        "taskhook_ack_duration_seconds_count 2",
        "# TYPE taskhook_attempt_duration_seconds histogram",
        r#"taskhook_attempt_duration_seconds_bucket{le="0.0025"} 0"#,
        r#"taskhook_attempt_duration_seconds_bucket{le="0.005"} 2"#,
        "taskhook_attempt_duration_seconds_count 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    assert!(text.contains("# HELP taskhook_attempts_total Attempts of the handler"));
    assert!(
        !text.contains("task_secret"),
        "a task id in the labels:\n{text}"
    );
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        assert!(series.starts_with("taskhook_"), "{line}");
        value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
    }
}

// ---- a journal for the restart and failure paths -------------------------------------

/// A `MemoryJournal` that also recognises a task id it already has
/// (`Appended::Duplicate`, as the durable journals do), can fail its
/// appends, and can hold `pending` (the start-up replay) until released.
#[derive(Debug)]
struct TestJournal {
    inner: MemoryJournal,
    tasks: Mutex<HashSet<String>>,
    failing: AtomicBool,
    hold_pending: AtomicBool,
    release: Semaphore,
    hold_appends: AtomicBool,
    release_appends: Semaphore,
}

impl Default for TestJournal {
    fn default() -> Self {
        Self {
            inner: MemoryJournal::new(),
            tasks: Mutex::default(),
            failing: AtomicBool::new(false),
            hold_pending: AtomicBool::new(false),
            release: Semaphore::new(0),
            hold_appends: AtomicBool::new(false),
            release_appends: Semaphore::new(0),
        }
    }
}

impl Journal for TestJournal {
    fn append(&self, records: Vec<Record>) -> BoxFuture<'_, Result<Vec<Appended>, JournalError>> {
        Box::pin(async move {
            if self.failing.load(Ordering::SeqCst) {
                return Err(JournalError::unavailable("down"));
            }
            if self.hold_appends.load(Ordering::SeqCst) {
                self.release_appends.acquire().await.unwrap().forget();
            }
            let mut appended = Vec::new();
            for record in records {
                let id = record.task_id().map(str::to_owned);
                if let Some(id) = &id {
                    if self.tasks.lock().unwrap().contains(id) {
                        appended.push(Appended::Duplicate);
                        continue;
                    }
                }
                let outcome = self.inner.append_one(record).await?;
                if let Some(id) = id {
                    self.tasks.lock().unwrap().insert(id);
                }
                appended.push(outcome);
            }
            Ok(appended)
        })
    }

    fn complete(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.complete(seq)
    }

    fn pending(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        Box::pin(async move {
            if self.hold_pending.load(Ordering::SeqCst) {
                self.release.acquire().await.unwrap().forget();
            }
            self.inner.pending().await
        })
    }

    fn dead_letter(&self, letter: &DeadLetter) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.dead_letter(letter)
    }

    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, JournalError>> {
        self.inner.dead_letters()
    }

    fn remove_dead_letter(&self, seq: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.remove_dead_letter(seq)
    }
}
