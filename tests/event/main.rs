//! The TaskEvent model against the provider's sample payloads and the edge
//! cases of its contract.

use taskhook::{event::IdError, event::PayloadErrorKind, TaskEvent, TaskStatus};

fn fixture(name: &str) -> TaskEvent {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    TaskEvent::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn urls(event: &TaskEvent) -> Vec<(&str, &str, Option<i64>)> {
    event
        .urls()
        .map(|u| (u.kind(), u.url(), u.expires_at()))
        .collect()
}

#[test]
fn image_with_url_array() {
    let event = fixture("completed-image-url-array");
    assert_eq!(event.id(), "task_01KA040M0HP1GJWBJYZMKX1XS1");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
    assert!(event.is_final());
    assert_eq!(event.progress(), Some(100));
    assert_eq!(
        urls(&event),
        [
            (
                "images",
                "https://upload.example.com/f/image/20251114/3f9c2a_0.png",
                Some(1763174708)
            ),
            (
                "images",
                "https://upload.example.com/f/image/20251114/3f9c2a_1.png",
                Some(1763174708)
            ),
        ]
    );
    assert_eq!(event.created(), Some(1763088289));
    assert_eq!(event.completed(), Some(1763088308));
    assert_eq!(event.estimated_time(), Some(60));
    assert_eq!(event.actual_time(), Some(19));
    assert_eq!(event.envelope().unwrap()["code"], 200);
    assert!(event.extra().is_empty());
}

#[test]
fn image_with_url_string() {
    let event = fixture("completed-image-url-string");
    assert_eq!(event.id(), "task-unified-1757156493-k9m2xpvw");
    let images = event.result().unwrap().images();
    assert_eq!(images.len(), 1);
    assert_eq!(
        images[0].urls(),
        ["https://upload.example.com/f/image/20250906/k9m2xpvw.png"]
    );
    assert_eq!(images[0].expires_at(), Some(1757242893));
}

#[test]
fn videos_current_and_legacy() {
    let current = fixture("completed-video");
    assert_eq!(current.id(), "task_01KBS40K78KGHZ9SDBWQSGSXRK");
    assert_eq!(
        urls(&current),
        [(
            "videos",
            "https://upload.example.com/f/video/20251206/video_task_01KBS40K78KGHZ9SDBWQSGSXRK.mp4",
            Some(1765087446)
        )]
    );
    assert_eq!(current.cost(), Some(0.1));
    assert_eq!(current.credits_cost(), Some(1.0));

    let legacy = fixture("completed-video-legacy");
    let video = &legacy.result().unwrap().videos()[0];
    assert_eq!(
        video.urls(),
        ["https://upload.example.com/f/video/20250904/v1d30abc.mp4"]
    );
    assert_eq!(video.duration(), Some(8.0));
    assert_eq!((video.width(), video.height()), (Some(1280), Some(720)));
    assert_eq!(video.expires_at(), Some(1757086400));
}

#[test]
fn audio() {
    let event = fixture("completed-audio");
    let audios = event.result().unwrap().audios();
    assert_eq!(audios[0].urls().len(), 2);
    assert_eq!(urls(&event).len(), 2);
    assert!(urls(&event)
        .iter()
        .all(|(kind, _, at)| *kind == "audios" && *at == Some(1765411200)));
}

#[test]
fn failed_with_error_object_and_string() {
    let object = fixture("failed-error-object");
    assert_eq!(object.status(), Some(&TaskStatus::Failed));
    let error = object.error().unwrap();
    assert_eq!(error.message(), Some("content rejected"));
    assert_eq!(error.kind(), Some("invalid_request_error"));
    assert_eq!(error.code().and_then(|c| c.as_i64()), Some(400));
    assert!(!error.is_plain());
    assert_eq!(object.urls().count(), 0);

    let string = fixture("failed-error-string");
    let error = string.error().unwrap();
    assert_eq!(error.message(), Some("upstream model timeout"));
    assert!(error.is_plain());
    assert_eq!(string.progress(), Some(35));
}

#[test]
fn cancelled() {
    let event = fixture("cancelled");
    assert_eq!(event.status(), Some(&TaskStatus::Cancelled));
    assert!(event.is_final());
    assert!(event.result().is_none());
}

#[test]
fn unenveloped() {
    let event = fixture("unenveloped-completed");
    assert_eq!(event.id(), "task_01KD00000000000000000NOENV");
    assert!(event.envelope().is_none());
    assert_eq!(urls(&event).len(), 1);
}

#[test]
fn extra_fields_survive() {
    let event = fixture("completed-extra-fields");
    assert_eq!(event.extra()["model"], "some-image-model-v3");
    assert_eq!(event.extra()["metadata"]["trace"], "a1b2");
    assert_eq!(event.cost(), Some(0.04), "cost sent as a string");
    let result = event.result().unwrap();
    assert_eq!(result.images()[0].get("seed").unwrap(), 42);
    // Any array of objects under `result` is a media kind.
    assert_eq!(
        result.media("thumbnails")[0].urls(),
        ["https://upload.example.com/f/image/20251222/extra_0_thumb.webp"]
    );
    let kinds: Vec<&str> = result.media_kinds().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["images", "thumbnails"]);
    assert_eq!(urls(&event).len(), 2);
}

