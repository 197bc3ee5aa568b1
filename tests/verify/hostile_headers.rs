//! Every signature and secret layer against header values no sender would
//! write: non-ASCII bytes, huge values, duplicates, random bytes. None
//! panics; each refuses (or, where the first value is the right one,
//! accepts) with an answer of its own.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::Full;
use proptest::prelude::*;
use taskhook::verify::{
    FalSignatureLayer, HeaderSecretLayer, JwksSource, KieSecret, KieSignatureLayer,
    StandardWebhooksLayer, WebhookSecret, WebhookSigningKey,
};
use taskhook::RawPayload;
use tower::{service_fn, Layer};

use super::{echo, send};

const NOW: u64 = 1_763_000_000;
const BODY: &str =
    r#"{"code":200,"data":{"id":"task_01","taskId":"task_01","status":"completed"}}"#;

/// The headers each layer reads.
const NAMES: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-fal-webhook-request-id",
    "x-fal-webhook-user-id",
    "x-fal-webhook-timestamp",
    "x-fal-webhook-signature",
    "x-webhook-timestamp",
    "x-webhook-signature",
    "x-assemblyai-auth",
    "authorization",
];

fn request(headers: &[(&str, HeaderValue)]) -> Request<Full<Bytes>> {
    let mut req = Request::post("/callback")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    for (name, value) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.clone(),
        );
    }
    req.extensions_mut()
        .insert(RawPayload::new(Bytes::from_static(BODY.as_bytes())));
    req
}

/// What each layer answers `headers`.
async fn answers(headers: &[(&str, HeaderValue)]) -> Vec<StatusCode> {
    let at = || UNIX_EPOCH + Duration::from_secs(NOW);
    let fal = WebhookSigningKey::from_seed(&[1; 32]);
    let standard = StandardWebhooksLayer::new(
        WebhookSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
    )
    .also_accept(fal.public_key())
    .now(at);
    let fal = FalSignatureLayer::new(JwksSource::keys([fal.public_key()]).unwrap()).now(at);
    let kie = KieSignatureLayer::new(KieSecret::new("kie-key").unwrap()).now(at);
    let header = HeaderSecretLayer::header("x-assemblyai-auth", "s3cret").unwrap();
    let bearer = HeaderSecretLayer::bearer("tok_1").unwrap();
    let echo = || service_fn(echo::<Full<Bytes>>);
    vec![
        send(standard.layer(echo()), request(headers)).await.0,
        send(fal.layer(echo()), request(headers)).await.0,
        send(kie.layer(echo()), request(headers)).await.0,
        send(header.layer(echo()), request(headers)).await.0,
        send(bearer.layer(echo()), request(headers)).await.0,
    ]
}

fn refused(statuses: &[StatusCode]) {
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn odd_values_are_refused_without_panic() {
    let values: Vec<HeaderValue> = vec![
        HeaderValue::from_static(""),
        HeaderValue::from_bytes(b"\xff\xfe\x80").unwrap(),
        HeaderValue::from_bytes("é 🦀 v1,é v1a,é".as_bytes()).unwrap(),
        HeaderValue::from_bytes(b"v1a,\xc3").unwrap(),
        HeaderValue::from_str(&"v1a,AAAA ".repeat(8 * 1024)).unwrap(),
        HeaderValue::from_str(&"f".repeat(64 * 1024)).unwrap(),
        HeaderValue::from_str(&"9".repeat(64 * 1024)).unwrap(),
        HeaderValue::from_static("99999999999999999999999999999"),
        HeaderValue::from_static("Bearer "),
        HeaderValue::from_static("  "),
        HeaderValue::from_static("\t"),
    ];
    for value in &values {
        // In every header at once, and in each alone.
        let all: Vec<(&str, HeaderValue)> = NAMES.iter().map(|n| (*n, value.clone())).collect();
        refused(&answers(&all).await);
        for name in NAMES {
            refused(&answers(&[(name, value.clone())]).await);
        }
        // Duplicated: every header twice.
        let twice: Vec<(&str, HeaderValue)> = all.iter().chain(all.iter()).cloned().collect();
        refused(&answers(&twice).await);
    }
}

#[tokio::test]
async fn the_first_value_of_a_duplicate_decides() {
    let right = HeaderValue::from_static("s3cret");
    let wrong = HeaderValue::from_bytes(b"\xffwrong").unwrap();
    let first_right = answers(&[
        ("x-assemblyai-auth", right.clone()),
        ("x-assemblyai-auth", wrong.clone()),
    ])
    .await;
    assert_eq!(first_right[3], StatusCode::OK);
    let first_wrong = answers(&[("x-assemblyai-auth", wrong), ("x-assemblyai-auth", right)]).await;
    assert_eq!(first_wrong[3], StatusCode::UNAUTHORIZED);

    // A valid fal push with a second, garbage signature header still passes.
    let fal = WebhookSigningKey::from_seed(&[1; 32]);
    let signature = fal.sign_fal("req_1", "u", NOW as i64, BODY.as_bytes());
    let answers = answers(&[
        (
            "x-fal-webhook-request-id",
            HeaderValue::from_static("req_1"),
        ),
        ("x-fal-webhook-user-id", HeaderValue::from_static("u")),
        ("x-fal-webhook-timestamp", HeaderValue::from(NOW)),
        (
            "x-fal-webhook-signature",
            HeaderValue::from_str(&signature).unwrap(),
        ),
        (
            "x-fal-webhook-signature",
            HeaderValue::from_static("not hex at all"),
        ),
    ])
    .await;
    assert_eq!(answers[1], StatusCode::OK);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random bytes (what a header value may hold: no NUL, CR or LF... or
    /// anything `HeaderValue` takes) in random headers.
    #[test]
    fn random_header_bytes(
        picks in proptest::collection::vec(
            (0..NAMES.len(), proptest::collection::vec(any::<u8>(), 0..300)),
            1..8,
        )
    ) {
        let headers: Vec<(&str, HeaderValue)> = picks
            .into_iter()
            .filter_map(|(i, bytes)| Some((NAMES[i], HeaderValue::from_bytes(&bytes).ok()?)))
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let statuses = runtime.block_on(answers(&headers));
        prop_assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{:?}", statuses);
    }
}
