//! A limiter's configuration: data, with `with_*` builder methods.

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_redis_core::{duration, ConfigError, Env};

use crate::algorithm::Algorithm;
use crate::error::{Error, Result};
use crate::policy::FailurePolicy;
use crate::preset::Preset;
use crate::quota::{Quota, MAX_WINDOW, MIN_WINDOW};
use crate::whitelist::Whitelist;

/// The largest cost one sliding-log check may carry (it adds one sorted-set
/// member per unit in a single `ZADD`).
pub const MAX_SLIDING_LOG_COST: u32 = 1_000;

/// Everything one limiter needs to know.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use aeturnis_ratelimit::{Algorithm, FailurePolicy, Quota, RateLimitConfig};
///
/// let login = RateLimitConfig::new("login", Quota::per_minute(NonZeroU32::new(5).unwrap()))
///     .with_algorithm(Algorithm::SlidingLog)
///     .with_block_duration(Duration::from_secs(900))
///     .with_failure_policy(FailurePolicy::FailClosed);
/// assert_eq!(login.quota.limit().get(), 5);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// The limiter's name: a fixed key segment (ASCII letters, digits,
    /// `_-.`). Its keys are `<prefix>rl:<name>:<subject>`. No default.
    pub name: String,
    /// The quota. No default.
    pub quota: Quota,
    /// The algorithm. Default: [`Algorithm::SlidingLog`].
    pub algorithm: Algorithm,
    /// After a denial, the key stays blocked (every request denied) for
    /// this long, then starts again from its full quota (GCRA: a full
    /// burst). Between 1 ms and one year. A sliding-log replay of a request admitted before the block
    /// still answers "allowed, replayed". Default: `None` (no block).
    pub block_duration: Option<Duration>,
    /// What to do when Redis is unavailable. Default: [`FailurePolicy::LocalFallback`].
    pub failure_policy: FailurePolicy,
    /// Decide and record, but never reject. Default: `false`.
    pub shadow: bool,
    /// Remember Redis denials in process and answer repeats locally until
    /// their retry-after passes. Default: `true`.
    pub deny_cache: bool,
    /// Most keys the deny cache and the fallback limiter hold each.
    /// Default: `10_000`.
    pub local_capacity: usize,
    /// The retry-after of a fail-closed denial: above zero, at most
    /// 100 years. Default: 1 s.
    pub unavailable_retry_after: Duration,
    /// Users and IP ranges that skip the limiter. Default: empty.
    pub whitelist: Whitelist,
}

impl RateLimitConfig {
    /// A limiter called `name` granting `quota`, with every other setting
    /// at its default.
    #[must_use]
    pub fn new(name: impl Into<String>, quota: Quota) -> RateLimitConfig {
        RateLimitConfig {
            name: name.into(),
            quota,
            algorithm: Algorithm::default(),
            block_duration: None,
            failure_policy: FailurePolicy::default(),
            shadow: false,
            deny_cache: true,
            local_capacity: 10_000,
            unavailable_retry_after: Duration::from_secs(1),
            whitelist: Whitelist::default(),
        }
    }

    /// The configuration of `preset`, its quota read from the process
    /// environment: `RATE_LIMIT_<NAME>_WINDOW` in whole **milliseconds** and
    /// `RATE_LIMIT_<NAME>_MAX`, a non-zero count (see [`Preset`] for the
    /// defaults and the algorithm each preset uses). An unset or empty
    /// variable takes the default; a bad one is [`Error::Config`] naming it.
    pub fn from_env(preset: Preset) -> Result<RateLimitConfig> {
        preset.config_from(&Env::process())
    }

    /// [`from_env`](Self::from_env) through any variable lookup (tests,
    /// config files).
    ///
    /// ```
    /// use aeturnis_ratelimit::{Preset, RateLimitConfig};
    /// let env = |name: &str| (name == "RATE_LIMIT_API_WINDOW").then(|| "1500".to_owned());
    /// let api = RateLimitConfig::from_lookup(Preset::Api, env)?;
    /// assert_eq!(api.quota.window().as_millis(), 1500);
    /// assert_eq!(api.quota.limit().get(), 100);
    /// # Ok::<(), aeturnis_ratelimit::Error>(())
    /// ```
    pub fn from_lookup(
        preset: Preset,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RateLimitConfig> {
        preset.config_from(&Env::new(lookup))
    }

    /// Sets [`quota`](Self::quota).
    #[must_use]
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self
    }

    /// Sets [`algorithm`](Self::algorithm).
    #[must_use]
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets [`block_duration`](Self::block_duration).
    #[must_use]
    pub fn with_block_duration(mut self, block: Duration) -> Self {
        self.block_duration = Some(block);
        self
    }

