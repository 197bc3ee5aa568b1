//! A callback receiver with the full recommended stack, driven from the
//! command line: the contract other tools (load generators, the simulator,
//! a real provider) run against.
//!
//! ```sh
//! cargo run --release -p taskhook-tools --bin receiver -- --listen 127.0.0.1:8080 \
//!     --processed-log processed.jsonl --handler-delay-ms 20 --fail-rate 0.1
//! ```
//!
//! An axum app, served by [`taskhook::server`] (HTTP/1.1 and HTTP/2 with
//! prior knowledge on one port, header and request timeouts, a connection
//! cap), serves `POST /callback` through payload → dedup → fast-ack →
//! handler, built by `taskhook::CallbackStack`:
//!
//! - the payload layer parses the body once (`400`/`413`/`405` for input
//!   that can never succeed);
//! - the dedup layer answers a task id it has seen `200` (duplicate), so the
//!   handler runs once per task;
//! - the fast-ack layer answers `202 Accepted` once the event is journaled
//!   (in memory, or in the redb file of `--journal`, which also remembers
//!   the done task ids across restarts) and queued (`503` + `Retry-After`
//!   when full), then runs the handler in the background, retrying a `500`
//!   with backoff; an event that fails every attempt becomes a dead letter
//!   (listed at shutdown);
//! - the handler waits `--handler-delay-ms`, answers `500` with probability
//!   `--fail-rate`, and otherwise appends the event to `--processed-log`.
//!
//! The flags, with their defaults: `receiver --help`.
//!
//! # Contract
//!
//! - The first line on stdout is `listening on <ADDR>` with the real port
//!   (flushed at once), then nothing else is written to stdout; logs go to
//!   stderr (`RUST_LOG`, default `warn`).
//! - `--processed-log`: one line per successful handler run,
//!   `{"id":"..","status":"..","urls":[".."]}` (`status` is `null` when the
//!   payload has none; `urls` lists every result URL of any media kind, in
//!   order). The file is opened for append; each line is written with one
//!   `write` call as the run succeeds, before the handler answers. A
//!   `SIGKILL` can therefore lose at most a partial last line (a reader
//!   should ignore a last line without its `\n`). The line is written before
//!   the event is marked done: with a durable journal, a crash between the
//!   two replays the event, so a consumer must treat the log as
//!   at-least-once and key it by `id`.
//! - On SIGINT or SIGTERM it stops intake (new callbacks get `503` with
//!   `Retry-After`, so the provider retries later), drains the queue, the
//!   running handlers and their retries for up to `--drain-secs`, prints the
//!   shutdown report on stderr, closes the HTTP server (idle connections at
//!   once, the others after their answer, within 5 s), and exits `0`; it
//!   exits `1` if the deadline left events unfinished (with the in-memory
//!   journal they are lost; with `--journal` they stay pending in the file
//!   and run at the next start), `2` on bad flags.
//! - With `--journal`, a `SIGKILL` loses nothing that was answered `2xx`:
//!   the next start replays the pending events before it takes new ones
//!   (`503 starting` meanwhile), and a duplicate push of a task answered
//!   before the crash is answered `200` duplicate.
//!
//! # Several replicas
//!
//! With `--redis URL` (and the feature `redis`) the dedup store is a
//! `RedisStore` and the fast-ack journal a `RedisJournal`, both on that
//! Redis: start several receivers with the same URL behind a load balancer.
//! A task id is accepted once across them; the entries of a receiver that
//! dies are taken over by the others after `--claim-idle-ms`; delivery is
//! at least once (the processed log may then show an id twice, see the
//! contract above). A dedup claim of a receiver that died mid-request
//! expires after `--dedup-claim-ms` (default 10 s, the provider's wait: in
//! front of fast-ack a live claim lasts only until the `202`), so the
//! provider's retry is not held up. Run Redis with `appendonly yes` and `appendfsync always`
//! (README, "Running several replicas").
//!
//! The functions that build the stack are shared with the demo
//! (`src/bin/demo.rs`) and the hostile-input tests.

