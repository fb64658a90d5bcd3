//! TTL arguments and answers.

use std::time::Duration;

use aeturnis_redis_core::duration::{checked_millis, DurationError};
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
    /// This duration: greater than zero, at most
    /// [`MAX_DURATION`](aeturnis_redis_core::duration::MAX_DURATION) (100
    /// years); a sub-millisecond remainder rounds up.
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

/// Turns a [`Ttl`] into the milliseconds sent with `PX`/`PEXPIRE`, adding
/// jitter: a uniform random `0..=ttl * percent / 100` ms on top.
///
/// The conversion is the workspace's one rule
/// ([`aeturnis_redis_core::duration`]): a sub-millisecond remainder rounds
/// up (a TTL is never shorter than asked, `1 µs` is sent as `1`), zero and
/// anything above [`MAX_DURATION`](aeturnis_redis_core::duration::MAX_DURATION)
/// are refused. With jitter the result is at most twice the bound, far
/// inside what Redis accepts.
#[inline]
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
    let ms = checked_millis(d).map_err(|e| Error::InvalidTtl {
        key: key.to_owned(),
        ttl: d,
        reason: match e {
            DurationError::Zero => "a TTL must be greater than zero",
            _ => "a TTL must be at most 100 years (aeturnis_redis_core::duration::MAX_DURATION)",
        },
    })?;
    if jitter_percent == 0 {
        return Ok(ms);
    }
    let spread = ms / 100 * u64::from(jitter_percent) + ms % 100 * u64::from(jitter_percent) / 100;
    let extra = if spread == 0 {
        0
    } else {
        rand::thread_rng().gen_range(0..=spread)
    };
    Ok(ms.saturating_add(extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aeturnis_redis_core::duration::MAX_DURATION;

    #[test]
    fn should_refuse_zero_and_overlong_ttls_naming_the_key() {
        let default = Duration::from_secs(1);
        let too_long = MAX_DURATION + Duration::from_nanos(1);
        for bad in [Duration::ZERO, too_long, Duration::MAX] {
            match resolve_ms("user:1", Ttl::After(bad), default, 0) {
                Err(Error::InvalidTtl { key, ttl, .. }) => {
                    assert_eq!(key, "user:1");
                    assert_eq!(ttl, bad);
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // the extremes that are accepted: sub-millisecond rounds up, the
        // bound itself passes, and full jitter on it stays inside i64
        assert_eq!(
            resolve_ms("k", Duration::from_nanos(1).into(), default, 0).unwrap(),
            1
        );
        assert_eq!(
            resolve_ms("k", Duration::from_micros(1200).into(), default, 0).unwrap(),
            2
        );
        let max_ms = MAX_DURATION.as_millis() as u64;
        assert_eq!(
            resolve_ms("k", MAX_DURATION.into(), default, 0).unwrap(),
            max_ms
        );
        let jittered = resolve_ms("k", MAX_DURATION.into(), default, 100).unwrap();
        assert!((max_ms..=2 * max_ms).contains(&jittered) && jittered < i64::MAX as u64);
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
