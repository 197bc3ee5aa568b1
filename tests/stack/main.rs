//! The recommended stack, payload -> dedup -> fast-ack -> handler, with the
//! real layers: what happens to a task whose handler fails for good in the
//! background after the provider was answered 2xx.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use taskhook::body::BufferedBody;
use taskhook::dedup::{DedupKey, DedupStore};
use taskhook::fast_ack::{FastAckHandle, FastAckLayer, RetryPolicy};
use taskhook::{backend::MokaStore, DedupLayer, PayloadLayer};
use tokio::sync::mpsc;
use tower::util::BoxCloneService;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

type Stack = BoxCloneService<Request<Full<Bytes>>, Response<Bytes>, Infallible>;

const BODY: &str = r#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#;

/// The stack over a handler that fails its first `failures` calls with a 500.
fn stack(
    store: MokaStore,
    failures: usize,
    fast_ack: FastAckLayer,
) -> (Stack, FastAckHandle, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let successes = Arc::new(AtomicUsize::new(0));
    let handle = fast_ack.handle();
    let handler = {
        let (calls, successes) = (calls.clone(), successes.clone());
        service_fn(move |_req: Request<BufferedBody>| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            let successes = successes.clone();
            async move {
                let status = if call < failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    successes.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK
                };
                let mut response = Response::new(String::new());
                *response.status_mut() = status;
                Ok::<_, Infallible>(response)
            }
        })
    };
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(DedupLayer::with_store(store))
        .layer(fast_ack)
        .service(handler);
    let service = ServiceExt::<Request<Full<Bytes>>>::map_future(service, |answer| async move {
        let (parts, body) = answer.await?.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::from_parts(parts, body))
    });
    (BoxCloneService::new(service), handle, calls, successes)
}

async fn push(service: &mut Stack) -> Response<Bytes> {
    let req = Request::post("/callback")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    service.ready().await.unwrap().call(req).await.unwrap()
}

fn two_attempts() -> RetryPolicy {
    RetryPolicy::new()
        .attempts(2)
        .base_delay(Duration::from_millis(10))
        .jitter(false)
}

#[tokio::test(start_paused = true)]
async fn a_dead_letter_forgotten_by_dedup_is_processed_on_the_next_push() {
    let store = MokaStore::new();
    let (forgotten_tx, mut forgotten) = mpsc::unbounded_channel();
    let fast_ack = FastAckLayer::builder()
        .retry(two_attempts())
        .on_dead_letter({
            let store = store.clone();
            move |letter| {
                // The hook is synchronous: forget the id on a task of its own.
                let (store, done) = (store.clone(), forgotten_tx.clone());
                let key = DedupKey::new(letter.task_id().unwrap_or_default());
                tokio::spawn(async move {
                    store.forget(&key).await.unwrap();
                    let _ = done.send(());
                });
            }
        })
        .build()
        .0;
    let (mut service, handle, calls, successes) = stack(store, 2, fast_ack);
    handle.started().await;

    // Accepted, then both background attempts fail: a dead letter.
    assert_eq!(push(&mut service).await.status(), StatusCode::ACCEPTED);
    forgotten.recv().await.unwrap();
    assert_eq!(handle.stats().dead_lettered, 1);
    assert_eq!(
        (
            calls.load(Ordering::SeqCst),
            successes.load(Ordering::SeqCst)
        ),
        (2, 0)
    );

    // The provider's duplicate push is not absorbed: it runs and succeeds.
    let again = push(&mut service).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED, "{:?}", again.body());
    assert!(again.headers().get("taskhook-duplicate").is_none());
    handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(successes.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn without_the_hook_the_duplicate_is_absorbed_and_replay_processes_it() {
    let (mut service, handle, calls, successes) = stack(
        MokaStore::new(),
        2,
        FastAckLayer::builder().retry(two_attempts()).build().0,
    );
    handle.started().await;
    let mut letters = handle.subscribe_dead_letters();

    assert_eq!(push(&mut service).await.status(), StatusCode::ACCEPTED);
    let letter = letters.recv().await.unwrap();
    assert_eq!(letter.task_id(), Some("task_01"));

    // Dedup saw the 202: the duplicate push is answered without a run.
    let again = push(&mut service).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["taskhook-duplicate"], "done");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // The event is not lost: the dead letter replays and succeeds.
    handle.replay(letter.seq()).await.unwrap();
    handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(successes.load(Ordering::SeqCst), 1);
    assert!(handle.dead_letters().is_empty());
}
