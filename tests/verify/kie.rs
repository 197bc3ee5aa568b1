//! KIE's signature of `{taskId}.{timestamp}`: an independent vector, the
//! task id in the body, the tolerance, rotation, and a body the signature
//! does not cover.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use taskhook::verify::{KieSecret, KieSignatureLayer};
use taskhook::RawPayload;
use tower::{service_fn, Layer};

use super::standard_webhooks_v1a::generated;
use super::{at, echo, error_code, send};

fn push(timestamp: &str, signature: &str, body: &str) -> Request<Full<Bytes>> {
    let mut req = Request::post("/callback")
        .header("x-webhook-timestamp", timestamp)
        .header("x-webhook-signature", signature)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    req.extensions_mut()
        .insert(RawPayload::new(Bytes::from(body.to_owned())));
    req
}

async fn status(layer: &KieSignatureLayer, req: Request<Full<Bytes>>) -> StatusCode {
    let (status, _, body) = send(layer.layer(service_fn(echo::<Full<Bytes>>)), req).await;
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(error_code(&body), "invalid_signature");
    }
    status
}

#[tokio::test]
async fn independent_vector_and_task_id_shapes() {
    let v = generated();
    let k = &v["kie"];
    let s = |name: &str| k[name].as_str().unwrap().to_owned();
    let t = k["timestamp"].as_i64().unwrap();
    let secret = KieSecret::new(&s("key")).unwrap();
    assert_eq!(secret.sign(&s("task_id"), t), s("signature"));

    let layer = KieSignatureLayer::new(secret).now(at(t));
    let ts = t.to_string();
    let id = s("task_id");
    for body in [
        format!(r#"{{"code":200,"msg":"success","data":{{"taskId":"{id}","state":"success"}}}}"#),
        format!(r#"{{"code":200,"data":{{"task_id":"{id}","callbackType":"complete"}}}}"#),
        format!(r#"{{"data":{{"taskId":"{id}","task_id":"{id}"}}}}"#),
    ] {
        assert_eq!(
            status(&layer, push(&ts, &s("signature"), &body)).await,
            StatusCode::OK,
            "{body}"
        );
    }
    for body in [
        r#"{"data":{"taskId":"task_other"}}"#.to_owned(),
        format!(r#"{{"data":{{"taskId":"{id}","task_id":"task_other"}}}}"#),
        format!(r#"{{"taskId":"{id}"}}"#),
        r#"{"data":{}}"#.to_owned(),
        "not json".to_owned(),
    ] {
        assert_eq!(
            status(&layer, push(&ts, &s("signature"), &body)).await,
            StatusCode::UNAUTHORIZED,
            "{body}"
        );
    }
}

#[tokio::test]
async fn headers_tolerance_rotation_and_the_unsigned_body() {
    let old = KieSecret::new("old-hmac-key").unwrap();
    let new = KieSecret::new("new-hmac-key").unwrap();
    let t: i64 = 1_763_000_000;
    let ts = t.to_string();
    let body = r#"{"code":200,"data":{"taskId":"task_01","state":"success","resultUrls":["https://cdn.example/a.mp4"]}}"#;
    let good = new.sign("task_01", t);
    let layer = KieSignatureLayer::new(old.clone())
        .also_accept(new.clone())
        .now(at(t));
    assert_eq!(status(&layer, push(&ts, &good, body)).await, StatusCode::OK);
    assert_eq!(
        status(&layer, push(&ts, &old.sign("task_01", t), body)).await,
        StatusCode::OK
    );
    // Only the new key once rotated.
    let rotated = KieSignatureLayer::new(new.clone()).now(at(t));
    assert_eq!(
        status(&rotated, push(&ts, &old.sign("task_01", t), body)).await,
        StatusCode::UNAUTHORIZED
    );

    // Another timestamp under the same signature; garbage signatures.
    for (timestamp, signature) in [
        ((t + 1).to_string(), good.clone()),
        (ts.clone(), good[..good.len() - 2].to_owned()),
        (ts.clone(), "%%%".to_owned()),
        (ts.clone(), String::new()),
        (ts.clone(), format!("{good}AAAA")),
    ] {
        assert_eq!(
            status(&layer, push(&timestamp, &signature, body)).await,
            StatusCode::UNAUTHORIZED,
            "{timestamp} {signature}"
        );
    }
    // Missing headers.
    for name in ["x-webhook-timestamp", "x-webhook-signature"] {
        let mut req = push(&ts, &good, body);
        req.headers_mut().remove(name);
        assert_eq!(
            status(&layer, req).await,
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
    }
    // Seconds, not milliseconds; the tolerance both ways.
    let ms = (t * 1000).to_string();
    assert_eq!(
        status(&layer, push(&ms, &new.sign("task_01", t * 1000), body)).await,
        StatusCode::UNAUTHORIZED
    );
    for (now, expected) in [
        (t + 300, StatusCode::OK),
        (t - 300, StatusCode::OK),
        (t + 301, StatusCode::UNAUTHORIZED),
        (t - 301, StatusCode::UNAUTHORIZED),
    ] {
        let layer = layer.clone().now(at(now));
        assert_eq!(
            status(&layer, push(&ts, &good, body)).await,
            expected,
            "{now}"
        );
    }

    // What the signature does not cover: the rest of the body. The same
    // headers with other result URLs pass, as documented; refetch covers it.
    let forged = body.replace("https://cdn.example/a.mp4", "https://evil.example/x.mp4");
    assert_eq!(
        status(&layer, push(&ts, &good, &forged)).await,
        StatusCode::OK
    );

    // No payload layer: our error.
    let mut req = push(&ts, &good, body);
    req.extensions_mut().remove::<RawPayload>();
    assert_eq!(status(&layer, req).await, StatusCode::INTERNAL_SERVER_ERROR);

    let debug = format!("{layer:?} {new:?}");
    assert!(!debug.contains("hmac-key"), "{debug}");
    assert!(KieSecret::new("  ").is_err());
}
