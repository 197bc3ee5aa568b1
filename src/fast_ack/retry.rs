//! When a failed attempt is tried again: exponential backoff with full
//! jitter.

use std::time::Duration;

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
/// Defaults: 5 attempts in all, base delay 500 ms, at most 30 s.
///
/// ```
/// use std::time::Duration;
/// use taskhook::fast_ack::RetryPolicy;
///
/// let policy = RetryPolicy::new()
///     .attempts(8)
///     .base_delay(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(60))
///     .jitter(true); // the default
/// assert_eq!(policy.max_attempts(), 8);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts: u32,
    base: Duration,
    max: Duration,
    jitter: bool,
}

impl RetryPolicy {
    /// The default policy: 5 attempts, 500 ms base delay, 30 s at most,
    /// full jitter.
    pub fn new() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter: true,
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
}
