//! The headers the upstream gets: the provider's, minus the hop-by-hop ones
//! and those this service writes, plus the `taskhook-*` ones and the
//! configured extras.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::HeaderMap;

/// `taskhook-task-id`: the task id of the event (when the payload layer
/// parsed one).
pub const TASK_ID_HEADER: HeaderName = HeaderName::from_static("taskhook-task-id");

/// `taskhook-attempt`: which delivery of the event this is, `1`, `2`, ...
/// (fast-ack's [`Attempt::number`](crate::fast_ack::Attempt::number)).
pub const ATTEMPT_HEADER: HeaderName = HeaderName::from_static("taskhook-attempt");

/// `taskhook-received-at`: when the event was accepted, RFC 3339 in UTC to
/// the millisecond (`2025-12-22T00:00:00.123Z`; fast-ack's
/// [`Attempt::received_at`](crate::fast_ack::Attempt::received_at)), the
/// same on every attempt.
pub const RECEIVED_AT_HEADER: HeaderName = HeaderName::from_static("taskhook-received-at");

/// The prefix of the headers this service writes: the provider's headers
/// with it are dropped, so the upstream can trust them.
const OWN_PREFIX: &str = "taskhook-";

/// The hop-by-hop headers of RFC 9110 (7.6.1) and the ones of the old
/// RFC 2616 list, without the `Proxy-*` family (matched by prefix).
const HOP_BY_HOP: [HeaderName; 5] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
];

/// `true` for a header name the provider's request does not pass on:
/// hop-by-hop (`Connection`, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
/// `Transfer-Encoding`, `Upgrade`), written by this service (`Host`,
/// `Content-Length`, `taskhook-*`), or about the transfer of a body that is
/// already complete (`Expect`).
pub(super) fn is_not_forwarded(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
        || name == UPGRADE
        || name == HOST
        || name == CONTENT_LENGTH
        || name == EXPECT
        || name.as_str().starts_with("proxy-")
        || name.as_str().starts_with(OWN_PREFIX)
}

/// Removes from `headers` what [`is_not_forwarded`] names and every header
/// the `Connection` header lists.
pub(super) fn strip(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    let dropped: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_not_forwarded(name))
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
}

/// The value of [`RECEIVED_AT_HEADER`]: `time` as RFC 3339 in UTC, to the
/// millisecond (`1970-01-01T00:00:00.000Z` for a time before the epoch).
pub(super) fn rfc3339(time: SystemTime) -> HeaderValue {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    let text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        since.subsec_millis()
    );
    // Digits, `-`, `:`, `.`, `T` and `Z` only.
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("1970-01-01T00:00:00.000Z"))
}

/// The civil date of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days from the epoch on).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_in_utc_to_the_millisecond() {
        let at = |ms: u64| rfc3339(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(at(1_766_361_600_123), "2025-12-22T00:00:00.123Z");
        assert_eq!(at(4_107_542_399_000), "2100-02-28T23:59:59.000Z");
        assert_eq!(at(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn hop_by_hop_and_listed_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Hop"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("host", "receiver.example"),
            ("content-length", "2"),
            ("expect", "100-continue"),
            ("taskhook-attempt", "99"),
            ("x-hop", "1"),
            ("x-other", "2"),
            ("x-kept", "3"),
            ("content-type", "application/json"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "x-kept"]);
    }
}
