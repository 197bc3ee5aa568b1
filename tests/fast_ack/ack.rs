//! The ack does not wait for the handler, and a full queue refuses with
//! `503` before anything is journaled.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use taskhook::fast_ack::journal::{Journal, MemoryJournal};
use taskhook::fast_ack::FastAckLayer;
use taskhook::PayloadLayer;
use tokio::sync::{mpsc, Notify, Semaphore};
use tower::ServiceBuilder;

use crate::common::{self, send, until};
use crate::support::{handler, stack, status, task_id};

#[tokio::test]
async fn the_ack_is_answered_before_the_handler_finishes_over_http() {
    let release = Arc::new(Notify::new());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let layer = FastAckLayer::new();
    let handle = layer.handle();
    let service = ServiceBuilder::new()
        .layer(PayloadLayer::new())
        .layer(layer)
        .service(handler({
            let release = Arc::clone(&release);
            move |req| {
                let (release, done_tx) = (Arc::clone(&release), done_tx.clone());
                async move {
                    release.notified().await;
                    done_tx.send(task_id(&req)).unwrap();
                    status(StatusCode::OK)
                }
            }
        }));
    let app = axum::Router::new().route_service("/callback", service);
    let addr = common::serve_axum(app).await;
    handle.started().await;

    let body = common::fixture("completed-video");
    // The handler is blocked until after the answer: an ack that waited
    // for it would never come (the timeout only turns that hang into a
    // failure).
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        common::post(addr, "/callback", Some("application/json"), &body),
    )
    .await
    .expect("the ack did not wait for the handler");
    assert_eq!(response.status, 202, "{}", response.body);
    let json = response.json();
    assert_eq!(json["status"], "accepted");
    assert_eq!(json["id"], "task_01KBS40K78KGHZ9SDBWQSGSXRK");
    assert!(json["seq"].is_u64());

    // The 2xx is here and the handler is still blocked.
    assert!(done_rx.try_recv().is_err());
    until("the handler runs", || handle.stats().in_flight == 1).await;
    assert_eq!(handle.stats().processed, 0);
    release.notify_one();
    assert_eq!(
        done_rx.recv().await.unwrap(),
        "task_01KBS40K78KGHZ9SDBWQSGSXRK"
    );
    until("processed", || handle.stats().processed == 1).await;
    assert_eq!(handle.stats().accepted, 1);
}

#[tokio::test]
async fn a_full_queue_answers_503_and_journals_nothing() {
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let journal = MemoryJournal::new();
    let (layer, handle) = FastAckLayer::builder()
        .journal(journal.clone())
        .capacity(2)
        .concurrency(1)
        .retry_after(Duration::from_secs(7))
        .build();
    let service = stack(
        layer,
        handler({
            let (gate, seen) = (Arc::clone(&gate), Arc::clone(&seen));
            move |req| {
                let (gate, seen) = (Arc::clone(&gate), Arc::clone(&seen));
                async move {
                    gate.acquire().await.unwrap().forget();
                    seen.lock().unwrap().push(task_id(&req));
                    status(StatusCode::OK)
                }
            }
        }),
    );
    handle.started().await;

    assert_eq!(send(&service, "task_1").await.status, StatusCode::ACCEPTED);
    assert_eq!(send(&service, "task_2").await.status, StatusCode::ACCEPTED);
    let full = send(&service, "task_3").await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.retry_after.as_deref(), Some("7"));
    assert_eq!(full.json["error"]["code"], "queue_full");

    // The refused event is not in the journal: only the two accepted ones.
    let pending: Vec<String> = journal
        .pending()
        .await
        .unwrap()
        .iter()
        .map(|e| e.task_id().unwrap().to_owned())
        .collect();
    assert_eq!(pending, ["task_1", "task_2"]);
    assert_eq!(handle.stats().rejected_full, 1);

    gate.add_permits(2);
    until("both processed", || handle.stats().processed == 2).await;
    assert_eq!(*seen.lock().unwrap(), ["task_1", "task_2"]);
    assert!(journal.is_empty());

    // The provider retries the 503 and now it is accepted and processed.
    assert_eq!(send(&service, "task_3").await.status, StatusCode::ACCEPTED);
    gate.add_permits(1);
    until("the retry processed", || handle.stats().processed == 3).await;
    assert_eq!(*seen.lock().unwrap(), ["task_1", "task_2", "task_3"]);
    assert_eq!(handle.stats().accepted, 3);
}
