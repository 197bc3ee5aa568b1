//! The layers composed by hand: payload → progress → dedup → a handler,
//! without fast-ack, to hold a final event in flight; the dedup store's
//! failures; a store with the trait's default `peek`; a tower service as
//! the progress handler; a misconfigured stack.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use taskhook::backend::CompactStore;
use taskhook::dedup::{Claim, DedupKey, DedupStore};
use taskhook::progress::{ProgressLayer, ServiceHandler};
use taskhook::provider::Events;
use taskhook::{DedupLayer, PayloadLayer, TaskEvent};
use taskhook_test_support::until;
use tokio::sync::Semaphore;
use tower::{service_fn, ServiceBuilder};

use super::{handler, progress, send, Seen, Steps};

#[tokio::test]
async fn an_intermediate_event_while_the_final_one_is_in_flight_is_a_regression() {
    let (finals, states) = (Seen::default(), Seen::default());
    let gate = Arc::new(Semaphore::new(0));
    let dedup = DedupLayer::new();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new().profile(Steps::new()))
        .layer(ProgressLayer::new(&dedup).on_progress(progress(&states)))
        .layer(dedup)
        .service(handler(&finals, Some(gate.clone())));

    let first = {
        let service = service.clone();
        tokio::spawn(async move { send(&service, "t1", "succeeded", None).await })
    };
    // The handler runs the final event and has not answered: its task id
    // is claimed in the dedup store, in flight.
    until("the handler got the final event", || finals.len() == 1).await;
    let late = send(&service, "t1", "processing", Some(95)).await;
    assert_eq!(late.status, StatusCode::OK, "{late:?}");
    assert_eq!(late.ignored.as_deref(), Some("regression"));

    gate.add_permits(1);
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    assert_eq!(finals.all(), ["t1 succeeded=completed"]);
    assert!(states.all().is_empty());
}

/// A store whose backend is down.
#[derive(Debug)]
struct Down;

impl DedupStore for Down {
    type Token = ();
    type Error = std::io::Error;

    async fn claim(&self, _key: &DedupKey) -> Result<Claim<()>, std::io::Error> {
        Err(std::io::Error::other("connection refused"))
    }
    async fn complete(&self, _key: &DedupKey, _token: &()) -> Result<(), std::io::Error> {
        Ok(())
    }
    async fn release(&self, _key: &DedupKey, _token: &()) -> Result<(), std::io::Error> {
        Ok(())
    }
    async fn forget(&self, _key: &DedupKey) -> Result<(), std::io::Error> {
        Ok(())
    }
}

#[tokio::test]
async fn a_dedup_store_that_cannot_be_read_is_a_503() {
    let states = Seen::default();
    let dedup = DedupLayer::with_store(Down);
    let layer = ProgressLayer::new(&dedup).on_progress(progress(&states));
    let counted = layer.clone(); // shares the counters
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new().profile(Steps::new()))
        .layer(layer)
        .layer(dedup)
        .service(handler(&Seen::default(), None));
    let reply = send(&service, "t1", "processing", None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.retry_after.as_deref(), Some("10"));
    assert_eq!(reply.json["error"]["code"], "dedup_store_unavailable");
    assert!(states.all().is_empty());
    assert_eq!(counted.stats().store_errors, 1);
}

/// A store that keeps the trait's default `peek` (a claim, released).
#[derive(Debug, Clone, Default)]
struct DefaultPeek(CompactStore);

impl DedupStore for DefaultPeek {
    type Token = <CompactStore as DedupStore>::Token;
    type Error = Infallible;

    async fn claim(&self, key: &DedupKey) -> Result<Claim<Self::Token>, Infallible> {
        self.0.claim(key).await
    }
    async fn complete(&self, key: &DedupKey, token: &Self::Token) -> Result<(), Infallible> {
        self.0.complete(key, token).await
    }
    async fn release(&self, key: &DedupKey, token: &Self::Token) -> Result<(), Infallible> {
        self.0.release(key, token).await
    }
    async fn forget(&self, key: &DedupKey) -> Result<(), Infallible> {
        self.0.forget(key).await
    }
    async fn wait(&self, key: &DedupKey) -> Result<(), Infallible> {
        self.0.wait(key).await
    }
}

#[tokio::test]
async fn the_default_peek_tells_a_regression_and_leaves_new_tasks_new() {
    let (finals, states) = (Seen::default(), Seen::default());
    let dedup = DedupLayer::with_store(DefaultPeek::default());
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new().profile(Steps::new()))
        .layer(ProgressLayer::new(&dedup).on_progress(progress(&states)))
        .layer(dedup)
        .service(handler(&finals, None));

    // The peek of a new task's id claimed it and gave it back.
    assert_eq!(send(&service, "t1", "queued", None).await.ignored, None);
    let done = send(&service, "t1", "succeeded", None).await;
    assert_eq!((done.status, done.duplicate), (StatusCode::OK, None));
    let late = send(&service, "t1", "processing", None).await;
    assert_eq!(late.ignored.as_deref(), Some("regression"));
    assert_eq!(finals.all(), ["t1 succeeded=completed"]);
    assert_eq!(states.all(), ["t1 queued=pending"]);
}

#[tokio::test]
async fn a_tower_service_can_be_the_progress_handler() {
    let states = Seen::default();
    let recorder = {
        let states = states.clone();
        service_fn(move |event: TaskEvent| {
            let states = states.clone();
            async move {
                if event.progress() == Some(13) {
                    return Err("unlucky");
                }
                states.record(&event);
                Ok(Response::new(()))
            }
        })
    };
    let dedup = DedupLayer::new();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new().profile(Steps::new()))
        .layer(ProgressLayer::new(&dedup).on_progress(ServiceHandler::new(recorder)))
        .layer(dedup)
        .service(handler(&Seen::default(), None));
    assert_eq!(
        send(&service, "t1", "processing", Some(12)).await.ignored,
        None
    );
    assert_eq!(
        send(&service, "t1", "processing", Some(13))
            .await
            .ignored
            .as_deref(),
        Some("progress_failed")
    );
    assert_eq!(states.all(), ["t1 processing=processing 12%"]);
}

#[tokio::test]
async fn a_layer_for_final_only_events_passes_everything_on() {
    let (finals, states) = (Seen::default(), Seen::default());
    let dedup = DedupLayer::new();
    let layer = ProgressLayer::new(&dedup)
        .on_progress(progress(&states))
        .events(Events::FinalOnly);
    let counted = layer.clone();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new().profile(Steps::new()))
        .layer(layer)
        .layer(dedup)
        .service(handler(&finals, None));
    let reply = send(&service, "t1", "processing", None).await;
    assert_eq!((reply.status, reply.ignored), (StatusCode::OK, None));
    assert_eq!(finals.all(), ["t1 processing=processing"]);
    assert!(states.all().is_empty());
    assert_eq!(counted.stats(), Default::default());
}

#[tokio::test]
async fn without_the_payload_layer_in_front_it_is_our_error_not_the_providers() {
    let dedup = DedupLayer::new();
    let service = ServiceBuilder::new()
        .layer(ProgressLayer::new(&dedup))
        .layer(dedup)
        .service(service_fn(|_req: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let reply = send(&service, "t1", "processing", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.json["error"]["code"], "payload_layer_missing");
}
