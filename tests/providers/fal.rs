//! fal.ai: one push per queued request.

use serde_json::json;
use taskhook::provider::Fal;
use taskhook::TaskStatus;

use super::*;

const P: &str = "fal";

#[test]
fn ok_with_images() {
    let event = parse(&Fal::new(), P, "ok-images");
    assert_eq!(event.id(), "6f1d2c3b-8a9e-4b7c-9d0e-1f2a3b4c5d6e");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    assert_eq!(event.raw_status(), Some("OK"));
    assert_eq!(
        urls(&event),
        [
            (
                "images".into(),
                "https://v3.fal.media/files/tiger/Ab12Cd34_lighthouse.png".into(),
                None
            ),
            (
                "images".into(),
                "https://v3.fal.media/files/tiger/Ef56Gh78_lighthouse.jpg".into(),
                None
            ),
        ]
    );
    assert!(event.error().is_none());
    assert_eq!(
        event.extra()["gateway_request_id"],
        "6f1d2c3b-8a9e-4b7c-9d0e-1f2a3b4c5d6e"
    );
    assert_eq!(event.extra()["payload"]["seed"], 196_619_188);
    assert!(!event.extra().contains_key("request_id"));
    assert!(!event.extra().contains_key("status"));
}

#[test]
fn video_and_audio_by_content_type_and_key() {
    let event = parse(&Fal::new(), P, "ok-video-audio");
    // Sorted: the order of an object's keys is serde_json's.
    let mut found = urls(&event);
    found.sort();
    assert_eq!(
        found,
        [
            // No content_type: the key names it.
            (
                "audios".into(),
                "https://v3.fal.media/files/koala/Zw34_soundtrack.wav".into(),
                None
            ),
            // A content_type that is no media: by the extension.
            (
                "files".into(),
                "https://v3.fal.media/files/koala/Qr56_thumb.bin".into(),
                None
            ),
            (
                "videos".into(),
                "https://v3.fal.media/files/koala/Xy12_output.mp4".into(),
                None
            ),
        ]
    );
    assert_ne!(event.extra()["gateway_request_id"], event.id());
}

#[test]
fn error_with_details_in_the_payload() {
    let event = parse(&Fal::new(), P, "error");
    assert_eq!(event.status(), Some(&TaskStatus::Failed));
    assert_eq!(event.raw_status(), Some("ERROR"));
    assert_eq!(error_message(&event), Some("Invalid status code: 422"));
    assert!(urls(&event).is_empty());
    assert_eq!(
        event.extra()["payload"]["detail"][0]["msg"],
        "field required"
    );
    assert!(!event.extra().contains_key("error"));
}

#[test]
fn payload_error() {
    let event = parse(&Fal::new(), P, "payload-error");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    let message = error_message(&event).unwrap();
    assert!(message.starts_with("Response payload is not JSON serializable"));
    assert_eq!(event.extra()["payload_error"], message);
    assert!(
        !event.extra().contains_key("payload"),
        "a null payload is dropped"
    );
}

#[test]
fn fields_of_unexpected_types() {
    let event = parse(&Fal::new(), P, "unexpected-types");
    // A number url, a non-URL, a bare string, an untyped object under an
    // unknown key: none is a file. A typed object under any key is.
    assert_eq!(
        urls(&event),
        [(
            "files".into(),
            "https://v3.fal.media/files/mesh.glb".into(),
            None
        )]
    );
    assert_eq!(event.extra()["gateway_request_id"], 12345);
    assert!(event.error().is_none());
    assert_eq!(event.extra()["error"], json!(["not", "a", "string"]));
}

#[test]
fn other_statuses_are_kept() {
    let event = parse_text(&Fal::new(), r#"{"request_id":"r","status":"IN_QUEUE"}"#).unwrap();
    assert_eq!(event.status(), Some(&TaskStatus::from("IN_QUEUE")));
    assert!(!event.is_final());
    let event = parse_text(&Fal::new(), r#"{"request_id":"r"}"#).unwrap();
    assert_eq!(event.status(), None);
}

#[test]
fn a_deep_payload_is_searched_to_a_bound() {
    // 40 levels of `{"a":..}` around a file: past the search's depth.
    let file = r#"{"url":"https://v3.fal.media/files/deep.png","content_type":"image/png"}"#;
    let deep = format!("{}{file}{}", r#"{"a":"#.repeat(40), "}".repeat(40));
    let body = format!(r#"{{"request_id":"r","status":"OK","payload":{deep}}}"#);
    let event = parse_text(&Fal::new(), body).unwrap();
    assert!(urls(&event).is_empty());
    let shallow =
        format!(r#"{{"request_id":"r","status":"OK","payload":{{"a":{{"b":[{file}]}}}}}}"#);
    let event = parse_text(&Fal::new(), shallow).unwrap();
    assert_eq!(urls(&event).len(), 1);
}

#[test]
fn hostile_input() {
    hostile_bodies(&Fal::new(), |id| match id {
        Some(id) => format!(r#"{{"request_id":{id},"status":"OK","payload":{{}}}}"#),
        None => r#"{"gateway_request_id":"g","status":"OK"}"#.to_owned(),
    });
}
