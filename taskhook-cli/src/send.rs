//! `taskhook send`: realistic callbacks from the provider simulator
//! (`taskhook-sim`) to any receiver, with duplicate pushes and the
//! provider's timeout and retries, then a table of what the provider saw.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use taskhook_sim::{Provider, Report, Schedule, Signing, Simulator, UrlPolicy, Workload};

/// `taskhook send`: the flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct SendArgs {
    /// The receiver's base URL, as registered with the provider: pushes go
    /// to `<URL>/callback`.
    #[arg(long, env = "TASKHOOK_SEND_URL", value_name = "URL")]
    url: String,

    /// Tasks to push.
    #[arg(long, value_name = "N", default_value_t = 100)]
    tasks: usize,

    /// The share of tasks pushed a second time (split evenly between a
    /// push right after the first, one at the same moment, and one later).
    #[arg(long, value_name = "F", default_value_t = 0.05, value_parser = probability)]
    duplicates: f64,

    /// Tasks started per second (0: as fast as `--concurrency` allows).
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    rate: f64,

    /// HTTP requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    concurrency: usize,

    /// Scales the provider's schedule: its 10 s timeout, its retries after
    /// 10, 30 and 60 s, and the later duplicates' 60 s (1: real time).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    time_factor: f64,

    /// The seed of the tasks (the same seed, the same task ids: a receiver
    /// sees a second run as duplicates).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Allow a base URL on a public or private network, not only on this
    /// machine.
    #[arg(long)]
    any_address: bool,

    /// The provider played: its body shape, its events per task, its retry
    /// schedule and what a `4xx` means to it (apimart, replicate, fal,
    /// openai, standard-webhooks, kie, kling, midjourney-proxy).
    #[arg(long, env = "TASKHOOK_SEND_PROVIDER", value_name = "NAME", default_value = "apimart", value_parser = provider)]
    provider: Provider,

    /// Signs every attempt as the provider does: a Standard Webhooks
    /// `whsec_` secret (v1, HMAC) or `whsk_` secret key (v1a, Ed25519)
    /// for replicate, openai and standard-webhooks; KIE's HMAC secret for
    /// kie; a `whsk_` key (the Ed25519 seed) for fal, whose public JWKS
    /// `--jwks-out` writes.
    #[arg(
        long,
        env = "TASKHOOK_SEND_SIGNING_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    signing_secret: Option<String>,

    /// Sends a static secret header on every push (`Name: value`), as
    /// providers that authenticate with a header of the user's choice do.
    #[arg(long, value_name = "HEADER", conflicts_with = "signing_secret")]
    signing_header: Option<String>,

    /// Writes the public keys of fal's signatures, as a JWKS, to this file
    /// (for the receiver's `--jwks-file`).
    #[arg(long, value_name = "FILE")]
    jwks_out: Option<std::path::PathBuf>,

    /// The share of tasks of a provider with several events per task that
    /// push an intermediate event again after the final one (a regression
    /// the receiver must ignore).
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = probability)]
    late_intermediate: f64,
}

fn provider(value: &str) -> Result<Provider, String> {
    Provider::from_name(value).ok_or_else(|| {
        let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
        format!("one of {}", names.join(", "))
    })
}

/// How `args` asks the simulator to sign.
fn signing(args: &SendArgs) -> Result<Signing, String> {
    if let Some(header) = &args.signing_header {
        let (name, value) = header
            .split_once(':')
            .ok_or("--signing-header: `Name: value`")?;
        return Signing::header(name.trim(), value.trim())
            .map_err(|e| format!("--signing-header: {e}"));
    }
    let Some(secret) = &args.signing_secret else {
        return Ok(Signing::none());
    };
    let signing = match args.provider {
        Provider::Kie => Signing::kie(secret.as_bytes()),
        Provider::Fal => {
            let seed = taskhook_sim::sign::decode_standard_webhooks_secret_key(secret)
                .map_err(|e| format!("--signing-secret (fal: a `whsk_` key): {e}"))?;
            Signing::fal(seed, "taskhook-send")
        }
        _ if secret.starts_with("whsk_") => Signing::standard_webhooks_ed25519(secret)
            .map_err(|e| format!("--signing-secret: {e}"))?,
        _ => Signing::standard_webhooks_secret(secret)
            .map_err(|e| format!("--signing-secret: {e}"))?,
    };
    Ok(signing)
}