use std::convert::Infallible;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::handler::Handler;
use axum::Router;
use http::{Request, Response, StatusCode};
use taskhook::body::BufferedBody;
use taskhook::fast_ack::{FastAckBuilder, FastAckLayer, ResponseStatus};
use taskhook::provider::Profile;
use taskhook::server::{self, ServerLimits};
use taskhook::{CallbackStack, FastAckHandle, TaskEvent, TaskStatus};
use tokio::net::TcpListener;
use tower::{BoxError, Service};

use crate::cli::{parse_flags, parse_number, parse_positive, parse_probability, usage, Flag};
use crate::Rng;

// ---------------------------------------------------------------------------
// Flags: every one in this table, parsed by `Config::from_args`.

/// What the command line configures.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `--listen`: the address to listen on.
    pub listen: SocketAddr,
    /// `--header-timeout-ms`, `--max-connections`: the server's limits.
    pub limits: ServerLimits,
    /// `--processed-log`: one JSON line per successful handler run.
    pub processed_log: Option<PathBuf>,
    /// `--handler-delay-ms`: the handler's work time.
    pub handler_delay: Duration,
    /// `--fail-rate`: the probability that a handler run answers `500`.
    pub fail_rate: f64,
    /// `--drain-secs`: how long to drain at shutdown.
    pub drain: Duration,
    /// `--journal`: the redb file of the journal (in memory without).
    pub journal: Option<PathBuf>,
    /// `--redis URL` and its settings: a dedup store and journal shared by
    /// replicas.
    pub redis: RedisOptions,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            limits: ServerLimits::default(),
            processed_log: None,
            handler_delay: Duration::ZERO,
            fail_rate: 0.0,
            drain: Duration::from_secs(25),
            journal: None,
            redis: RedisOptions::default(),
        }
    }
}

/// The `--redis` settings, shared with the demo.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisOptions {
    /// `--redis`: the Redis URL (none: no Redis).
    pub url: Option<String>,
    /// The key prefix (the demo's: one per run).
    pub prefix: Option<String>,
    /// `--replica`: this replica's consumer name.
    pub replica: Option<String>,
    /// `--claim-idle-ms`: when a silent replica's entries are taken over.
    pub claim_idle: Option<Duration>,
    /// `--dedup-claim-ms`: when a dead replica's dedup claims expire.
    pub dedup_claim: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            url: None,
            prefix: None,
            replica: None,
            claim_idle: None,
            dedup_claim: Duration::from_secs(10),
        }
    }
}

/// `--redis URL`: refused when built without the feature.
pub fn set_redis_url(options: &mut RedisOptions, url: &str) -> Result<(), String> {
    if !cfg!(feature = "redis") {
        return Err("built without the redis feature (--features redis)".to_owned());
    }
    options.url = Some(url.to_owned());
    Ok(())
}

