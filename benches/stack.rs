//! The whole stack called in-process, against a bare service measured in the
//! same run, with allocations per request.
//!
//! ```sh
//! cargo bench --bench stack                 # everything (a few seconds)
//! cargo bench --bench stack -- all_layers   # one group
//! ```
//!
//! Each benchmark is one request: a `Request<Full<Bytes>>` with a 1 KB body
//! (1,027 bytes: `tests/fixtures/completed-extra-fields.json` with more
//! result images, the `1KB` body of `benches/parse.rs`) carrying a 31-byte
//! task id, made before the timer starts. The timed part drives the service
//! to ready, calls it, awaits the response, checks its status (a wrong status,
//! such as a `503` from a full queue, stops the benchmark) and drops it.
//!
//! Services (`unique`: a new task id per request; `duplicates`: the same,
//! already done, task id every time):
//! - `bare`: a `service_fn` that collects the body and answers `200`: the
//!   floor, what any handler pays;
//! - `payload`: `PayloadLayer` over a handler that answers `200`;
//! - `dedup`: `PayloadLayer` + `DedupLayer` (default `CompactStore`) over
//!   the same handler (dedup needs the `TaskEvent`), `unique` and
//!   `duplicates` (answered `200` by dedup without calling the handler);
//! - `fast_ack`: `PayloadLayer` + `FastAckLayer` (`MemoryJournal`): the
//!   answer is the `202` after journaling and queueing; the handler runs on
//!   a worker;
//! - `all_layers`: `PayloadLayer` + `DedupLayer` + `FastAckLayer`, the
//!   recommended stack, `unique` and `duplicates`;
//! - `traced/all_layers_unique_at_info`: `all_layers/unique` with a
//!   `tracing_subscriber::fmt` subscriber at `INFO` (writing to nowhere),
//!   what the layers' tracing costs a service that logs.
//!
//! Everything runs on one current-thread tokio runtime on the benchmark
//! thread: the request, and fast-ack's workers, which run whenever the
//! request waits and, after a `202`, before the sample ends (the request
//! yields once: an accept with the in-memory journal never waits). So a
//! figure includes the background work the request caused in the same
//! sample (the worker's call of the handler, the journal's completion), as
//! on a server with one core, and divan's `AllocProfiler`, which counts the
//! benchmark thread's allocations, sees all of it. Fast-ack gets a
//! capacity of 1,000,000 and 4 workers: its queue never fills (checked: a
//! `503` would stop the run). Ratios against `bare` are in `BENCHMARKS.md`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use divan::Bencher;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use taskhook::body::BufferedBody;
use taskhook::fast_ack::journal::MemoryJournal;
use taskhook::fast_ack::{FastAckHandle, FastAckLayer};
use taskhook::{DedupLayer, PayloadLayer};
use tokio::runtime::Runtime;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

use taskhook_test_support::bodies;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

const SAMPLES: u32 = 100;
const SAMPLE_SIZE: u32 = 100;

/// The 1 KB body of `benches/parse.rs`, split around its task id.
struct Template {
    head: Vec<u8>,
    tail: Vec<u8>,
}

/// The id of the fixture, 31 bytes.
const FIXTURE_ID: &str = "task_01KE11111111111111111EXTRA";

impl Template {
    fn new() -> Self {
        let body = body_1kb();
        let at = body
            .windows(FIXTURE_ID.len())
            .position(|w| w == FIXTURE_ID.as_bytes())
            .expect("fixture id in the body");
        Self {
            head: body[..at].to_vec(),
            tail: body[at + FIXTURE_ID.len()..].to_vec(),
        }
    }

    /// A request whose task id is `task_` and `n` on 26 digits.
    fn request(&self, n: u64) -> Request<Full<Bytes>> {
        let mut body = Vec::with_capacity(self.head.len() + 31 + self.tail.len());
        body.extend_from_slice(&self.head);
        body.extend_from_slice(format!("task_{n:026}").as_bytes());
        body.extend_from_slice(&self.tail);
        Request::post("/callback")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("valid request")
    }
}

/// The 1 KB body (1,027 bytes).
fn body_1kb() -> Vec<u8> {
    bodies::grown(1024)
}

