//! Cache configuration: data with `with_*` builder methods.
//!
//! [`CacheConfig::from_env`] reads the `CACHE_*` variables listed on
//! [`CacheConfig`], with the workspace's one reader
//! ([`Env`](aeturnis_redis_core::Env)).
//!
//! The key prefix (`CACHE_KEY_PREFIX`) and the codec belong to the
//! connection: [`RedisConfig`](aeturnis_redis_core::RedisConfig).

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_redis_core::{duration, ConfigError, Env};

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

/// How the cache writes: default TTL, jitter, value size limit, scan batch.
///
/// [`CacheConfig::from_env`] reads:
///
/// | variable | field | default |
/// |---|---|---|
/// | `CACHE_DEFAULT_TTL` | [`default_ttl`](CacheConfig::default_ttl), whole seconds, 1 to 3155760000 (100 years) | `3600` |
/// | `CACHE_TTL_JITTER_PERCENT` | [`ttl_jitter_percent`](CacheConfig::ttl_jitter_percent), percent, 0 to 100 | `0` |
/// | `CACHE_MAX_VALUE_BYTES` | [`max_value_bytes`](CacheConfig::max_value_bytes), bytes, 1 to 4294967295 | `1048576` |
/// | `CACHE_SCAN_BATCH` | [`scan_batch`](CacheConfig::scan_batch), keys per `SCAN`/`UNLINK`, 1 to 4294967295 | `1000` |
///
/// The key prefix (`CACHE_KEY_PREFIX`) and the codec belong to the
/// connection: [`RedisConfig`](aeturnis_redis_core::RedisConfig).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// TTL of every write that does not name one. Greater than zero and at
    /// most [`MAX_DURATION`](aeturnis_redis_core::duration::MAX_DURATION)
    /// (100 years); a sub-millisecond remainder rounds up.
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
    /// Reads the `CACHE_*` variables listed on [`CacheConfig`] from the
    /// process environment; unset or empty variables keep their defaults.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable.
    pub fn from_env() -> Result<Self> {
        Self::from_env_reader(&Env::process())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`
    /// (the rules of [`Env`]: trimmed, empty means unset).
    ///
    /// ```
    /// use aeturnis_cache::CacheConfig;
    /// use std::time::Duration;
    /// let config = CacheConfig::from_lookup(|name| match name {
    ///     "CACHE_DEFAULT_TTL" => Some("60".to_owned()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.default_ttl, Duration::from_secs(60));
    /// assert!(matches!(
    ///     CacheConfig::from_lookup(|_| Some("0".to_owned())),
    ///     Err(aeturnis_cache::Error::Config(_))
    /// ));
    /// # Ok::<(), aeturnis_cache::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        Self::from_env_reader(&Env::new(lookup))
    }

    fn from_env_reader<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self> {
        let defaults = CacheConfig::default();
        let config = CacheConfig {
            default_ttl: env
                .seconds("CACHE_DEFAULT_TTL")?
                .unwrap_or(defaults.default_ttl),
            ttl_jitter_percent: env
                .parse::<u8>("CACHE_TTL_JITTER_PERCENT")?
                .unwrap_or(defaults.ttl_jitter_percent),
            max_value_bytes: env
                .non_zero_u32("CACHE_MAX_VALUE_BYTES")?
                .unwrap_or(defaults.max_value_bytes),
            scan_batch: env
                .non_zero_u32("CACHE_SCAN_BATCH")?
                .unwrap_or(defaults.scan_batch),
        };
        config.check(Names::ENV)?;
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

    /// Checks the values; [`Cache::new`](crate::Cache::new) calls it, so a
    /// bad value fails when the cache is built, not at the first write.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field: `default_ttl` zero or above
    /// [`MAX_DURATION`](aeturnis_redis_core::duration::MAX_DURATION) (100
    /// years), `ttl_jitter_percent` above 100.
    pub fn validate(&self) -> Result<()> {
        self.check(Names::FIELDS)
    }

    fn check(&self, names: Names) -> Result<()> {
        duration::check(self.default_ttl).map_err(|e| {
            ConfigError::invalid(
                names.default_ttl,
                format!("{e} (use `set_persistent` for keys without expiry)"),
            )
        })?;
        if self.ttl_jitter_percent > 100 {
            return Err(ConfigError::invalid(
                names.ttl_jitter_percent,
                format!("{} is above 100", self.ttl_jitter_percent),
            )
            .into());
        }
        Ok(())
    }
}

