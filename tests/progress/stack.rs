//! Through `CallbackStack` with the `Steps` profile: payload → progress →
//! dedup → fast-ack → handler.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use taskhook::provider::Profile;
use taskhook::{CallbackStack, DedupLayer, FastAckHandle, TaskEvent};
use taskhook_test_support::until;
use tokio::sync::Semaphore;

use super::{handler, progress, send, Seen, Steps};

/// Ends the stack's fast-ack layer once every accepted event ran.
async fn drain(handle: &FastAckHandle) {
    let report = handle.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
}

#[tokio::test]
async fn queued_processing_succeeded_runs_the_handler_once_and_the_progress_handler_per_state() {
    let (finals, states) = (Seen::default(), Seen::default());
    let (service, handle) = CallbackStack::new()
        .profile(Steps::new())
        .on_progress(progress(&states))
        .build(handler(&finals, None));
    handle.started().await;

    for (status, percent) in [("queued", None), ("processing", Some(40))] {
        let reply = send(&service, "t1", status, percent).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert_eq!((reply.ignored, reply.duplicate), (None, None));
        assert_eq!(reply.json["status"], "progress");
        assert_eq!(reply.json["id"], "t1");
    }
    let done = send(&service, "t1", "succeeded", None).await;
    assert_eq!(done.status, StatusCode::ACCEPTED, "{done:?}");

    drain(&handle).await;
    assert_eq!(finals.all(), ["t1 succeeded=completed"]);
    assert_eq!(
        states.all(),
        ["t1 queued=pending", "t1 processing=processing 40%"]
    );
    assert_eq!(handle.stats().processed, 1);
    let stats = service.get_ref().stats();
    assert_eq!((stats.finals, stats.handled), (1, 2));
}

#[tokio::test]
async fn an_intermediate_state_reaches_the_progress_handler_once() {
    let (finals, states) = (Seen::default(), Seen::default());
    let (service, handle) = CallbackStack::new()
        .profile(Steps::new())
        .on_progress(progress(&states))
        .build(handler(&finals, None));
    handle.started().await;

    let pushes = [
        ("processing", Some(10), None),
        ("processing", Some(10), Some("progress")),
        ("processing", Some(20), None),
        ("processing", None, None),
        ("processing", None, Some("progress")),
        ("processing", Some(20), Some("progress")),
    ];
    for (status, percent, duplicate) in pushes {
        let reply = send(&service, "t1", status, percent).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert_eq!(
            reply.duplicate.as_deref(),
            duplicate,
            "{status} {percent:?}"
        );
        assert_eq!(reply.ignored, None);
    }
    // Another task's same state is its own.
    assert_eq!(
        send(&service, "t2", "processing", Some(10)).await.duplicate,
        None
    );

    assert_eq!(
        states.all(),
        [
            "t1 processing=processing 10%",
            "t1 processing=processing 20%",
            "t1 processing=processing",
            "t2 processing=processing 10%",
        ]
    );
    let stats = service.get_ref().stats();
    assert_eq!((stats.handled, stats.duplicates), (4, 3));
    drain(&handle).await;
    assert!(finals.all().is_empty());
}

#[tokio::test]
async fn a_late_intermediate_event_is_ignored_while_the_final_one_waits_in_fast_ack() {
    let (finals, states) = (Seen::default(), Seen::default());
    let gate = Arc::new(Semaphore::new(0));
    let (service, handle) = CallbackStack::new()
        .profile(Steps::new())
        .on_progress(progress(&states))
        .build(handler(&finals, Some(gate.clone())));
    handle.started().await;

    assert_eq!(
        send(&service, "t1", "processing", Some(10)).await.status,
        StatusCode::OK
    );
    let done = send(&service, "t1", "succeeded", None).await;
    assert_eq!(done.status, StatusCode::ACCEPTED);
    // The handler holds the final event and has not finished it.
    until("the handler got the final event", || finals.len() == 1).await;
    assert_eq!(handle.stats().processed, 0);

    for (status, percent) in [("processing", Some(90)), ("queued", None)] {
        let late = send(&service, "t1", status, percent).await;
        assert_eq!(late.status, StatusCode::OK, "{late:?}");
        assert_eq!(late.ignored.as_deref(), Some("regression"));
        assert_eq!(late.json["status"], "ignored");
        assert_eq!(late.json["id"], "t1");
    }

    gate.add_permits(1);
    drain(&handle).await;
    // And after it finished, still a regression (the store says done).
    assert_eq!(finals.all(), ["t1 succeeded=completed"]);
    assert_eq!(states.all(), ["t1 processing=processing 10%"]);
    assert_eq!(service.get_ref().stats().regressions, 2);
}

#[tokio::test]
async fn another_final_state_after_the_first_is_a_duplicate() {
    let (finals, states) = (Seen::default(), Seen::default());
    let (service, handle) = CallbackStack::new()
        .profile(Steps::new())
        .on_progress(progress(&states))
        .build(handler(&finals, None));
    handle.started().await;

    assert_eq!(
        send(&service, "t1", "succeeded", None).await.status,
        StatusCode::ACCEPTED
    );
    for status in ["failed", "canceled", "succeeded"] {
        let again = send(&service, "t1", status, None).await;
        assert_eq!(again.status, StatusCode::OK, "{again:?}");
        assert_eq!(again.duplicate.as_deref(), Some("done"));
    }
    let late = send(&service, "t1", "processing", None).await;
    assert_eq!(late.ignored.as_deref(), Some("regression"));

    drain(&handle).await;
    assert_eq!(finals.all(), ["t1 succeeded=completed"]);
    assert!(states.all().is_empty());
}

