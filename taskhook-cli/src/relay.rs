//! `taskhook relay`: the callback stack in front of an app in any language.
//!
//! The public listener serves `POST /callback` (or `/hooks/<token>/callback`
//! with `--path-token`) through the IP allowlist and the path token (when
//! configured), then payload → dedup → fast-ack, whose handler is
//! [`Forward`]: each accepted task goes to `--upstream`, once, retried with
//! backoff while the app is down or answers `5xx`, a dead letter when the
//! app refuses it with a `4xx` or every attempt failed. The journal and the
//! done task ids are in a redb file in `--data-dir` (or on `--redis`), so a
//! `2xx` survives a `SIGKILL` and a duplicate after a restart is still
//! recognised. The admin listener is [`crate::admin`].

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::Request;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use taskhook::backend::redb::RedbJournal;
use taskhook::backend::redis::{RedisConnection, RedisJournal, RedisStore};
use taskhook::body::BufferedBody;
use taskhook::dedup::{ById, DedupStats, DedupStore};
use taskhook::fast_ack::{FastAckBuilder, FastAckLayer, RetryPolicy};
use taskhook::forward::Forward;
use taskhook::provider::Authenticity;
use taskhook::server::{serve, ServerLimits};
use taskhook::verify::{IpAllowLayer, PathTokenLayer};
use taskhook::{CallbackStack, DedupLayer, FastAckHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};

use crate::admin::{self, Admin};
use crate::config::{JournalKind, Jwks, Relay, Signature};

/// How long the servers have to close their connections at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the relay until SIGTERM or SIGINT, then drains: `Ok(())` once it
/// stopped cleanly (what the drain left is still in the durable journal,
/// forwarded after the next start).
pub(crate) async fn run(relay: Relay) -> Result<(), String> {
    let prometheus = install_metrics()?;
    let listener = TcpListener::bind(relay.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", relay.listen))?;
    let admin_listener = TcpListener::bind(relay.admin_listen)
        .await
        .map_err(|e| format!("--admin-listen {}: {e}", relay.admin_listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;

    let forward = forward(&relay)?;
    let (callback, handle, dedup_stats) = stack(&relay, forward).await?;
    let app = public_app(&relay, callback);
    let admin = Admin::new(
        handle.clone(),
        dedup_stats,
        prometheus,
        relay.admin_token.clone(),
    );

    // Signal handlers before the address is announced: a signal sent right
    // after the line is read is not missed.
    let mut signal = shutdown_signal().map_err(|e| format!("signal handlers: {e}"))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let limits = ServerLimits::default().shutdown_timeout(CLOSE_TIMEOUT);
    let public = tokio::spawn({
        let serving =
            serve(listener, app, limits.clone()).with_graceful_shutdown(stopped(stop_rx.clone()));
        async move { serving.await }
    });
    let admin_server = tokio::spawn({
        let serving = serve(admin_listener, admin::router(admin.clone()), limits)
            .with_graceful_shutdown(stopped(stop_rx));
        async move { serving.await }
    });
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}").map_err(|e| e.to_string())?;
        writeln!(stdout, "admin listening on {admin_addr}").map_err(|e| e.to_string())?;
        stdout.flush().map_err(|e| e.to_string())?;
    }
    tracing::info!(%addr, %admin_addr, upstream = %relay.upstream, "relay started; replaying the journal");
    tokio::select! {
        () = handle.started() => {
            admin.set_started();
            tracing::info!(queued = handle.queue_depth(), "ready");
        }
        name = signalled(&mut signal) => {
            tracing::info!(signal = name, "stopped while starting");
        }
    }

    let name = signalled(&mut signal).await;
    tracing::info!(signal = name, drain = ?relay.drain, "stopping intake (503 + Retry-After), draining");
    admin.set_draining();
    let report = handle.shutdown(relay.drain).await;
    if report.drained {
        tracing::info!("drained");
    } else {
        tracing::warn!(
            left = report.left(),
            "drain deadline passed; the events left stay in the journal and are forwarded after the next start"
        );
    }
    let _ = stop_tx.send(true);
    for server in [public, admin_server] {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "server"),
            Err(_) => tracing::error!("a server task panicked"),
        }
    }
    Ok(())
}

