//! Replicate: the Prediction at every change.

use serde_json::json;
use taskhook::provider::Replicate;
use taskhook::TaskStatus;

use super::*;

const P: &str = "replicate";

#[test]
fn succeeded_with_image_outputs() {
    let event = parse(&Replicate::new(), P, "succeeded-images");
    assert_eq!(event.id(), "q7n2c4xk5hrm80cmv3ta2bq4w8");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    assert_eq!(event.raw_status(), Some("succeeded"));
    assert!(event.is_final());
    // 2026-03-14T09:26:53.512Z and 09:27:05.874239Z, fractions dropped.
    assert_eq!(event.created(), Some(1_773_480_413));
    assert_eq!(event.completed(), Some(1_773_480_425));
    let expires = Some(1_773_480_425 + 3600);
    assert_eq!(
        urls(&event),
        [
            (
                "images".into(),
                "https://replicate.delivery/xezq/q7n2c4xk/out-0.webp".into(),
                expires
            ),
            (
                "images".into(),
                "https://replicate.delivery/xezq/q7n2c4xk/out-1.webp".into(),
                expires
            ),
        ]
    );
    assert!(event.error().is_none());
    assert_eq!(event.extra()["metrics"]["predict_time"], 11.77);
    assert_eq!(event.extra()["model"], "acme-labs/pixel-dream");
    assert_eq!(event.extra()["started_at"], "2026-03-14T09:26:54.101822Z");
    assert!(event.extra()["logs"].as_str().unwrap().contains("seed"));
    assert_eq!(event.extra()["input"]["num_outputs"], 2);
    // Mapped fields are not repeated under extra.
    for mapped in [
        "id",
        "status",
        "output",
        "created_at",
        "completed_at",
        "error",
    ] {
        assert!(!event.extra().contains_key(mapped), "{mapped}");
    }
}

#[test]
fn a_single_url_string_and_an_offset_time() {
    let event = parse(&Replicate::new(), P, "succeeded-video-string");
    // 10:01:40+00:00
    assert_eq!(event.completed(), Some(1_773_482_500));
    assert_eq!(
        urls(&event),
        [(
            "videos".into(),
            "https://replicate.delivery/yhqm/m0x3v9aa/output.mp4".into(),
            Some(1_773_482_500 + 3600)
        )]
    );
}

#[test]
fn intermediate_states() {
    let event = parse(&Replicate::new(), P, "processing");
    assert_eq!(event.status(), Some(&TaskStatus::Processing));
    assert_eq!(event.raw_status(), Some("processing"));
    assert!(!event.is_final());
    assert_eq!(event.completed(), None);
    assert!(urls(&event).is_empty());
    assert!(event.extra()["logs"].as_str().unwrap().contains("35%"));

    let event = parse(&Replicate::new(), P, "starting");
    assert_eq!(event.status(), Some(&TaskStatus::Pending));
    assert_eq!(event.raw_status(), Some("starting"));
    assert_eq!(event.extra()["input"], json!({"text": "Alice"}));
    assert_eq!(event.extra()["started_at"], json!(null));
}

#[test]
fn failed_and_canceled() {
    let event = parse(&Replicate::new(), P, "failed");
    assert_eq!(event.status(), Some(&TaskStatus::Failed));
    assert_eq!(
        error_message(&event),
        Some("CUDA out of memory. Tried to allocate 38.15 GiB")
    );
    assert!(urls(&event).is_empty());
    assert!(event.extra()["logs"]
        .as_str()
        .unwrap()
        .contains("ValueError"));

    let event = parse(&Replicate::new(), P, "canceled");
    assert_eq!(event.status(), Some(&TaskStatus::Cancelled));
    assert_eq!(event.raw_status(), Some("canceled"));

    let aborted = parse_text(&Replicate::new(), r#"{"id":"p","status":"aborted"}"#).unwrap();
    assert_eq!(aborted.status(), Some(&TaskStatus::Cancelled));
    assert_eq!(aborted.raw_status(), Some("aborted"));
    let unknown = parse_text(&Replicate::new(), r#"{"id":"p","status":"paused"}"#).unwrap();
    assert_eq!(unknown.status(), Some(&TaskStatus::from("paused")));
}

#[test]
fn output_that_is_not_urls_stays_in_extra() {
    let event = parse(&Replicate::new(), P, "text-output");
    assert!(urls(&event).is_empty());
    assert_eq!(
        event.extra()["output"],
        json!(["The", " lighthouse", " stands", " tall."])
    );
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
}

#[test]
fn fields_of_unexpected_types() {
    let event = parse(&Replicate::new(), P, "unexpected-types");
    assert_eq!(event.id(), "u5y7b3gg6hrm80cmv3th6k0r4");
    // An object output: its URL values listed, the object kept.
    assert_eq!(
        urls(&event),
        [(
            "videos".into(),
            "https://replicate.delivery/pbxt/u5y7b3gg/clip.mov".into(),
            None
        )]
    );
    assert_eq!(event.extra()["output"]["frames"], 48);
    // An error object, unparseable or numeric times: kept as sent, not read.
    assert!(event.error().is_none());
    assert_eq!(event.extra()["error"], json!({"detail": "not a string"}));
    assert_eq!(event.created(), None);
    assert_eq!(event.extra()["created_at"], "yesterday");
    assert_eq!(event.completed(), None);
    assert_eq!(event.extra()["completed_at"], 1_773_499_200);
}

#[test]
fn hostile_input() {
    hostile_bodies(&Replicate::new(), |id| match id {
        Some(id) => format!(r#"{{"id":{id},"status":"succeeded","output":null}}"#),
        None => r#"{"status":"succeeded","output":"https://x.example/a.png"}"#.to_owned(),
    });
}
