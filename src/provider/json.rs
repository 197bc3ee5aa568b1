//! What the shipped profiles share: the body read into a JSON object,
//! known fields taken out of it by type (a field of another type stays, and
//! ends under [`extra`](crate::TaskEvent::extra)), status words, media kinds
//! from URLs and content types, and timestamps.
//!
//! Nothing here panics on any input: every access is checked.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::event::{PayloadError, TaskEventBuilder};
use crate::TaskStatus;

/// A JSON object, as a profile reads it.
pub(super) type Object = Map<String, Value>;

/// The body as a JSON object: a body that is not JSON, nests too deeply or
/// is not an object gets the payload layer's usual error.
pub(super) fn parse_object(body: &Bytes) -> Result<Object, PayloadError> {
    // Into a `Map` directly, so that a JSON array or string is a data error
    // (`not_an_object`), as for the default profile.
    serde_json::from_slice::<Object>(body).map_err(|e| PayloadError::from_json(e, body))
}

/// Takes the task id at `key`: a string (checked later by the builder), or
/// a shape error naming the field by its `path` in the body.
pub(super) fn take_id(object: &mut Object, key: &str, path: &str) -> Result<String, PayloadError> {
    match object.remove(key) {
        Some(Value::String(id)) => Ok(id),
        None | Some(Value::Null) => Err(PayloadError::shape(format!("no `{path}`"))),
        Some(other) => {
            let error = PayloadError::shape(format!("`{path}` is not a string"));
            object.insert(key.to_owned(), other);
            Err(error)
        }
    }
}

/// Takes the string at `key`. A `null` is dropped; a value of another type
/// stays in `object`.
pub(super) fn take_str(object: &mut Object, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(_) => match object.remove(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
        Value::Null => {
            object.remove(key);
            None
        }
        _ => None,
    }
}

/// Takes the object at `key`. A `null` is dropped; a value of another type
/// stays in `object`.
pub(super) fn take_object(object: &mut Object, key: &str) -> Option<Object> {
    match object.get(key)? {
        Value::Object(_) => match object.remove(key) {
            Some(Value::Object(o)) => Some(o),
            _ => None,
        },
        Value::Null => {
            object.remove(key);
            None
        }
        _ => None,
    }
}

/// Takes the integer at `key` (a `null` is dropped, another type stays).
pub(super) fn take_i64(object: &mut Object, key: &str) -> Option<i64> {
    match object.get(key)? {
        Value::Number(n) => {
            let n = n.as_i64()?;
            object.remove(key);
            Some(n)
        }
        Value::Null => {
            object.remove(key);
            None
        }
        _ => None,
    }
}

/// Takes a timestamp in milliseconds at `key`, in seconds (a `null` is
/// dropped, another type stays).
pub(super) fn take_millis(object: &mut Object, key: &str) -> Option<i64> {
    take_i64(object, key).map(|ms| ms.div_euclid(1000))
}

/// Drops `key` if it holds `null` or an empty string (nothing to keep).
pub(super) fn drop_empty(object: &mut Object, key: &str) {
    if matches!(object.get(key), Some(Value::Null))
        || object.get(key).and_then(Value::as_str) == Some("")
    {
        object.remove(key);
    }
}

/// Keeps every field left in `object` under its own key in the event's
/// extra.
pub(super) fn keep_rest(mut event: TaskEventBuilder, object: Object) -> TaskEventBuilder {
    for (key, value) in object {
        event = event.extra(key, value);
    }
    event
}

/// `true` for an `http://` or `https://` URL.
pub(super) fn is_url(s: &str) -> bool {
    let starts = |prefix: &str| {
        s.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    starts("https://") || starts("http://")
}

/// The media kind of a result URL, from its path's extension: `images`
/// (png, jpg, jpeg, webp, gif), `videos` (mp4, webm, mov), `audios` (mp3,
/// wav, ogg, flac, m4a), else `files`.
pub(super) fn kind_of_url(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    let extension = match name.rsplit_once('.') {
        Some((_, extension)) => extension,
        None => return "files",
    };
    const KINDS: &[(&str, &[&str])] = &[
        ("images", &["png", "jpg", "jpeg", "webp", "gif"]),
        ("videos", &["mp4", "webm", "mov"]),
        ("audios", &["mp3", "wav", "ogg", "flac", "m4a"]),
    ];
    KINDS
        .iter()
        .find(|(_, extensions)| extensions.iter().any(|e| e.eq_ignore_ascii_case(extension)))
        .map_or("files", |(kind, _)| kind)
}

/// The media kind of a MIME type (`image/png` -> `images`), if it is an
/// image, a video or an audio.
pub(super) fn kind_of_content_type(content_type: &str) -> Option<&'static str> {
    let top = content_type.split('/').next().unwrap_or_default().trim();
    [
        ("image", "images"),
        ("video", "videos"),
        ("audio", "audios"),
    ]
    .iter()
    .find(|(word, _)| word.eq_ignore_ascii_case(top))
    .map(|(_, kind)| *kind)
}

