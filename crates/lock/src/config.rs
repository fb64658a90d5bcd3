//! Lock configuration: data, with `with_*` builder methods.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::error::{Error, Result};

/// How a [`LockManager`](crate::LockManager) waits, watches and fences.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockConfig {
    /// How long [`acquire`](crate::LockManager::acquire) and
    /// [`with_lock`](crate::LockManager::with_lock) wait for a held lock.
    /// Default: 10 s.
    pub wait_timeout: Duration,
    /// First back-off delay between attempts while waiting. Default: 2 ms.
    pub backoff_min: Duration,
    /// Back-off ceiling: a waiter re-checks at least this often even if no
    /// release message reaches it (a lost pub/sub message, an expiry).
    /// Default: 100 ms.
    pub backoff_max: Duration,
    /// Wake waiters through pub/sub when a lock is released, instead of only
    /// polling. Default: `true`.
    pub wake_on_release: bool,
    /// Start a watchdog with every guard that extends the lock every
    /// `ttl / 3` while the guard lives. Default: `false`.
    pub watchdog: bool,
    /// TTL of the per-resource fencing counter and fenced-write record,
    /// refreshed on every acquisition and fenced write. Default: 7 days.
    pub fence_ttl: Duration,
    /// Issue a fencing token with every acquisition (one script: counter +
    /// `SET NX PX`). Default: `true`.
    ///
    /// Off, an uncontended acquire is one native `SET key token NX PX ttl
    /// GET` and a release a bare compare-and-delete: the cost of a
    /// hand-rolled lock. Guards then carry fence `0`, which
    /// [`fenced_write`](crate::LockManager::fenced_write) refuses with
    /// [`Error::Unfenced`](crate::Error::Unfenced). Waiting, FIFO
    /// hand-off, replay safety, watchdog and `with_lock` work the same.
    /// The same holds for [`Redlock`](crate::Redlock) (set it in
    /// [`RedlockConfig::lock`]): off, each master gets the original
    /// algorithm's bare `SET NX PX`.
    pub fencing: bool,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            wait_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(2),
            backoff_max: Duration::from_millis(100),
            wake_on_release: true,
            watchdog: false,
            fence_ttl: Duration::from_secs(7 * 24 * 3600),
            fencing: true,
        }
    }
}

impl LockConfig {
    /// Sets [`wait_timeout`](Self::wait_timeout).
    #[must_use]
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Sets the back-off range ([`backoff_min`](Self::backoff_min),
    /// [`backoff_max`](Self::backoff_max)).
    #[must_use]
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    /// Sets [`wake_on_release`](Self::wake_on_release).
    #[must_use]
    pub fn with_wake_on_release(mut self, wake: bool) -> Self {
        self.wake_on_release = wake;
        self
    }

    /// Sets [`watchdog`](Self::watchdog).
    #[must_use]
    pub fn with_watchdog(mut self, watchdog: bool) -> Self {
        self.watchdog = watchdog;
        self
    }

    /// Sets [`fence_ttl`](Self::fence_ttl).
    #[must_use]
    pub fn with_fence_ttl(mut self, ttl: Duration) -> Self {
        self.fence_ttl = ttl;
        self
    }

    /// Sets [`fencing`](Self::fencing).
    #[must_use]
    pub fn with_fencing(mut self, fencing: bool) -> Self {
        self.fencing = fencing;
        self
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero back-off, `backoff_min >
    /// backoff_max`, or a fence TTL under one hour.
    pub fn validate(&self) -> Result<()> {
        if self.backoff_min.is_zero() {
            return Err(Error::InvalidConfig("backoff_min must be above zero"));
        }
        if self.backoff_min > self.backoff_max {
            return Err(Error::InvalidConfig(
                "backoff_min must not exceed backoff_max",
            ));
        }
        if self.fence_ttl < Duration::from_secs(3600) {
            return Err(Error::InvalidConfig("fence_ttl must be at least one hour"));
        }
        Ok(())
    }
}

/// Redlock settings on top of the per-lock [`LockConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedlockConfig {
    /// Waiting, back-off, watchdog and fencing. Default: [`LockConfig::default`].
    pub lock: LockConfig,
    /// Bound on one request to one master; a slower master counts as a
    /// "no". Default: 50 ms.
    pub master_timeout: Duration,
    /// Rounds [`try_acquire`](crate::Redlock::try_acquire) makes (each
    /// after a random delay up to `lock.backoff_max`) before giving up.
    /// Default: 3.
    pub retry_count: NonZeroU32,
}

impl Default for RedlockConfig {
    fn default() -> Self {
        RedlockConfig {
            lock: LockConfig::default(),
            master_timeout: Duration::from_millis(50),
            retry_count: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
        }
    }
}

impl RedlockConfig {
    /// Sets [`lock`](Self::lock).
    #[must_use]
    pub fn with_lock(mut self, lock: LockConfig) -> Self {
        self.lock = lock;
        self
    }

