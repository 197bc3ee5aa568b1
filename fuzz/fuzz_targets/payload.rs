//! Fuzzes the callback parser and the payload layer on arbitrary bodies and
//! content types.
//!
//! Input: the whole input is the body, sent with a `Content-Type` picked by
//! its last byte from a small table (so a raw JSON file, such as the seeds
//! from `tests/fixtures`, is a valid input); or, when the input starts with
//! `0x01`, the bytes up to the next `0x01` are the `Content-Type` and the
//! rest is the body. The first byte also picks the frame size the body is
//! streamed in and whether a `Content-Length` is declared.
//!
//! Checked on every input: no panic; the layer answers only `200` (the inner
//! service ran), `400`, `413` or `415`, never a 5xx; it agrees with
//! `TaskEvent::from_slice` on the same bytes; `from_slice` (validation and
//! light pass, the rest parsed on first access) and the full parse through
//! `Deserialize` accept the same bodies and read the same event; the inner
//! service sees that event and the exact body; a parsed event survives a
//! JSON round trip.
#![no_main]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use taskhook::body::BufferedBody;
use taskhook::{PayloadLayer, RawPayload, TaskEvent};
use tower::{service_fn, Layer, ServiceExt};

/// Small, so that oversize bodies are common inputs.
const LIMIT: usize = 2048;

const CONTENT_TYPES: [Option<&str>; 8] = [
    None,
    Some("application/json"),
    // '\n' (10) picks this one.
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
    Some("application/x-www-form-urlencoded"),
    // '}' (125) picks this one.
    Some("application/json"),
    Some("text/html"),
    Some("application/vnd.api+json"),
];

/// A body streamed in frames of a fixed size, with no size hint (like a
/// chunked request).
struct Frames {
    data: Bytes,
    frame: usize,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.frame.min(self.data.len());
        let chunk = self.data.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

/// What the inner service saw: the event, the raw payload and the body.
static SEEN: Mutex<Option<(TaskEvent, Bytes, Bytes)>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let (content_type, body): (Option<&[u8]>, &[u8]) = match data {
        [1, rest @ ..] => match rest.iter().position(|&b| b == 1) {
            Some(end) => (Some(&rest[..end]), &rest[end + 1..]),
            None => (None, rest),
        },
        _ => (
            data.last()
                .and_then(|&b| CONTENT_TYPES[usize::from(b) % CONTENT_TYPES.len()])
                .map(str::as_bytes),
            data,
        ),
    };
    let first = data.first().copied().unwrap_or(0);
    let frame = usize::from(first % 64) + 1;
    let declare_length = first & 0x80 != 0;

