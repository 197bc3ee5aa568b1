//! The demo: the provider simulator against a receiver with the full
//! recommended stack, on loopback, in one process. Nothing to install.
//!
//! ```sh
//! cargo run --release -p taskhook-tools --bin demo
//! cargo run --release -p taskhook-tools --bin demo -- --tasks 20000 --fail-rate 0.3 --time-factor 0.05
//! cargo run --release -p taskhook-tools --bin demo -- --help
//! ```
//!
//! It starts the receiver of `taskhook_tools::receiver` (payload → dedup →
//! fast-ack → handler, axum; the journal and the done task ids are in a
//! redb file in a new temporary directory, removed at the end, or in
//! `--journal PATH`; `--journal memory` keeps them in memory) on
//! `127.0.0.1:0`, then runs [`taskhook_sim`] against it: by default 5,000
//! tasks shaped like the provider's samples, 3% pushed twice at once
//! (immediate), 3% twice on two connections at the same moment
//! (concurrent), 3% again 60 provider-seconds later, with the provider's
//! timeout and retries (10 s; 10 s, 30 s, 60 s) scaled by the time factor
//! (default 0.05: a 0.5 s timeout, retries after 0.5, 1.5, 3 s). The
//! handler fails (`500`) with probability `--fail-rate` (default 0.2) and
//! is slow (`--slow-ms`, default 200) with probability `--slow-rate`
//! (default 0.02). A progress bar runs on
//! stderr while it works (when stderr is a terminal); a table follows.
//!
//! # The accounting
//!
//! Every task ends in exactly one of these, and the demo checks it:
//!
//! - **processed once**: the handler succeeded for it exactly once;
//! - **processed twice**: the handler succeeded for it more than once.
//!   Must be 0: dedup answers the provider's duplicate pushes (and the
//!   retries of pushes it already accepted) `200` without running anything;
//! - **dead letter**: accepted (`202`), then the handler failed every
//!   attempt of the fast-ack retry policy. With dedup in front, the task id
//!   is already "done" for dedup, so a later push of it is absorbed: the
//!   event is not lost, it waits in the dead letters. The demo then replays
//!   the dead letters (up to `--replay-rounds` times), as an operator
//!   would, and counts those processed by a replay as processed; the table
//!   shows the dead letters seen and those still dead at the end;
//! - **lost**: everything else. A task the provider never got a `2xx` for
//!   (it gave up after its retries, or got a `4xx`), or one answered `2xx`
//!   and neither processed nor dead-lettered. Must be 0.
//!
//! Pushes are counted as the simulator saw them: one first push per task,
//! the injected duplicate pushes, and the retries of either (after a `503`
//! from a full queue, an in-flight duplicate that took longer than the
//! dedup wait, or a timeout). The exit code is `1` when a task was
//! processed twice or lost, `2` on bad flags.
//!
//! The time factor compresses the provider's schedule, not the handler:
//! with `--capacity 128 --workers 8` the queue is too small for the burst,
//! the provider's retries (0.5 s to 3 s apart at the default factor)
//! meet a queue that is still full, are answered `503` until the provider
//! gives up, and the demo reports those tasks lost. Size the queue for a
//! burst over the real schedule (retries 10 s, 30 s, 60 s apart), or use a
//! durable journal and a larger capacity.
//!
//! With `--redis URL` (built with `--features redis`: `cargo run --release -p taskhook-tools
//! --features redis --bin demo -- --redis URL`) the receiver's dedup
//! store and journal are a `RedisStore` and a `RedisJournal` on that Redis
//! (under a key prefix of the run, so runs do not see each other's task
//! ids), as with the receiver's `--redis`.
//!
//! Ack latency is the time from sending a request to the end of its
//! answer, over every answered attempt; throughput is tasks per second of
//! the simulator's run (all pushes done), and events processed per second
//! until the receiver was drained. The run lasts at least as long as the
//! later duplicates' delay (60 provider-seconds, 3 s at the default
//! factor), so these are averages over the run, not peak rates.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::handler::Handler;
use http::StatusCode;
use taskhook::fast_ack::{FastAckLayer, RetryPolicy};
use taskhook::server::{serve, ServerLimits};
use taskhook::{FastAckHandle, TaskEvent};
use taskhook_sim::{Progress, Schedule, Simulator, UrlPolicy, Workload};
use tokio::net::TcpListener;

use taskhook_tools::cli::{parse_flags, parse_number, parse_probability, usage, Flag};
use taskhook_tools::receiver;
use taskhook_tools::Rng;