    /// Sets [`failure_policy`](Self::failure_policy).
    #[must_use]
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// Sets [`shadow`](Self::shadow).
    #[must_use]
    pub fn with_shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// Sets [`deny_cache`](Self::deny_cache).
    #[must_use]
    pub fn with_deny_cache(mut self, enabled: bool) -> Self {
        self.deny_cache = enabled;
        self
    }

    /// Sets [`local_capacity`](Self::local_capacity).
    #[must_use]
    pub fn with_local_capacity(mut self, capacity: usize) -> Self {
        self.local_capacity = capacity;
        self
    }

    /// Sets [`unavailable_retry_after`](Self::unavailable_retry_after).
    #[must_use]
    pub fn with_unavailable_retry_after(mut self, retry_after: Duration) -> Self {
        self.unavailable_retry_after = retry_after;
        self
    }

    /// Sets [`whitelist`](Self::whitelist).
    #[must_use]
    pub fn with_whitelist(mut self, whitelist: Whitelist) -> Self {
        self.whitelist = whitelist;
        self
    }

    /// The largest cost one check may carry: the limit (GCRA: the burst),
    /// and at most [`MAX_SLIDING_LOG_COST`] for the sliding log.
    #[must_use]
    pub fn max_cost(&self) -> u32 {
        match self.algorithm {
            Algorithm::Gcra { burst: Some(b) } => b.get(),
            Algorithm::SlidingLog => self.quota.limit().get().min(MAX_SLIDING_LOG_COST),
            _ => self.quota.limit().get(),
        }
    }

    /// The limit reported in decisions (GCRA: the burst).
    pub(crate) fn reported_limit(&self) -> u32 {
        match self.algorithm {
            Algorithm::Gcra { burst: Some(b) } => b.get(),
            _ => self.quota.limit().get(),
        }
    }

    /// Checks the settings the types do not rule out: the block lies in
    /// [`MIN_WINDOW`] ..= [`MAX_WINDOW`] (1 ms to one year), and
    /// `unavailable_retry_after` is above zero and at most
    /// [`MAX_DURATION`](aeturnis_redis_core::duration::MAX_DURATION). A bad
    /// one is [`Error::Config`] naming the setting (`block_duration`,
    /// `unavailable_retry_after`). [`RateLimiter::new`](crate::RateLimiter::new)
    /// calls it, so no limiter is built on a setting Redis would refuse.
    pub fn validate(&self) -> Result<()> {
        if let Some(block) = self.block_duration {
            if block < MIN_WINDOW {
                return Err(ConfigError::invalid("block_duration", "must be at least 1 ms").into());
            }
            if block > MAX_WINDOW {
                return Err(
                    ConfigError::invalid("block_duration", "must be at most one year").into(),
                );
            }
        }
        duration::check(self.unavailable_retry_after)
            .map_err(|e| ConfigError::duration("unavailable_retry_after", e))?;
        Ok(())
    }

    /// Checks `cost` against [`max_cost`](Self::max_cost).
    pub(crate) fn check_cost(&self, cost: NonZeroU32) -> Result<()> {
        let max = self.max_cost();
        if cost.get() > max {
            return Err(Error::InvalidCost {
                cost: cost.get(),
                max,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RateLimitConfig {
        RateLimitConfig::new("t", Quota::per_second(NonZeroU32::MIN))
    }

    fn refused(c: &RateLimitConfig, setting: &str) -> bool {
        matches!(c.validate(), Err(e @ Error::Config(_)) if e.variable() == Some(setting))
    }

    #[test]
    fn should_bound_the_block_duration() {
        for bad in [
            Duration::ZERO,
            Duration::from_nanos(999_999),
            MAX_WINDOW + Duration::from_nanos(1),
            Duration::MAX,
        ] {
            let c = config().with_block_duration(bad);
            assert!(refused(&c, "block_duration"), "{bad:?}");
        }
        for good in [MIN_WINDOW, MAX_WINDOW] {
            assert!(config().with_block_duration(good).validate().is_ok());
        }
    }

    #[test]
    fn should_bound_the_unavailable_retry_after() {
        for bad in [
            Duration::ZERO,
            duration::MAX_DURATION + Duration::from_nanos(1),
            Duration::MAX,
        ] {
            let c = config().with_unavailable_retry_after(bad);
            assert!(refused(&c, "unavailable_retry_after"), "{bad:?}");
        }
        for good in [Duration::from_nanos(1), duration::MAX_DURATION] {
            let c = config().with_unavailable_retry_after(good);
            assert!(c.validate().is_ok(), "{good:?}");
        }
    }
}