/// The Prometheus recorder behind `/metrics`, with its upkeep (histogram
/// summaries are folded every few seconds).
fn install_metrics() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets(taskhook::metrics::DURATION_BUCKETS)
        .map_err(|e| format!("metrics buckets: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))?;
    taskhook::metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn forward(relay: &Relay) -> Result<Forward, String> {
    let mut builder = Forward::builder(relay.upstream.to_string())
        .timeout(relay.upstream_timeout)
        .concurrency(relay.upstream_concurrency);
    for (name, value) in &relay.upstream_headers {
        builder = builder.header(name.clone(), value.clone());
    }
    builder.build().map_err(|e| format!("--upstream: {e}"))
}

fn fast_ack(relay: &Relay) -> FastAckBuilder {
    FastAckLayer::builder()
        .capacity(relay.queue_capacity)
        .concurrency(relay.upstream_concurrency)
        .retry(
            RetryPolicy::new()
                .attempts(relay.max_attempts)
                .base_delay(relay.retry_base)
                .max_delay(relay.retry_max),
        )
        .on_dead_letter(|letter| {
            tracing::warn!(
                seq = letter.seq(),
                task_id = letter.task_id(),
                attempts = letter.attempts(),
                failure = %letter.failure(),
                "dead letter (replay it from the admin listener)"
            );
        })
}

/// What the public app routes to, and the admin's view of it.
type Built = (
    Router,
    FastAckHandle,
    Arc<dyn Fn() -> DedupStats + Send + Sync>,
);

/// The stack around `forward` on the embedded redb journal, or on Redis.
async fn stack(relay: &Relay, forward: Forward) -> Result<Built, String> {
    let fast_ack = fast_ack(relay);
    // Done task ids outlive the provider's retries (24 h, 6 days for
    // OpenAI's 72 h).
    let ttl = relay.profile.default_time_to_live();
    if let Some(url) = &relay.redis {
        let redis = RedisConnection::connect(url)
            .await
            .map_err(|e| format!("--redis: {e}"))?;
        let journal = RedisJournal::builder(redis.clone())
            .build()
            .await
            .map_err(|e| format!("--redis: {e}"))?;
        let dedup = DedupLayer::with_store(RedisStore::builder(redis).time_to_live(ttl).build());
        return built(relay, fast_ack.journal(journal), dedup, forward);
    }
    let fast_ack = match relay.journal {
        JournalKind::Memory => {
            tracing::warn!("--journal memory: accepted events are lost on a crash");
            fast_ack
        }
        JournalKind::Redb => {
            std::fs::create_dir_all(&relay.data_dir)
                .map_err(|e| format!("--data-dir {}: {e}", relay.data_dir.display()))?;
            let path = relay.data_dir.join("journal.redb");
            let journal = RedbJournal::builder()
                .done_time_to_live(ttl)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            fast_ack.journal(journal)
        }
    };
    built(relay, fast_ack, DedupLayer::new(), forward)
}

/// Payload → `dedup` → `fast_ack` → `forward` at `/callback`, the handle,
/// and the dedup counters.
fn built<St: DedupStore + 'static>(
    relay: &Relay,
    fast_ack: FastAckBuilder,
    dedup: DedupLayer<ById, St>,
    forward: Forward,
) -> Result<Built, String> {
    let stats = dedup.clone();
    let (callback, handle) = CallbackStack::new()
        .fast_ack(fast_ack)
        .dedup(dedup)
        .profile(Arc::clone(&relay.profile))
        .build(forward);
    let router = Router::new().route_service("/callback", verified(relay, callback)?);
    Ok((router, handle, Arc::new(move || stats.stats())))
}

/// `callback` behind the provider's signature check, when one is set: a
/// payload layer reads the body first (the stack's own then passes it on),
/// and a static header secret is checked before any of it.
fn verified<S, B>(relay: &Relay, callback: S) -> Result<Stage, String>
where
    S: tower::Service<Request<BufferedBody>, Response = http::Response<B>, Error = Infallible>
        + tower::Service<Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <S as tower::Service<Request<BufferedBody>>>::Future: Send + 'static,
    <S as tower::Service<Request<Body>>>::Future: Send + 'static,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    use taskhook::verify::{
        FalSignatureLayer, JwksSource, KieSignatureLayer, StandardWebhooksLayer,
    };

    let profile = &relay.profile;
    let tolerance = profile.signature_tolerance();
    let signed: Checked = match &relay.signature {
        Signature::None => {
            if !matches!(profile.authenticity(), Authenticity::None) {
                tracing::warn!(
                    provider = profile.name(),
                    "the provider signs its pushes but no key was given: signatures are not checked"
                );
            }
            return Ok(with_header(relay, boxed(callback)));
        }
        Signature::StandardWebhooks(keys) => {
            let (first, rest) = keys.split_first().ok_or("no signing key")?;
            let layer = rest
                .iter()
                .fold(StandardWebhooksLayer::new(first.clone()), |l, k| {
                    l.also_accept(k.clone())
                })
                .tolerance(tolerance);
            checked(layer.layer(callback))
        }
        Signature::Kie(keys) => {
            let (first, rest) = keys.split_first().ok_or("no signing key")?;
            let layer = rest
                .iter()
                .fold(KieSignatureLayer::new(first.clone()), |l, k| {
                    l.also_accept(k.clone())
                })
                .tolerance(tolerance);
            checked(layer.layer(callback))
        }
        Signature::Fal { jwks, user_ids } => {
            let source = match jwks {
                Jwks::Url(url) => {
                    JwksSource::url(url).map_err(|e| format!("--jwks-url {url}: {e}"))?
                }
                Jwks::File(path) => JwksSource::file(path)
                    .map_err(|e| format!("--jwks-file {}: {e}", path.display()))?,
            };
            let layer = user_ids
                .iter()
                .fold(FalSignatureLayer::new(source), |l, id| {
                    l.user_id(id.clone())
                })
                .tolerance(tolerance);
            checked(layer.layer(callback))
        }
    };
    let payload = taskhook::PayloadLayer::new().profile(Arc::clone(profile));
    Ok(with_header(relay, boxed(payload.layer(signed))))
}

