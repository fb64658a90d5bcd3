//! Lock configuration: data, with `with_*` builder methods, read from the
//! environment with the core [`Env`] reader.

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_redis_core::duration::{self, ceil_millis, MAX_DURATION};
use aeturnis_redis_core::{ConfigError, Env};

use crate::error::{Error, Result};

/// How a [`LockManager`](crate::LockManager) waits, watches and fences.
///
/// [`from_env`](Self::from_env) reads these variables (the Redlock ones
/// through [`RedlockConfig::from_env`]); `deploy/.env.example` lists them
/// with their defaults:
///
/// | variable | setting | unit |
/// |---|---|---|
/// | `LOCK_WAIT_TIMEOUT_MS` | [`LockConfig::wait_timeout`] | milliseconds |
/// | `LOCK_BACKOFF_MIN_MS` | [`LockConfig::backoff_min`] | milliseconds |
/// | `LOCK_BACKOFF_MAX_MS` | [`LockConfig::backoff_max`] | milliseconds |
/// | `LOCK_WAKE_ON_RELEASE` | [`LockConfig::wake_on_release`] | boolean |
/// | `LOCK_WATCHDOG` | [`LockConfig::watchdog`] | boolean |
/// | `LOCK_FENCING` | [`LockConfig::fencing`] | boolean |
/// | `LOCK_FENCE_TTL_SECS` | [`LockConfig::fence_ttl`] | seconds |
/// | `LOCK_REDLOCK_MASTER_TIMEOUT_MS` | [`RedlockConfig::master_timeout`] | milliseconds |
/// | `LOCK_REDLOCK_RETRY_COUNT` | [`RedlockConfig::retry_count`] | count (≥ 1) |
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
    /// refreshed on every fence issued and every fenced write. Default: 7
    /// days.
    pub fence_ttl: Duration,
    /// Make fencing tokens available. Default: `true`.
    ///
    /// A [`LockManager`](crate::LockManager) acquires with one native
    /// `SET key token NX PX ttl GET` either way and issues a fence only when
    /// a holder asks ([`LockGuard::fence`](crate::LockGuard::fence), one
    /// script); off, `fence()` answers
    /// [`Error::Unfenced`](crate::Error::Unfenced) without a round trip, so
    /// no code path can consume the counter. A [`Redlock`](crate::Redlock)
    /// (set it in [`RedlockConfig::lock`]) issues its fence with every
    /// acquisition (counter + `SET NX PX` in one script per master); off,
    /// each master gets the original algorithm's bare `SET NX PX`.
    /// Waiting, FIFO hand-off, replay safety, watchdog and `with_lock` work
    /// the same.
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

    /// Reads the `LOCK_*` variables (see the [type docs](Self)) from
    /// the process environment; unset or empty variables keep the default.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable, as [`from_lookup`](Self::from_lookup).
    pub fn from_env() -> std::result::Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any lookup (tests need no process
    /// environment). The result is [validated](Self::validate).
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that cannot be read, or the
    /// setting that does not validate.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, ConfigError> {
        let config = Self::read(&Env::new(lookup))?;
        config.validate()?;
        Ok(config)
    }

    fn read<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> std::result::Result<Self, ConfigError> {
        let d = LockConfig::default();
        Ok(LockConfig {
            wait_timeout: env
                .millis("LOCK_WAIT_TIMEOUT_MS")?
                .unwrap_or(d.wait_timeout),
            backoff_min: env.millis("LOCK_BACKOFF_MIN_MS")?.unwrap_or(d.backoff_min),
            backoff_max: env.millis("LOCK_BACKOFF_MAX_MS")?.unwrap_or(d.backoff_max),
            wake_on_release: env
                .bool("LOCK_WAKE_ON_RELEASE")?
                .unwrap_or(d.wake_on_release),
            watchdog: env.bool("LOCK_WATCHDOG")?.unwrap_or(d.watchdog),
            fence_ttl: env.seconds("LOCK_FENCE_TTL_SECS")?.unwrap_or(d.fence_ttl),
            fencing: env.bool("LOCK_FENCING")?.unwrap_or(d.fencing),
        })
    }

    /// Checks the values; [`LockManager::new`](crate::LockManager::new)
    /// and [`Redlock::new`](crate::Redlock::new) call it, so a bad value
    /// fails at construction, never at the first Redis call.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting: a duration above
    /// [`MAX_DURATION`] (100 years), a zero back-off, `backoff_min >
    /// backoff_max`, or a fence TTL under one hour.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        bounded("wait_timeout", self.wait_timeout)?;
        duration::check(self.backoff_min).map_err(|e| ConfigError::duration("backoff_min", e))?;
        duration::check(self.backoff_max).map_err(|e| ConfigError::duration("backoff_max", e))?;
        if self.backoff_min > self.backoff_max {
            return Err(ConfigError::invalid(
                "backoff_min",
                "must not exceed backoff_max",
            ));
        }
        duration::check(self.fence_ttl).map_err(|e| ConfigError::duration("fence_ttl", e))?;
        if self.fence_ttl < Duration::from_secs(3600) {
            return Err(ConfigError::invalid(
                "fence_ttl",
                "must be at least one hour",
            ));
        }
        Ok(())
    }

    /// [`fence_ttl`](Self::fence_ttl) in milliseconds, as the scripts take it.
    pub(crate) fn fence_ttl_ms(&self) -> u64 {
        ceil_millis(self.fence_ttl)
    }
}

