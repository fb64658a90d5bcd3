//! Near-cache configuration: bounds of the local tier, the tracking mode,
//! and the key namespaces that opt in.

use std::num::NonZeroU64;
use std::time::Duration;

use aeturnis_redis_core::{ConfigError, Env};

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

/// How Redis tracks the keys this process holds locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TrackingMode {
    /// `CLIENT TRACKING ON`: the server remembers every key this process
    /// read through the near cache and sends one invalidation when it
    /// changes. Costs server memory per key read (bounded by the server's
    /// `tracking-table-max-keys`), sends invalidations only for keys this
    /// process holds. Default.
    #[default]
    Default,
    /// `CLIENT TRACKING ON BCAST PREFIX ...` with one prefix per opted-in
    /// namespace: no server memory per key, but every change to any key
    /// under those prefixes is sent to every tracking client, held or not.
    Broadcast,
}

/// The near cache's settings.
///
/// [`NearConfig::from_env`] reads:
///
/// | variable | field | default |
/// |---|---|---|
/// | `CACHE_NEAR_NAMESPACES` | [`namespaces`](NearConfig::namespaces), comma-separated | none (required) |
/// | `CACHE_NEAR_MAX_ENTRIES` | [`max_entries`](NearConfig::max_entries) | `10000` |
/// | `CACHE_NEAR_MAX_BYTES` | [`max_bytes`](NearConfig::max_bytes) | `67108864` (64 MiB) |
/// | `CACHE_NEAR_MAX_TTL_MS` | [`max_ttl`](NearConfig::max_ttl), milliseconds | `60000` |
/// | `CACHE_NEAR_MODE` | [`mode`](NearConfig::mode): `default` or `broadcast` | `default` |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearConfig {
    /// The key namespaces (the first segment after the key prefix, as given
    /// to [`Cache::key`](crate::Cache::key)) whose values may be held in
    /// process. Every other key (sessions, limiters, locks) always goes to
    /// Redis. At least one; ASCII letters, digits, `_-.`; in broadcast mode
    /// no namespace may be a prefix of another (Redis refuses overlapping
    /// prefixes). Default: none.
    pub namespaces: Vec<String>,
    /// Most entries held locally. Default: 10,000.
    pub max_entries: NonZeroU64,
    /// Most bytes (key plus encoded value) held locally. Default: 64 MiB.
    pub max_bytes: NonZeroU64,
    /// Longest a value stays local. The local TTL of a value is the shorter
    /// of this and the key's remaining TTL in Redis at the time of the read.
    /// Default: 60 s.
    pub max_ttl: Duration,
    /// Tracking mode. Default: [`TrackingMode::Default`].
    pub mode: TrackingMode,
}

impl Default for NearConfig {
    fn default() -> Self {
        NearConfig {
            namespaces: Vec::new(),
            max_entries: NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN),
            max_bytes: NonZeroU64::new(64 << 20).unwrap_or(NonZeroU64::MIN),
            max_ttl: Duration::from_secs(60),
            mode: TrackingMode::Default,
        }
    }
}

impl NearConfig {
    /// A configuration holding the values of `namespaces` locally, other
    /// settings at their defaults.
    #[must_use]
    pub fn for_namespaces<I, S>(namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        NearConfig {
            namespaces: namespaces.into_iter().map(Into::into).collect(),
            ..NearConfig::default()
        }
    }

    /// Reads the `CACHE_NEAR_*` variables (see the table on [`NearConfig`]).
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable.
    pub fn from_env() -> Result<Self> {
        Self::from_env_reader(&Env::process())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    ///
    /// ```
    /// use aeturnis_cache::near::{NearConfig, TrackingMode};
    /// let config = NearConfig::from_lookup(|name| match name {
    ///     "CACHE_NEAR_NAMESPACES" => Some("zone, item".to_owned()),
    ///     "CACHE_NEAR_MODE" => Some("broadcast".to_owned()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.namespaces, ["zone", "item"]);
    /// assert_eq!(config.mode, TrackingMode::Broadcast);
    /// assert!(NearConfig::from_lookup(|_| None).is_err()); // no namespace
    /// # Ok::<(), aeturnis_cache::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        Self::from_env_reader(&Env::new(lookup))
    }

