//! The request bodies of the benchmarks (`benches/parse.rs`,
//! `benches/stack.rs`, the bench server and the memory tools).

use serde_json::Value;

/// `completed-image-url-string.json`: a small body (about 300 bytes).
pub fn small() -> Vec<u8> {
    include_bytes!("../../tests/fixtures/completed-image-url-string.json").to_vec()
}

/// `completed-extra-fields.json` with more result images, until it is at
/// least `min_len` bytes long (1,027 bytes for 1,024; its task id is
/// `task_01KE11111111111111111EXTRA`).
pub fn grown(min_len: usize) -> Vec<u8> {
    let fixture = include_bytes!("../../tests/fixtures/completed-extra-fields.json");
    let mut json: Value = serde_json::from_slice(fixture).expect("fixture is JSON");
    let first = json["data"]["result"]["images"][0].clone();
    let mut n = 1;
    loop {
        let body = serde_json::to_vec(&json).expect("serializable");
        if body.len() >= min_len {
            return body;
        }
        let mut image = first.clone();
        image["url"] = Value::from(vec![format!(
            "https://upload.example.com/f/image/20251222/extra_{n}.webp"
        )]);
        json["data"]["result"]["images"]
            .as_array_mut()
            .expect("images")
            .push(image);
        n += 1;
    }
}
