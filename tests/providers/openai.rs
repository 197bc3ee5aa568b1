//! OpenAI: thin events, the object's id in `data.id`.

use serde_json::json;
use taskhook::provider::{OpenAi, Profile};
use taskhook::TaskStatus;

use super::*;

const P: &str = "openai";

#[test]
fn response_completed() {
    let event = parse(&OpenAi::new(), P, "response-completed");
    assert_eq!(event.id(), "resp_abc123def456");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    assert_eq!(event.raw_status(), Some("response.completed"));
    assert_eq!(event.completed(), Some(1_750_287_018));
    assert_eq!(
        event.extra()["event_id"],
        "evt_685343a1381c819085d44c354e1b330e"
    );
    assert_eq!(event.extra()["created_at"], 1_750_287_018);
    assert_eq!(event.extra()["object"], "event");
    assert!(!event.extra().contains_key("data"), "data held only the id");
    assert!(urls(&event).is_empty(), "a thin event has no results");
    assert!(OpenAi::new().is_thin());
}

#[test]
fn statuses_from_the_type() {
    for (name, id, status, raw) in [
        (
            "response-failed",
            "resp_fail0001",
            TaskStatus::Failed,
            "response.failed",
        ),
        (
            "response-incomplete",
            "resp_cut0001",
            TaskStatus::Failed,
            "response.incomplete",
        ),
        (
            "batch-cancelled",
            "batch_abc123",
            TaskStatus::Cancelled,
            "batch.cancelled",
        ),
        (
            "fine-tuning-succeeded",
            "ftjob_abc123",
            TaskStatus::Completed,
            "fine_tuning.job.succeeded",
        ),
    ] {
        let event = parse(&OpenAi::new(), P, name);
        assert_eq!(event.id(), id, "{name}");
        assert_eq!(event.status(), Some(&status), "{name}");
        assert_eq!(event.raw_status(), Some(raw), "{name}");
        assert!(event.is_final(), "{name}");
        assert!(event.extra()["event_id"]
            .as_str()
            .unwrap()
            .starts_with("evt_"));
        // Only a completed object has a completion time.
        assert_eq!(event.completed().is_some(), status == TaskStatus::Completed);
    }
    for (event_type, status) in [
        ("batch.expired", TaskStatus::Failed),
        ("eval.run.canceled", TaskStatus::Cancelled),
        ("video.failed", TaskStatus::Failed),
        ("batch.completed", TaskStatus::Completed),
    ] {
        let body =
            format!(r#"{{"id":"evt_1","type":"{event_type}","created_at":1,"data":{{"id":"x"}}}}"#);
        let event = parse_text(&OpenAi::new(), body).unwrap();
        assert_eq!(event.status(), Some(&status), "{event_type}");
    }
}

#[test]
fn another_event_type_is_kept_with_its_data() {
    let event = parse(&OpenAi::new(), P, "realtime-call-incoming");
    assert_eq!(event.id(), "rtc_abc123");
    assert_eq!(
        event.status(),
        Some(&TaskStatus::from("realtime.call.incoming"))
    );
    assert!(!event.is_final());
    assert_eq!(
        event.extra()["data"]["sip_headers"][0]["name"],
        json!("From")
    );
}

#[test]
fn fields_of_unexpected_types() {
    let event = parse(&OpenAi::new(), P, "unexpected-types");
    assert_eq!(event.id(), "video_abc123");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    // No usable time, a numeric event id: kept as sent.
    assert_eq!(event.completed(), None);
    assert_eq!(event.extra()["created_at"], "yesterday");
    assert!(!event.extra().contains_key("event_id"));
    assert_eq!(event.extra()["id"], 42);
}

#[test]
fn no_data_is_refused() {
    for body in [
        r#"{"id":"evt_1","type":"response.completed"}"#,
        r#"{"id":"evt_1","type":"response.completed","data":null}"#,
        r#"{"id":"evt_1","type":"response.completed","data":"resp_1"}"#,
    ] {
        let kind = refused(&OpenAi::new(), body);
        assert!(
            matches!(kind, PayloadErrorKind::Shape(_)),
            "{body}: {kind:?}"
        );
    }
}

#[test]
fn hostile_input() {
    hostile_bodies(&OpenAi::new(), |id| match id {
        Some(id) => format!(
            r#"{{"id":"evt_1","object":"event","type":"response.completed","created_at":1,"data":{{"id":{id}}}}}"#
        ),
        None => r#"{"id":"evt_1","type":"response.completed","data":{}}"#.to_owned(),
    });
}