/// `route` behind the static header secret, when one is set.
fn with_header(relay: &Relay, route: Stage) -> Stage {
    match &relay.signing_header {
        Some(header) => boxed(header.layer(route)),
        None => route,
    }
}

/// A signature check around the stack: its requests already read by a
/// payload layer.
type Checked = BoxCloneSyncService<Request<BufferedBody>, Response, Infallible>;

/// Boxes a signature check, its answers as axum's.
fn checked<S>(service: S) -> Checked
where
    S: tower::Service<Request<BufferedBody>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(service.map_response(IntoResponse::into_response))
}

/// The public app: metrics outermost (every answer counted), then the IP
/// allowlist and the path token (with the token stripped, so the stack sees
/// `/hooks/callback`), then the routes.
fn public_app(relay: &Relay, routes: Router) -> Router {
    let routes = if relay.path_tokens.is_empty() {
        routes
    } else {
        Router::new().nest("/hooks", routes)
    };
    let mut service = BoxCloneSyncService::new(routes);
    if let Some((first, rest)) = relay.path_tokens.split_first() {
        let layer = rest.iter().fold(
            PathTokenLayer::new(first.clone())
                .prefix("/hooks")
                .strip_token(true),
            |layer, secret| layer.also_accept(secret.clone()),
        );
        service = boxed(layer.layer(service));
    }
    if !relay.allow_ip.is_empty() {
        let layer = IpAllowLayer::new(relay.allow_ip.iter().copied())
            .trusted_proxies(relay.trusted_proxies.iter().copied());
        service = boxed(layer.layer(service));
    }
    service = boxed(taskhook::metrics::MetricsLayer::new().layer(service));
    Router::new().fallback_service(service)
}

/// The public app's service at one stage of its layers.
type Stage = BoxCloneSyncService<Request<Body>, Response, Infallible>;

/// Boxes a stage, its answers as axum's.
fn boxed<S>(service: S) -> Stage
where
    S: tower::Service<Request<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(service.map_response(IntoResponse::into_response))
}

/// Installs the SIGINT and SIGTERM handlers now; the receiver then holds
/// the first signal's name.
fn shutdown_signal() -> std::io::Result<watch::Receiver<Option<&'static str>>> {
    let (tx, rx) = watch::channel(None);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            let _ = tx.send(Some(name));
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(Some("Ctrl-C"));
    });
    Ok(rx)
}

/// Waits for the signal of [`shutdown_signal`].
async fn signalled(rx: &mut watch::Receiver<Option<&'static str>>) -> &'static str {
    match rx.wait_for(Option::is_some).await {
        Ok(name) => name.unwrap_or("signal"),
        // The handler task is gone: only the process's end stops us.
        Err(_) => std::future::pending().await,
    }
}
