//! midjourney-proxy: the Task at every change of status or progress.

use taskhook::provider::MidjourneyProxy;
use taskhook::TaskStatus;

use super::*;

const P: &str = "midjourney-proxy";

#[test]
fn the_states_of_one_task() {
    let submitted = parse(&MidjourneyProxy::new(), P, "submitted");
    assert_eq!(submitted.id(), "1773480000123456");
    assert_eq!(submitted.status(), Some(&TaskStatus::Submitted));
    assert_eq!(submitted.raw_status(), Some("SUBMITTED"));
    assert_eq!(submitted.progress(), Some(0));
    assert_eq!(submitted.created(), Some(1_773_480_000));
    assert!(urls(&submitted).is_empty());
    assert_eq!(submitted.extra()["action"], "IMAGINE");
    assert_eq!(submitted.extra()["state"], "order-42");
    assert_eq!(
        submitted.extra()["properties"]["notifyHook"],
        "https://app.example/mj/hook"
    );
    assert!(!submitted.extra().contains_key("failReason"));
    assert!(!submitted.extra().contains_key("imageUrl"));

    let running = parse(&MidjourneyProxy::new(), P, "in-progress");
    assert_eq!(running.status(), Some(&TaskStatus::Processing));
    assert_eq!(running.progress(), Some(46));
    assert_eq!(running.extra()["startTime"], 1_773_480_002_456_i64);
    assert_eq!(running.completed(), None);
    // The preview grid is a result URL too.
    assert_eq!(urls(&running).len(), 1);

    let done = parse(&MidjourneyProxy::new(), P, "success");
    assert_eq!(done.status(), Some(&TaskStatus::Completed));
    assert_eq!(done.raw_status(), Some("SUCCESS"));
    assert_eq!(done.progress(), Some(100));
    assert_eq!(done.completed(), Some(1_773_480_061));
    assert_eq!(
        urls(&done),
        [(
            "images".into(),
            "https://cdn.discordapp.example/attachments/1/2/lighthouse_grid.png".into(),
            None
        )]
    );
    assert_eq!(done.extra()["buttons"][0]["label"], "U1");
    assert!(done.error().is_none());
}

#[test]
fn failure_with_the_reason() {
    let event = parse(&MidjourneyProxy::new(), P, "failure");
    assert_eq!(event.status(), Some(&TaskStatus::Failed));
    assert_eq!(event.raw_status(), Some("FAILURE"));
    assert!(error_message(&event)
        .unwrap()
        .starts_with("[Banned prompt detected]"));
    // An empty progress is not a number: kept as sent.
    assert_eq!(event.progress(), None);
    assert_eq!(event.extra()["progress"], "");
}

#[test]
fn the_clones_statuses() {
    let modal = parse(&MidjourneyProxy::new(), P, "modal");
    assert_eq!(modal.status(), Some(&TaskStatus::from("MODAL")));
    assert_eq!(modal.raw_status(), Some("MODAL"));
    assert!(!modal.is_final());
    assert!(modal.error().is_none(), "an empty failReason is no error");

    let body = r#"{"id":"1","status":"CANCEL"}"#;
    let cancelled = parse_text(&MidjourneyProxy::new(), body).unwrap();
    assert_eq!(cancelled.status(), Some(&TaskStatus::Cancelled));
    let body = r#"{"id":"1","status":"NOT_START","progress":250}"#;
    let not_started = parse_text(&MidjourneyProxy::new(), body).unwrap();
    assert_eq!(not_started.status(), Some(&TaskStatus::Pending));
    assert_eq!(not_started.progress(), Some(100), "capped");
}

#[test]
fn fields_of_unexpected_types() {
    let event = parse(&MidjourneyProxy::new(), P, "unexpected-types");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    // A relative imageUrl is not listed; the clone's videoUrl is.
    assert_eq!(
        urls(&event),
        [("videos".into(), "https://cdn.example/mj/v.mp4".into(), None)]
    );
    assert_eq!(event.extra()["imageUrl"], "/relative/path.png");
    assert_eq!(event.progress(), None);
    assert_eq!(event.extra()["progress"], "about half");
    assert!(event.error().is_none());
    assert_eq!(event.extra()["failReason"], 5);
    assert_eq!(event.created(), None);
    assert_eq!(event.extra()["submitTime"], "1773480300333");
    assert_eq!(event.completed(), None, "a zero finishTime is no time");
}

#[test]
fn hostile_input() {
    hostile_bodies(&MidjourneyProxy::new(), |id| match id {
        Some(id) => {
            format!(r#"{{"id":{id},"action":"IMAGINE","status":"SUCCESS","progress":"100%"}}"#)
        }
        None => r#"{"action":"IMAGINE","status":"SUCCESS"}"#.to_owned(),
    });
}
