//! Dead letters: bounded, dismissed or replayed; a handler's 4xx is a
//! refusal, never retried; recovery behind a dedup layer; the JSON forms of
//! stats, dead letters and the shutdown report.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use taskhook::body::BufferedBody;
use taskhook::fast_ack::journal::{Journal, MemoryJournal};
use taskhook::fast_ack::{DeadLetter, Failure, FastAckLayer, RetryPolicy};
use taskhook::PayloadLayer;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::common::{callback, send, until};
use crate::support::{answering, handler, stack, status, task_id};

#[tokio::test(start_paused = true)]
async fn dead_letters_are_bounded_and_can_be_dismissed_or_all_replayed() {
    let journal = MemoryJournal::new();
    let failing = Arc::new(AtomicBool::new(true));
    let (layer, handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .concurrency(1)
        .dead_letter_capacity(2)
        .retry(RetryPolicy::new().attempts(1))
        .build();
    let service = stack(
        layer,
        handler({
            let failing = Arc::clone(&failing);
            move |_req| {
                let failing = failing.load(Ordering::SeqCst);
                async move {
                    match failing {
                        true => status(StatusCode::SERVICE_UNAVAILABLE),
                        false => status(StatusCode::OK),
                    }
                }
            }
        }),
    );
    handle.started().await;
    for id in ["task_1", "task_2", "task_3", "task_4"] {
        send(&service, id).await;
    }
    until("all dead", || handle.stats().dead_lettered == 4).await;

    // The oldest two were dropped (and counted), in memory and in the journal.
    let ids = |letters: Vec<DeadLetter>| -> Vec<String> {
        letters
            .iter()
            .map(|l| l.task_id().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(handle.dead_letters()), ["task_3", "task_4"]);
    assert_eq!(handle.stats().dead_letters_dropped, 2);
    assert_eq!(
        ids(journal.dead_letters().await.unwrap()),
        ["task_3", "task_4"]
    );

    let task_3 = handle.dead_letters()[0].seq();
    assert_eq!(handle.dead_letter(task_3).unwrap().attempts(), 1);
    let dismissed = handle.dismiss(task_3).await.unwrap().unwrap();
    assert_eq!(dismissed.task_id(), Some("task_3"));
    assert!(handle.dismiss(task_3).await.unwrap().is_none());
    assert_eq!(journal.dead_letter_count(), 1);

    failing.store(false, Ordering::SeqCst);
    assert_eq!(handle.replay_all().await.unwrap(), 1);
    until("replayed", || handle.stats().processed == 1).await;
    assert!(handle.dead_letters().is_empty());
    assert_eq!(journal.dead_letter_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_4xx_from_the_handler_is_a_dead_letter_never_retried_nor_processed() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = FastAckLayer::new();
    let handle = layer.handle();
    let mut letters = handle.subscribe_dead_letters();
    let service = stack(
        layer,
        answering(
            &calls,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Failed to deserialize the JSON body: missing field `tenant`",
        ),
    );
    handle.started().await;
    assert_eq!(
        send(&service, "task_4xx").await.status,
        StatusCode::ACCEPTED
    );
    let letter = letters.recv().await.unwrap();
    assert_eq!(letter.task_id(), Some("task_4xx"));
    assert_eq!(letter.attempts(), 1);
    assert_eq!(
        letter.failure(),
        &Failure::status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Failed to deserialize the JSON body: missing field `tenant`"
        )
    );
    assert!(letter.failure().is_refusal());
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a refusal is not retried");
    let stats = handle.stats();
    assert_eq!(
        (
            stats.refused,
            stats.processed,
            stats.dead_lettered,
            stats.dead_letters
        ),
        (1, 0, 0, 1),
        "{stats:?}"
    );
    // Replayed once the handler is fixed (here: it still refuses).
    handle.replay(letter.seq()).await.unwrap();
    until("refused again", || handle.stats().refused == 2).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn with_dead_letter_refusals_off_a_4xx_is_done_counted_refused_not_processed() {
    let calls = Arc::new(AtomicU32::new(0));
    let journal = MemoryJournal::new();
    let (layer, handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .dead_letter_refusals(false)
        .build();
    let service = stack(layer, answering(&calls, StatusCode::BAD_REQUEST, ""));
    handle.started().await;
    send(&service, "task_4xx").await;
    until("refused", || handle.stats().refused == 1).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    let stats = handle.stats();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!((stats.processed, stats.dead_letters), (0, 0), "{stats:?}");
    assert!(journal.is_empty(), "marked done in the journal");
}

/// A stand-in for the dedup layer, in front of fast-ack: a task id whose
/// request got a 2xx is "done", and a later push of it is answered 200
/// without reaching fast-ack.
#[derive(Clone)]
struct MiniDedup<S> {
    inner: S,
    done: Arc<Mutex<HashSet<String>>>,
}

impl<S, B> Service<Request<BufferedBody>> for MiniDedup<S>
where
    S: Service<Request<BufferedBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Option<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<BufferedBody>) -> Self::Future {
        let id = task_id(&req);
        let done = Arc::clone(&self.done);
        if done.lock().unwrap().contains(&id) {
            return Box::pin(async { Ok(Response::new(None)) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = fut.await?;
            if response.status().is_success() {
                done.lock().unwrap().insert(id);
            }
            Ok(response.map(Some))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn behind_dedup_a_background_failure_is_recovered_by_replay_or_by_the_next_push() {
    let journal = MemoryJournal::new();
    let done = Arc::new(Mutex::new(HashSet::new()));
    let processed = Arc::new(Mutex::new(Vec::new()));
    let failing = Arc::new(AtomicBool::new(true));
    let (layer, handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .retry(RetryPolicy::new().attempts(2))
        // The hook releases the id for task_b only, to show both recoveries.
        .on_dead_letter({
            let done = Arc::clone(&done);
            move |letter: &DeadLetter| {
                if letter.task_id() == Some("task_b") {
                    done.lock().unwrap().remove("task_b");
                }
            }
        })
        .build();
    let mut dead_letters = handle.subscribe_dead_letters();
    let inner = ServiceBuilder::new().layer(layer).service(handler({
        let (processed, failing) = (Arc::clone(&processed), Arc::clone(&failing));
        move |req| {
            let (processed, failing) = (Arc::clone(&processed), Arc::clone(&failing));
            async move {
                if failing.load(Ordering::SeqCst) {
                    return status(StatusCode::INTERNAL_SERVER_ERROR);
                }
                processed.lock().unwrap().push(task_id(&req));
                status(StatusCode::OK)
            }
        }
    }));
    handle.started().await;
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .service(MiniDedup {
            inner,
            done: Arc::clone(&done),
        });
    let push = |id: &'static str| {
        let service = service.clone();
        async move {
            let response = service.oneshot(callback(id)).await.unwrap();
            response.status()
        }
    };

    // Both accepted (dedup records them done), both fail in the background.
    assert_eq!(push("task_a").await, StatusCode::ACCEPTED);
    assert_eq!(push("task_b").await, StatusCode::ACCEPTED);
    let first = dead_letters.recv().await.unwrap();
    let second = dead_letters.recv().await.unwrap();
    let letter_a = if first.task_id() == Some("task_a") {
        first
    } else {
        second
    };
    failing.store(false, Ordering::SeqCst);

    // task_a: the provider's duplicate push is absorbed by dedup, not
    // journaled again; the dead letter is how it gets processed.
    let journaled = handle.stats().accepted;
    assert_eq!(push("task_a").await, StatusCode::OK);
    assert_eq!(handle.stats().accepted, journaled);
    handle.replay(letter_a.seq()).await.unwrap();

    // task_b: the hook released the id, so the next push goes through.
    assert_eq!(push("task_b").await, StatusCode::ACCEPTED);

    until("both processed", || processed.lock().unwrap().len() == 2).await;
    let mut seen = processed.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["task_a", "task_b"]);
    assert!(journal.is_empty());
}

#[tokio::test(start_paused = true)]
async fn stats_dead_letters_and_the_shutdown_report_serialize_to_json() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = FastAckLayer::new();
    let handle = layer.handle();
    let service = stack(
        layer,
        answering(&calls, StatusCode::BAD_REQUEST, "no tenant"),
    );
    handle.started().await;
    send(&service, "task_json").await;
    until("refused", || handle.stats().refused == 1).await;

    let stats = serde_json::to_value(handle.stats()).unwrap();
    assert_eq!(stats["accepted"], 1);
    assert_eq!(stats["refused"], 1);
    assert_eq!(stats["processed"], 0);
    assert_eq!(stats["dead_letters"], 1);

    let letter = serde_json::to_value(&handle.dead_letters()[0]).unwrap();
    assert_eq!(letter["task_id"], "task_json");
    assert_eq!(letter["attempts"], 1);
    assert_eq!(
        letter["failure"],
        serde_json::json!({"kind": "status", "status": 400, "body": "no tenant"})
    );
    assert_eq!(letter["method"], "POST");
    assert_eq!(letter["uri"], "/callback");
    assert_eq!(letter["payload"]["data"]["id"], "task_json");
    assert!(letter["failed_at_ms"].as_u64().unwrap() > 1_700_000_000_000);
    assert!(letter.get("headers").is_none(), "headers may carry secrets");

    let report = serde_json::to_value(handle.shutdown(Duration::from_secs(1)).await).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"drained": true, "queued": [], "in_flight": [], "waiting_retry": []})
    );
}
