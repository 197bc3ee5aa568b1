//! Metrics of the callback route, through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`).
//!
//! With the feature on, the layers record into the recorder installed in the
//! process (`metrics::set_global_recorder`, or an exporter's `install`, e.g.
//! `metrics-exporter-prometheus` for a `GET /metrics` in Prometheus text):
//! dedup counts the duplicates it answers, fast-ack records each transition
//! of an event (accepted, rejected, each attempt and how long it took, dead
//! letters, replays) and keeps the queue-depth gauge exact, and
//! [`MetricsLayer`], the outermost layer of the route, counts every answer by
//! status code and times it. Without a recorder every call is a no-op; with
//! the feature off nothing of this is compiled in.
//!
//! The layers record at each call into the recorder current then, so a
//! recorder installed after the stack was built is used all the same. Call
//! [`describe`] once, after installing the recorder, for the `# HELP` lines
//! and units.
//!
//! # The metrics
//!
//! Every label has a small, fixed set of values: never a task id, a URL or a
//! token.
//!
//! | name | type | labels | unit | what |
//! |---|---|---|---|---|
//! | `taskhook_callbacks_total` | counter | `status`: the answer's code (`"202"`, `"200"`, `"503"`, ..), or `"error"` when the inner service failed | requests | every answer of the route ([`MetricsLayer`]) |
//! | `taskhook_ack_duration_seconds` | histogram | | seconds | from the request to the response head, the time the provider waits ([`MetricsLayer`]) |
//! | `taskhook_duplicates_total` | counter | `kind`: `done` (the dedup store: processed, `200`), `journaled` (a deduplicating journal: accepted before, `200`), `in_flight` (still in flight after the dedup layer's wait bound, `503`) | requests | duplicate pushes answered without running the handler |
//! | `taskhook_accepted_total` | counter | | events | events journaled and queued, answered `202` (replayed dead letters included) |
//! | `taskhook_rejected_total` | counter | `reason`: `queue_full`, `starting`, `shutting_down`, `journal_unavailable` (the `code` of the answer's body) | requests | events fast-ack answered `503` (a replay refused for the same reason counts too) |
//! | `taskhook_recovered_total` | counter | | events | journal entries queued again: pending at start-up, or taken over from another replica |
//! | `taskhook_attempts_total` | counter | `outcome`: `ok` (a `1xx` to `3xx`: done), `retry` (a `5xx`, an error or a panic, retried), `dead_letter` (the same on the last attempt), `refused` (a `4xx`, not retried) | attempts | what each attempt of the handler ended in: behind the relay, forwards by outcome |
//! | `taskhook_attempt_duration_seconds` | histogram | | seconds | the handler's time per attempt, from a worker taking the event to its answer (and the start of the body of a failure): behind the relay, the forward latency |
//! | `taskhook_dead_letters_total` | counter | | events | events kept as dead letters: every attempt failed, or the handler refused them (unless `dead_letter_refusals(false)`) |
//! | `taskhook_replayed_total` | counter | | events | dead letters sent through the journal and the queue again |
//! | `taskhook_queue_depth` | gauge | | events | events accepted and not finished: queued, in flight, and waiting for a retry (the sum of `queued`, `in_flight` and `waiting_retry` in fast-ack's stats), summed over the fast-ack layers alive |
//!
//! These complement the layers' own counters
//! ([`FastAckHandle::stats`](crate::FastAckHandle::stats),
//! [`DedupLayer::stats`](crate::DedupLayer::stats)), which stay the source
//! for an admin route's JSON.
//!
//! The two histograms are summaries in `metrics-exporter-prometheus` unless
//! it is given buckets: [`DURATION_BUCKETS`] suits both
//! (`PrometheusBuilder::set_buckets_for_metric(Matcher::Suffix("_seconds".into()),
//! DURATION_BUCKETS)`).
//!
//! # Example
//!
//! A Prometheus recorder, the [`MetricsLayer`] around a
//! [`CallbackStack`](crate::CallbackStack), one callback, and the text a
//! `GET /metrics` would serve:
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//! use taskhook::body::BufferedBody;
//! use taskhook::metrics::{self, MetricsLayer};
//! use taskhook::CallbackStack;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let prometheus = PrometheusBuilder::new()
//!     .set_buckets_for_metric(Matcher::Prefix("taskhook_".into()), metrics::DURATION_BUCKETS)
//!     .unwrap()
//!     .install_recorder()
//!     .unwrap();
//! metrics::describe();
//!
//! let handler = service_fn(|_req: Request<BufferedBody>| async {
//!     Ok::<_, Infallible>(Response::new(String::new()))
//! });
//! let (callback, handle) = CallbackStack::new().build(handler);
//! let route = ServiceBuilder::new()
//!     .layer(MetricsLayer::new()) // outermost: sees every answer
//!     .service(callback);
//! handle.started().await;
//!
//! let req = Request::post("/callback")
//!     .body(r#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#.to_owned())
//!     .unwrap();
//! assert_eq!(route.oneshot(req).await.unwrap().status(), StatusCode::ACCEPTED);
//! handle.shutdown(std::time::Duration::from_secs(5)).await;
//!
//! let text = prometheus.render(); // the body of `GET /metrics`
//! assert!(text.contains(r#"taskhook_callbacks_total{status="202"} 1"#));
//! assert!(text.contains(r#"taskhook_attempts_total{outcome="ok"} 1"#));
//! assert!(text.contains("taskhook_queue_depth 0"));
//! assert!(text.contains("# TYPE taskhook_ack_duration_seconds histogram"));
//! # }
//! ```

