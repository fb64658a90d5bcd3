//! The original's per-action limiters, read from the environment.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::algorithm::Algorithm;
use crate::config::RateLimitConfig;
use crate::error::{Error, Result};
use crate::quota::Quota;

/// A predefined limiter for a common game action. Its quota comes from
/// `RATE_LIMIT_<NAME>_WINDOW` (milliseconds) and `RATE_LIMIT_<NAME>_MAX`,
/// defaulting to the original's `.env.example`:
///
/// | preset | window variable | default | max variable | default | algorithm | block |
/// |---|---|---|---|---|---|---|
/// | `Auth` | `RATE_LIMIT_AUTH_WINDOW` | 900000 | `RATE_LIMIT_AUTH_MAX` | 5 | sliding log | one window (15 min) |
/// | `Chat` | `RATE_LIMIT_CHAT_WINDOW` | 60000 | `RATE_LIMIT_CHAT_MAX` | 10 | sliding log | none |
/// | `Combat` | `RATE_LIMIT_COMBAT_WINDOW` | 5000 | `RATE_LIMIT_COMBAT_MAX` | 20 | GCRA, burst = max | none |
/// | `Movement` | `RATE_LIMIT_MOVEMENT_WINDOW` | 1000 | `RATE_LIMIT_MOVEMENT_MAX` | 10 | GCRA, burst = max | none |
/// | `Api` | `RATE_LIMIT_API_WINDOW` | 60000 | `RATE_LIMIT_API_MAX` | 100 | sliding window counter | none |
///
/// Every preset uses [`FailurePolicy::LocalFallback`](crate::FailurePolicy::LocalFallback).
/// A value that is not a positive integer (or a window outside 1 ms ..
/// one year) is [`Error::InvalidSetting`] naming the variable.
///
/// ```
/// use aeturnis_ratelimit::Preset;
/// let env = |name: &str| (name == "RATE_LIMIT_CHAT_MAX").then(|| "25".to_owned());
/// let chat = Preset::Chat.config_from_lookup(env)?;
/// assert_eq!(chat.quota.limit().get(), 25);
/// assert_eq!(chat.quota.window().as_millis(), 60_000);
/// let bad = |name: &str| (name == "RATE_LIMIT_AUTH_WINDOW").then(|| "soon".to_owned());
/// let err = Preset::Auth.config_from_lookup(bad).unwrap_err();
/// assert_eq!(err.variable(), Some("RATE_LIMIT_AUTH_WINDOW"));
/// # Ok::<(), aeturnis_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Preset {
    /// Login and other credential checks: the brute-force defence.
    Auth,
    /// Chat messages.
    Chat,
    /// Combat actions.
    Combat,
    /// Movement updates.
    Movement,
    /// General HTTP API calls.
    Api,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 5] = [
        Preset::Auth,
        Preset::Chat,
        Preset::Combat,
        Preset::Movement,
        Preset::Api,
    ];

    /// The limiter name (`auth`, `chat`, `combat`, `movement`, `api`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Preset::Auth => "auth",
            Preset::Chat => "chat",
            Preset::Combat => "combat",
            Preset::Movement => "movement",
            Preset::Api => "api",
        }
    }

    /// The window variable, such as `RATE_LIMIT_AUTH_WINDOW`.
    #[must_use]
    pub fn window_variable(self) -> &'static str {
        match self {
            Preset::Auth => "RATE_LIMIT_AUTH_WINDOW",
            Preset::Chat => "RATE_LIMIT_CHAT_WINDOW",
            Preset::Combat => "RATE_LIMIT_COMBAT_WINDOW",
            Preset::Movement => "RATE_LIMIT_MOVEMENT_WINDOW",
            Preset::Api => "RATE_LIMIT_API_WINDOW",
        }
    }

    /// The limit variable, such as `RATE_LIMIT_AUTH_MAX`.
    #[must_use]
    pub fn max_variable(self) -> &'static str {
        match self {
            Preset::Auth => "RATE_LIMIT_AUTH_MAX",
            Preset::Chat => "RATE_LIMIT_CHAT_MAX",
            Preset::Combat => "RATE_LIMIT_COMBAT_MAX",
            Preset::Movement => "RATE_LIMIT_MOVEMENT_MAX",
            Preset::Api => "RATE_LIMIT_API_MAX",
        }
    }

    /// The default (window in ms, max).
    #[must_use]
    pub fn defaults(self) -> (u64, u32) {
        match self {
            Preset::Auth => (900_000, 5),
            Preset::Chat => (60_000, 10),
            Preset::Combat => (5_000, 20),
            Preset::Movement => (1_000, 10),
            Preset::Api => (60_000, 100),
        }
    }

    /// The preset's configuration from the process environment.
    pub fn config_from_env(self) -> Result<RateLimitConfig> {
        self.config_from_lookup(|name| std::env::var(name).ok())
    }

    /// The preset's configuration from any variable lookup (tests, config files).
    pub fn config_from_lookup(
        self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RateLimitConfig> {
        let (default_window, default_max) = self.defaults();
        let window_ms = read(&lookup, self.window_variable(), default_window)?;
        let max = read(&lookup, self.max_variable(), u64::from(default_max))?;
        let max = u32::try_from(max)
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| {
                invalid(
                    self.max_variable(),
                    "must be an integer from 1 to 4294967295",
                )
            })?;
        let quota = Quota::new(max, Duration::from_millis(window_ms))
            .map_err(|e| invalid(self.window_variable(), &e.to_string()))?;
        let config = RateLimitConfig::new(self.name(), quota);
        Ok(match self {
            Preset::Auth => config
                .with_algorithm(Algorithm::SlidingLog)
                .with_block_duration(quota.window()),
            Preset::Chat => config.with_algorithm(Algorithm::SlidingLog),
            Preset::Combat | Preset::Movement => config.with_algorithm(Algorithm::gcra()),
            Preset::Api => config.with_algorithm(Algorithm::SlidingWindow),
        })
    }
}