/// The status a common word means, whatever its case: `succeeded`,
/// `success`, `completed`, `done` -> completed; `failed`, `error`,
/// `incomplete`, `expired` -> failed; `canceled`, `cancelled`, `aborted` ->
/// cancelled; `processing`, `running`, `in_progress` -> processing;
/// `queued`, `pending`, `starting`, `waiting` -> pending; `submitted` ->
/// submitted.
pub(super) fn status_word(word: &str) -> Option<TaskStatus> {
    const WORDS: &[(&[&str], TaskStatus)] = &[
        (
            &[
                "succeeded",
                "succeed",
                "success",
                "successful",
                "completed",
                "complete",
                "done",
                "finished",
            ],
            TaskStatus::Completed,
        ),
        (
            &[
                "failed",
                "fail",
                "failure",
                "error",
                "errored",
                "incomplete",
                "expired",
            ],
            TaskStatus::Failed,
        ),
        (
            &["canceled", "cancelled", "cancel", "aborted"],
            TaskStatus::Cancelled,
        ),
        (
            &["processing", "running", "in_progress", "generating"],
            TaskStatus::Processing,
        ),
        (
            &[
                "queued",
                "queuing",
                "pending",
                "starting",
                "waiting",
                "not_start",
            ],
            TaskStatus::Pending,
        ),
        (&["submitted"], TaskStatus::Submitted),
    ];
    WORDS
        .iter()
        .find(|(words, _)| words.iter().any(|w| w.eq_ignore_ascii_case(word)))
        .map(|(_, status)| status.clone())
}

/// The status an event type ends with (`response.completed` -> completed,
/// `batch.expired` -> failed), by [`status_word`] on its last dot-separated
/// part.
pub(super) fn status_of_type(event_type: &str) -> Option<TaskStatus> {
    status_word(event_type.rsplit('.').next().unwrap_or_default())
}

/// An RFC 3339 timestamp (`2026-04-26T22:13:06.224088Z`,
/// `2026-04-26T22:13:06+02:00`) in Unix seconds (the fraction dropped), or
/// `None` if it is not one.
pub(super) fn rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let at = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    if at(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && at(i + 3, b":") => {
            let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = h * 3600 + m * 60;
            if *sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_reads_utc_offsets_and_fractions() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("2022-04-26T22:13:06.224088Z"), Some(1_651_011_186));
        assert_eq!(rfc3339("2022-04-27T00:13:06+02:00"), Some(1_651_011_186));
        assert_eq!(rfc3339("2022-04-26T20:13:06-02:00"), Some(1_651_011_186));
        assert_eq!(rfc3339("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(rfc3339("1969-12-31T23:59:59Z"), Some(-1));
        for bad in [
            "",
            "2022-04-26",
            "2022-04-26T22:13:06",
            "2022-04-26T22:13:06.Z",
            "2022-13-26T22:13:06Z",
            "2023-02-29T22:13:06Z",
            "2022-04-26T24:13:06Z",
            "2022-04-26T22:13:06Zjunk",
            "2022-04-26T22:13:06+0200",
            "２022-04-26T22:13:06Z",
            "2022-04-26T22:13:06+99:00",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn kinds_from_urls_and_content_types() {
        assert_eq!(kind_of_url("https://cdn.example/a/b.PNG?x=1.mp4"), "images");
        assert_eq!(kind_of_url("https://cdn.example/v.mp4#t=1"), "videos");
        assert_eq!(kind_of_url("https://cdn.example/s.m4a"), "audios");
        assert_eq!(
            kind_of_url("https://cdn.example/model.safetensors"),
            "files"
        );
        assert_eq!(kind_of_url("https://cdn.example/noext"), "files");
        assert_eq!(kind_of_url(""), "files");
        assert_eq!(kind_of_content_type("image/png"), Some("images"));
        assert_eq!(kind_of_content_type("Video/MP4"), Some("videos"));
        assert_eq!(kind_of_content_type("application/zip"), None);
        assert!(is_url("HTTPS://x") && is_url("http://x") && !is_url("data:,x") && !is_url("ht"));
    }

    #[test]
    fn status_words_and_types() {
        assert_eq!(status_word("SUCCESS"), Some(TaskStatus::Completed));
        assert_eq!(
            status_of_type("response.incomplete"),
            Some(TaskStatus::Failed)
        );
        assert_eq!(
            status_of_type("eval.run.canceled"),
            Some(TaskStatus::Cancelled)
        );
        assert_eq!(status_of_type("realtime.call.incoming"), None);
        assert_eq!(status_of_type(""), None);
    }
}
