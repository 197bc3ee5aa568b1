//! Standard Webhooks: the Rust reference library's `v1` vectors, and `v1a`
//! (Ed25519) signatures, generated and independent ones.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use taskhook::verify::{
    InvalidWebhookKey, StandardWebhooksLayer, WebhookKey, WebhookPublicKey, WebhookSecret,
    WebhookSigningKey,
};
use tower::{service_fn, Layer};

use super::{at, echo, error_code, send, signed};

/// The vectors of the specification's Rust library
/// (libraries/rust/src/lib.rs: `test_sign`, `test_no_verify`,
/// `test_verify_with_multiple_signatures`), data only.
mod rust_library {
    pub(super) const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    pub(super) const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    pub(super) const TIMESTAMP: i64 = 1649367553;
    pub(super) const PAYLOAD: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    pub(super) const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    pub(super) const INVALID: &str = "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=";
    pub(super) const OTHERS: [&str; 3] = [
        "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ=",
        "v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=",
        "v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=",
    ];
}

/// Vectors made with Python's `cryptography`, not with this crate.
pub(super) fn generated() -> serde_json::Value {
    let path = format!(
        "{}/tests/verify/generated-vectors.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

async fn status_of(layer: &StandardWebhooksLayer, req: http::Request<Full<Bytes>>) -> StatusCode {
    let (status, _, body) = send(layer.layer(service_fn(echo::<Full<Bytes>>)), req).await;
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(error_code(&body), "invalid_signature");
    }
    status
}

#[tokio::test]
async fn rust_library_v1_vectors() {
    use rust_library::*;
    let secret = WebhookSecret::new(SECRET).unwrap();
    assert_eq!(secret.sign(ID, TIMESTAMP, PAYLOAD.as_bytes()), SIGNATURE);
    let ts = TIMESTAMP.to_string();
    // Through WebhookKey too: the same secret, parsed by prefix.
    for layer in [
        StandardWebhooksLayer::new(secret.clone()),
        StandardWebhooksLayer::new(WebhookKey::new(SECRET).unwrap()),
    ] {
        let layer = layer.now(at(TIMESTAMP));
        let check = |signature: String| signed(ID, &ts, &signature, PAYLOAD);
        assert_eq!(
            status_of(&layer, check(SIGNATURE.into())).await,
            StatusCode::OK
        );
        assert_eq!(
            status_of(&layer, check(INVALID.into())).await,
            StatusCode::UNAUTHORIZED
        );
        let [a, b, c] = OTHERS;
        assert_eq!(
            status_of(&layer, check(format!("{a} {b} {SIGNATURE} {c}"))).await,
            StatusCode::OK
        );
        assert_eq!(
            status_of(&layer, check(format!("{a} {b} {c}"))).await,
            StatusCode::UNAUTHORIZED
        );
        // Partial signatures: `v1,` alone, and the first 8 characters.
        assert_eq!(
            status_of(&layer, check("v1,".into())).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status_of(&layer, check(SIGNATURE[..8].into())).await,
            StatusCode::UNAUTHORIZED
        );
        // Beyond the 5-minute tolerance, both ways.
        for now in [TIMESTAMP + 301, TIMESTAMP - 301] {
            let late = layer.clone().now(at(now));
            assert_eq!(
                status_of(&late, check(SIGNATURE.into())).await,
                StatusCode::UNAUTHORIZED
            );
        }
    }
}

#[test]
fn keys_parse_by_prefix() {
    let v = generated();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let public = WebhookPublicKey::new(&s("whpk")).unwrap();
    assert_eq!(public.to_string(), s("whpk"));
    assert_eq!(
        WebhookPublicKey::from_base64url(&s("jwk_x")).unwrap(),
        public
    );
    // whsk_ as the 32-byte seed and as the 64-byte seed + public key.
    for whsk in [s("whsk"), s("whsk_64")] {
        let signing = WebhookSigningKey::new(&whsk).unwrap();
        assert_eq!(signing.public_key(), public);
        assert!(!format!("{signing:?}").contains(&whsk[5..15]));
    }
    assert_eq!(
        WebhookSigningKey::new(&s("whsk")).unwrap().expose_secret(),
        s("whsk")
    );
    // A receiver takes whsec_ and whpk_, never the sender's whsk_.
    assert!(WebhookKey::new(&s("whpk")).is_ok());
    assert_eq!(
        WebhookKey::new(&s("whsk")).unwrap_err(),
        InvalidWebhookKey::SigningKey
    );
    for bad in [
        "whpk_",
        "whpk_c2hvcnQ=",   // 5 bytes
        "whpk_not base64", // not base64
        "whsec_",          // empty secret
        "whsec_%%%",       // not base64
    ] {
        assert_eq!(
            WebhookKey::new(bad).unwrap_err(),
            InvalidWebhookKey::Malformed,
            "{bad}"
        );
    }
    assert!(WebhookSigningKey::new("whsk_c2hvcnQ=").is_err());
}

#[tokio::test]
async fn v1a_independent_vector() {
    let v = generated();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let vector = &v["v1a"];
    let (id, payload, signature) = (
        vector["id"].as_str().unwrap(),
        vector["payload"].as_str().unwrap(),
        vector["signature"].as_str().unwrap(),
    );
    let t = vector["timestamp"].as_i64().unwrap();
    let ts = t.to_string();
    // Our signing agrees with Python's (Ed25519 is deterministic).
    let signing = WebhookSigningKey::new(&s("whsk")).unwrap();
    assert_eq!(signing.sign(id, t, payload.as_bytes()), signature);

    let layer = StandardWebhooksLayer::new(WebhookKey::new(&s("whpk")).unwrap()).now(at(t));
    assert_eq!(
        status_of(&layer, signed(id, &ts, signature, payload)).await,
        StatusCode::OK
    );
    let tampered = payload.replace("2432232314", "2432232315");
    assert_eq!(
        status_of(&layer, signed(id, &ts, signature, &tampered)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn v1a_generated_signatures() {
    let sender = WebhookSigningKey::from_seed(&[0x42; 32]);
    let other = WebhookSigningKey::from_seed(&[0x43; 32]);
    let hmac = WebhookSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let t = 1_763_000_000;
    let ts = t.to_string();
    let body = r#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#;
    let good = sender.sign("msg_1", t, body.as_bytes());
    assert!(good.starts_with("v1a,"));

    let layer = StandardWebhooksLayer::new(sender.public_key()).now(at(t));
    let status = |req| status_of(&layer, req);
    assert_eq!(
        status(signed("msg_1", &ts, &good, body)).await,
        StatusCode::OK
    );

    // Tampered body, another id, another timestamp, a wrong key.
    let tampered = body.replace("completed", "cancelled");
    assert_eq!(
        status(signed("msg_1", &ts, &good, &tampered)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(signed("msg_2", &ts, &good, body)).await,
        StatusCode::UNAUTHORIZED
    );
    let wrong = other.sign("msg_1", t, body.as_bytes());
    assert_eq!(
        status(signed("msg_1", &ts, &wrong, body)).await,
        StatusCode::UNAUTHORIZED
    );
    // A v1a signature read as v1, or the reverse, never matches.
    let as_v1 = good.replacen("v1a,", "v1,", 1);
    assert_eq!(
        status(signed("msg_1", &ts, &as_v1, body)).await,
        StatusCode::UNAUTHORIZED
    );
    // Truncated, padded, not base64.
    for bad in [
        good[..good.len() - 4].to_owned(),
        format!("{good}AAAA"),
        "v1a,%%%".to_owned(),
        "v1a,".to_owned(),
    ] {
        assert_eq!(
            status(signed("msg_1", &ts, &bad, body)).await,
            StatusCode::UNAUTHORIZED,
            "{bad}"
        );
    }

    // Expired and future timestamps, on a clock we control.
    for (now, expected) in [
        (t + 300, StatusCode::OK),
        (t - 300, StatusCode::OK),
        (t + 301, StatusCode::UNAUTHORIZED),
        (t - 301, StatusCode::UNAUTHORIZED),
    ] {
        let layer = layer.clone().now(at(now));
        assert_eq!(
            status_of(&layer, signed("msg_1", &ts, &good, body)).await,
            expected,
            "now {now}"
        );
    }

    // Rotation and mixed versions: a header with a v1 and a v1a entry
    // passes a layer that knows either key.
    let mixed = format!("{} {wrong} {good}", hmac.sign("msg_1", t, body.as_bytes()));
    for layer in [
        StandardWebhooksLayer::new(hmac.clone()),
        StandardWebhooksLayer::new(other.public_key()).also_accept(sender.public_key()),
        StandardWebhooksLayer::new(WebhookSecret::from_bytes(b"unrelated").unwrap())
            .also_accept(sender.public_key()),
    ] {
        let layer = layer.now(at(t));
        assert_eq!(
            status_of(&layer, signed("msg_1", &ts, &mixed, body)).await,
            StatusCode::OK,
            "{layer:?}"
        );
    }
    // An Ed25519 key ignores v1 entries, an HMAC secret v1a ones.
    let v1_only = hmac.sign("msg_1", t, body.as_bytes());
    let ed_layer = StandardWebhooksLayer::new(sender.public_key()).now(at(t));
    assert_eq!(
        status_of(&ed_layer, signed("msg_1", &ts, &v1_only, body)).await,
        StatusCode::UNAUTHORIZED
    );
    let hmac_layer = StandardWebhooksLayer::new(hmac).now(at(t));
    assert_eq!(
        status_of(&hmac_layer, signed("msg_1", &ts, &good, body)).await,
        StatusCode::UNAUTHORIZED
    );
    // The public key shows in Debug, a secret does not.
    let debug = format!("{hmac_layer:?} {ed_layer:?}");
    assert!(debug.contains(&sender.public_key().to_string()), "{debug}");
    assert!(
        !debug.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "{debug}"
    );
}
