//! The generic Standard Webhooks profile.

use http::HeaderValue;
use serde_json::json;
use taskhook::provider::StandardWebhooks;
use taskhook::TaskStatus;

use super::*;

const P: &str = "standard-webhooks";

fn with_message_id(provider: &str, name: &str, message_id: &str) -> TaskEvent {
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_str(message_id).unwrap());
    StandardWebhooks::new()
        .parse(&fixture(provider, name), &headers)
        .unwrap()
}

#[test]
fn data_id_status_and_outputs() {
    let event = with_message_id(P, "task-succeeded", "msg_2Lh9QvW");
    assert_eq!(event.id(), "task_8c1d2e3f");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    assert_eq!(event.raw_status(), Some("succeeded"));
    assert_eq!(
        urls(&event),
        [
            (
                "videos".into(),
                "https://files.acme.example/task_8c1d2e3f/out.mp4".into(),
                None
            ),
            (
                "images".into(),
                "https://files.acme.example/task_8c1d2e3f/poster.jpg".into(),
                None
            ),
        ]
    );
    assert_eq!(event.extra()["webhook_id"], "msg_2Lh9QvW");
    assert_eq!(event.extra()["type"], "task.succeeded");
    assert_eq!(event.extra()["timestamp"], "2026-03-14T09:30:00.000Z");
    assert_eq!(event.extra()["data"]["model"], "acme-video-2");
}

#[test]
fn gemini_video_generated() {
    let event = parse(&StandardWebhooks::new(), P, "gemini-video-generated");
    assert_eq!(event.id(), "operations/generate-video-4f5e6d7c");
    // No `data.status`, and `generated` is no status word: kept as is.
    assert_eq!(event.raw_status(), Some("video.generated"));
    assert_eq!(event.status(), Some(&TaskStatus::from("video.generated")));
    assert_eq!(
        urls(&event),
        [(
            "videos".into(),
            "https://generativelanguage.example/v1beta/files/4f5e6d7c:download?alt=media".into(),
            None
        )]
    );
    assert!(!event.extra().contains_key("webhook_id"));
}

#[test]
fn the_message_id_when_data_has_no_id() {
    let event = with_message_id(P, "batch-expired-no-id", "msg_9xQ");
    assert_eq!(event.id(), "msg_9xQ");
    assert_eq!(event.status(), Some(&TaskStatus::Failed));
    assert_eq!(event.raw_status(), Some("batch.expired"));
    assert_eq!(event.extra()["data"]["name"], "batches/8a7b6c5d");

    // Without the header there is no id at all.
    let body = fixture(P, "batch-expired-no-id");
    let error = StandardWebhooks::new()
        .parse(&body, &HeaderMap::new())
        .unwrap_err();
    assert_eq!(error.code(), "unexpected_shape");
    // A message id that is not a usable task id is refused as one.
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_static(""));
    let error = StandardWebhooks::new().parse(&body, &headers).unwrap_err();
    assert_eq!(error.kind(), &PayloadErrorKind::InvalidId(IdError::Empty));
    let mut headers = HeaderMap::new();
    headers.insert(
        "webhook-id",
        HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
    );
    assert!(StandardWebhooks::new().parse(&body, &headers).is_err());
}

#[test]
fn an_intermediate_and_a_failed_state() {
    let event = parse(&StandardWebhooks::new(), P, "job-running");
    assert_eq!(event.status(), Some(&TaskStatus::Processing));
    assert_eq!(event.raw_status(), Some("in_progress"));
    assert_eq!(event.extra()["data"]["progress"], 40);

    let event = parse(&StandardWebhooks::new(), P, "job-failed");
    assert_eq!(event.status(), Some(&TaskStatus::Failed));
    assert_eq!(event.raw_status(), Some("error"));
    assert_eq!(error_message(&event), Some("The prompt was refused."));
    assert_eq!(
        event.error().unwrap().code(),
        Some(&json!("content_policy"))
    );
}

#[test]
fn common_status_spellings() {
    for (word, status) in [
        ("success", TaskStatus::Completed),
        ("DONE", TaskStatus::Completed),
        ("completed", TaskStatus::Completed),
        ("failed", TaskStatus::Failed),
        ("canceled", TaskStatus::Cancelled),
        ("cancelled", TaskStatus::Cancelled),
        ("running", TaskStatus::Processing),
        ("processing", TaskStatus::Processing),
        ("queued", TaskStatus::Pending),
        ("pending", TaskStatus::Pending),
        ("starting", TaskStatus::Pending),
        ("paused", TaskStatus::from("paused")),
    ] {
        let body =
            format!(r#"{{"type":"x.y","timestamp":"t","data":{{"id":"a","status":"{word}"}}}}"#);
        let event = parse_text(&StandardWebhooks::new(), body).unwrap();
        assert_eq!(event.status(), Some(&status), "{word}");
        assert_eq!(event.raw_status(), Some(word));
    }
}

#[test]
fn fields_of_unexpected_types() {
    let event = parse(&StandardWebhooks::new(), P, "unexpected-types");
    assert_eq!(event.id(), "task_99");
    // `data.status` is a number: the type's suffix speaks.
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    assert_eq!(event.raw_status(), Some("task.done"));
    // Only the http(s) strings are results.
    assert_eq!(
        urls(&event),
        [(
            "audios".into(),
            "https://files.acme.example/a.wav".into(),
            None
        )]
    );
    assert!(event.error().is_none());
    assert_eq!(event.extra()["timestamp"], 1_773_480_840);
    assert_eq!(event.extra()["data"]["status"], 3);

    let kind = refused(&StandardWebhooks::new(), r#"{"type":"a.b","data":[1]}"#);
    assert!(matches!(kind, PayloadErrorKind::Shape(_)));
}

#[test]
fn hostile_input() {
    hostile_bodies(&StandardWebhooks::new(), |id| match id {
        Some(id) => format!(
            r#"{{"type":"task.succeeded","timestamp":"2026-03-14T09:30:00Z","data":{{"id":{id}}}}}"#
        ),
        None => {
            r#"{"type":"task.succeeded","timestamp":"2026-03-14T09:30:00Z","data":{}}"#.to_owned()
        }
    });
}
