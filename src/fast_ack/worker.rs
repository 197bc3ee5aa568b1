//! The start-up replay and the workers that run the inner service on queued
//! events, with retries.

use std::any::Any;
use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use tower_service::Service;
use tracing::Instrument;

use super::dead_letter::Failure;
use super::journal::BoxFuture;
use super::shared::Shared;
use super::unwind::CatchUnwind;
use super::ResponseStatus;
use crate::body::BufferedBody;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Binds `inner` as the service the workers run; spawns them now when a
/// tokio runtime is current, else on the first request.
pub(crate) fn bind<S>(shared: &Arc<Shared>, inner: S) -> bool
where
    S: Service<Request<BufferedBody>> + Clone + Send + 'static,
    S::Response: ResponseStatus,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    // Like tower's `Buffer`, the workers run in the span current where the
    // service is made.
    let span = tracing::Span::current();
    let weak = Arc::downgrade(shared);
    let bound = shared.bind(Box::new(move |runtime: &tokio::runtime::Handle| {
        if let Some(shared) = weak.upgrade() {
            runtime.spawn(start(shared, inner, span.clone()).instrument(span));
        }
    }));
    if bound {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            shared.ensure_started(&runtime);
        }
    }
    bound
}

/// Loads the dead letters, queues the pending entries in order, then spawns
/// the workers and opens intake.
async fn start<S>(shared: Arc<Shared>, inner: S, span: tracing::Span)
where
    S: Service<Request<BufferedBody>> + Clone + Send + 'static,
    S::Response: ResponseStatus,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    shared.load_dead_letters().await;

    // Intake stays closed (503) until the journal answers: an event must
    // not overtake the ones accepted before a restart.
    let journal = Arc::clone(&shared.config.journal);
    let mut stop = shared.stop.subscribe();
    let mut delay = Duration::from_millis(100);
    let pending = loop {
        match journal.pending().await {
            Ok(pending) => break pending,
            Err(error) => {
                shared.journal_failed();
                tracing::error!(%error, "could not read the pending journal entries; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    };
    shared.recover(pending, "replaying pending");

    let mut workers = Vec::with_capacity(shared.config.concurrency);
    for _ in 0..shared.config.concurrency.max(1) {
        let worker = work(Arc::clone(&shared), inner.clone()).instrument(span.clone());
        workers.push(tokio::spawn(worker));
    }
    if let Some(period) = journal.take_over_interval() {
        let task = take_over(Arc::clone(&shared), period).instrument(span.clone());
        workers.push(tokio::spawn(task));
    }
    shared.open(workers);
}

/// Asks the journal for work every `period` (entries of a process that
/// died, in a shared journal) and queues it, until stopped.
async fn take_over(shared: Arc<Shared>, period: Duration) {
    let mut stop = shared.stop.subscribe();
    let journal = Arc::clone(&shared.config.journal);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let entries = tokio::select! {
            entries = journal.take_over(shared.room()) => entries,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match entries {
            Ok(entries) => shared.recover(entries, "took over"),
            Err(error) => {
                shared.journal_failed();
                tracing::warn!(%error, "could not take over journal entries");
            }
        }
    }
}

/// How many jobs a worker runs back to back before it yields to the
/// runtime: a handler that is always ready never makes the worker wait, and
/// the acks (and the other workers) share its thread.
const JOBS_PER_YIELD: u32 = 32;

/// The target of the `fast_ack.attempt` span (documented in the module docs).
const ATTEMPT_TARGET: &str = "taskhook::fast_ack::attempt";

/// How much of the body of a refused or failed attempt is kept.
const EXCERPT_LIMIT: usize = 512;

/// One worker: takes jobs until stopped.
async fn work<S>(shared: Arc<Shared>, inner: S)
where
    S: Service<Request<BufferedBody>> + Clone + Send + 'static,
    S::Response: ResponseStatus,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let mut stop = shared.stop.subscribe();
    let mut jobs: u32 = 0;
    loop {
        jobs = jobs.wrapping_add(1);
        if jobs % JOBS_PER_YIELD == 0 {
            tokio::task::yield_now().await;
        }
        let Some(mut job) = shared.pop().await else {
            return;
        };
        job.attempts += 1;
        // At DEBUG, as tower-http's request spans: a subscriber at INFO
        // would otherwise make and format a span for every event (0.5 to
        // 0.9 µs each with `tracing_subscriber::fmt`, BENCHMARKS.md). Its
        // own target lets a filter enable it alone; the events below carry
        // the same fields, so they say which event they are about without it.
        let span = tracing::debug_span!(
            target: ATTEMPT_TARGET,
            parent: &job.span,
            "fast_ack.attempt",
            seq = job.seq,
            task_id = job.task_id.as_deref(),
            attempt = job.attempts,
        );
        // The attempt runs in this task; a panic in the inner service (in
        // `poll_ready`, `call` or its future) is caught and counted as a
        // failure instead of killing this worker. Each attempt gets its own
        // clone of the service, so one that panicked is not used again.
        let mut service = inner.clone();
        let request = job.request();
        let attempt = CatchUnwind::new(
            async move {
                poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(|e| e.into().to_string())?;
                let (status, retry_after, excerpt) = answer(
                    service
                        .call(request)
                        .await
                        .map_err(|e| e.into().to_string())?,
                );
                let body = match excerpt {
                    Some(excerpt) => excerpt.await,
                    None => String::new(),
                };
                Ok::<_, String>((status, retry_after, body))
            }
            .instrument(span.clone()),
        );
        // Biased: the attempt first, so that one that is done at once (a
        // quick handler) never registers with the stop signal.
        let outcome = tokio::select! {
            biased;
            outcome = attempt => outcome,
            _ = stop.wait_for(|stopped| *stopped) => {
                // The shutdown deadline passed: the attempt is dropped, the
                // job is reported as left and stays pending in the journal.
                return;
            }
        };
        // Report the outcome: the shared state owns what follows.
        match outcome {
            Ok(Ok((status, retry_after, body))) if status.is_server_error() => {
                shared
                    .fail(job, Failure::status(status, body), retry_after)
                    .instrument(span)
                    .await;
            }
            Ok(Ok((status, _, body))) if status.is_client_error() => {
                shared
                    .refuse(job, Failure::status(status, body))
                    .instrument(span)
                    .await;
            }
            Ok(Ok((status, _, _))) => shared.complete(job, status).instrument(span).await,
            Ok(Err(error)) => {
                shared
                    .fail(job, Failure::Error(error), None)
                    .instrument(span)
                    .await
            }
            Err(panic) => {
                let failure = Failure::Panic(panic_message(panic));
                shared.fail(job, failure, None).instrument(span).await;
            }
        }
    }
}

/// What the workers need of an answer: its status, for a failure (a
/// `5xx`) the wait it asks for, and for a refusal or a failure (a `4xx` or
/// a `5xx`) the read of the start of its body, which says why.
type Answer = (
    StatusCode,
    Option<Duration>,
    Option<BoxFuture<'static, String>>,
);

/// The [`Answer`] of a response. (A function of its own, so the response
/// is never held across an await: it need not be `Send`.)
fn answer<R: ResponseStatus>(response: R) -> Answer {
    let status = response.status();
    let retry_after = if status.is_server_error() {
        response.retry_after()
    } else {
        None
    };
    if status.is_client_error() || status.is_server_error() {
        (status, retry_after, Some(response.excerpt(EXCERPT_LIMIT)))
    } else {
        (status, None, None)
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