fn probability(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err("a probability between 0 and 1".to_owned()),
    }
}

/// Runs the pushes and prints the table: `Ok(true)` when every task got a
/// `2xx` from the receiver.
pub(crate) async fn run(args: SendArgs) -> Result<bool, String> {
    if !(args.time_factor.is_finite() && args.time_factor > 0.0) {
        return Err("--time-factor must be positive".into());
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let share = args.duplicates / 3.0;
    let workload = Workload::new(args.tasks)
        .seed(seed)
        .immediate_duplicates(share)
        .concurrent_duplicates(share)
        .later_duplicates(share, Duration::from_secs(60))
        .late_intermediate(args.late_intermediate);
    let signing = signing(&args)?;
    if let Some(path) = &args.jwks_out {
        let jwks = signing
            .jwks()
            .ok_or("--jwks-out: only fal's signatures (--provider fal --signing-secret whsk_..) have a JWKS")?;
        std::fs::write(path, jwks).map_err(|e| format!("--jwks-out {}: {e}", path.display()))?;
    }
    let policy = if args.any_address {
        UrlPolicy::new()
    } else {
        UrlPolicy::new().allow_loopback_for_local_testing()
    };
    let simulator = Simulator::new()
        .url_policy(policy)
        .provider(args.provider)
        .signing(signing)
        .schedule(Schedule::for_provider(args.provider).time_factor(args.time_factor))
        .concurrency(args.concurrency)
        .rate(args.rate);
    eprintln!(
        "send: {} {} tasks (seed {seed}) to {}/callback",
        args.tasks,
        args.provider,
        args.url.trim_end_matches('/')
    );
    let report = simulator
        .run(&args.url, &workload)
        .await
        .map_err(|e| e.to_string())?;
    let table = table(&report);
    print!("{table}");
    Ok(report.summary().tasks_undelivered == 0)
}

/// The demo's table, for what a sender can see.
fn table(report: &Report) -> String {
    let summary = report.summary();
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for attempt in report.pushes().flat_map(|push| &push.attempts) {
        let answer = match attempt.result.status() {
            Some(status) => status.as_u16().to_string(),
            None => "no answer".to_owned(),
        };
        *answers.entry(answer).or_default() += 1;
    }
    let answers: Vec<String> = answers
        .iter()
        .map(|(answer, n)| format!("{answer}: {n}"))
        .collect();
    let latency = report.ack_latencies();
    let ms = |d: Option<Duration>| {
        d.map_or_else(
            || "-".to_owned(),
            |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
        )
    };
    let elapsed = report.elapsed().as_secs_f64();
    let rows = [
        ("tasks sent", summary.tasks.to_string()),
        (
            "pushes",
            format!(
                "{} (first {}, duplicates {}) + {} retries",
                summary.pushes, summary.first_pushes, summary.duplicate_pushes, summary.retries
            ),
        ),
        (
            "progress events",
            format!(
                "{} intermediate pushes, {} late (after the final one)",
                summary.intermediate_pushes, summary.late_pushes
            ),
        ),
        ("answers", answers.join(", ")),
        (
            "delivered",
            format!(
                "{} tasks of {} got a 2xx",
                summary.tasks_delivered, summary.tasks
            ),
        ),
        (
            "lost",
            format!(
                "{} (must be 0: the provider gave up on them; {} pushes got a 4xx)",
                summary.tasks_undelivered, summary.rejected
            ),
        ),
        (
            "ack latency",
            format!(
                "p50 {}, p99 {}, max {}",
                ms(latency.p50()),
                ms(latency.p99()),
                ms(latency.max())
            ),
        ),
        (
            "throughput",
            format!("{:.0} tasks/s sent ({elapsed:.2} s)", report.throughput()),
        ),
    ];
    rows.iter()
        .map(|(name, value)| format!("{name:<16} {value}\n"))
        .collect()
}
