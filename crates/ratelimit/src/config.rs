//! A limiter's configuration: data, with `with_*` builder methods.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::algorithm::Algorithm;
use crate::error::{Error, Result};
use crate::policy::FailurePolicy;
use crate::quota::{Quota, MAX_WINDOW};
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
    /// burst). A sliding-log replay of a request admitted before the block
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
    /// The retry-after of a fail-closed denial. Default: 1 s.
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

    /// Checks the settings the types do not rule out.
    pub fn validate(&self) -> Result<()> {
        let setting = |variable: &str, reason: &str| Error::InvalidSetting {
            variable: variable.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(block) = self.block_duration {
            if block < Duration::from_millis(1) {
                return Err(setting("block_duration", "must be at least 1 ms"));
            }
            if block > MAX_WINDOW {
                return Err(setting("block_duration", "must be at most one year"));
            }
        }
        if self.unavailable_retry_after.is_zero() {
            return Err(setting(
                "unavailable_retry_after",
                "must be greater than zero",
            ));
        }
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
