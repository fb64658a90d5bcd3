//! [`SessionConfig`]: lifetimes, the per-user limit and touch throttling.

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_redis_core::duration::{self, ceil_millis, MAX_DURATION};
use aeturnis_redis_core::{ConfigError, Env};

use crate::error::Error;

/// The environment variables [`SessionConfig::from_env`] reads, each with
/// the setting it fills.
const VARIABLES: [(&str, &str); 4] = [
    ("SESSION_TTL", "idle_ttl"),
    ("SESSION_ABSOLUTE_TTL", "absolute_ttl"),
    ("SESSION_MAX_PER_USER", "max_per_user"),
    ("SESSION_TOUCH_INTERVAL", "touch_interval"),
];

/// Session settings. Data with builder methods; checked by
/// [`validate`](Self::validate) (which [`SessionManager::new`](crate::SessionManager::new)
/// calls).
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use aeturnis_session::SessionConfig;
/// let config = SessionConfig::default()
///     .with_idle_ttl(Duration::from_secs(900))
///     .with_max_per_user(NonZeroU32::new(3).unwrap());
/// assert!(config.validate().is_ok());
/// assert!(matches!(
///     config.with_idle_ttl(Duration::MAX).validate(),
///     Err(aeturnis_session::Error::Config(e)) if e.variable() == "idle_ttl"
/// ));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Idle timeout: a session without activity for this long ends. Greater
    /// than zero, at most [`MAX_DURATION`]; a sub-millisecond remainder
    /// rounds up. Default: 1800 s (`SESSION_TTL`, in seconds).
    pub idle_ttl: Duration,
    /// Absolute lifetime: a session ends this long after creation however
    /// active it is. Greater than zero, at most [`MAX_DURATION`].
    /// Default: 24 h (`SESSION_ABSOLUTE_TTL`, in seconds).
    pub absolute_ttl: Duration,
    /// Most live sessions one user may have; creating one more evicts the
    /// least recently used. Default: 5 (`SESSION_MAX_PER_USER`).
    pub max_per_user: NonZeroU32,
    /// Touch throttling: a read always slides the idle expiry, but records
    /// `last_seen` (and the user's LRU order) only when the previous record
    /// is at least this old. Reads in between are one native command
    /// (`GETEX key PX idle`); a read that records runs the get-and-slide
    /// script. Zero records every read (every read is the script). Shorter
    /// than `idle_ttl` (in whole milliseconds, rounded up).
    /// Default: 60 s (`SESSION_TOUCH_INTERVAL`, in seconds; 0 = every read).
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
    /// The defaults, overridden by the process environment: `SESSION_TTL`,
    /// `SESSION_ABSOLUTE_TTL` and `SESSION_TOUCH_INTERVAL` (whole seconds;
    /// a zero touch interval records every read) and `SESSION_MAX_PER_USER`.
    /// An empty variable is unset. See [`from_lookup`](Self::from_lookup).
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that does not parse or does
    /// not [`validate`](Self::validate).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_env_reader(&Env::process())
    }

    /// [`from_env`](Self::from_env) reading through `lookup` instead of the
    /// process environment.
    ///
    /// ```
    /// use std::time::Duration;
    /// use aeturnis_session::SessionConfig;
    /// let config = SessionConfig::from_lookup(|name| match name {
    ///     "SESSION_TTL" => Some("900".to_owned()),
    ///     "SESSION_TOUCH_INTERVAL" => Some("0".to_owned()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.idle_ttl, Duration::from_secs(900));
    /// assert_eq!(config.touch_interval, Duration::ZERO);
    /// # Ok::<(), aeturnis_session::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        Self::from_env_reader(&Env::new(lookup))
    }

    fn from_env_reader<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, Error> {
        let mut c = SessionConfig::default();
        if let Some(d) = env.seconds("SESSION_TTL")? {
            c.idle_ttl = d;
        }
        if let Some(d) = env.seconds("SESSION_ABSOLUTE_TTL")? {
            c.absolute_ttl = d;
        }
        if let Some(n) = env.non_zero_u32("SESSION_MAX_PER_USER")? {
            c.max_per_user = n;
        }
        // zero is allowed here (every read records), so not `seconds`
        if let Some(s) = env.parse::<u64>("SESSION_TOUCH_INTERVAL")? {
            let d = Duration::from_secs(s);
            if d > MAX_DURATION {
                return Err(ConfigError::invalid(
                    "SESSION_TOUCH_INTERVAL",
                    format!("{s} seconds is above the maximum of {MAX_DURATION:?}"),
                )
                .into());
            }
            c.touch_interval = d;
        }
        c.validate().map_err(|e| match e {
            // report a setting by the variable it came from
            Error::Config(ConfigError::Invalid { variable, reason }) => {
                let name = VARIABLES
                    .iter()
                    .find(|(_, setting)| *setting == variable)
                    .map_or(variable.as_str(), |(name, _)| name);
                Error::Config(ConfigError::invalid(name, reason))
            }
            other => other,
        })?;
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

    /// Checks every duration against the bounds of
    /// [`aeturnis_redis_core::duration`]: both lifetimes greater than zero
    /// and at most [`MAX_DURATION`], and the touch interval (zero allowed)
    /// shorter than the idle timeout, in whole milliseconds.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting (`idle_ttl`, `absolute_ttl`,
    /// `touch_interval`).
    pub fn validate(&self) -> Result<(), Error> {
        duration::check(self.idle_ttl).map_err(|e| ConfigError::duration("idle_ttl", e))?;
        duration::check(self.absolute_ttl).map_err(|e| ConfigError::duration("absolute_ttl", e))?;
        if ceil_millis(self.touch_interval) >= ceil_millis(self.idle_ttl) {
            return Err(ConfigError::invalid(
                "touch_interval",
                format!(
                    "{:?} must be shorter than idle_ttl ({:?})",
                    self.touch_interval, self.idle_ttl
                ),
            )
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn variable(e: &Error) -> &str {
        match e {
            Error::Config(c) => c.variable(),
            other => panic!("not a config error: {other:?}"),
        }
    }

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn should_refuse_zero_and_inconsistent_durations() {
        assert!(SessionConfig::default().validate().is_ok());
        let zero = SessionConfig::default()
            .with_idle_ttl(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert_eq!(variable(&zero), "idle_ttl");
        // a sub-millisecond lifetime rounds up to 1 ms (the one rule)
        assert!(SessionConfig::default()
            .with_idle_ttl(Duration::from_millis(2))
            .with_touch_interval(Duration::ZERO)
            .with_absolute_ttl(Duration::from_micros(10))
            .validate()
            .is_ok());
        let same = SessionConfig::default()
            .with_idle_ttl(Duration::from_secs(10))
            .with_touch_interval(Duration::from_secs(10))
            .validate()
            .unwrap_err();
        assert_eq!(variable(&same), "touch_interval");
        // equal once rounded to whole milliseconds
        let rounded = SessionConfig::default()
            .with_idle_ttl(Duration::from_millis(2))
            .with_touch_interval(Duration::from_micros(1500))
            .validate()
            .unwrap_err();
        assert_eq!(variable(&rounded), "touch_interval");
        assert_eq!(SessionConfig::default().max_per_user.get(), 5);
    }

    #[test]
    fn should_bound_every_duration_at_its_extremes() {
        let over = MAX_DURATION + Duration::from_nanos(1);
        // idle_ttl and absolute_ttl: zero and above the maximum refused
        for (setting, set) in [
            (
                "idle_ttl",
                SessionConfig::with_idle_ttl as fn(SessionConfig, Duration) -> SessionConfig,
            ),
            ("absolute_ttl", SessionConfig::with_absolute_ttl),
        ] {
            assert!(set(SessionConfig::default(), MAX_DURATION)
                .validate()
                .is_ok());
            for bad in [Duration::ZERO, over, Duration::MAX] {
                let e = set(SessionConfig::default(), bad).validate().unwrap_err();
                assert_eq!(variable(&e), setting, "{bad:?}");
                assert!(aeturnis_redis_core::Classify::is_invalid_input(&e));
            }
        }
        // touch_interval: zero allowed, bounded by idle_ttl
        let long = SessionConfig::default().with_idle_ttl(MAX_DURATION);
        assert!(long
            .clone()
            .with_touch_interval(Duration::ZERO)
            .validate()
            .is_ok());
        assert!(long
            .clone()
            .with_touch_interval(MAX_DURATION - Duration::from_millis(1))
            .validate()
            .is_ok());
        for bad in [MAX_DURATION, over, Duration::MAX] {
            let e = long
                .clone()
                .with_touch_interval(bad)
                .validate()
                .unwrap_err();
            assert_eq!(variable(&e), "touch_interval", "{bad:?}");
        }
    }

    #[test]
    fn should_read_every_variable_with_its_unit() {
        let c = SessionConfig::from_lookup(lookup(&[
            ("SESSION_TTL", "900"),
            ("SESSION_ABSOLUTE_TTL", "3600"),
            ("SESSION_MAX_PER_USER", "3"),
            ("SESSION_TOUCH_INTERVAL", "0"),
        ]))
        .unwrap();
        assert_eq!(c.idle_ttl, Duration::from_secs(900));
        assert_eq!(c.absolute_ttl, Duration::from_secs(3600));
        assert_eq!(c.max_per_user.get(), 3);
        assert_eq!(c.touch_interval, Duration::ZERO);
        // unset and empty mean the default
        let d = SessionConfig::from_lookup(lookup(&[("SESSION_TTL", " ")])).unwrap();
        assert_eq!(d, SessionConfig::default());
        assert_eq!(SessionConfig::from_lookup(|_| None).unwrap(), d);
    }

    #[test]
    fn should_name_the_variable_of_every_bad_value() {
        let max_secs = MAX_DURATION.as_secs().to_string();
        let over_secs = (MAX_DURATION.as_secs() + 1).to_string();
        for (name, value) in [
            ("SESSION_TTL", "abc"),
            ("SESSION_TTL", "0"),
            ("SESSION_TTL", "-5"),
            ("SESSION_TTL", over_secs.as_str()),
            ("SESSION_ABSOLUTE_TTL", "1.5"),
            ("SESSION_ABSOLUTE_TTL", "0"),
            ("SESSION_ABSOLUTE_TTL", over_secs.as_str()),
            ("SESSION_MAX_PER_USER", "0"),
            ("SESSION_MAX_PER_USER", "many"),
            ("SESSION_TOUCH_INTERVAL", "soon"),
            ("SESSION_TOUCH_INTERVAL", over_secs.as_str()),
            ("SESSION_TOUCH_INTERVAL", "18446744073709551615"),
            // not shorter than the default idle TTL (1800 s)
            ("SESSION_TOUCH_INTERVAL", "1800"),
        ] {
            let e = SessionConfig::from_lookup(lookup(&[(name, value)])).unwrap_err();
            assert_eq!(variable(&e), name, "{name}={value}: {e}");
            assert!(e.to_string().contains(name), "the message names it: {e}");
        }
        // the longest accepted values
        let c = SessionConfig::from_lookup(lookup(&[
            ("SESSION_TTL", max_secs.as_str()),
            ("SESSION_ABSOLUTE_TTL", max_secs.as_str()),
        ]))
        .unwrap();
        assert_eq!((c.idle_ttl, c.absolute_ttl), (MAX_DURATION, MAX_DURATION));
    }

    #[test]
    fn should_read_the_session_section_of_the_example_env_file() {
        let text = include_str!("../../../deploy/.env.example");
        let vars: HashMap<String, String> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        for (name, _) in VARIABLES {
            assert!(vars.contains_key(name), "{name} missing from .env.example");
        }
        let c = SessionConfig::from_lookup(|name| vars.get(name).cloned()).unwrap();
        assert_eq!(c, SessionConfig::default(), "the file shows the defaults");
    }
}