/// What the command line configures.
#[derive(Debug, Clone)]
struct Config {
    tasks: usize,
    seed: u64,
    time_factor: f64,
    immediate: f64,
    concurrent: f64,
    later: f64,
    later_after: Duration,
    concurrency: usize,
    fail_rate: f64,
    slow_rate: f64,
    slow: Duration,
    work: Duration,
    workers: usize,
    capacity: usize,
    attempts: u32,
    replay_rounds: u32,
    redis: receiver::RedisOptions,
    journal: JournalChoice,
    provider: taskhook_sim::Provider,
}

/// Where the demo's receiver keeps its journal and done task ids.
#[derive(Debug, Clone, PartialEq)]
enum JournalChoice {
    /// In memory.
    Memory,
    /// A redb file in a new temporary directory, removed at the end.
    Temporary,
    /// This redb file, kept.
    File(std::path::PathBuf),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tasks: 5_000,
            seed: 1,
            time_factor: 0.05,
            immediate: 0.03,
            concurrent: 0.03,
            later: 0.03,
            later_after: Duration::from_secs(60),
            concurrency: 64,
            fail_rate: 0.2,
            slow_rate: 0.02,
            slow: Duration::from_millis(200),
            work: Duration::from_millis(1),
            workers: 64,
            capacity: 1_024,
            attempts: 4,
            replay_rounds: 3,
            journal: JournalChoice::Temporary,
            provider: taskhook_sim::Provider::Apimart,
            redis: receiver::RedisOptions::default(),
        }
    }
}

const FLAGS: &[Flag<Config>] = &[
    Flag {
        name: "--redis",
        value: "URL",
        help: "dedup store and journal on this Redis (feature redis; keys under a prefix of this run)",
        set: |c, v| receiver::set_redis_url(&mut c.redis, v),
    },
    Flag {
        name: "--tasks",
        value: "N",
        help: "tasks to send [default: 5000]",
        set: |c, v| {
            c.tasks = parse_number(v)? as usize;
            Ok(())
        },
    },
    Flag {
        name: "--seed",
        value: "N",
        help: "seed of the workload and of the handler's failures [default: 1]",
        set: |c, v| {
            c.seed = parse_number(v)?;
            Ok(())
        },
    },
    Flag {
        name: "--time-factor",
        value: "F",
        help: "scales the provider's timeout and retry delays [default: 0.05]",
        set: |c, v| {
            c.time_factor = match v.parse::<f64>() {
                Ok(f) if f.is_finite() && f > 0.0 => f,
                _ => return Err("not a number greater than 0".to_owned()),
            };
            Ok(())
        },
    },
    Flag {
        name: "--duplicates",
        value: "P",
        help: "probability of each kind of duplicate push: immediate, concurrent, later [default: 0.03]",
        set: |c, v| {
            let p = parse_probability(v)?;
            (c.immediate, c.concurrent, c.later) = (p, p, p);
            Ok(())
        },
    },
    Flag {
        name: "--later-secs",
        value: "N",
        help: "provider-seconds before a later duplicate (scaled) [default: 60]",
        set: |c, v| {
            c.later_after = Duration::from_secs(parse_number(v)?);
            Ok(())
        },
    },
    Flag {
        name: "--concurrency",
        value: "N",
        help: "the simulator's requests in flight [default: 64]",
        set: |c, v| {
            c.concurrency = parse_number(v)?.max(1) as usize;
            Ok(())
        },
    },
    Flag {
        name: "--fail-rate",
        value: "F",
        help: "probability that a handler run answers 500 [default: 0.2]",
        set: |c, v| {
            c.fail_rate = parse_probability(v)?;
            Ok(())
        },
    },
    Flag {
        name: "--slow-rate",
        value: "F",
        help: "probability that a handler run is slow [default: 0.02]",
        set: |c, v| {
            c.slow_rate = parse_probability(v)?;
            Ok(())
        },
    },
    Flag {
        name: "--slow-ms",
        value: "N",
        help: "how long a slow handler run takes [default: 200]",
        set: |c, v| {
            c.slow = Duration::from_millis(parse_number(v)?);
            Ok(())
        },
    },
    Flag {
        name: "--work-ms",
        value: "N",
        help: "how long any other handler run takes [default: 1]",
        set: |c, v| {
            c.work = Duration::from_millis(parse_number(v)?);
            Ok(())
        },
    },
    Flag {
        name: "--workers",
        value: "N",
        help: "fast-ack workers running the handler at once [default: 64]",
        set: |c, v| {
            c.workers = parse_number(v)?.max(1) as usize;
            Ok(())
        },
    },
    Flag {
        name: "--capacity",
        value: "N",
        help: "fast-ack queue capacity; beyond it 503 + Retry-After [default: 1024]",
        set: |c, v| {
            c.capacity = parse_number(v)? as usize;
            Ok(())
        },
    },
    Flag {
        name: "--attempts",
        value: "N",
        help: "handler attempts per event before a dead letter [default: 4]",
        set: |c, v| {
            c.attempts = u32::try_from(parse_number(v)?).map_err(|e| e.to_string())?;
            Ok(())
        },
    },
    Flag {
        name: "--replay-rounds",
        value: "N",
        help: "times the dead letters are replayed at the end [default: 3]",
        set: |c, v| {
            c.replay_rounds = u32::try_from(parse_number(v)?).map_err(|e| e.to_string())?;
            Ok(())
        },
    },
    Flag {
        name: "--provider",
        value: "NAME",
        help: "the provider played and received: apimart, replicate, fal, openai, \
               standard-webhooks, kie, kling, midjourney-proxy [default: apimart]",
        set: |c, v| {
            c.provider = taskhook_sim::Provider::from_name(v)
                .filter(|p| taskhook::provider::by_name(p.name()).is_some())
                .ok_or_else(|| format!("unknown provider {v:?}"))?;
            Ok(())
        },
    },
    Flag {
        name: "--journal",
        value: "PATH|memory",
        help: "the journal and done task ids: a redb file, or memory \
               [default: a redb file in a new temporary directory]",
        set: |c, v| {
            c.journal = match v {
                "memory" => JournalChoice::Memory,
                path => JournalChoice::File(path.into()),
            };
            Ok(())
        },
    },
];