#[test]
fn every_fixture_roundtrips_through_serialize() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    // The default provider's samples (the other providers' are in
    // `providers/`, tested by `tests/providers`).
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.extension().is_some_and(|ext| ext == "json") {
            continue;
        }
        let body = std::fs::read(path).unwrap();
        let event = TaskEvent::from_slice(&body).unwrap();
        let again = TaskEvent::from_slice(&serde_json::to_vec(&event).unwrap()).unwrap();
        assert_eq!(event.id(), again.id());
        assert_eq!(event.result(), again.result());
        assert_eq!(event.error(), again.error());
        assert_eq!(event.extra(), again.extra());
        // The task object, without the envelope, is what was inside `data`.
        let original: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let inner = original.get("data").unwrap_or(&original);
        assert_eq!(&serde_json::to_value(&event).unwrap(), inner);
        count += 1;
    }
    assert_eq!(count, 10);
}

#[test]
fn serde_deserialize_matches_from_slice() {
    let body = r#"{"code":200,"data":{"id":"t1","status":"completed"}}"#;
    let event: TaskEvent = serde_json::from_str(body).unwrap();
    assert_eq!(event, TaskEvent::from_slice(body.as_bytes()).unwrap());
    assert!(serde_json::from_str::<TaskEvent>(r#"{"status":"x"}"#).is_err());
}

#[test]
fn unknown_status_is_kept() {
    let event = TaskEvent::from_slice(br#"{"id":"t","status":"paused"}"#).unwrap();
    assert_eq!(event.status(), Some(&TaskStatus::Other("paused".into())));
    assert!(!event.is_final());
    let processing = TaskEvent::from_slice(br#"{"id":"t","status":"processing"}"#).unwrap();
    assert!(!processing.is_final());
}

#[test]
fn fields_of_unexpected_type_stay_readable() {
    let event = TaskEvent::from_slice(
        br#"{"id":"t","status":7,"progress":250,"created":"yesterday","result":"none",
            "error":42,"cost":"n/a"}"#,
    )
    .unwrap();
    assert_eq!(event.status(), None);
    assert_eq!(event.progress(), None);
    assert_eq!(event.created(), None);
    assert!(event.result().is_none());
    assert!(event.error().is_none());
    assert_eq!(event.cost(), None);
    let extra = event.extra();
    assert_eq!(extra["status"], 7);
    assert_eq!(extra["progress"], 250);
    assert_eq!(extra["created"], "yesterday");
    assert_eq!(extra["result"], "none");
    assert_eq!(extra["error"], 42);
}

#[test]
fn mixed_arrays_under_result_are_not_media() {
    let event = TaskEvent::from_slice(
        br#"{"id":"t","result":{"tags":["a","b"],"images":[{"url":["u1",3]}],"mixed":[{"url":"x"},1]}}"#,
    )
    .unwrap();
    let result = event.result().unwrap();
    assert_eq!(result.extra()["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        result.extra()["mixed"],
        serde_json::json!([{"url": "x"}, 1])
    );
    // A url array with a non-string is kept raw, not half-read.
    assert!(result.images()[0].urls().is_empty());
    assert_eq!(
        result.images()[0].get("url").unwrap(),
        &serde_json::json!(["u1", 3])
    );
}

#[test]
fn bare_object_with_a_data_field_keeps_it() {
    let event = TaskEvent::from_slice(br#"{"id":"outer","data":{"id":"inner","k":1}}"#).unwrap();
    assert_eq!(event.id(), "outer");
    assert_eq!(
        event.extra()["data"],
        serde_json::json!({"id": "inner", "k": 1})
    );

    let event = TaskEvent::from_slice(br#"{"code":200,"msg":"ok","data":{"id":"inner"}}"#).unwrap();
    assert_eq!(event.id(), "inner");
    assert_eq!(event.envelope().unwrap()["msg"], "ok");
}

#[test]
fn escaped_strings_are_decoded() {
    let event = TaskEvent::from_slice(br#"{"id":"t\u0031","st\u0061tus":"completed"}"#).unwrap();
    assert_eq!(event.id(), "t1");
    assert_eq!(event.status(), Some(&TaskStatus::Completed));
}

#[test]
fn id_rules() {
    let long = format!(r#"{{"id":"{}"}}"#, "x".repeat(257));
    let exactly = format!(r#"{{"id":"{}"}}"#, "x".repeat(256));
    assert!(TaskEvent::from_slice(exactly.as_bytes()).is_ok());
    let cases: [(&[u8], IdError); 8] = [
        (br#"{"status":"completed"}"#, IdError::Missing),
        (
            br#"{"code":200,"data":{"status":"completed"}}"#,
            IdError::Missing,
        ),
        (br#"{"id":""}"#, IdError::Empty),
        (br#"{"id":12}"#, IdError::NotString),
        (br#"{"id":null}"#, IdError::NotString),
        (long.as_bytes(), IdError::TooLong),
        (br#"{"id":"a\r\nSet-Cookie: x"}"#, IdError::ControlCharacter),
        (br#"{"id":"a\u0000b"}"#, IdError::ControlCharacter),
    ];
    for (body, expected) in cases {
        let error = TaskEvent::from_slice(body).unwrap_err();
        assert_eq!(
            error.kind(),
            &PayloadErrorKind::InvalidId(expected),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(error.code(), "invalid_id");
    }
}

#[test]
fn malformed_bodies() {
    let deep = format!("{}{}", "{\"a\":".repeat(200), "}".repeat(200));
    let deep_inside = format!(
        r#"{{"id":"t","x":{}{}}}"#,
        "{\"a\":".repeat(200),
        "}".repeat(200)
    );
    let cases: [(&[u8], PayloadErrorKind); 9] = [
        (b"", PayloadErrorKind::Syntax),
        (b"{", PayloadErrorKind::Syntax),
        (b"{\"id\":\"t\"} trailing", PayloadErrorKind::Syntax),
        (b"not json", PayloadErrorKind::Syntax),
        (b"{\"id\":\"t\xff\"}", PayloadErrorKind::InvalidUtf8),
        (deep.as_bytes(), PayloadErrorKind::TooDeep),
        (deep_inside.as_bytes(), PayloadErrorKind::TooDeep),
        (b"[1,2]", PayloadErrorKind::NotAnObject),
        (b"\"id\"", PayloadErrorKind::NotAnObject),
    ];
    for (body, expected) in cases {
        let error = TaskEvent::from_slice(body).unwrap_err();
        assert_eq!(error.kind(), &expected, "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn clones_share_one_allocation() {
    let event = fixture("completed-audio");
    let clone = event.clone();
    assert!(std::ptr::eq(event.id(), clone.id()));
}

/// `from_slice` validates the whole body and reads the id and scalars in a
/// light pass, and parses the rest on first access; `serde_json::from_slice`
/// runs the full parse at once. Both must accept the same bodies (a body
/// refused only by the lazy parse would be acknowledged and then be
/// unreadable) and read the same fields.
#[test]
fn light_pass_accepts_exactly_what_the_full_parse_accepts() {
    let deep_ok = format!(
        r#"{{"id":"t","x":{}1{}}}"#,
        "[".repeat(125),
        "]".repeat(125)
    );
    let deep_bad = format!(
        r#"{{"id":"t","x":{}1{}}}"#,
        "[".repeat(127),
        "]".repeat(127)
    );
    let cases: Vec<&[u8]> = vec![
        // Faults in values the light pass does not keep.
        br#"{"id":"t","note":"\ud800"}"#,
        br#"{"id":"t","note":"\udc00\ud800"}"#,
        br#"{"id":"t","note":"\ud83d\ude00"}"#,
        br#"{"id":"t","result":{"images":[{"url":"u","seed":1e400}]}}"#,
        br#"{"id":"t","cost":-1e309}"#,
        br#"{"id":"t","cost":1e308}"#,
        br#"{"id":"t","n":18446744073709551616}"#,
        b"{\"id\":\"t\",\"note\":\"\xff\"}",
        b"{\"id\":\"t\",\"n\xc3\":1}",
        br#"{"id":"t","x":{"\ud800":1}}"#,
        br#"{"id":"t","x":"\q"}"#,
        br#"{"id":"t","x":"tab	inside"}"#,
        br#"{"id":"t","x":01}"#,
        br#"{"id":"t","x":[1,]}"#,
        br#"{"id":"t","x":{"a":1,}}"#,
        deep_ok.as_bytes(),
        deep_bad.as_bytes(),
        // The envelope and the id, both ways.
        br#"{"code":200,"data":{"id":"inner","status":"failed","progress":100}}"#,
        br#"{"id":"outer","status":"completed","data":{"id":"inner","status":"failed"}}"#,
        br#"{"data":"x","id":"t"}"#,
        br#"{"data":{"id":"a"},"data":{"status":"completed"}}"#,
        br#"{"data":{"id":"a"},"data":7,"id":"b"}"#,
        br#"{"data":{"id":7}}"#,
        br#"{"data":[],"id":"t"}"#,
        br#"{"data":{"id":"a"},"id":null}"#,
        // Duplicate and mistyped scalars: the last one of the right type wins.
        br#"{"id":"a","id":"b","status":"failed","status":3,"progress":50,"progress":500}"#,
        br#"{"id":"t","created":1.0,"completed":1.5,"estimated_time":-3,"actual_time":9e15}"#,
        br#"{"id":"t","status":"completed","status":"x\u0041"}"#,
    ];
    let malformed = [
        &b""[..],
        b"{",
        b"[1]",
        b"\"id\"",
        b"{\"id\":\"t\xff\"}",
        b"{\"status\":\"completed\"}",
        b"{\"id\":\"\"}",
        b"{\"id\":\"t\"} trailing",
    ];
    for body in cases.iter().chain(&malformed) {
        let text = String::from_utf8_lossy(body);
        let light = TaskEvent::from_slice(body);
        // The one-pass parse gives the same answer, error kinds included.
        let in_full = TaskEvent::from_bytes_in_full(bytes::Bytes::copy_from_slice(body));
        assert_eq!(
            light.as_ref().map(TaskEvent::id).map_err(|e| e.kind()),
            in_full.as_ref().map(TaskEvent::id).map_err(|e| e.kind()),
            "{text}"
        );
        if let (Ok(light), Ok(in_full)) = (&light, &in_full) {
            assert_eq!(light, in_full, "{text}");
            assert_eq!(light.status(), in_full.status(), "{text}");
        }
        let full = serde_json::from_slice::<TaskEvent>(body);
        assert_eq!(light.is_ok(), full.is_ok(), "{text}: {light:?} / {full:?}");
        let (Ok(light), Ok(full)) = (light, full) else {
            continue;
        };
        assert_eq!(light.id(), full.id(), "{text}");
        assert_eq!(light.status(), full.status(), "{text}");
        assert_eq!(light.progress(), full.progress(), "{text}");
        assert_eq!(light.created(), full.created(), "{text}");
        assert_eq!(light.completed(), full.completed(), "{text}");
        assert_eq!(light.estimated_time(), full.estimated_time(), "{text}");
        assert_eq!(light.actual_time(), full.actual_time(), "{text}");
        assert_eq!(light, full, "{text}");
    }
}

#[test]
fn clones_share_the_rest_parsed_on_first_access() {
    let event = fixture("completed-extra-fields");
    let clone = event.clone();
    // Parsed by the clone, seen by the original: one shared parse.
    let extra = clone.extra() as *const _;
    assert!(std::ptr::eq(event.extra(), extra));
    assert!(std::ptr::eq(
        event.result().unwrap(),
        clone.result().unwrap()
    ));
}
