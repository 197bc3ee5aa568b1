//! Kling: the task at every status change.

use serde_json::json;
use taskhook::provider::Kling;
use taskhook::TaskStatus;

use super::*;

const P: &str = "kling";

#[test]
fn the_states_of_one_video_task() {
    let steps = [
        ("submitted", TaskStatus::Submitted),
        ("processing", TaskStatus::Processing),
        ("succeed-video", TaskStatus::Completed),
    ];
    for (name, status) in steps {
        let event = parse(&Kling::new(), P, name);
        assert_eq!(event.id(), "CjhRwGd2kLcAAAAAAfN9Kw", "{name}");
        assert_eq!(event.status(), Some(&status), "{name}");
        assert_eq!(event.created(), Some(1_773_480_000), "{name}");
        assert_eq!(event.extra()["external_task_id"], "order-2026-0314-001");
        assert!(event.error().is_none());
        assert!(
            !event.extra().contains_key("task_status_msg"),
            "empty: dropped"
        );
    }
    let submitted = parse(&Kling::new(), P, "submitted");
    assert_eq!(submitted.raw_status(), Some("submitted"));
    assert_eq!(submitted.completed(), None, "not final");
    assert_eq!(submitted.extra()["updated_at"], 1_773_480_000_123_i64);

    let done = parse(&Kling::new(), P, "succeed-video");
    assert_eq!(done.raw_status(), Some("succeed"));
    assert_eq!(done.completed(), Some(1_773_480_095));
    assert_eq!(
        urls(&done),
        [(
            "videos".into(),
            "https://cdn.klingai.example/bs2/upload-kling-api/video/8f1a2b3c.mp4".into(),
            None
        )]
    );
    assert_eq!(done.extra()["task_result"]["videos"][0]["duration"], "5.1");
    assert_eq!(done.extra()["final_unit_deduction"], "2.5");
}

#[test]
fn images_and_a_top_level_external_id() {
    let event = parse(&Kling::new(), P, "succeed-images");
    assert_eq!(
        urls(&event),
        [
            (
                "images".into(),
                "https://cdn.klingai.example/bs2/upload-ylab-stunt/1fa0ac67.png".into(),
                None
            ),
            (
                "images".into(),
                "https://cdn.klingai.example/bs2/upload-ylab-stunt/2gb1bd78.png".into(),
                None
            ),
        ]
    );
    assert_eq!(event.extra()["external_task_id"], "poster-77");
}

#[test]
fn failed_with_the_reason() {
    let event = parse(&Kling::new(), P, "failed");
    assert_eq!(event.status(), Some(&TaskStatus::Failed));
    assert_eq!(event.raw_status(), Some("failed"));
    assert_eq!(
        error_message(&event),
        Some("Failure to pass the risk control system")
    );
    assert_eq!(event.completed(), Some(1_773_482_004));
    assert!(urls(&event).is_empty());
}

#[test]
fn fields_of_unexpected_types() {
    let event = parse(&Kling::new(), P, "unexpected-types");
    assert_eq!(event.id(), "CjirA2d5oGcAAAAAAiQ2Nw");
    assert_eq!(event.status(), None);
    assert_eq!(event.extra()["task_status"], 2);
    assert!(event.error().is_none());
    assert_eq!(
        event.extra()["task_status_msg"],
        json!({"reason": "not a string"})
    );
    assert_eq!(event.created(), None);
    assert_eq!(event.extra()["created_at"], "1773483000000");
    assert!(urls(&event).is_empty());
}

#[test]
fn hostile_input() {
    hostile_bodies(&Kling::new(), |id| match id {
        Some(id) => format!(r#"{{"task_id":{id},"task_status":"succeed","task_result":{{}}}}"#),
        None => r#"{"task_status":"succeed","task_info":{"external_task_id":"e"}}"#.to_owned(),
    });
}