pub mod future;
mod layer;
pub(crate) mod record;
mod service;

pub use self::layer::MetricsLayer;
pub use self::service::Metrics;

use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Bucket bounds, in seconds, for the two histograms: from half a
/// millisecond (an acknowledgement) to 30 s (a slow handler, or the relay's
/// default upstream timeout).
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The metric names, written once.
pub(crate) mod names {
    pub(crate) const CALLBACKS: &str = "taskhook_callbacks_total";
    pub(crate) const ACK_DURATION: &str = "taskhook_ack_duration_seconds";
    pub(crate) const DUPLICATES: &str = "taskhook_duplicates_total";
    pub(crate) const ACCEPTED: &str = "taskhook_accepted_total";
    pub(crate) const REJECTED: &str = "taskhook_rejected_total";
    pub(crate) const RECOVERED: &str = "taskhook_recovered_total";
    pub(crate) const ATTEMPTS: &str = "taskhook_attempts_total";
    pub(crate) const ATTEMPT_DURATION: &str = "taskhook_attempt_duration_seconds";
    pub(crate) const DEAD_LETTERS: &str = "taskhook_dead_letters_total";
    pub(crate) const REPLAYED: &str = "taskhook_replayed_total";
    pub(crate) const QUEUE_DEPTH: &str = "taskhook_queue_depth";
}

/// Describes every metric of the table in the [module docs](self) (type,
/// unit, help text) to the current recorder.
///
/// Call it once, after installing the recorder: a recorder installed later
/// does not know the descriptions (the metrics are recorded all the same).
///
/// ```
/// taskhook::metrics::describe(); // no recorder: a no-op
/// ```
pub fn describe() {
    use names::*;
    describe_counter!(
        CALLBACKS,
        Unit::Count,
        "Answers of the callback route, by status code."
    );
    describe_histogram!(
        ACK_DURATION,
        Unit::Seconds,
        "Time from a callback request to its response head."
    );
    describe_counter!(
        DUPLICATES,
        Unit::Count,
        "Duplicate pushes answered without running the handler, by what recognised them."
    );
    describe_counter!(
        ACCEPTED,
        Unit::Count,
        "Events journaled and queued (answered 202)."
    );
    describe_counter!(
        REJECTED,
        Unit::Count,
        "Events the fast-ack layer answered 503, by reason."
    );
    describe_counter!(
        RECOVERED,
        Unit::Count,
        "Journal entries queued again: pending at start-up, or taken over."
    );
    describe_counter!(
        ATTEMPTS,
        Unit::Count,
        "Attempts of the handler, by what they ended in."
    );
    describe_histogram!(
        ATTEMPT_DURATION,
        Unit::Seconds,
        "Time the handler took per attempt."
    );
    describe_counter!(
        DEAD_LETTERS,
        Unit::Count,
        "Events kept as dead letters (every attempt failed, or the handler refused them)."
    );
    describe_counter!(REPLAYED, Unit::Count, "Dead letters replayed.");
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Events accepted and not finished: queued, in flight, waiting for a retry."
    );
}
