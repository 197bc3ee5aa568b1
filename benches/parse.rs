//! The cost of reading a callback body: making a `TaskEvent` (validation,
//! id and scalar fields), its full parse, and two `serde_json` references,
//! for bodies of about 300 B, 1 KB and 4 KB.
//!
//! ```sh
//! cargo bench --bench parse
//! ```
//!
//! Bodies, built from `tests/fixtures/`:
//! - `300B`: `completed-image-url-string.json` as is (292 bytes);
//! - `1KB` and `4KB`: `completed-extra-fields.json` (unknown fields, which
//!   `TaskEvent` keeps) with more result images, copies of its first image
//!   with other URLs, until the body reaches the size.
//!
//! Benchmarks:
//! - `task_event`: `TaskEvent::from_bytes`, what `PayloadLayer` does once per
//!   request: the whole body validated, the id (the dedup key) and the
//!   scalar fields read, nothing else built;
//! - `task_event_full`: the same, then the first access to `result` and the
//!   unknown fields, which runs the full parse: what a handler that reads
//!   the result URLs pays in total;
//! - `task_event_in_full`: `TaskEvent::from_bytes_in_full` and the same
//!   reads: the whole event in one pass (`PayloadLayer::parse_in_full`);
//! - `id_only_serde`: the floor, a `serde_json` parse into a struct with
//!   only `id` inside `data` (every other field skipped unparsed, the id
//!   borrowed): the least a JSON parser can do to find the key;
//! - `serde_value`: a `serde_json::Value` of the whole body, the generic
//!   full parse.

use std::borrow::Cow;

use bytes::Bytes;
use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use serde::Deserialize;
use serde_json::Value;
use taskhook::TaskEvent;

use taskhook_test_support::bodies;

fn main() {
    let sizes: Vec<String> = SIZES
        .iter()
        .map(|size| format!("{size} = {} bytes", body(size).len()))
        .collect();
    eprintln!("bodies: {}", sizes.join(", "));
    divan::main();
}

const SIZES: [&str; 3] = ["300B", "1KB", "4KB"];

/// The body named `size`.
fn body(size: &str) -> Vec<u8> {
    match size {
        "300B" => bodies::small(),
        "1KB" => bodies::grown(1024),
        _ => bodies::grown(4096),
    }
}

#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow)]
    data: IdData<'a>,
}

#[derive(Deserialize)]
struct IdData<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

#[divan::bench(args = SIZES)]
fn task_event(bencher: Bencher<'_, '_>, size: &str) {
    let body = Bytes::from(body(size));
    bencher.counter(BytesCount::new(body.len())).bench(|| {
        // Dropped inside the timing, like in every benchmark here: a
        // request pays for it.
        let event = TaskEvent::from_bytes(black_box(&body).clone()).expect("valid body");
        black_box(event.id().len());
        drop(black_box(event));
    });
}

#[divan::bench(args = SIZES)]
fn task_event_full(bencher: Bencher<'_, '_>, size: &str) {
    let body = Bytes::from(body(size));
    bencher.counter(BytesCount::new(body.len())).bench(|| {
        let event = TaskEvent::from_bytes(black_box(&body).clone()).expect("valid body");
        black_box(event.urls().count() + event.extra().len());
        drop(black_box(event));
    });
}

#[divan::bench(args = SIZES)]
fn task_event_in_full(bencher: Bencher<'_, '_>, size: &str) {
    let body = Bytes::from(body(size));
    bencher.counter(BytesCount::new(body.len())).bench(|| {
        let event = TaskEvent::from_bytes_in_full(black_box(&body).clone()).expect("valid body");
        black_box(event.urls().count() + event.extra().len());
        drop(black_box(event));
    });
}

#[divan::bench(args = SIZES)]
fn id_only_serde(bencher: Bencher<'_, '_>, size: &str) {
    let body = body(size);
    bencher.counter(BytesCount::new(body.len())).bench(|| {
        let parsed: IdOnly<'_> = serde_json::from_slice(black_box(&body)).expect("valid body");
        black_box(parsed.data.id.len())
    });
}

#[divan::bench(args = SIZES)]
fn serde_value(bencher: Bencher<'_, '_>, size: &str) {
    let body = body(size);
    bencher.counter(BytesCount::new(body.len())).bench(|| {
        let value: Value = serde_json::from_slice(black_box(&body)).expect("valid body");
        drop(black_box(value));
    });
}