/// A temporary directory for the journal, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("taskhook-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// The handler: sometimes slow, sometimes failing, counting its successes.

#[derive(Debug, Clone)]
struct Handling {
    fail_rate: f64,
    slow_rate: f64,
    slow: Duration,
    work: Duration,
    rng: Arc<Rng>,
    processed: Arc<Mutex<HashMap<String, u32>>>,
}

async fn on_callback(State(h): State<Handling>, event: TaskEvent) -> StatusCode {
    let work = if h.rng.chance(h.slow_rate) {
        h.slow
    } else {
        h.work
    };
    tokio::time::sleep(work).await;
    if h.rng.chance(h.fail_rate) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    *h.processed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(event.id().to_owned())
        .or_default() += 1;
    StatusCode::OK
}

// ---------------------------------------------------------------------------
// The run.

/// What the demo measured.
#[derive(Debug)]
struct Outcome {
    tasks: usize,
    first_pushes: usize,
    duplicate_pushes: usize,
    intermediate_pushes: usize,
    late_pushes: usize,
    retries: usize,
    statuses: Vec<(String, usize)>,
    undelivered: usize,
    processed_once: usize,
    processed_twice: usize,
    dead_letters_seen: u64,
    still_dead: usize,
    lost: usize,
    ack: [Option<Duration>; 3],
    run: Duration,
    total: Duration,
}

