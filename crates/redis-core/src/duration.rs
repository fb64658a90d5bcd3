//! Durations as Redis sees them: whole milliseconds, with one rounding rule.
//!
//! Every Aeturnis crate converts a [`Duration`] to the milliseconds it sends
//! (`PX`, `PEXPIRE`, script arguments) through this module, so they all agree:
//!
//! - **Rounding: up.** A remainder below one millisecond rounds up to the
//!   next whole millisecond, so a positive duration never becomes `0`
//!   (which Redis would read as "no expiry" or reject) and a TTL is never
//!   shorter than asked. `1 µs` is sent as `1`, `1.2 ms` as `2`.
//! - **Bounds:** zero is refused, and so is anything above [`MAX_DURATION`]
//!   (100 years). The bound keeps every value exact where scripts compute
//!   with it: Lua numbers are doubles, exact up to 2^53, and 100 years in
//!   *micro*seconds added to today's time in microseconds stays below that.
//!   Redis itself refuses an expiry that overflows its millisecond clock,
//!   with an untyped "invalid expire time" error; the bound turns that into
//!   a typed error at configuration time.
//!
//! ```
//! use std::time::Duration;
//! use aeturnis_redis_core::duration::{ceil_millis, checked_millis, DurationError};
//!
//! assert_eq!(ceil_millis(Duration::from_micros(1)), 1);
//! assert_eq!(ceil_millis(Duration::from_micros(1200)), 2);
//! assert_eq!(checked_millis(Duration::from_secs(2)), Ok(2000));
//! assert_eq!(checked_millis(Duration::ZERO), Err(DurationError::Zero));
//! assert!(matches!(checked_millis(Duration::MAX), Err(DurationError::TooLong { .. })));
//! ```

use std::time::Duration;

/// The longest duration any Aeturnis setting or TTL accepts: 100 years of
/// 365.25 days (3,155,760,000 s). See the [module docs](self) for why.
pub const MAX_DURATION: Duration = Duration::from_secs(3_155_760_000);

/// Why a duration cannot be sent to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Zero: no Redis expiry or window can be zero.
    #[error("must be greater than zero")]
    Zero,
    /// Above [`MAX_DURATION`].
    #[error("{value:?} is above the maximum of {max:?}")]
    TooLong {
        /// The duration given.
        value: Duration,
        /// [`MAX_DURATION`].
        max: Duration,
    },
}

/// Whole milliseconds, a sub-millisecond remainder rounded **up**;
/// saturates at `u64::MAX`. The one rounding rule of the workspace; use
/// [`checked_millis`] where the bounds must hold.
#[must_use]
pub fn ceil_millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// [`ceil_millis`], refusing zero and anything above [`MAX_DURATION`].
///
/// # Errors
/// [`DurationError`].
pub fn checked_millis(d: Duration) -> Result<u64, DurationError> {
    check(d)?;
    Ok(ceil_millis(d))
}

/// Checks the bounds of [`checked_millis`] without converting.
///
/// # Errors
/// [`DurationError`].
pub fn check(d: Duration) -> Result<Duration, DurationError> {
    if d.is_zero() {
        Err(DurationError::Zero)
    } else if d > MAX_DURATION {
        Err(DurationError::TooLong {
            value: d,
            max: MAX_DURATION,
        })
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_round_sub_millisecond_remainders_up() {
        assert_eq!(ceil_millis(Duration::ZERO), 0);
        assert_eq!(ceil_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_millis(Duration::from_millis(5)), 5);
        assert_eq!(ceil_millis(Duration::from_nanos(5_000_001)), 6);
        assert_eq!(ceil_millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn should_bound_durations_at_zero_and_the_maximum() {
        assert_eq!(checked_millis(Duration::ZERO), Err(DurationError::Zero));
        assert_eq!(checked_millis(Duration::from_nanos(1)), Ok(1));
        assert_eq!(checked_millis(MAX_DURATION), Ok(3_155_760_000_000));
        assert_eq!(
            checked_millis(MAX_DURATION + Duration::from_nanos(1)),
            Err(DurationError::TooLong {
                value: MAX_DURATION + Duration::from_nanos(1),
                max: MAX_DURATION
            })
        );
        // the bound in µs plus today's time in µs is exact in a Lua double
        let now_us: u64 = 1_800_000_000_000_000;
        let max_us = u64::try_from(MAX_DURATION.as_micros()).unwrap_or(u64::MAX);
        assert!(now_us + max_us < 1 << 53);
    }
}