#[tokio::test]
async fn without_a_progress_handler_intermediate_events_are_answered_and_dropped() {
    let finals = Seen::default();
    let (service, handle) = CallbackStack::new()
        .profile(Steps::new())
        .build(handler(&finals, None));
    handle.started().await;

    for (status, percent) in [("queued", None), ("processing", Some(50))] {
        let reply = send(&service, "t1", status, percent).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.ignored.as_deref(), Some("intermediate"));
        assert_eq!(reply.json["status"], "ignored");
    }
    assert_eq!(
        send(&service, "t1", "succeeded", None).await.status,
        StatusCode::ACCEPTED
    );
    // No store is asked without a progress handler: a late push is one
    // more intermediate event to drop.
    let late = send(&service, "t1", "processing", Some(90)).await;
    assert_eq!(
        (late.status, late.ignored.as_deref()),
        (StatusCode::OK, Some("intermediate"))
    );

    drain(&handle).await;
    assert_eq!(finals.all(), ["t1 succeeded=completed"]);
    let stats = service.get_ref().stats();
    assert_eq!((stats.finals, stats.dropped, stats.regressions), (1, 3, 0));
}

#[tokio::test]
async fn a_failing_progress_handler_loses_nothing() {
    let finals = Seen::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let on_progress = {
        let calls = calls.clone();
        move |_event: TaskEvent| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if call == 0 {
                    Err(std::io::Error::other("the progress table is locked"))
                } else {
                    Ok(())
                }
            }
        }
    };
    let (service, handle) = CallbackStack::new()
        .profile(Steps::new())
        .on_progress(on_progress)
        .build(handler(&finals, None));
    handle.started().await;

    let failed = send(&service, "t1", "processing", Some(30)).await;
    assert_eq!(failed.status, StatusCode::OK, "{failed:?}");
    assert_eq!(failed.ignored.as_deref(), Some("progress_failed"));
    // The state was given back: its re-push runs the handler again.
    let again = send(&service, "t1", "processing", Some(30)).await;
    assert_eq!((again.ignored, again.duplicate), (None, None));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        send(&service, "t1", "succeeded", None).await.status,
        StatusCode::ACCEPTED
    );

    drain(&handle).await;
    assert_eq!(finals.all(), ["t1 succeeded=completed"]);
    let stats = service.get_ref().stats();
    assert_eq!((stats.failed, stats.handled), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn the_profile_sets_the_default_dedup_stores_ttl() {
    let day = Duration::from_secs(24 * 3600);
    // Retried for two days: ids are remembered for four.
    let profile = Steps::retrying_for(2 * day);
    assert_eq!(profile.default_time_to_live(), 4 * day);

    let finals = Seen::default();
    let (service, handle) = CallbackStack::new()
        .profile(profile)
        .build(handler(&finals, None));
    // A dedup layer of one's own keeps its store's TTL (24 h), even when
    // the profile comes after it.
    let own = Seen::default();
    let (own_service, own_handle) = CallbackStack::new()
        .dedup(DedupLayer::new())
        .profile(profile)
        .build(handler(&own, None));
    handle.started().await;
    own_handle.started().await;

    assert_eq!(
        send(&service, "t1", "succeeded", None).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        send(&own_service, "t1", "succeeded", None).await.status,
        StatusCode::ACCEPTED
    );
    until("both ran", || finals.len() == 1 && own.len() == 1).await;

    tokio::time::advance(3 * day).await;
    let again = send(&service, "t1", "succeeded", None).await;
    assert_eq!(
        (again.status, again.duplicate.as_deref()),
        (StatusCode::OK, Some("done"))
    );
    let own_again = send(&own_service, "t1", "succeeded", None).await;
    assert_eq!(
        own_again.status,
        StatusCode::ACCEPTED,
        "forgotten after 24 h"
    );

    drain(&handle).await;
    drain(&own_handle).await;
    assert_eq!(finals.len(), 1);
    assert_eq!(own.len(), 2);
}

#[tokio::test]
async fn without_a_profile_the_stack_is_as_it_was() {
    // The default provider pushes final states only: the progress layer
    // passes everything on, an unexpected intermediate push too.
    let finals = Seen::default();
    let (service, handle) = CallbackStack::new().build(handler(&finals, None));
    handle.started().await;
    let body = r#"{"code":200,"data":{"id":"t1","status":"processing"}}"#;
    let request = http::Request::post("/callback")
        .body(body.to_owned())
        .unwrap();
    let response = tower::ServiceExt::oneshot(service.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(!response.headers().contains_key("taskhook-ignored"));
    drain(&handle).await;
    assert_eq!(finals.all(), ["t1 processing=processing"]);
    assert_eq!(service.get_ref().stats(), Default::default());
}

#[tokio::test]
async fn a_progress_handler_turns_the_layer_on_for_a_final_only_provider() {
    let (finals, states) = (Seen::default(), Seen::default());
    let stack = CallbackStack::new().on_progress(progress(&states));
    // A closure is not `Debug`; the stack still is.
    assert!(format!("{stack:?}").contains("on_progress: Some("));
    let (service, handle) = stack.build(handler(&finals, None));
    handle.started().await;
    for (status, expected) in [
        ("processing", StatusCode::OK),
        ("completed", StatusCode::ACCEPTED),
    ] {
        let body = format!(r#"{{"code":200,"data":{{"id":"t1","status":"{status}"}}}}"#);
        let request = http::Request::post("/callback").body(body).unwrap();
        let response = tower::ServiceExt::oneshot(service.clone(), request)
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    drain(&handle).await;
    assert_eq!(finals.all(), ["t1 completed=completed"]);
    assert_eq!(states.all(), ["t1 processing=processing"]);
}