/// Where the task ids come from.
#[derive(Clone, Copy)]
enum Ids {
    /// A new id per request.
    Unique,
    /// Id 0 every time (the benchmark sends it once before timing).
    Duplicates,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Benchmarks `service`: one request per iteration, answered `expected`.
fn run<S, B>(bencher: Bencher<'_, '_>, rt: &Runtime, mut service: S, ids: Ids, expected: StatusCode)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
    B: Body,
{
    let template = Template::new();
    let next = AtomicU64::new(1);
    let mut call = |req| {
        rt.block_on(async {
            let response = service
                .ready()
                .await
                .unwrap_or_else(|e| match e {})
                .call(req)
                .await
                .unwrap_or_else(|e| match e {});
            let status = response.status();
            drop(response);
            if status == StatusCode::ACCEPTED {
                // Fast-ack accepted the event without a task switch: let
                // its workers run now, so the sample includes the handler
                // call the request caused.
                tokio::task::yield_now().await;
            }
            status
        })
    };
    if let Ids::Duplicates = ids {
        // The first push of id 0 is the only one that is new.
        let first = call(template.request(0));
        assert!(first.is_success(), "warm-up answered {first}");
        // Let the background work of that push finish.
        rt.block_on(tokio::task::yield_now());
    }
    bencher
        .with_inputs(|| match ids {
            Ids::Unique => template.request(next.fetch_add(1, Ordering::Relaxed)),
            Ids::Duplicates => template.request(0),
        })
        .bench_local_values(|req| {
            let status = call(req);
            assert_eq!(status, expected, "unexpected answer");
        });
}

/// The handler behind the layers: answers `200` (the event is in the
/// extensions; the buffered body is there to read).
async fn handler(req: Request<BufferedBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let _body = req.into_body().collect().await;
    Ok(Response::new(Full::new(Bytes::new())))
}

/// Fast-ack as the benchmarks use it: its queue never fills.
fn fast_ack() -> (FastAckLayer, FastAckHandle) {
    let (layer, handle) = FastAckLayer::builder()
        .journal(MemoryJournal::new())
        .capacity(1_000_000)
        .concurrency(4)
        .build();
    (layer, handle)
}

#[divan::bench(sample_count = SAMPLES, sample_size = SAMPLE_SIZE)]
fn bare(bencher: Bencher<'_, '_>) {
    let rt = runtime();
    let service = service_fn(|req: Request<Full<Bytes>>| async move {
        let _body = req.into_body().collect().await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    run(bencher, &rt, service, Ids::Unique, StatusCode::OK);
}

#[divan::bench(sample_count = SAMPLES, sample_size = SAMPLE_SIZE)]
fn payload(bencher: Bencher<'_, '_>) {
    let rt = runtime();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .service(service_fn(handler));
    run(bencher, &rt, service, Ids::Unique, StatusCode::OK);
}

#[divan::bench_group(sample_count = SAMPLES, sample_size = SAMPLE_SIZE)]
mod dedup {
    use super::*;

    fn dedup(bencher: Bencher<'_, '_>, ids: Ids) {
        let rt = runtime();
        let _guard = rt.enter();
        let service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(DedupLayer::new())
            .service(service_fn(handler));
        run(bencher, &rt, service, ids, StatusCode::OK);
    }

    #[divan::bench]
    fn unique(bencher: Bencher<'_, '_>) {
        dedup(bencher, Ids::Unique);
    }

    #[divan::bench]
    fn duplicates(bencher: Bencher<'_, '_>) {
        dedup(bencher, Ids::Duplicates);
    }
}

#[divan::bench(sample_count = SAMPLES, sample_size = SAMPLE_SIZE)]
fn fast_ack_alone(bencher: Bencher<'_, '_>) {
    let rt = runtime();
    let _guard = rt.enter();
    let (layer, handle) = fast_ack();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(service_fn(handler));
    rt.block_on(handle.started());
    run(bencher, &rt, service, Ids::Unique, StatusCode::ACCEPTED);
    check_processed(&rt, &handle);
}

#[divan::bench_group(sample_count = SAMPLES, sample_size = SAMPLE_SIZE)]
mod all_layers {
    use super::*;

    pub(super) fn all_layers(bencher: Bencher<'_, '_>, ids: Ids, expected: StatusCode) {
        let rt = runtime();
        let _guard = rt.enter();
        let (layer, handle) = fast_ack();
        let service = ServiceBuilder::new()
            .layer(PayloadLayer::new())
            .layer(DedupLayer::new())
            .layer(layer)
            .service(service_fn(handler));
        rt.block_on(handle.started());
        run(bencher, &rt, service, ids, expected);
        check_processed(&rt, &handle);
    }

    #[divan::bench]
    fn unique(bencher: Bencher<'_, '_>) {
        all_layers(bencher, Ids::Unique, StatusCode::ACCEPTED);
    }

    #[divan::bench]
    fn duplicates(bencher: Bencher<'_, '_>) {
        all_layers(bencher, Ids::Duplicates, StatusCode::OK);
    }
}

/// The recommended stack with a `tracing_subscriber::fmt` subscriber at
/// `INFO` (writing to nowhere) as the thread's default: what the layers'
/// tracing costs a service that logs at `INFO`, against `all_layers/unique`
/// (no subscriber) of the same run. Its own group, after the others: a
/// scoped subscriber makes every callsite check it from then on.
#[divan::bench_group(sample_count = SAMPLES, sample_size = SAMPLE_SIZE)]
mod traced {
    use super::*;

    #[divan::bench]
    fn all_layers_unique_at_info(bencher: Bencher<'_, '_>) {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            all_layers::all_layers(bencher, Ids::Unique, StatusCode::ACCEPTED);
        });
    }
}

/// Drains fast-ack and checks that every accepted event was processed once
/// and none failed.
fn check_processed(rt: &Runtime, handle: &FastAckHandle) {
    let report = rt.block_on(handle.shutdown(std::time::Duration::from_secs(30)));
    assert!(report.drained, "fast-ack did not drain: {report:?}");
    let stats = handle.stats();
    assert_eq!(stats.dead_lettered, 0, "{stats:?}");
}
