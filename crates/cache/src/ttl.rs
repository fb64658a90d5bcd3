//! TTL arguments and answers.

use std::time::Duration;

use rand::Rng;

use crate::error::{Error, Result};

/// The TTL of a write: the configured default or an explicit duration.
/// A key without expiry is never written through a `Ttl`; it needs a method
/// that says so ([`Cache::set_persistent`](crate::Cache::set_persistent)).
///
/// ```
/// use aeturnis_cache::Ttl;
/// use std::time::Duration;
/// let ttl: Ttl = Duration::from_secs(30).into();
/// assert_eq!(ttl, Ttl::After(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ttl {
    /// [`CacheConfig::default_ttl`](crate::CacheConfig::default_ttl).
    #[default]
    Default,
    /// This duration (at least 1 ms; whole milliseconds are used).
    After(Duration),
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        Ttl::After(d)
    }
}

/// What `PTTL` says about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyTtl {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this long.
    Expires(Duration),
}

impl KeyTtl {
    pub(crate) fn from_pttl(ms: i64) -> KeyTtl {
        match ms {
            -1 => KeyTtl::Persistent,
            ms if ms < 0 => KeyTtl::Missing,
            ms => KeyTtl::Expires(Duration::from_millis(ms.unsigned_abs())),
        }
    }

    /// The remaining time, when the key expires.
    #[must_use]
    pub fn remaining(&self) -> Option<Duration> {
        match self {
            KeyTtl::Expires(d) => Some(*d),
            _ => None,
        }
    }
}

/// Largest TTL accepted, in milliseconds (about 292 million years; keeps
/// `now + ttl` inside Redis's signed 64-bit millisecond clock).
const MAX_TTL_MS: u64 = (i64::MAX / 4) as u64;

/// Turns a [`Ttl`] into the milliseconds sent with `PX`/`PEXPIRE`, adding
/// jitter: a uniform random `0..=ttl * percent / 100` ms on top.
pub(crate) fn resolve_ms(
    key: &str,
    ttl: Ttl,
    default: Duration,
    jitter_percent: u8,
) -> Result<u64> {
    let d = match ttl {
        Ttl::Default => default,
        Ttl::After(d) => d,
    };
    let invalid = |reason| Error::InvalidTtl {
        key: key.to_owned(),
        ttl: d,
        reason,
    };
    if d.is_zero() {
        return Err(invalid("a TTL must be greater than zero"));
    }
    let ms = u64::try_from(d.as_millis()).map_err(|_| invalid("too large for Redis"))?;
    if ms == 0 {
        return Err(invalid(
            "Redis TTLs have millisecond resolution; use at least 1 ms",
        ));
    }
    if ms > MAX_TTL_MS {
        return Err(invalid("too large for Redis"));
    }
    if jitter_percent == 0 {
        return Ok(ms);
    }
    let spread = ms / 100 * u64::from(jitter_percent) + ms % 100 * u64::from(jitter_percent) / 100;
    let extra = if spread == 0 {
        0
    } else {
        rand::thread_rng().gen_range(0..=spread)
    };
    Ok(ms.saturating_add(extra).min(MAX_TTL_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_refuse_zero_and_sub_millisecond_ttls_naming_the_key() {
        let default = Duration::from_secs(1);
        for bad in [Duration::ZERO, Duration::from_micros(999), Duration::MAX] {
            match resolve_ms("user:1", Ttl::After(bad), default, 0) {
                Err(Error::InvalidTtl { key, ttl, .. }) => {
                    assert_eq!(key, "user:1");
                    assert_eq!(ttl, bad);
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert_eq!(resolve_ms("k", Ttl::Default, default, 0).unwrap(), 1000);
        assert_eq!(
            resolve_ms("k", Duration::from_millis(1500).into(), default, 0).unwrap(),
            1500
        );
    }

    #[test]
    fn should_add_jitter_within_the_percentage_and_never_shorten() {
        let default = Duration::from_secs(100);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let ms = resolve_ms("k", Ttl::Default, default, 10).unwrap();
            assert!((100_000..=110_000).contains(&ms), "{ms}");
            seen.insert(ms);
        }
        assert!(seen.len() > 50, "jitter spreads the TTLs");
        assert_eq!(KeyTtl::from_pttl(-2), KeyTtl::Missing);
        assert_eq!(KeyTtl::from_pttl(-1), KeyTtl::Persistent);
        assert_eq!(
            KeyTtl::from_pttl(5).remaining(),
            Some(Duration::from_millis(5))
        );
    }
}
