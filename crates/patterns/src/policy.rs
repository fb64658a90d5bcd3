//! [`LoadPolicy`] (data, with `with_*` methods) and [`Policy`] (checked,
//! what `get_or_load` takes).

use std::time::Duration;

use aeturnis_redis_core::duration::check;
use aeturnis_redis_core::ConfigError;

/// What to do when Redis fails during `get_or_load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnRedisError {
    /// Load from the source and return the value uncached (counted as
    /// `bypassed` in the stats).
    Bypass,
    /// Return the Redis error.
    Fail,
}

/// How one kind of entry is cached. Build it with the `with_*` methods,
/// then [`build`](Self::build) it into a [`Policy`].
///
/// ```
/// use std::time::Duration;
/// use aeturnis_patterns::LoadPolicy;
/// let policy = LoadPolicy::new(Duration::from_secs(300))
///     .with_soft_ttl(Duration::from_secs(60))
///     .with_negative_ttl(Duration::from_secs(5))
///     .build()?;
/// # let _ = policy;
/// # Ok::<(), aeturnis_patterns::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LoadPolicy {
    /// Hard TTL: the Redis key's expiry. Required.
    pub ttl: Duration,
    /// Soft TTL: after it, reads are served the stale value while one
    /// background refresh per process runs (stale-while-revalidate, the
    /// original's `backgroundRefresh`). Must not exceed `ttl`. Default:
    /// none (the entry is fresh until it expires).
    pub soft_ttl: Option<Duration>,
    /// How long a `None` from the loader is cached. Default: none (not
    /// cached).
    pub negative_ttl: Option<Duration>,
    /// XFetch's β: reads refresh early with a probability that grows as
    /// expiry nears, weighted by how long the last load took. `0` turns
    /// early refresh off. Default: `1.0`.
    pub beta: f64,
    /// When a background refresh fails, keep serving the stale value until
    /// the hard TTL (counted), instead of dropping it. Default: `true`.
    pub stale_if_error: bool,
    /// What a read does when Redis fails. Default: [`OnRedisError::Bypass`].
    pub on_redis_error: OnRedisError,
    /// How long a loader's lease holds a missing key; a loader that dies
    /// frees the key at this TTL. Default: 10 s.
    pub lease_ttl: Duration,
    /// Fleet-wide single flight: a reader that finds another process's
    /// lease waits this long for that process's value (woken by sharded
    /// pub/sub, never polling) before loading by itself. Default: none (it
    /// loads at once, without storing).
    pub lease_wait: Option<Duration>,
}

impl LoadPolicy {
    /// A policy with hard TTL `ttl` and every other setting at its default.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        LoadPolicy {
            ttl,
            soft_ttl: None,
            negative_ttl: None,
            beta: 1.0,
            stale_if_error: true,
            on_redis_error: OnRedisError::Bypass,
            lease_ttl: Duration::from_secs(10),
            lease_wait: None,
        }
    }

    /// Sets the soft TTL (stale-while-revalidate).
    #[must_use]
    pub fn with_soft_ttl(mut self, soft_ttl: Duration) -> Self {
        self.soft_ttl = Some(soft_ttl);
        self
    }

    /// Caches a `None` from the loader for `ttl`.
    #[must_use]
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Sets XFetch's β (`0` disables early refresh).
    #[must_use]
    pub fn with_beta(mut self, beta: f64) -> Self {
        self.beta = beta;
        self
    }

    /// Sets whether a failed refresh keeps the stale value.
    #[must_use]
    pub fn with_stale_if_error(mut self, stale_if_error: bool) -> Self {
        self.stale_if_error = stale_if_error;
        self
    }

    /// Sets what a read does when Redis fails.
    #[must_use]
    pub fn with_on_redis_error(mut self, on_error: OnRedisError) -> Self {
        self.on_redis_error = on_error;
        self
    }

    /// Waits up to `wait` for another process's load instead of loading
    /// (see [`lease_wait`](Self::lease_wait)).
    #[must_use]
    pub fn with_lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = Some(wait);
        self
    }

    /// Sets the lease TTL.
    #[must_use]
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Checks every setting: durations non-zero and at most 100 years, the
    /// soft TTL not above the hard TTL, β finite and not negative.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the setting.
    pub fn build(self) -> Result<Policy, crate::Error> {
        let bounded =
            |name: &str, d: Duration| check(d).map_err(|e| ConfigError::duration(name, e));
        bounded("ttl", self.ttl)?;
        bounded("lease_ttl", self.lease_ttl)?;
        if let Some(soft) = self.soft_ttl {
            bounded("soft_ttl", soft)?;
            if soft > self.ttl {
                return Err(ConfigError::invalid(
                    "soft_ttl",
                    format!("{soft:?} is above the hard ttl {:?}", self.ttl),
                )
                .into());
            }
        }
        if let Some(negative) = self.negative_ttl {
            bounded("negative_ttl", negative)?;
        }
        if let Some(wait) = self.lease_wait {
            bounded("lease_wait", wait)?;
        }
        if !self.beta.is_finite() || self.beta < 0.0 {
            return Err(ConfigError::invalid("beta", "must be a finite number >= 0").into());
        }
        Ok(Policy(self))
    }
}

/// A checked [`LoadPolicy`]: every `get_or_load` takes one, so no read can
/// run with a bad setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy(LoadPolicy);

impl Policy {
    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &LoadPolicy {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn should_refuse_each_bad_setting_by_name() {
        let ok = LoadPolicy::new(Duration::from_secs(10));
        let cases = [
            ("ttl", LoadPolicy::new(Duration::ZERO)),
            ("ttl", LoadPolicy::new(Duration::MAX)),
            (
                "soft_ttl",
                ok.clone().with_soft_ttl(Duration::from_secs(11)),
            ),
            ("soft_ttl", ok.clone().with_soft_ttl(Duration::ZERO)),
            ("negative_ttl", ok.clone().with_negative_ttl(Duration::ZERO)),
            ("beta", ok.clone().with_beta(f64::NAN)),
            ("beta", ok.clone().with_beta(-1.0)),
            ("lease_ttl", ok.clone().with_lease_ttl(Duration::ZERO)),
            ("lease_wait", ok.clone().with_lease_wait(Duration::ZERO)),
        ];
        for (name, policy) in cases {
            match policy.build() {
                Err(Error::Config(e)) => assert_eq!(e.variable(), name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(ok.with_soft_ttl(Duration::from_secs(10)).build().is_ok());
    }
}