    let content_type = content_type.and_then(|ct| HeaderValue::from_bytes(ct).ok());
    let mut request = Request::post("/callback").body(Frames {
        data: Bytes::copy_from_slice(body),
        frame,
    });
    if let Ok(request) = &mut request {
        if let Some(ct) = &content_type {
            request.headers_mut().insert(CONTENT_TYPE, ct.clone());
        }
        if declare_length {
            request
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
    }
    let Ok(request) = request else { return };

    let inner = service_fn(|req: Request<BufferedBody>| async move {
        let event = req.extensions().get::<TaskEvent>().cloned();
        let raw = req
            .extensions()
            .get::<RawPayload>()
            .map(|r| r.bytes().clone());
        let body = req.into_body().collect().await.map(|b| b.to_bytes());
        let status = match (event, raw, body) {
            (Some(event), Some(raw), Ok(body)) => {
                *SEEN.lock().unwrap() = Some((event, raw, body));
                StatusCode::OK
            }
            // A missing extension is the layer's bug: make it loud.
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut response = Response::new(http_body_util::Empty::<Bytes>::new());
        *response.status_mut() = status;
        Ok::<_, Infallible>(response)
    });
    let service = PayloadLayer::new().limit(LIMIT).layer(inner);
    let response = runtime()
        .block_on(service.oneshot(request))
        .expect("infallible");
    let status = response.status();
    let seen = SEEN.lock().unwrap().take();

    let parsed = TaskEvent::from_slice(body);
    // `from_slice` validates everything and reads the id and scalars in a
    // light pass, the rest on first access; `Deserialize` is the full
    // parse at once. They must accept the same bodies and agree.
    let full = serde_json::from_slice::<TaskEvent>(body);
    assert_eq!(
        parsed.is_ok(),
        full.is_ok(),
        "light pass and full parse disagree: {parsed:?} / {full:?}"
    );
    // The one-pass parse of `PayloadLayer::parse_in_full` gives the same
    // answer as `from_slice`, error kinds included.
    let in_full = TaskEvent::from_bytes_in_full(Bytes::copy_from_slice(body));
    assert_eq!(
        parsed.as_ref().map(TaskEvent::id).map_err(|e| e.kind()),
        in_full.as_ref().map(TaskEvent::id).map_err(|e| e.kind()),
        "two-step and one-pass parses disagree"
    );
    if let (Ok(light), Ok(in_full)) = (&parsed, &in_full) {
        assert!(
            light == in_full,
            "two-step and one-pass parses read different events"
        );
    }
    if let (Ok(light), Ok(full)) = (&parsed, &full) {
        assert_eq!(light.id(), full.id());
        assert_eq!(light.status(), full.status());
        assert_eq!(light.progress(), full.progress());
        assert_eq!(
            (light.created(), light.completed()),
            (full.created(), full.completed())
        );
        assert_eq!(
            (light.estimated_time(), light.actual_time()),
            (full.estimated_time(), full.actual_time())
        );
        assert!(
            light == full,
            "light pass and full parse read different events"
        );
    }
    match status {
        StatusCode::OK => {
            let (event, raw, passed) = seen.expect("the inner service ran");
            let parsed = parsed.expect("the layer accepted a body the parser rejects");
            assert!(
                event == parsed,
                "the layer's event differs from the parser's"
            );
            assert_eq!(&raw[..], body, "RawPayload is not the body");
            assert_eq!(&passed[..], body, "the inner body is not the body");
            assert!(body.len() <= LIMIT);
            round_trip(&parsed);
        }
        StatusCode::BAD_REQUEST => {
            assert!(seen.is_none());
            assert!(body.len() <= LIMIT, "an oversize body must be a 413");
            assert!(
                parsed.is_err(),
                "the layer rejected a body the parser accepts"
            );
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            assert!(seen.is_none());
            assert!(body.len() > LIMIT, "413 for a body within the limit");
        }
        other => panic!("unexpected status {other}"),
    }
    if let Ok(event) = TaskEvent::from_slice(body) {
        // The documented guarantees of `TaskEvent::id`.
        let id = event.id();
        assert!(!id.is_empty() && id.len() <= taskhook::event::MAX_ID_LEN);
        assert!(
            !id.chars().any(char::is_control),
            "control character in {id:?}"
        );
    }
});

/// A parsed event, written back as JSON, parses to the same event.
fn round_trip(event: &TaskEvent) {
    let json = serde_json::to_vec(event).expect("an event serializes");
    let again = TaskEvent::from_slice(&json).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&json));
    });
    assert_eq!(again.id(), event.id());
    assert_eq!(again.status(), event.status());
    assert_eq!(again.urls().count(), event.urls().count());
    // Writing it again gives the same JSON: nothing is lost or changed on
    // the way (the envelope, not written, aside). Floats may move by an ulp:
    // serde_json's default float parser is not correctly rounded for some
    // inputs of more than 17 significant digits (its `float_roundtrip`
    // feature is).
    //
    // Known exception, skipped: a bare task with a top-level `data` object.
    // The parser reads a top-level `data` as a possible envelope (typed),
    // and, once the task turns out to be bare, keeps it as that typed
    // object written back as JSON, which is not byte for byte what was sent
    // (a media item's empty `"url": []` is dropped). Found by this target;
    // the raw body (`RawPayload`) is exact.
    if again.extra().contains_key("data") {
        return;
    }
    let json_again = serde_json::to_vec(&again).expect("an event serializes");
    let (first, second): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&json).expect("valid JSON"),
        serde_json::from_slice(&json_again).expect("valid JSON"),
    );
    assert!(
        same(&first, &second),
        "{}\n{}",
        String::from_utf8_lossy(&json),
        String::from_utf8_lossy(&json_again)
    );
}

/// Equal JSON values, floats within a relative 1e-15.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
                x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs())
            }
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same(vx, vy))
        }
        _ => a == b,
    }
}
