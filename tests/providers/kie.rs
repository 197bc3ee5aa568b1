//! KIE.ai: one push per task, success or failure, shapes by model.

use serde_json::json;
use taskhook::provider::Kie;
use taskhook::TaskStatus;

use super::*;

const P: &str = "kie";

#[test]
fn veo_success() {
    let event = parse(&Kie::new(), P, "veo-success");
    assert_eq!(event.id(), "veo_task_7f8e9d0c1b2a");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    assert_eq!(event.raw_status(), Some("200"));
    assert_eq!(
        urls(&event),
        [(
            "videos".into(),
            "https://tempfile.aiquickdraw.example/v/7f8e9d0c_1080p.mp4".into(),
            None
        )]
    );
    assert!(event.error().is_none());
    assert_eq!(event.extra()["code"], 200);
    assert_eq!(event.extra()["msg"], "Veo3 video generated successfully.");
    assert_eq!(event.extra()["fallbackFlag"], false);
    assert_eq!(event.extra()["info"]["resolution"], "1080p");
    assert!(!event.extra().contains_key("taskId"));
}

#[test]
fn veo_failure_by_code() {
    let event = parse(&Kie::new(), P, "veo-failed");
    assert_eq!(event.id(), "veo_task_0a1b2c3d4e5f");
    assert_eq!(event.status(), Some(&TaskStatus::Failed));
    assert_eq!(event.raw_status(), Some("400"));
    assert_eq!(
        error_message(&event),
        Some("Your prompt was flagged by the content policy.")
    );
    assert_eq!(event.error().unwrap().code(), Some(&json!(400)));
    assert!(urls(&event).is_empty());
}

#[test]
fn market_success_with_result_json() {
    let event = parse(&Kie::new(), P, "market-success");
    assert_eq!(event.id(), "e989621f54392584b05867f87b160672");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    assert_eq!(event.raw_status(), Some("success"));
    assert_eq!(
        urls(&event),
        [
            (
                "images".into(),
                "https://tempfile.aiquickdraw.example/m/e9896_0.png".into(),
                None
            ),
            (
                "images".into(),
                "https://tempfile.aiquickdraw.example/m/e9896_1.png".into(),
                None
            ),
        ]
    );
    assert_eq!(event.created(), Some(1_773_480_837));
    assert_eq!(event.completed(), Some(1_773_480_845));
    assert_eq!(event.extra()["model"], "acme/image-edit");
    assert_eq!(event.extra()["costTime"], 8);
    assert!(event.extra()["resultJson"]
        .as_str()
        .unwrap()
        .contains("resultUrls"));
    assert!(!event.extra().contains_key("state"));
}

#[test]
fn market_failure_by_state() {
    let event = parse(&Kie::new(), P, "market-fail");
    assert_eq!(
        event.id(),
        "b2c3d4e5f60718293a4b5c6d7e8f9012",
        "task_id also names it"
    );
    assert_eq!(event.status(), Some(&TaskStatus::Failed));
    assert_eq!(event.raw_status(), Some("fail"));
    assert_eq!(
        error_message(&event),
        Some("The input image could not be read.")
    );
    assert_eq!(event.error().unwrap().code(), Some(&json!("422")));
    assert!(urls(&event).is_empty());
    assert_eq!(event.extra()["code"], 501);
}

#[test]
fn result_urls_in_several_places_listed_once() {
    let event = parse(&Kie::new(), P, "image-result-urls");
    assert_eq!(
        urls(&event),
        [
            (
                "images".into(),
                "https://tempfile.aiquickdraw.example/i/5566.png".into(),
                None
            ),
            (
                "images".into(),
                "https://tempfile.aiquickdraw.example/i/5566-b.webp".into(),
                None
            ),
        ]
    );
}

#[test]
fn fields_of_unexpected_types() {
    let event = parse(&Kie::new(), P, "unexpected-types");
    assert_eq!(event.id(), "odd_task_1");
    // A string code and a numeric state: no status can be read.
    assert_eq!(event.status(), None);
    assert_eq!(event.raw_status(), None);
    assert_eq!(event.extra()["state"], 1);
    assert_eq!(event.extra()["code"], "200");
    // One URL string where an array was expected is still a result.
    assert_eq!(
        urls(&event),
        [(
            "audios".into(),
            "https://tempfile.aiquickdraw.example/o/odd.mp3".into(),
            None
        )]
    );
    assert_eq!(event.created(), None);
    assert_eq!(event.extra()["createTime"], "soon");
    assert_eq!(event.extra()["resultJson"], "{not json");
}

#[test]
fn an_unknown_state_defers_to_the_code() {
    let body = r#"{"code":200,"msg":"ok","data":{"taskId":"t","state":"GENERATE_SUCCESS"}}"#;
    let event = parse_text(&Kie::new(), body).unwrap();
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    assert_eq!(event.raw_status(), Some("GENERATE_SUCCESS"));
    let body = r#"{"msg":"?","data":{"taskId":"t","state":"GENERATE_SUCCESS"}}"#;
    let event = parse_text(&Kie::new(), body).unwrap();
    assert_eq!(event.status(), Some(&TaskStatus::from("GENERATE_SUCCESS")));
}

#[test]
fn no_data_is_refused() {
    for body in [r#"{"code":200,"msg":"ok"}"#, r#"{"code":200,"data":"t"}"#] {
        assert!(matches!(
            refused(&Kie::new(), body),
            PayloadErrorKind::Shape(_)
        ));
    }
}

#[test]
fn hostile_input() {
    hostile_bodies(&Kie::new(), |id| match id {
        Some(id) => format!(r#"{{"code":200,"msg":"success","data":{{"taskId":{id}}}}}"#),
        None => r#"{"code":200,"msg":"success","data":{"info":{}}}"#.to_owned(),
    });
    let event = parse_text(&Kie::new(), r#"{"code":200,"data":{"task_id":"snake"}}"#).unwrap();
    assert_eq!(event.id(), "snake");
}
