//! The shipped provider profiles: each provider's documented shapes (the
//! fixtures of `tests/fixtures/providers/<name>/`, invented values) read
//! into the normalized event, hostile bodies refused with the right error
//! and never a panic, each profile's contract as `by_name` returns it, and
//! a profile mounted in the payload layer.

use taskhook_test_support as common;

mod fal;
mod kie;
mod kling;
mod midjourney_proxy;
mod openai;
mod payload;
mod registry;
mod replicate;
mod robustness;
mod standard_webhooks;

use bytes::Bytes;
use http::HeaderMap;
use taskhook::event::{IdError, PayloadError, PayloadErrorKind};
use taskhook::provider::Profile;
use taskhook::TaskEvent;

/// The fixture `tests/fixtures/providers/<provider>/<name>.json`.
fn fixture(provider: &str, name: &str) -> Bytes {
    Bytes::from(common::fixture(&format!("providers/{provider}/{name}")))
}

/// Every fixture of `provider`, by file name.
fn fixtures(provider: &str) -> Vec<(String, Bytes)> {
    let dir = format!("{}/providers/{provider}", common::FIXTURES);
    let mut all: Vec<(String, Bytes)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, Bytes::from(std::fs::read(&path).unwrap()))
        })
        .collect();
    all.sort();
    assert!(all.len() >= 4, "{provider}: too few fixtures");
    all
}

/// Parses a fixture with `profile`, without headers; panics on an error.
fn parse(profile: &impl Profile, provider: &str, name: &str) -> TaskEvent {
    let body = fixture(provider, name);
    profile
        .parse(&body, &HeaderMap::new())
        .unwrap_or_else(|e| panic!("{provider}/{name}: {e}"))
}

/// An event's result URLs as `(kind, url, expires_at)`.
fn urls(event: &TaskEvent) -> Vec<(String, String, Option<i64>)> {
    event
        .urls()
        .map(|u| (u.kind().to_owned(), u.url().to_owned(), u.expires_at()))
        .collect()
}

/// The error message of an event.
fn error_message(event: &TaskEvent) -> Option<&str> {
    event.error().and_then(|e| e.message())
}

/// Parses a body given as text, with no headers.
fn parse_text(profile: &impl Profile, body: impl Into<Bytes>) -> Result<TaskEvent, PayloadError> {
    profile.parse(&body.into(), &HeaderMap::new())
}

/// The error kind of a body that must be refused.
fn refused(profile: &impl Profile, body: impl Into<Bytes>) -> PayloadErrorKind {
    match parse_text(profile, body) {
        Ok(event) => panic!("accepted as {}", event.id()),
        Err(error) => error.kind().clone(),
    }
}

/// What every profile refuses, and how: `with_id` makes a body in the
/// provider's shape with the given JSON as its task id (`None`: no id).
fn hostile_bodies(profile: &impl Profile, with_id: impl Fn(Option<&str>) -> String) {
    use PayloadErrorKind::*;

    assert_eq!(refused(profile, "{oops"), Syntax);
    assert_eq!(refused(profile, ""), Syntax);
    assert_eq!(
        refused(profile, with_id(Some(r#""t1""#)).replace('}', "")),
        Syntax
    );
    assert_eq!(refused(profile, "[]"), NotAnObject);
    assert_eq!(refused(profile, r#""just a string""#), NotAnObject);
    assert_eq!(refused(profile, "null"), NotAnObject);
    assert_eq!(refused(profile, &b"{\"id\":\"\xff\"}"[..]), InvalidUtf8);
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let deep_body = with_id(Some(r#""t1""#)).replacen('{', &format!(r#"{{"deep":{deep},"#), 1);
    assert_eq!(refused(profile, deep_body), TooDeep);

    assert!(matches!(refused(profile, with_id(None)), Shape(_)));
    assert!(matches!(refused(profile, "{}"), Shape(_)));
    for wrong in ["42", "true", "[\"t1\"]", "{\"id\":\"t1\"}", "1.5"] {
        let kind = refused(profile, with_id(Some(wrong)));
        assert!(matches!(kind, Shape(_)), "{wrong}: {kind:?}");
    }
    let long = format!("\"{}\"", "x".repeat(10_000));
    assert_eq!(
        refused(profile, with_id(Some(&long))),
        InvalidId(IdError::TooLong)
    );
    assert_eq!(
        refused(profile, with_id(Some(r#""""#))),
        InvalidId(IdError::Empty)
    );
    assert_eq!(
        refused(profile, with_id(Some(r#""a\r\nb""#))),
        InvalidId(IdError::ControlCharacter)
    );

    // The same shape with a good id is accepted.
    let event = parse_text(profile, with_id(Some(r#""t1""#))).unwrap();
    assert_eq!(event.id(), "t1");
}