fn invalid(variable: &str, reason: &str) -> Error {
    Error::InvalidSetting {
        variable: variable.to_owned(),
        reason: reason.to_owned(),
    }
}

fn read(lookup: &impl Fn(&str) -> Option<String>, variable: &str, default: u64) -> Result<u64> {
    let Some(raw) = lookup(variable) else {
        return Ok(default);
    };
    let text = raw.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            variable,
            &format!("`{raw}` is not a positive whole number"),
        ));
    }
    let value: u64 = text
        .parse()
        .map_err(|_| invalid(variable, &format!("`{raw}` is too large")))?;
    if value == 0 {
        return Err(invalid(variable, "must be greater than zero"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn should_use_the_original_defaults() -> Result<()> {
        let expect = [
            (Preset::Auth, 900_000, 5),
            (Preset::Chat, 60_000, 10),
            (Preset::Combat, 5_000, 20),
            (Preset::Movement, 1_000, 10),
            (Preset::Api, 60_000, 100),
        ];
        for (preset, window, max) in expect {
            let c = preset.config_from_lookup(none)?;
            assert_eq!(
                c.quota.window(),
                Duration::from_millis(window),
                "{preset:?}"
            );
            assert_eq!(c.quota.limit().get(), max, "{preset:?}");
            assert_eq!(c.name, preset.name());
        }
        let auth = Preset::Auth.config_from_lookup(none)?;
        assert_eq!(auth.block_duration, Some(Duration::from_secs(900)));
        Ok(())
    }

    #[test]
    fn should_name_the_variable_of_a_bad_value() {
        for (variable, value) in [
            ("RATE_LIMIT_API_WINDOW", "0"),
            ("RATE_LIMIT_API_WINDOW", "-5"),
            ("RATE_LIMIT_API_WINDOW", "1.5"),
            ("RATE_LIMIT_API_WINDOW", "99999999999999999999999"),
            ("RATE_LIMIT_API_WINDOW", "40000000000"),
            ("RATE_LIMIT_API_MAX", "0"),
            ("RATE_LIMIT_API_MAX", "5000000000"),
            ("RATE_LIMIT_API_MAX", ""),
        ] {
            let lookup = |name: &str| (name == variable).then(|| value.to_owned());
            let err = Preset::Api.config_from_lookup(lookup);
            assert!(
                matches!(&err, Err(e) if e.variable() == Some(variable)),
                "{variable}={value:?} gave {err:?}"
            );
        }
    }
}
