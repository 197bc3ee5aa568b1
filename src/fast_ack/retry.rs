//! When a failed attempt is tried again: exponential backoff with full
//! jitter, or later when the handler's answer asks for it (`Retry-After`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often, and after how long, a failed event is tried again before it
/// becomes a dead letter.
///
/// The delay before attempt `n + 1` is drawn uniformly from
/// `0 ..= min(max_delay, base_delay * 2^(n - 1))` ("full jitter"), so the
/// retries of events that failed together spread out instead of hitting a
/// recovering handler at the same instant. With
/// [`jitter(false)`](RetryPolicy::jitter) the delay is the upper bound
/// itself.
///
/// A failed answer that says when to come back (a `5xx` with `Retry-After`,
/// see [`ResponseStatus::retry_after`](super::ResponseStatus::retry_after))
/// is not tried again before then: the delay is the larger of the backoff
/// and that wait, the wait capped by
/// [`max_retry_after`](RetryPolicy::max_retry_after). It does not add
/// attempts.
///
/// Defaults: 5 attempts in all, base delay 500 ms, at most 30 s; a
/// `Retry-After` honoured up to 5 minutes.
///
/// ```
/// use std::time::Duration;
/// use taskhook::fast_ack::RetryPolicy;
///
/// let policy = RetryPolicy::new()
///     .attempts(8)
///     .base_delay(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(60))
///     .jitter(true) // the default
///     .max_retry_after(Duration::from_secs(600));
/// assert_eq!(policy.max_attempts(), 8);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts: u32,
    base: Duration,
    max: Duration,
    jitter: bool,
    max_retry_after: Duration,
}

/// The default of [`RetryPolicy::max_retry_after`].
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(5 * 60);

impl RetryPolicy {
    /// The default policy: 5 attempts, 500 ms base delay, 30 s at most,
    /// full jitter, a `Retry-After` honoured up to 5 minutes.
    pub fn new() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter: true,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }

    /// Sets the number of attempts in all, the first one included (at least
    /// one: `0` is read as `1`, no retry).
    ///
    /// ```
    /// use taskhook::fast_ack::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().attempts(1).max_attempts(), 1);
    /// ```
    #[must_use]
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Sets the delay bound before the first retry; it doubles after every
    /// failure, up to [`max_delay`](RetryPolicy::max_delay).
    #[must_use]
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base = delay;
        self
    }

    /// Sets the largest delay between two attempts.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max = delay;
        self
    }

    /// Turns the full jitter on (the default) or off. Without it every
    /// delay is the exponential bound itself: predictable, but events that
    /// failed together are retried together.
    #[must_use]
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the longest wait a failed answer's `Retry-After` can impose
    /// before the next attempt (default 5 minutes): the delay is the larger
    /// of the backoff and `min(Retry-After, max)`, so a handler (or the app
    /// behind it) cannot park an event for hours. `Duration::ZERO` ignores
    /// `Retry-After`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook::fast_ack::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new().max_retry_after(Duration::from_secs(60));
    /// # drop(policy);
    /// ```
    #[must_use]
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The number of attempts in all.
    pub fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// The upper bound of the delay after `failed` failed attempts
    /// (`failed >= 1`): `min(max_delay, base_delay * 2^(failed - 1))`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook::fast_ack::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new()
    ///     .base_delay(Duration::from_millis(100))
    ///     .max_delay(Duration::from_millis(350));
    /// assert_eq!(policy.delay_bound(1), Duration::from_millis(100));
    /// assert_eq!(policy.delay_bound(2), Duration::from_millis(200));
    /// assert_eq!(policy.delay_bound(3), Duration::from_millis(350));
    /// ```
    pub fn delay_bound(&self, failed: u32) -> Duration {
        let shift = failed.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << shift)
            .map_or(self.max, |d| d.min(self.max))
    }

    pub(crate) fn delay(&self, failed: u32) -> Duration {
        let bound = self.delay_bound(failed);
        if !self.jitter {
            return bound;
        }
        let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        // Full jitter: uniform in `0..=bound`, from fastrand's thread-local
        // generator (not for anything secret).
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    /// The delay after `failed` failed attempts when the last answer asked
    /// for `retry_after`: the larger of the backoff and the capped wait.
    pub(crate) fn delay_after(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.delay(failed);
        match retry_after {
            Some(after) => backoff.max(after.min(self.max_retry_after)),
            None => backoff,
        }
    }
}