/// Waits until nothing accepted is queued, running or waiting for a retry
/// (at most a minute: then what is left counts as lost).
async fn settled(handle: &FastAckHandle) {
    for _ in 0..6_000 {
        let stats = handle.stats();
        if stats.queued + stats.in_flight + stats.waiting_retry == 0
            && stats.accepted + stats.recovered == stats.processed + stats.dead_lettered
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("demo: the receiver did not settle within a minute");
}

/// Draws the progress bar on stderr until `done` is set.
async fn progress_bar(progress: Progress, handle: FastAckHandle, done: Arc<tokio::sync::Notify>) {
    let started = Instant::now();
    let draw = |final_draw: bool| {
        let total = progress.tasks_total().max(1);
        let tasks = progress.tasks_done();
        let width = 30;
        let filled = (tasks * width / total) as usize;
        let stats = handle.stats();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r[{}{}] {tasks}/{total} tasks  {} attempts  {} processed  queue {:>4}  {:.1}s ",
            "#".repeat(filled),
            ".".repeat(width as usize - filled),
            progress.attempts(),
            stats.processed,
            stats.queued + stats.waiting_retry,
            started.elapsed().as_secs_f64(),
        );
        if final_draw {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    };
    loop {
        tokio::select! {
            _ = done.notified() => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => draw(false),
        }
    }
    draw(true);
}

async fn run(config: &Config) -> std::io::Result<Outcome> {
    let processed = Arc::new(Mutex::new(HashMap::new()));
    let handling = Handling {
        fail_rate: config.fail_rate,
        slow_rate: config.slow_rate,
        slow: config.slow,
        work: config.work,
        rng: Arc::new(Rng::new(config.seed)),
        processed: Arc::clone(&processed),
    };
    // The default provider keeps the stack's default (fastest) parser.
    let profile = (config.provider != taskhook_sim::Provider::Apimart)
        .then(|| taskhook::provider::by_name(config.provider.name()))
        .flatten();
    // The receiver's own retries are its business, not the provider's:
    // quick ones, so a dead letter is rare and the demo stays short.
    let fast_ack = FastAckLayer::builder()
        .capacity(config.capacity)
        .concurrency(config.workers)
        .retry(
            RetryPolicy::new()
                .attempts(config.attempts)
                .base_delay(Duration::from_millis(20))
                .max_delay(Duration::from_millis(500)),
        );
    #[cfg(feature = "redis")]
    let use_redis = config.redis.url.is_some();
    #[cfg(not(feature = "redis"))]
    let use_redis = false;
    // Dropped (and removed) when the run is over.
    let mut _temp_dir = None;
    let journal = match &config.journal {
        _ if use_redis => None,
        JournalChoice::Memory => None,
        JournalChoice::File(path) => Some(path.clone()),
        JournalChoice::Temporary => {
            let dir = TempDir::new()?;
            let path = dir.0.join("journal.redb");
            _temp_dir = Some(dir);
            Some(path)
        }
    };
    match &journal {
        _ if use_redis => eprintln!("journal: Redis"),
        Some(path) => eprintln!(
            "journal: {} (redb, synced before every 2xx)",
            path.display()
        ),
        None => eprintln!("journal: in memory"),
    }
    #[cfg(feature = "redis")]
    let (app, handle) = if use_redis {
        // Keys of their own, so that runs with the same seed (the same task
        // ids) do not see each other's ids as duplicates.
        let mut redis = config.redis.clone();
        redis.prefix = Some(format!(
            "taskhook-demo-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        ));
        receiver::redis_app(
            profile.as_ref(),
            &redis,
            fast_ack,
            on_callback.with_state(handling),
        )
        .await?
    } else {
        receiver::journaled_app(
            profile.as_ref(),
            fast_ack,
            journal.as_deref(),
            on_callback.with_state(handling),
        )?
    };
    #[cfg(not(feature = "redis"))]
    let (app, handle) = receiver::journaled_app(
        profile.as_ref(),
        fast_ack,
        journal.as_deref(),
        on_callback.with_state(handling),
    )?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The hardened server with its defaults, and at most 5 s to close.
    let limits = ServerLimits::new().shutdown_timeout(Duration::from_secs(5));
    let server = tokio::spawn(
        serve(listener, app, limits)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .into_future(),
    );
    handle.started().await;

    let workload = Workload::new(config.tasks)
        .seed(config.seed)
        .immediate_duplicates(config.immediate)
        .concurrent_duplicates(config.concurrent)
        .later_duplicates(config.later, config.later_after)
        // For a provider that pushes every change: as many late
        // intermediate events (regressions to ignore) as later duplicates.
        .late_intermediate(config.later);
    let tasks = workload.generate_for(config.provider);
    let simulator = Simulator::new()
        .url_policy(UrlPolicy::new().allow_loopback_for_local_testing())
        .provider(config.provider)
        .schedule(Schedule::for_provider(config.provider).time_factor(config.time_factor))
        .concurrency(config.concurrency);
    eprintln!(
        "receiver on http://{addr}/callback; {} {} tasks, time factor {}",
        tasks.len(),
        config.provider,
        config.time_factor
    );

    let started = Instant::now();
    let done = Arc::new(tokio::sync::Notify::new());
    let bar = std::io::stderr().is_terminal().then(|| {
        tokio::spawn(progress_bar(
            simulator.progress(),
            handle.clone(),
            Arc::clone(&done),
        ))
    });
    let report = simulator
        .run_tasks(&format!("http://{addr}"), tasks)
        .await
        .map_err(std::io::Error::other)?;
    settled(&handle).await;
    done.notify_one();
    if let Some(bar) = bar {
        let _ = bar.await;
    }

    // Replay what failed for good, as an operator would.
    let dead_letters_seen = handle.stats().dead_lettered;
    for _ in 0..config.replay_rounds {
        if handle.dead_letters().is_empty() {
            break;
        }
        handle.replay_all().await.map_err(std::io::Error::other)?;
        settled(&handle).await;
    }
    let total = started.elapsed();
    let shutdown = handle.shutdown(Duration::from_secs(5)).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    if !shutdown.drained {
        eprintln!("shutdown left {} events", shutdown.left());
    }

    let summary = report.summary();
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for attempt in report.pushes().flat_map(|p| p.attempts.iter()) {
        let key = match attempt.result.status() {
            Some(status) => status.as_u16().to_string(),
            None => "no answer".to_owned(),
        };
        *statuses.entry(key).or_default() += 1;
    }
    let mut statuses: Vec<_> = statuses.into_iter().collect();
    statuses.sort();

    let processed = processed.lock().unwrap_or_else(PoisonError::into_inner);
    let dead: std::collections::HashSet<String> = handle
        .dead_letters()
        .iter()
        .filter_map(|l| l.task_id().map(str::to_owned))
        .collect();
    let mut outcome = Outcome {
        tasks: summary.tasks,
        first_pushes: summary.first_pushes,
        duplicate_pushes: summary.duplicate_pushes,
        intermediate_pushes: summary.intermediate_pushes,
        late_pushes: summary.late_pushes,
        retries: summary.retries,
        statuses,
        undelivered: summary.tasks_undelivered,
        processed_once: 0,
        processed_twice: 0,
        dead_letters_seen,
        still_dead: 0,
        lost: 0,
        ack: {
            let l = report.ack_latencies();
            [l.p50(), l.p99(), l.max()]
        },
        run: report.elapsed(),
        total,
    };
    for task in report.tasks() {
        match processed.get(&task.id).copied().unwrap_or(0) {
            0 if dead.contains(&task.id) && task.delivered() => outcome.still_dead += 1,
            0 => outcome.lost += 1,
            1 => outcome.processed_once += 1,
            _ => outcome.processed_twice += 1,
        }
    }
    Ok(outcome)
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
    )
}

fn print_table(o: &Outcome) {
    let statuses: Vec<String> = o
        .statuses
        .iter()
        .map(|(status, n)| format!("{status}: {n}"))
        .collect();
    let per_sec = |n: usize, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let rows = [
        ("tasks sent", o.tasks.to_string()),
        (
            "pushes",
            format!(
                "{} (first {}, duplicates {}) + {} retries",
                o.first_pushes + o.duplicate_pushes,
                o.first_pushes,
                o.duplicate_pushes,
                o.retries
            ),
        ),
        (
            "progress events",
            format!(
                "{} intermediate pushes, {} late after the final one (answered 200, never processed)",
                o.intermediate_pushes, o.late_pushes
            ),
        ),
        ("answers", statuses.join(", ")),
        ("processed once", o.processed_once.to_string()),
        (
            "processed twice",
            format!("{} (must be 0)", o.processed_twice),
        ),
        (
            "lost",
            format!(
                "{} (must be 0; {} of them never got a 2xx: the provider gave up)",
                o.lost, o.undelivered
            ),
        ),
        (
            "dead letters",
            format!(
                "{} (replayed; still dead at the end: {})",
                o.dead_letters_seen, o.still_dead
            ),
        ),
        (
            "ack latency",
            format!(
                "p50 {}, p99 {}, max {}",
                ms(o.ack[0]),
                ms(o.ack[1]),
                ms(o.ack[2])
            ),
        ),
        (
            "throughput",
            format!(
                "{:.0} tasks/s sent ({:.2} s); {:.0} tasks/s processed ({:.2} s, replays included)",
                per_sec(o.tasks, o.run),
                o.run.as_secs_f64(),
                per_sec(o.processed_once + o.processed_twice, o.total),
                o.total.as_secs_f64(),
            ),
        ),
    ];
    for (name, value) in rows {
        println!("{name:<16} {value}");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let about =
        "The provider simulator against a receiver with the full taskhook stack, on loopback.";
    let config = match parse_flags(FLAGS, std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{}", usage(about, "demo", FLAGS));
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("demo: {error}");
            return ExitCode::from(2);
        }
    };
    match run(&config).await {
        Ok(outcome) => {
            print_table(&outcome);
            if outcome.processed_twice == 0 && outcome.lost == 0 {
                ExitCode::SUCCESS
            } else {
                eprintln!("demo: FAILED: a task was processed twice or lost");
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("demo: {error}");
            ExitCode::FAILURE
        }
    }
}