const FLAGS: &[Flag<Config>] = &[
    Flag {
        name: "--listen",
        value: "ADDR",
        help: "address to listen on; port 0 picks a free port [default: 127.0.0.1:8080]",
        set: |c, v| {
            c.listen = v.parse().map_err(|e| format!("not an address: {e}"))?;
            Ok(())
        },
    },
    Flag {
        name: "--header-timeout-ms",
        value: "N",
        help: "close a connection whose request header (or next request) takes over N ms [default: 5000]",
        set: |c, v| {
            c.limits = std::mem::take(&mut c.limits)
                .header_timeout(Duration::from_millis(parse_positive(v)?));
            Ok(())
        },
    },
    Flag {
        name: "--max-connections",
        value: "N",
        help: "connections served at once; more wait in the listen backlog [default: 1024]",
        set: |c, v| {
            let max = usize::try_from(parse_positive(v)?).map_err(|_| "too large".to_owned())?;
            c.limits = std::mem::take(&mut c.limits).max_connections(max);
            Ok(())
        },
    },
    Flag {
        name: "--processed-log",
        value: "PATH",
        help: "append one JSON line {\"id\",\"status\",\"urls\"} per successful handler run",
        set: |c, v| {
            c.processed_log = Some(PathBuf::from(v));
            Ok(())
        },
    },
    Flag {
        name: "--handler-delay-ms",
        value: "N",
        help: "the handler's work time in milliseconds [default: 0]",
        set: |c, v| {
            c.handler_delay = Duration::from_millis(parse_number(v)?);
            Ok(())
        },
    },
    Flag {
        name: "--fail-rate",
        value: "F",
        help: "probability (0..=1) that a handler run answers 500 [default: 0]",
        set: |c, v| {
            c.fail_rate = parse_probability(v)?;
            Ok(())
        },
    },
    Flag {
        name: "--drain-secs",
        value: "N",
        help: "on SIGINT/SIGTERM, seconds to wait for the queue to drain [default: 25]",
        set: |c, v| {
            c.drain = Duration::from_secs(parse_number(v)?);
            Ok(())
        },
    },
    Flag {
        name: "--journal",
        value: "PATH",
        help: "keep the journal and the done task ids in this redb file [default: in memory]",
        set: |c, v| {
            c.journal = Some(PathBuf::from(v));
            Ok(())
        },
    },
    Flag {
        name: "--redis",
        value: "URL",
        help: "share dedup and the queue with other replicas through Redis (feature redis)",
        set: |c, v| set_redis_url(&mut c.redis, v),
    },
    Flag {
        name: "--replica",
        value: "NAME",
        help: "with --redis: this replica's consumer name [default: unique per process]",
        set: |c, v| {
            c.redis.replica = Some(v.to_owned());
            Ok(())
        },
    },
    Flag {
        name: "--claim-idle-ms",
        value: "N",
        help: "with --redis: take over a silent replica's entries after N ms [default: 60000]",
        set: |c, v| {
            c.redis.claim_idle = Some(Duration::from_millis(parse_number(v)?.max(1)));
            Ok(())
        },
    },
    Flag {
        name: "--dedup-claim-ms",
        value: "N",
        help: "with --redis: a dead replica's dedup claims expire after N ms [default: 10000]",
        set: |c, v| {
            c.redis.dedup_claim = Duration::from_millis(parse_number(v)?.max(1));
            Ok(())
        },
    },
];

impl Config {
    /// Parses the arguments (without the program name): `Ok(None)` for
    /// `--help`.
    pub fn from_args<I>(args: I) -> Result<Option<Self>, String>
    where
        I: IntoIterator<Item = String>,
    {
        parse_flags(FLAGS, args)
    }

    /// The usage text.
    pub fn usage() -> String {
        usage(
            "A callback receiver with the full taskhook stack on POST /callback.",
            "receiver",
            FLAGS,
        )
    }
}

// ---------------------------------------------------------------------------
// The stack.

/// The app: the stack on `fast_ack` and `handler` at `/callback`, with the
/// in-memory journal, or with the journal in the redb file `journal`
/// (`--journal`), which also remembers the done task ids across restarts.
/// Also answers the handle on the fast-ack state. With `profile`, the
/// stack reads that provider's pushes (`CallbackStack::profile`).
pub fn journaled_app<H, B>(
    profile: Option<&Arc<dyn Profile>>,
    fast_ack: FastAckBuilder,
    journal: Option<&Path>,
    handler: H,
) -> std::io::Result<(Router, FastAckHandle)>
where
    H: Service<Request<BufferedBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    Response<B>: ResponseStatus,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut stack = CallbackStack::new().fast_ack(fast_ack);
    if let Some(profile) = profile {
        stack = stack.profile(Arc::clone(profile));
    }
    let stack = match journal {
        Some(path) => {
            let journal = taskhook::backend::redb::RedbJournal::open(path).map_err(|error| {
                std::io::Error::other(format!("journal {}: {error}", path.display()))
            })?;
            stack.journal(journal)
        }
        None => stack,
    };
    let (callback, handle) = stack.build(handler);
    Ok((router(callback), handle))
}

