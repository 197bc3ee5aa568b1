//! No input makes a profile panic: every fixture with each of its fields
//! (top level and one level down) replaced by values of every JSON type,
//! truncated bodies, and arbitrary bytes and JSON.

use proptest::prelude::*;
use serde_json::{json, Value};
use taskhook::provider::{by_name, Profile, NAMES};

use super::*;

/// The fixture directory of each shipped profile but the default.
const PROVIDERS: &[&str] = &[
    "replicate",
    "fal",
    "openai",
    "standard-webhooks",
    "kie",
    "kling",
    "midjourney-proxy",
];

fn replacements() -> Vec<Value> {
    let deep = (0..100).fold(json!(1), |inner, _| json!([inner]));
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(1.5e300),
        json!(""),
        json!("x".repeat(300)),
        json!("https://cdn.example/a.png"),
        json!("\u{0}\r\n"),
        json!("100%"),
        json!("2026-13-45T99:99:99Z"),
        json!([]),
        json!(["https://cdn.example/a.mp4", 1, null, {"url": "https://cdn.example/b.mp3"}]),
        json!({}),
        json!({"url": "https://cdn.example/c.webp", "content_type": 5}),
        json!({"resultUrls": "https://cdn.example/d.png"}),
        deep,
    ]
}

/// Parses, for the side effect of not panicking; reads every accessor.
fn exercise(profile: &dyn Profile, body: &[u8], headers: &HeaderMap) {
    if let Ok(event) = profile.parse(&Bytes::copy_from_slice(body), headers) {
        assert!(!event.id().is_empty());
        let _ = (event.status(), event.raw_status(), event.progress());
        let _ = (event.created(), event.completed(), event.error());
        assert!(event.progress().unwrap_or(0) <= 100);
        for url in event.urls() {
            assert!(!url.kind().is_empty());
            let _ = (url.url(), url.expires_at());
        }
        let _ = serde_json::to_string(event.extra()).unwrap();
    }
}

#[test]
fn every_field_of_every_fixture_of_any_type() {
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", "msg_1".parse().unwrap());
    for provider in PROVIDERS {
        let profile = by_name(provider).unwrap();
        for (name, body) in fixtures(provider) {
            let original: Value = serde_json::from_slice(&body).unwrap();
            let Value::Object(top) = &original else {
                panic!("{name}")
            };
            for (key, value) in top {
                for replacement in replacements() {
                    let mut changed = original.clone();
                    changed[key] = replacement.clone();
                    let text = serde_json::to_vec(&changed).unwrap();
                    exercise(&*profile, &text, &headers);
                    exercise(&*profile, &text, &HeaderMap::new());
                    // One level down too.
                    if let Value::Object(inner) = value {
                        for inner_key in inner.keys() {
                            let mut changed = original.clone();
                            changed[key][inner_key] = replacement.clone();
                            let text = serde_json::to_vec(&changed).unwrap();
                            exercise(&*profile, &text, &headers);
                        }
                    }
                }
            }
            // Every prefix of the body: truncated in transit.
            for end in 0..body.len() {
                exercise(&*profile, &body[..end], &headers);
            }
        }
    }
}

#[test]
fn every_fixture_parses_with_its_profile_only_where_it_should() {
    for provider in PROVIDERS {
        let profile = by_name(provider).unwrap();
        for (name, body) in fixtures(provider) {
            let mut headers = HeaderMap::new();
            headers.insert("webhook-id", "msg_1".parse().unwrap());
            let event = profile.parse(&body, &headers);
            assert!(event.is_ok(), "{provider}/{name}: {:?}", event.err());
        }
    }
    assert_eq!(&NAMES[1..], PROVIDERS);
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("https://cdn.example/a.png"),
            Just("succeeded"),
            Just("SUCCESS"),
            Just("42%"),
            Just("2026-03-14T09:26:53.512Z"),
            Just("response.completed"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("id".to_owned()),
                    Just("data".to_owned()),
                    Just("url".to_owned()),
                    Just("status".to_owned()),
                    Just("output".to_owned()),
                    Just("payload".to_owned()),
                    Just("images".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        for name in NAMES {
            exercise(&*by_name(name).unwrap(), &body, &HeaderMap::new());
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in arbitrary_json(), id in ".{0,8}") {
        // As it is, and with an id where each provider looks for one.
        let mut bodies = vec![value.clone()];
        for (path, holder) in [
            ("id", json!({})),
            ("request_id", json!({})),
            ("task_id", json!({})),
            ("data.id", json!({"data": {}})),
            ("data.taskId", json!({"data": {}})),
        ] {
            let mut body = holder;
            let (outer, inner) = path.split_once('.').unwrap_or(("", path));
            let target = if outer.is_empty() { &mut body } else { &mut body[outer] };
            target[inner] = Value::from(id.clone());
            for (key, v) in value.as_object().into_iter().flatten() {
                target[key] = v.clone();
            }
            bodies.push(body);
        }
        for body in bodies {
            let text = serde_json::to_vec(&body).unwrap();
            for name in NAMES {
                exercise(&*by_name(name).unwrap(), &text, &HeaderMap::new());
            }
        }
    }
}