/// Zero is allowed (one attempt, no wait); above [`MAX_DURATION`] is not.
fn bounded(setting: &str, d: Duration) -> std::result::Result<(), ConfigError> {
    if d > MAX_DURATION {
        return Err(ConfigError::invalid(
            setting,
            format!("{d:?} is above the maximum of {MAX_DURATION:?}"),
        ));
    }
    Ok(())
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

    /// Reads the [`LockConfig`] variables and
    /// `LOCK_REDLOCK_MASTER_TIMEOUT_MS` (milliseconds) and
    /// `LOCK_REDLOCK_RETRY_COUNT` from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable or setting.
    pub fn from_env() -> std::result::Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any lookup; the result is
    /// [validated](Self::validate).
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable or setting.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, ConfigError> {
        let env = Env::new(lookup);
        let d = RedlockConfig::default();
        let config = RedlockConfig {
            lock: LockConfig::read(&env)?,
            master_timeout: env
                .millis("LOCK_REDLOCK_MASTER_TIMEOUT_MS")?
                .unwrap_or(d.master_timeout),
            retry_count: env
                .non_zero_u32("LOCK_REDLOCK_RETRY_COUNT")?
                .unwrap_or(d.retry_count),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`ConfigError`] as [`LockConfig::validate`], or for a master
    /// timeout that is zero or not below [`MAX_TTL`] (no lock TTL would be
    /// left any validity).
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        self.lock.validate()?;
        duration::check(self.master_timeout)
            .map_err(|e| ConfigError::duration("master_timeout", e))?;
        if self.master_timeout >= MAX_TTL {
            return Err(ConfigError::invalid(
                "master_timeout",
                "must be below the longest lock TTL (30 days)",
            ));
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
/// by [`ceil_millis`] (a lease a fraction of a millisecond longer than asked
/// is the safe side; nothing is truncated). `overhead` is time that must fit inside the lease
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
    Ok(ceil_millis(ttl))
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
        let refused = |ttl: Duration, overhead: Duration, why: &str| {
            let result = ttl_millis(ttl, overhead);
            assert!(
                matches!(&result, Err(Error::InvalidTtl { ttl: t, reason }) if *t == ttl && reason.contains(why)),
                "{ttl:?} + {overhead:?}: {result:?}"
            );
        };
        refused(Duration::from_millis(2), Duration::ZERO, "no validity");
        refused(
            MAX_TTL + Duration::from_secs(1),
            Duration::ZERO,
            "at most 30 days",
        );
        refused(
            Duration::from_millis(40),
            Duration::from_millis(50),
            "no validity",
        );
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

    fn setting(r: std::result::Result<(), ConfigError>) -> String {
        r.err().map(|e| e.variable().to_owned()).unwrap_or_default()
    }

    #[test]
    fn should_validate_backoff_and_fence_ttl() {
        assert!(LockConfig::default().validate().is_ok());
        assert_eq!(
            setting(
                LockConfig::default()
                    .with_backoff(Duration::from_millis(5), Duration::from_millis(1))
                    .validate()
            ),
            "backoff_min"
        );
        assert_eq!(
            setting(
                LockConfig::default()
                    .with_fence_ttl(Duration::from_secs(5))
                    .validate()
            ),
            "fence_ttl"
        );
        assert_eq!(
            setting(
                RedlockConfig::default()
                    .with_master_timeout(Duration::ZERO)
                    .validate()
            ),
            "master_timeout"
        );
    }

    #[test]
    fn should_refuse_extreme_durations_naming_the_setting() {
        let d = LockConfig::default();
        let cases = [
            (d.clone().with_wait_timeout(Duration::MAX), "wait_timeout"),
            (
                d.clone()
                    .with_wait_timeout(MAX_DURATION + Duration::from_nanos(1)),
                "wait_timeout",
            ),
            (
                d.clone()
                    .with_backoff(Duration::ZERO, Duration::from_millis(1)),
                "backoff_min",
            ),
            (
                d.clone()
                    .with_backoff(Duration::from_millis(1), Duration::MAX),
                "backoff_max",
            ),
            (d.clone().with_fence_ttl(Duration::MAX), "fence_ttl"),
            (d.clone().with_fence_ttl(Duration::ZERO), "fence_ttl"),
        ];
        for (config, name) in cases {
            assert_eq!(setting(config.validate()), name, "{config:?}");
        }
        // the largest accepted values pass
        let max = d
            .clone()
            .with_wait_timeout(MAX_DURATION)
            .with_backoff(Duration::from_nanos(1), MAX_DURATION)
            .with_fence_ttl(MAX_DURATION);
        assert!(max.validate().is_ok());
        assert!(d.with_wait_timeout(Duration::ZERO).validate().is_ok());
        for (timeout, ok) in [
            (Duration::MAX, false),
            (MAX_TTL, false),
            (MAX_TTL - Duration::from_millis(1), true),
            (Duration::from_nanos(1), true),
        ] {
            assert_eq!(
                RedlockConfig::default()
                    .with_master_timeout(timeout)
                    .validate()
                    .is_ok(),
                ok,
                "{timeout:?}"
            );
        }
        // a bad config is refused at construction, as a typed error
        let e = Error::from(
            LockConfig::default()
                .with_fence_ttl(Duration::MAX)
                .validate()
                .unwrap_err(),
        );
        assert!(
            matches!(&e, Error::Config(c) if c.variable() == "fence_ttl"),
            "{e:?}"
        );
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn should_read_the_environment_naming_bad_variables() {
        let c = RedlockConfig::from_lookup(lookup(&[
            ("LOCK_WAIT_TIMEOUT_MS", "2500"),
            ("LOCK_BACKOFF_MIN_MS", "3"),
            ("LOCK_BACKOFF_MAX_MS", ""),
            ("LOCK_WAKE_ON_RELEASE", "false"),
            ("LOCK_WATCHDOG", "true"),
            ("LOCK_FENCING", "off"),
            ("LOCK_FENCE_TTL_SECS", "7200"),
            ("LOCK_REDLOCK_MASTER_TIMEOUT_MS", "20"),
            ("LOCK_REDLOCK_RETRY_COUNT", "5"),
        ]))
        .unwrap();
        let expected = RedlockConfig::default()
            .with_lock(
                LockConfig::default()
                    .with_wait_timeout(Duration::from_millis(2500))
                    .with_backoff(Duration::from_millis(3), Duration::from_millis(100))
                    .with_wake_on_release(false)
                    .with_watchdog(true)
                    .with_fencing(false)
                    .with_fence_ttl(Duration::from_secs(7200)),
            )
            .with_master_timeout(Duration::from_millis(20))
            .with_retry_count(NonZeroU32::new(5).unwrap());
        assert_eq!(c, expected);
        for (var, value, named) in [
            ("LOCK_WAIT_TIMEOUT_MS", "soon", "LOCK_WAIT_TIMEOUT_MS"),
            ("LOCK_BACKOFF_MIN_MS", "0", "LOCK_BACKOFF_MIN_MS"),
            ("LOCK_BACKOFF_MIN_MS", "500", "backoff_min"),
            ("LOCK_FENCE_TTL_SECS", "99999999999", "LOCK_FENCE_TTL_SECS"),
            ("LOCK_FENCE_TTL_SECS", "60", "fence_ttl"),
            ("LOCK_WATCHDOG", "maybe", "LOCK_WATCHDOG"),
            ("LOCK_REDLOCK_RETRY_COUNT", "0", "LOCK_REDLOCK_RETRY_COUNT"),
            (
                "LOCK_REDLOCK_MASTER_TIMEOUT_MS",
                "18446744073709551615",
                "LOCK_REDLOCK_MASTER_TIMEOUT_MS",
            ),
        ] {
            let e = RedlockConfig::from_lookup(lookup(&[(var, value)])).unwrap_err();
            assert_eq!(e.variable(), named, "{var}={value}: {e}");
        }
        assert_eq!(
            LockConfig::from_lookup(|_| None).unwrap(),
            LockConfig::default()
        );
    }

    /// `deploy/.env.example` documents the defaults: read through
    /// `from_lookup`, its lock section gives the default config, so the
    /// file and the code cannot drift apart.
    #[test]
    fn should_match_the_env_example() {
        let example = include_str!("../../../deploy/.env.example");
        let vars: std::collections::HashMap<String, String> = example
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let documented = [
            "LOCK_WAIT_TIMEOUT_MS",
            "LOCK_BACKOFF_MIN_MS",
            "LOCK_BACKOFF_MAX_MS",
            "LOCK_WAKE_ON_RELEASE",
            "LOCK_WATCHDOG",
            "LOCK_FENCING",
            "LOCK_FENCE_TTL_SECS",
            "LOCK_REDLOCK_MASTER_TIMEOUT_MS",
            "LOCK_REDLOCK_RETRY_COUNT",
        ];
        for var in documented {
            assert!(vars.contains_key(var), "{var} missing from .env.example");
        }
        let read = RedlockConfig::from_lookup(|name| vars.get(name).cloned()).unwrap();
        assert_eq!(read, RedlockConfig::default());
    }
}