/// The app: the stack at `/callback` (it answers other methods `405`).
pub fn router<S>(callback: S) -> Router
where
    S: Service<Request<axum::body::Body>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    Router::new().route_service("/callback", callback)
}

/// Serves `app` with `taskhook::server` (HTTP/1.1 and HTTP/2, header
/// timeout, connection cap, request timeout) on `listener` until `shutdown`
/// resolves, then stops accepting and lets the open connections finish for
/// up to 5 s: an idle one is closed at once, one in a request closes after
/// its answer.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = limits.shutdown_timeout(Duration::from_secs(5));
    server::serve(listener, app, limits)
        .with_graceful_shutdown(shutdown)
        .await
}

// ---------------------------------------------------------------------------
// The handler.

/// What the handler does, shared by its runs.
#[derive(Debug, Clone)]
struct Processing {
    delay: Duration,
    fail_rate: f64,
    log: Option<Arc<ProcessedLog>>,
    rng: Arc<Rng>,
}

async fn on_callback(State(processing): State<Processing>, event: TaskEvent) -> StatusCode {
    if !processing.delay.is_zero() {
        tokio::time::sleep(processing.delay).await;
    }
    if processing.rng.chance(processing.fail_rate) {
        // Retried by the fast-ack workers, then dead-lettered.
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if let Some(log) = &processing.log {
        if let Err(error) = log.record(&event) {
            tracing::error!(id = event.id(), %error, "processed log not written");
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    StatusCode::OK
}

/// The `--processed-log` file: whole lines, appended under a lock.
#[derive(Debug)]
struct ProcessedLog {
    file: Mutex<File>,
}

impl ProcessedLog {
    fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// Appends `{"id":..,"status":..,"urls":[..]}` and a newline in one
    /// `write` (a `File` has no user-space buffer: the line is in the
    /// kernel once this returns). A small blocking write, kept on the
    /// worker for simplicity.
    fn record(&self, event: &TaskEvent) -> std::io::Result<()> {
        let line = serde_json::json!({
            "id": event.id(),
            "status": event.status().map(TaskStatus::as_str),
            "urls": event.urls().map(|u| u.url()).collect::<Vec<_>>(),
        });
        let mut bytes = serde_json::to_vec(&line)?;
        bytes.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(&bytes)?;
        file.flush()
    }
}

/// The receiver's app and the handle on its fast-ack state.
async fn app(config: &Config) -> std::io::Result<(Router, FastAckHandle)> {
    let log = match &config.processed_log {
        Some(path) => Some(Arc::new(ProcessedLog::open(path)?)),
        None => None,
    };
    let processing = Processing {
        delay: config.handler_delay,
        fail_rate: config.fail_rate,
        log,
        rng: Arc::new(Rng::from_time()),
    };
    let fast_ack = FastAckLayer::builder()
        .capacity(10_000)
        .concurrency(64)
        .on_dead_letter(|letter| {
            tracing::warn!(
                seq = letter.seq(),
                id = letter.task_id(),
                failure = %letter.failure(),
                "dead letter"
            );
        });
    if config.journal.is_some() && config.redis.url.is_some() {
        return Err(std::io::Error::other(
            "--journal and --redis are two different journals: give one",
        ));
    }
    #[cfg(feature = "redis")]
    if config.redis.url.is_some() {
        return redis_app(
            None,
            &config.redis,
            fast_ack,
            on_callback.with_state(processing),
        )
        .await;
    }
    journaled_app(
        None,
        fast_ack,
        config.journal.as_deref(),
        on_callback.with_state(processing),
    )
}

/// The app with `--redis`: the same stack on a `RedisStore` and a
/// `RedisJournal` shared by every replica that uses the same Redis (and
/// prefix). Without a URL, an error.
#[cfg(feature = "redis")]
pub async fn redis_app<H, B>(
    profile: Option<&Arc<dyn Profile>>,
    config: &RedisOptions,
    fast_ack: FastAckBuilder,
    handler: H,
) -> std::io::Result<(Router, FastAckHandle)>
where
    H: Service<Request<BufferedBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    Response<B>: ResponseStatus,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    use taskhook::backend::redis::{RedisConnection, RedisJournal, RedisStore};

    let url = config
        .url
        .as_deref()
        .ok_or_else(|| std::io::Error::other("no Redis URL"))?;
    let redis = RedisConnection::connect(url)
        .await
        .map_err(std::io::Error::other)?;
    let mut journal = RedisJournal::builder(redis.clone());
    let mut store = RedisStore::builder(redis);
    if let Some(prefix) = &config.prefix {
        journal = journal.prefix(prefix.clone());
        store = store.prefix(prefix.clone());
    }
    if let Some(name) = &config.replica {
        journal = journal.consumer(name.clone());
    }
    if let Some(idle) = config.claim_idle {
        journal = journal.claim_idle(idle);
    }
    let journal = journal.build().await.map_err(std::io::Error::other)?;
    // In front of fast-ack a claim only lasts until the `202` (milliseconds):
    // a claim older than the provider's 10 s wait belongs to a replica that
    // died mid-request, and must not hold the provider's retry up.
    let store = store.claim_timeout(config.dedup_claim).build();
    let mut stack = CallbackStack::new().fast_ack(fast_ack);
    if let Some(profile) = profile {
        stack = stack.profile(Arc::clone(profile));
    }
    let (callback, handle) = stack
        .journal(journal)
        .dedup(taskhook::DedupLayer::with_store(store))
        .build(handler);
    Ok((router(callback), handle))
}

// ---------------------------------------------------------------------------
// Running it.

/// Installs the SIGINT (Ctrl-C) and SIGTERM handlers now, and answers a
/// future that resolves with the name of the first signal received.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = &'static str>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        })
    }
}

