//! [`SessionConfig`]: lifetimes, the per-user limit and touch throttling.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::error::Error;

/// Session settings. Data with builder methods; checked by
/// [`SessionManager::new`](crate::SessionManager::new).
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use aeturnis_session::SessionConfig;
/// let config = SessionConfig::default()
///     .with_idle_ttl(Duration::from_secs(900))
///     .with_max_per_user(NonZeroU32::new(3).unwrap());
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Idle timeout: a session without activity for this long ends.
    /// Default: 1800 s (`SESSION_TTL`).
    pub idle_ttl: Duration,
    /// Absolute lifetime: a session ends this long after creation however
    /// active it is. Default: 24 h (`SESSION_ABSOLUTE_TTL`).
    pub absolute_ttl: Duration,
    /// Most live sessions one user may have; creating one more evicts the
    /// least recently used. Default: 5 (`SESSION_MAX_PER_USER`).
    pub max_per_user: NonZeroU32,
    /// Touch throttling: a read always slides the idle expiry, but records
    /// `last_seen` (and the user's LRU order) only when the previous record
    /// is at least this old. Reads in between are one native command
    /// (`GETEX key PX idle`); a read that records runs the get-and-slide
    /// script. Zero records every read (every read is the script).
    /// Default: 60 s (`SESSION_TOUCH_INTERVAL`).
    pub touch_interval: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_ttl: Duration::from_secs(1800),
            absolute_ttl: Duration::from_secs(24 * 3600),
            max_per_user: NonZeroU32::MIN.saturating_add(4),
            touch_interval: Duration::from_secs(60),
        }
    }
}

impl SessionConfig {
    /// The defaults, overridden by `SESSION_TTL`, `SESSION_ABSOLUTE_TTL`,
    /// `SESSION_TOUCH_INTERVAL` (seconds) and `SESSION_MAX_PER_USER` when
    /// they are set. An unparsable value is an error naming the variable.
    pub fn from_env() -> Result<Self, Error> {
        fn var<T: std::str::FromStr>(name: &str) -> Result<Option<T>, Error> {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| Error::Config(format!("{name}={v:?} is not a valid number"))),
                Err(_) => Ok(None),
            }
        }
        let mut c = SessionConfig::default();
        if let Some(s) = var::<u64>("SESSION_TTL")? {
            c.idle_ttl = Duration::from_secs(s);
        }
        if let Some(s) = var::<u64>("SESSION_ABSOLUTE_TTL")? {
            c.absolute_ttl = Duration::from_secs(s);
        }
        if let Some(s) = var::<u64>("SESSION_TOUCH_INTERVAL")? {
            c.touch_interval = Duration::from_secs(s);
        }
        if let Some(n) = var::<NonZeroU32>("SESSION_MAX_PER_USER")? {
            c.max_per_user = n;
        }
        c.validate()?;
        Ok(c)
    }

    /// Sets [`idle_ttl`](Self::idle_ttl).
    #[must_use]
    pub fn with_idle_ttl(mut self, ttl: Duration) -> Self {
        self.idle_ttl = ttl;
        self
    }

    /// Sets [`absolute_ttl`](Self::absolute_ttl).
    #[must_use]
    pub fn with_absolute_ttl(mut self, ttl: Duration) -> Self {
        self.absolute_ttl = ttl;
        self
    }

    /// Sets [`max_per_user`](Self::max_per_user).
    #[must_use]
    pub fn with_max_per_user(mut self, max: NonZeroU32) -> Self {
        self.max_per_user = max;
        self
    }

    /// Sets [`touch_interval`](Self::touch_interval).
    #[must_use]
    pub fn with_touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = interval;
        self
    }

    /// Checks that both lifetimes are at least 1 ms and that the touch
    /// interval is shorter than the idle timeout.
    pub fn validate(&self) -> Result<(), Error> {
        positive_ms("idle_ttl", self.idle_ttl)?;
        positive_ms("absolute_ttl", self.absolute_ttl)?;
        if self.touch_interval >= self.idle_ttl {
            return Err(Error::Config(format!(
                "touch_interval ({:?}) must be shorter than idle_ttl ({:?})",
                self.touch_interval, self.idle_ttl
            )));
        }
        Ok(())
    }
}

/// A duration as whole milliseconds, at least 1.
pub(crate) fn positive_ms(what: &'static str, d: Duration) -> Result<u64, Error> {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        Err(Error::ZeroDuration { what, value: d })
    } else {
        Ok(ms)
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_refuse_zero_and_inconsistent_durations() {
        assert!(SessionConfig::default().validate().is_ok());
        assert!(matches!(
            SessionConfig::default()
                .with_idle_ttl(Duration::ZERO)
                .validate(),
            Err(Error::ZeroDuration { .. })
        ));
        assert!(matches!(
            SessionConfig::default()
                .with_absolute_ttl(Duration::from_micros(10))
                .validate(),
            Err(Error::ZeroDuration { .. })
        ));
        assert!(matches!(
            SessionConfig::default()
                .with_idle_ttl(Duration::from_secs(10))
                .with_touch_interval(Duration::from_secs(10))
                .validate(),
            Err(Error::Config(_))
        ));
        assert_eq!(SessionConfig::default().max_per_user.get(), 5);
    }
}
