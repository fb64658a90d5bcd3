//! Cache configuration: data with `with_*` builder methods.
//!
//! | variable | field | default |
//! |---|---|---|
//! | `CACHE_DEFAULT_TTL` | [`default_ttl`](CacheConfig::default_ttl), whole seconds | `3600` |
//! | `CACHE_TTL_JITTER_PERCENT` | [`ttl_jitter_percent`](CacheConfig::ttl_jitter_percent) | `0` |
//! | `CACHE_MAX_VALUE_BYTES` | [`max_value_bytes`](CacheConfig::max_value_bytes) | `1048576` |
//! | `CACHE_SCAN_BATCH` | [`scan_batch`](CacheConfig::scan_batch) | `1000` |

use std::num::NonZeroU32;
use std::time::Duration;

use crate::error::{Error, Result};

/// How the cache writes: default TTL, jitter, value size limit, scan batch.
///
/// [`CacheConfig::from_env`] reads:
///
/// | variable | field | default |
/// |---|---|---|
/// | `CACHE_DEFAULT_TTL` | [`default_ttl`](CacheConfig::default_ttl), whole seconds | `3600` |
/// | `CACHE_TTL_JITTER_PERCENT` | [`ttl_jitter_percent`](CacheConfig::ttl_jitter_percent) | `0` |
/// | `CACHE_MAX_VALUE_BYTES` | [`max_value_bytes`](CacheConfig::max_value_bytes) | `1048576` |
/// | `CACHE_SCAN_BATCH` | [`scan_batch`](CacheConfig::scan_batch) | `1000` |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// TTL of every write that does not name one. Must be at least 1 ms.
    /// Default: 1 hour (the original system's `CACHE_DEFAULT_TTL`).
    pub default_ttl: Duration,
    /// Random extra TTL, in percent of the TTL (0 to 100), added to every
    /// write so keys written together do not expire together. The TTL is
    /// never shortened. Default: `0` (off).
    pub ttl_jitter_percent: u8,
    /// Largest encoded value accepted; larger values are refused with
    /// [`Error::ValueTooLarge`], never truncated. Default: 1 MiB.
    pub max_value_bytes: NonZeroU32,
    /// `SCAN COUNT` hint and `UNLINK` batch size for pattern deletes and key
    /// counts: bigger batches finish sooner, smaller ones keep each Redis
    /// command shorter. Default: 1000.
    pub scan_batch: NonZeroU32,
}

const MIB: NonZeroU32 = match NonZeroU32::new(1024 * 1024) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};
const THOUSAND: NonZeroU32 = match NonZeroU32::new(1000) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            default_ttl: Duration::from_secs(3600),
            ttl_jitter_percent: 0,
            max_value_bytes: MIB,
            scan_batch: THOUSAND,
        }
    }
}

impl CacheConfig {
    /// Reads the `CACHE_*` variables listed on [`CacheConfig`]; unset
    /// variables keep their defaults. Errors name the variable.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    ///
    /// ```
    /// use aeturnis_cache::CacheConfig;
    /// use std::time::Duration;
    /// let config = CacheConfig::from_lookup(|name| match name {
    ///     "CACHE_DEFAULT_TTL" => Some("60".to_owned()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.default_ttl, Duration::from_secs(60));
    /// assert!(CacheConfig::from_lookup(|_| Some("0".to_owned())).is_err());
    /// # Ok::<(), aeturnis_cache::Error>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut config = CacheConfig::default();
        if let Some(v) = get("CACHE_DEFAULT_TTL") {
            let secs: u64 = parse("CACHE_DEFAULT_TTL", &v)?;
            config.default_ttl = Duration::from_secs(secs);
        }
        if let Some(v) = get("CACHE_TTL_JITTER_PERCENT") {
            config.ttl_jitter_percent = parse("CACHE_TTL_JITTER_PERCENT", &v)?;
        }
        if let Some(v) = get("CACHE_MAX_VALUE_BYTES") {
            config.max_value_bytes = parse("CACHE_MAX_VALUE_BYTES", &v)?;
        }
        if let Some(v) = get("CACHE_SCAN_BATCH") {
            config.scan_batch = parse("CACHE_SCAN_BATCH", &v)?;
        }
        config.validate_as(true)?;
        Ok(config)
    }

    /// Sets [`default_ttl`](Self::default_ttl).
    #[must_use]
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Sets [`ttl_jitter_percent`](Self::ttl_jitter_percent).
    #[must_use]
    pub fn with_ttl_jitter_percent(mut self, percent: u8) -> Self {
        self.ttl_jitter_percent = percent;
        self
    }

    /// Sets [`max_value_bytes`](Self::max_value_bytes).
    #[must_use]
    pub fn with_max_value_bytes(mut self, limit: NonZeroU32) -> Self {
        self.max_value_bytes = limit;
        self
    }

    /// Sets [`scan_batch`](Self::scan_batch).
    #[must_use]
    pub fn with_scan_batch(mut self, batch: NonZeroU32) -> Self {
        self.scan_batch = batch;
        self
    }

    /// Checks the values; [`Cache::new`](crate::Cache::new) calls it.
    pub fn validate(&self) -> Result<()> {
        self.validate_as(false)
    }

    fn validate_as(&self, env: bool) -> Result<()> {
        let name = |field: &'static str, var: &'static str| if env { var } else { field };
        if self.default_ttl < Duration::from_millis(1) {
            return Err(Error::Config {
                variable: name("default_ttl", "CACHE_DEFAULT_TTL"),
                reason: "must be at least 1 ms (use `set_persistent` for keys without expiry)"
                    .to_owned(),
            });
        }
        if self.ttl_jitter_percent > 100 {
            return Err(Error::Config {
                variable: name("ttl_jitter_percent", "CACHE_TTL_JITTER_PERCENT"),
                reason: format!("{} is above 100", self.ttl_jitter_percent),
            });
        }
        Ok(())
    }
}

fn parse<T: std::str::FromStr>(variable: &'static str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| Error::Config {
        variable,
        reason: format!("`{value}`: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn should_read_every_variable() {
        let c = CacheConfig::from_lookup(env(&[
            ("CACHE_DEFAULT_TTL", "120"),
            ("CACHE_TTL_JITTER_PERCENT", "10"),
            ("CACHE_MAX_VALUE_BYTES", "2048"),
            ("CACHE_SCAN_BATCH", "500"),
        ]))
        .unwrap();
        assert_eq!(c.default_ttl, Duration::from_secs(120));
        assert_eq!(c.ttl_jitter_percent, 10);
        assert_eq!(c.max_value_bytes.get(), 2048);
        assert_eq!(c.scan_batch.get(), 500);
        assert_eq!(
            CacheConfig::from_lookup(|_| None).unwrap(),
            CacheConfig::default()
        );
    }

    #[test]
    fn should_name_the_variable_at_fault() {
        for (var, value) in [
            ("CACHE_DEFAULT_TTL", "0"),
            ("CACHE_DEFAULT_TTL", "-5"),
            ("CACHE_TTL_JITTER_PERCENT", "101"),
            ("CACHE_MAX_VALUE_BYTES", "0"),
            ("CACHE_SCAN_BATCH", "lots"),
        ] {
            match CacheConfig::from_lookup(env(&[(var, value)])) {
                Err(Error::Config { variable, .. }) => assert_eq!(variable, var),
                other => panic!("{var}={value}: {other:?}"),
            }
        }
        assert!(CacheConfig::default()
            .with_default_ttl(Duration::from_micros(10))
            .validate()
            .is_err());
    }
}