/// The wait a `Retry-After` value asks for, from `now`: delay-seconds
/// (`120`), or an HTTP date in the IMF-fixdate form every sender must use
/// (`Sun, 06 Nov 1994 08:49:37 GMT`; a date in the past is no wait).
/// `None` for anything else (the obsolete date forms included).
pub(crate) fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let value = value.trim_ascii();
    if !value.is_empty() && value.iter().all(u8::is_ascii_digit) {
        // Saturates rather than fails on an absurdly long number: it is
        // capped by the policy anyway.
        let secs = value.iter().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        return Some(Duration::from_secs(secs));
    }
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(imf_fixdate(value)?))?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Seconds since the Unix epoch of an IMF-fixdate (RFC 9110, 5.6.7):
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn imf_fixdate(s: &[u8]) -> Option<u64> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    const DAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    if s.len() != 29 || &s[3..5] != b", " || &s[25..] != b" GMT" {
        return None;
    }
    if !DAYS.iter().any(|d| d[..] == s[..3]) {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = &s[range];
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    };
    let separators = [
        (5 + 2, b' '),
        (11, b' '),
        (16, b' '),
        (19, b':'),
        (22, b':'),
    ];
    if separators.iter().any(|&(i, c)| s[i] != c) {
        return None;
    }
    let day = digits(5..7)?;
    let month = MONTHS.iter().position(|m| m[..] == s[8..11])? as u64 + 1;
    let year = digits(12..16)?;
    let (hour, minute, second) = (digits(17..19)?, digits(20..22)?, digits(23..25)?);
    if year < 1970 || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    // 60: a leap second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date on or after it (Howard Hinnant's
/// `days_from_civil`, for years from 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_the_bound() {
        let policy = RetryPolicy::new()
            .base_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(70));
        let mut seen_low = false;
        for failed in 1..10 {
            for _ in 0..200 {
                let d = policy.delay(failed);
                assert!(d <= policy.delay_bound(failed));
                seen_low |= d < policy.delay_bound(failed) / 2;
            }
        }
        assert!(seen_low);
        assert_eq!(policy.delay_bound(40), Duration::from_millis(70));
        assert_eq!(
            RetryPolicy::new().jitter(false).delay(2),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn retry_after_is_a_floor_under_the_backoff_and_capped() {
        let policy = RetryPolicy::new()
            .base_delay(Duration::from_secs(2))
            .jitter(false)
            .max_retry_after(Duration::from_secs(60));
        let secs = Duration::from_secs;
        assert_eq!(policy.delay_after(1, None), secs(2));
        assert_eq!(policy.delay_after(1, Some(secs(1))), secs(2), "the backoff");
        assert_eq!(policy.delay_after(1, Some(secs(7))), secs(7));
        assert_eq!(policy.delay_after(1, Some(secs(3_600))), secs(60), "capped");
        let ignoring = policy.max_retry_after(Duration::ZERO);
        assert_eq!(ignoring.delay_after(1, Some(secs(7))), secs(2));
    }

    #[test]
    fn retry_after_values() {
        // 1994-11-06T08:49:37Z
        let date = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let parse = |v: &str| parse_retry_after(v.as_bytes(), date);
        assert_eq!(parse("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:51:07 GMT"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse("Mon, 07 Nov 1994 08:49:37 GMT"),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            parse("Sat, 05 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO),
            "past"
        );
        // 2000 is a leap year, 2100 is not.
        let y2k = parse_retry_after(b"Tue, 29 Feb 2000 00:00:00 GMT", UNIX_EPOCH);
        assert_eq!(y2k, Some(Duration::from_secs(951_782_400)));
        assert_eq!(parse("Mon, 29 Feb 2100 00:00:00 GMT"), None);
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun,_06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:3x GMT",
            "Sun, 06 Nov 1994 08:49:37 GMTé",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