    /// Sets [`master_timeout`](Self::master_timeout).
    #[must_use]
    pub fn with_master_timeout(mut self, timeout: Duration) -> Self {
        self.master_timeout = timeout;
        self
    }

    /// Sets [`retry_count`](Self::retry_count).
    #[must_use]
    pub fn with_retry_count(mut self, count: NonZeroU32) -> Self {
        self.retry_count = count;
        self
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] as [`LockConfig::validate`], or for a zero
    /// master timeout.
    pub fn validate(&self) -> Result<()> {
        self.lock.validate()?;
        if self.master_timeout.is_zero() {
            return Err(Error::InvalidConfig("master_timeout must be above zero"));
        }
        Ok(())
    }
}

/// Longest accepted TTL: 30 days.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The clock-drift allowance Redlock subtracts from a lease:
/// `ttl × 0.01 + 2 ms`.
#[must_use]
pub fn clock_drift(ttl: Duration) -> Duration {
    ttl / 100 + Duration::from_millis(2)
}

/// Validates a lock TTL and returns it in whole milliseconds, rounded up
/// (a lease a fraction of a millisecond longer than asked is the safe side;
/// nothing is truncated). `overhead` is time that must fit inside the lease
/// on top of the clock drift (Redlock passes its per-master timeout).
pub(crate) fn ttl_millis(ttl: Duration, overhead: Duration) -> Result<u64> {
    if ttl.is_zero() {
        return Err(Error::InvalidTtl {
            ttl,
            reason: "a lock TTL must be above zero",
        });
    }
    if ttl > MAX_TTL {
        return Err(Error::InvalidTtl {
            ttl,
            reason: "a lock TTL must be at most 30 days",
        });
    }
    if ttl <= clock_drift(ttl) + overhead {
        return Err(Error::InvalidTtl {
            ttl,
            reason: "the TTL leaves no validity after the clock-drift allowance (ttl × 0.01 + 2 ms) and request timeout",
        });
    }
    let nanos = ttl.as_nanos();
    let ms = nanos.div_ceil(1_000_000);
    u64::try_from(ms).map_err(|_| Error::InvalidTtl {
        ttl,
        reason: "a lock TTL must be at most 30 days",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_refuse_zero_huge_and_drift_eaten_ttls() {
        assert!(matches!(
            ttl_millis(Duration::ZERO, Duration::ZERO),
            Err(Error::InvalidTtl { .. })
        ));
        assert!(ttl_millis(Duration::from_millis(2), Duration::ZERO).is_err());
        assert!(ttl_millis(MAX_TTL + Duration::from_secs(1), Duration::ZERO).is_err());
        assert!(ttl_millis(Duration::from_millis(40), Duration::from_millis(50)).is_err());
        assert_eq!(
            ttl_millis(Duration::from_millis(3), Duration::ZERO).ok(),
            Some(3)
        );
        assert_eq!(
            ttl_millis(Duration::from_micros(10_001), Duration::ZERO).ok(),
            Some(11)
        );
    }

    #[test]
    fn should_compute_drift_as_one_percent_plus_two_ms() {
        assert_eq!(
            clock_drift(Duration::from_secs(10)),
            Duration::from_millis(102)
        );
    }

    #[test]
    fn should_validate_backoff_and_fence_ttl() {
        assert!(LockConfig::default().validate().is_ok());
        assert!(LockConfig::default()
            .with_backoff(Duration::from_millis(5), Duration::from_millis(1))
            .validate()
            .is_err());
        assert!(LockConfig::default()
            .with_fence_ttl(Duration::from_secs(5))
            .validate()
            .is_err());
        assert!(RedlockConfig::default()
            .with_master_timeout(Duration::ZERO)
            .validate()
            .is_err());
    }
}
