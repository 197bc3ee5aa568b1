//! The clock the signature layers check timestamps against, and the check
//! they share: a Unix time in whole seconds, within a tolerance of our
//! clock in either direction.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The clock a layer reads (injectable, so tests need no sleeping).
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system clock.
pub(crate) fn system() -> Clock {
    Arc::new(SystemTime::now)
}

/// Why a timestamp header is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimestampError {
    /// Not a Unix time in whole seconds (empty, a sign, a fraction, too
    /// many digits).
    NotUnixTime,
    /// Further from our clock than the tolerance.
    OutsideTolerance,
}

/// Checks that `timestamp` (decimal Unix seconds) is within `tolerance` of
/// `now`, in either direction.
pub(crate) fn check(
    timestamp: &str,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), TimestampError> {
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimestampError::NotUnixTime);
    }
    let sent = timestamp
        .parse::<u64>()
        .map_err(|_| TimestampError::NotUnixTime)?;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if now.abs_diff(sent) > tolerance.as_secs() {
        return Err(TimestampError::OutsideTolerance);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_syntax() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let tol = Duration::from_secs(300);
        assert_eq!(check("1000", at(1300), tol), Ok(()));
        assert_eq!(check("1000", at(700), tol), Ok(()));
        assert_eq!(
            check("1000", at(1301), tol),
            Err(TimestampError::OutsideTolerance)
        );
        assert_eq!(
            check("1000", at(699), tol),
            Err(TimestampError::OutsideTolerance)
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            " 1",
            "1e3",
            "99999999999999999999999",
        ] {
            assert_eq!(
                check(bad, at(0), tol),
                Err(TimestampError::NotUnixTime),
                "{bad}"
            );
        }
    }
}
