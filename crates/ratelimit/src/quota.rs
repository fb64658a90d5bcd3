//! How many requests per window.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::error::{Error, Result};

/// The shortest window: Redis key TTLs have millisecond resolution.
pub const MIN_WINDOW: Duration = Duration::from_millis(1);
/// The longest window (one year): longer ones are almost certainly a unit mistake.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// `limit` requests (cost units) per `window`. A zero limit cannot be
/// written (`NonZeroU32`); a zero, sub-millisecond or over-a-year window is
/// a typed error.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use aeturnis_ratelimit::Quota;
///
/// let q = Quota::new(NonZeroU32::new(100).unwrap(), Duration::from_secs(60))?;
/// assert_eq!(q.limit().get(), 100);
/// assert!(matches!(
///     Quota::new(NonZeroU32::MIN, Duration::ZERO),
///     Err(aeturnis_ratelimit::Error::InvalidQuota(_))
/// ));
/// # Ok::<(), aeturnis_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: NonZeroU32,
    window: Duration,
}

impl Quota {
    /// `limit` per `window`.
    pub fn new(limit: NonZeroU32, window: Duration) -> Result<Quota> {
        if window.is_zero() {
            return Err(Error::InvalidQuota("the window must be greater than zero"));
        }
        if window < MIN_WINDOW {
            return Err(Error::InvalidQuota("the window must be at least 1 ms"));
        }
        if window > MAX_WINDOW {
            return Err(Error::InvalidQuota("the window must be at most one year"));
        }
        Ok(Quota { limit, window })
    }

    /// `limit` per `window_ms` milliseconds, for constants known to be in
    /// range (a zero limit becomes 1).
    pub(crate) const fn from_parts(limit: u32, window_ms: u64) -> Quota {
        Quota {
            limit: NonZeroU32::MIN.saturating_add(limit.saturating_sub(1)),
            window: Duration::from_millis(window_ms),
        }
    }

    /// `limit` per second.
    #[must_use]
    pub fn per_second(limit: NonZeroU32) -> Quota {
        Quota {
            limit,
            window: Duration::from_secs(1),
        }
    }

    /// `limit` per minute.
    #[must_use]
    pub fn per_minute(limit: NonZeroU32) -> Quota {
        Quota {
            limit,
            window: Duration::from_secs(60),
        }
    }

    /// `limit` per hour.
    #[must_use]
    pub fn per_hour(limit: NonZeroU32) -> Quota {
        Quota {
            limit,
            window: Duration::from_secs(3600),
        }
    }

    /// The number of cost units per window.
    #[must_use]
    pub fn limit(&self) -> NonZeroU32 {
        self.limit
    }

    /// The window.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_refuse_zero_and_out_of_range_windows() {
        let one = NonZeroU32::MIN;
        let refused = |window: Duration, why: &str| {
            let r = Quota::new(one, window);
            assert!(
                matches!(r, Err(Error::InvalidQuota(reason)) if reason == why),
                "{window:?}: {r:?}"
            );
        };
        refused(Duration::ZERO, "the window must be greater than zero");
        refused(
            Duration::from_micros(999),
            "the window must be at least 1 ms",
        );
        refused(
            MAX_WINDOW + Duration::from_secs(1),
            "the window must be at most one year",
        );
        assert!(Quota::new(one, MIN_WINDOW).is_ok());
        assert!(Quota::new(NonZeroU32::MAX, MAX_WINDOW).is_ok());
        refused(Duration::MAX, "the window must be at most one year");
        refused(
            MAX_WINDOW + Duration::from_nanos(1),
            "the window must be at most one year",
        );
        assert_eq!(
            Quota::from_parts(5, 1000),
            Quota::per_second(NonZeroU32::new(5).unwrap())
        );
        assert_eq!(Quota::from_parts(0, 1).limit(), one);
    }
}