    fn from_env_reader<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self> {
        let d = NearConfig::default();
        let namespaces = env
            .string("CACHE_NEAR_NAMESPACES")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let config = NearConfig {
            namespaces,
            max_entries: env
                .non_zero_u64("CACHE_NEAR_MAX_ENTRIES")?
                .unwrap_or(d.max_entries),
            max_bytes: env
                .non_zero_u64("CACHE_NEAR_MAX_BYTES")?
                .unwrap_or(d.max_bytes),
            max_ttl: env.millis("CACHE_NEAR_MAX_TTL_MS")?.unwrap_or(d.max_ttl),
            mode: env
                .one_of(
                    "CACHE_NEAR_MODE",
                    &[
                        ("default", TrackingMode::Default),
                        ("broadcast", TrackingMode::Broadcast),
                    ],
                )?
                .unwrap_or(d.mode),
        };
        config.check(&ENV)?;
        Ok(config)
    }

    /// Sets [`max_entries`](Self::max_entries).
    #[must_use]
    pub fn with_max_entries(mut self, max: NonZeroU64) -> Self {
        self.max_entries = max;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    #[must_use]
    pub fn with_max_bytes(mut self, max: NonZeroU64) -> Self {
        self.max_bytes = max;
        self
    }

    /// Sets [`max_ttl`](Self::max_ttl).
    #[must_use]
    pub fn with_max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// Sets [`mode`](Self::mode).
    #[must_use]
    pub fn with_mode(mut self, mode: TrackingMode) -> Self {
        self.mode = mode;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field at fault.
    pub fn validate(&self) -> Result<()> {
        self.check(&FIELDS)
    }

    fn check(&self, names: &Names) -> Result<()> {
        if self.namespaces.is_empty() {
            return Err(ConfigError::invalid(
                names.namespaces,
                "no namespace opted in: nothing would be held locally",
            )
            .into());
        }
        for ns in &self.namespaces {
            let fixed = ns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if ns.is_empty() || !fixed {
                return Err(ConfigError::invalid(
                    names.namespaces,
                    format!("`{ns}` is not a namespace (ASCII letters, digits, `_-.`)"),
                )
                .into());
            }
        }
        if self.mode == TrackingMode::Broadcast {
            for a in &self.namespaces {
                if let Some(b) = self
                    .namespaces
                    .iter()
                    .find(|b| *b != a && b.starts_with(a.as_str()))
                {
                    return Err(ConfigError::invalid(
                        names.namespaces,
                        format!("`{a}` is a prefix of `{b}`: broadcast prefixes may not overlap"),
                    )
                    .into());
                }
            }
        }
        if self.max_ttl.is_zero() {
            return Err(ConfigError::invalid(names.max_ttl, "zero").into());
        }
        if self.max_bytes < self.max_entries {
            return Err(ConfigError::invalid(
                names.max_bytes,
                format!(
                    "{} bytes cannot hold {} entries",
                    self.max_bytes, self.max_entries
                ),
            )
            .into());
        }
        Ok(())
    }
}

struct Names {
    namespaces: &'static str,
    max_bytes: &'static str,
    max_ttl: &'static str,
}

const FIELDS: Names = Names {
    namespaces: "namespaces",
    max_bytes: "max_bytes",
    max_ttl: "max_ttl",
};

const ENV: Names = Names {
    namespaces: "CACHE_NEAR_NAMESPACES",
    max_bytes: "CACHE_NEAR_MAX_BYTES",
    max_ttl: "CACHE_NEAR_MAX_TTL_MS",
};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::error::Error;

    #[test]
    fn should_refuse_overlapping_namespaces_in_broadcast_mode() {
        let config = NearConfig::for_namespaces(["item", "items"]);
        assert!(config.validate().is_ok());
        let err = config
            .with_mode(TrackingMode::Broadcast)
            .validate()
            .unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.variable() == "namespaces"));
    }

    #[test]
    fn should_refuse_a_namespace_with_glob_characters() {
        let err = NearConfig::for_namespaces(["zone*"])
            .validate()
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
    }

    #[test]
    fn should_name_the_variable_at_fault() {
        let err = NearConfig::from_lookup(|n| match n {
            "CACHE_NEAR_NAMESPACES" => Some("zone".into()),
            "CACHE_NEAR_MAX_TTL_MS" => Some("0".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(matches!(err, Error::Config(ref c) if c.variable() == "CACHE_NEAR_MAX_TTL_MS"));
    }
}