/// Runs the receiver until SIGINT or SIGTERM, then drains (see the
/// contract above): `Ok(false)` when the drain deadline left events
/// unfinished.
pub async fn run(config: Config) -> std::io::Result<bool> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let (app, handle) = app(&config).await?;

    // Install the signal handlers before announcing the address, so that a
    // signal sent right after the line is read is not missed.
    let signal = shutdown_signal()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with(listener, app, config.limits.clone(), async {
        let _ = stop_rx.await;
    }));
    handle.started().await;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        stdout.flush()?;
    }

    let name = signal.await;
    eprintln!(
        "{name}: stopping intake, draining for up to {:?}",
        config.drain
    );
    // Drain first: meanwhile the server still answers, `503` + Retry-After.
    let report = handle.shutdown(config.drain).await;
    let stats = handle.stats();
    eprintln!(
        "shutdown: drained={} left={} (queued {}, in flight {}, waiting retry {})",
        report.drained,
        report.left(),
        report.queued.len(),
        report.in_flight.len(),
        report.waiting_retry.len(),
    );
    eprintln!(
        "shutdown: accepted={} processed={} failed_attempts={} retried={} dead_letters={} \
         rejected_full={} rejected_unavailable={}",
        stats.accepted,
        stats.processed,
        stats.failed_attempts,
        stats.retried,
        stats.dead_letters,
        stats.rejected_full,
        stats.rejected_unavailable,
    );
    for letter in handle.dead_letters() {
        eprintln!(
            "dead letter: seq={} id={} attempts={} failure={}",
            letter.seq(),
            letter.task_id().unwrap_or("-"),
            letter.attempts(),
            letter.failure()
        );
    }

    let _ = stop_tx.send(());
    // Open keep-alive connections are closed between requests; a client
    // that holds one mid-request holds the exit up for 5 s at most.
    match server.await {
        Ok(result) => result?,
        Err(_) => eprintln!("shutdown: the HTTP server panicked"),
    }
    Ok(report.drained)
}