/// What an error calls a setting: the field, or the variable it was read from.
#[derive(Clone, Copy)]
struct Names {
    default_ttl: &'static str,
    ttl_jitter_percent: &'static str,
}

impl Names {
    const FIELDS: Names = Names {
        default_ttl: "default_ttl",
        ttl_jitter_percent: "ttl_jitter_percent",
    };
    const ENV: Names = Names {
        default_ttl: "CACHE_DEFAULT_TTL",
        ttl_jitter_percent: "CACHE_TTL_JITTER_PERCENT",
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use aeturnis_redis_core::duration::MAX_DURATION;

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
            ("CACHE_DEFAULT_TTL", "3155760001"),
            ("CACHE_DEFAULT_TTL", "18446744073709551615"),
            ("CACHE_DEFAULT_TTL", "18446744073709551616"),
            ("CACHE_TTL_JITTER_PERCENT", "101"),
            ("CACHE_TTL_JITTER_PERCENT", "256"),
            ("CACHE_MAX_VALUE_BYTES", "0"),
            ("CACHE_MAX_VALUE_BYTES", "4294967296"),
            ("CACHE_SCAN_BATCH", "lots"),
            ("CACHE_SCAN_BATCH", "0"),
        ] {
            match CacheConfig::from_lookup(env(&[(var, value)])) {
                Err(Error::Config(e)) => assert_eq!(e.variable(), var, "{var}={value}: {e}"),
                other => panic!("{var}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn should_accept_the_extreme_values_that_fit() {
        let c = CacheConfig::from_lookup(env(&[
            ("CACHE_DEFAULT_TTL", "3155760000"),
            ("CACHE_TTL_JITTER_PERCENT", "100"),
            ("CACHE_MAX_VALUE_BYTES", "4294967295"),
            ("CACHE_SCAN_BATCH", "1"),
        ]))
        .unwrap();
        assert_eq!(c.default_ttl, MAX_DURATION);
        assert_eq!(c.ttl_jitter_percent, 100);
        assert_eq!(c.max_value_bytes, NonZeroU32::MAX);
        assert_eq!(c.scan_batch, NonZeroU32::MIN);
        // empty and blank mean unset
        let c =
            CacheConfig::from_lookup(env(&[("CACHE_DEFAULT_TTL", " "), ("CACHE_SCAN_BATCH", "")]))
                .unwrap();
        assert_eq!(c, CacheConfig::default());
    }

    #[test]
    fn should_bound_the_default_ttl_when_built_by_hand() {
        for bad in [
            Duration::ZERO,
            MAX_DURATION + Duration::from_nanos(1),
            Duration::MAX,
        ] {
            match CacheConfig::default().with_default_ttl(bad).validate() {
                Err(Error::Config(e)) => assert_eq!(e.variable(), "default_ttl", "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        match CacheConfig::default()
            .with_ttl_jitter_percent(u8::MAX)
            .validate()
        {
            Err(Error::Config(e)) => assert_eq!(e.variable(), "ttl_jitter_percent"),
            other => panic!("{other:?}"),
        }
        for good in [Duration::from_nanos(1), MAX_DURATION] {
            CacheConfig::default()
                .with_default_ttl(good)
                .validate()
                .unwrap();
        }
    }

    /// `deploy/.env.example` and this crate cannot drift apart: every
    /// `CACHE_*` value in it is read, and it states the defaults.
    #[test]
    fn should_read_the_example_env_file() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/.env.example");
        let text = std::fs::read_to_string(path).unwrap();
        let vars: Vec<(String, String)> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        for name in [
            "CACHE_DEFAULT_TTL",
            "CACHE_TTL_JITTER_PERCENT",
            "CACHE_MAX_VALUE_BYTES",
            "CACHE_SCAN_BATCH",
        ] {
            assert!(
                vars.iter().any(|(k, _)| k == name),
                "{name} is not in {path}"
            );
        }
        let config = CacheConfig::from_lookup(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .unwrap();
        assert_eq!(config, CacheConfig::default());
    }
}
