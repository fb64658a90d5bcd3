//! The original's per-action limiters, read from the environment.

use aeturnis_redis_core::{ConfigError, Env};

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
/// The variables are read with the core's [`Env`] rules: an unset or empty
/// variable takes the default; a value that is not a positive whole number
/// (or a window outside 1 ms .. one year, see [`Quota`]) is
/// [`Error::Config`] naming the variable.
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

    /// The default quota: the original's `.env.example` values (see the
    /// table above).
    #[must_use]
    pub fn defaults(self) -> Quota {
        match self {
            Preset::Auth => Quota::from_parts(5, 900_000),
            Preset::Chat => Quota::from_parts(10, 60_000),
            Preset::Combat => Quota::from_parts(20, 5_000),
            Preset::Movement => Quota::from_parts(10, 1_000),
            Preset::Api => Quota::from_parts(100, 60_000),
        }
    }

    /// The preset's configuration from the process environment (see
    /// [`RateLimitConfig::from_env`]).
    pub fn config_from_env(self) -> Result<RateLimitConfig> {
        self.config_from(&Env::process())
    }

    /// The preset's configuration from any variable lookup (tests, config
    /// files; see [`RateLimitConfig::from_lookup`]).
    pub fn config_from_lookup(
        self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RateLimitConfig> {
        self.config_from(&Env::new(lookup))
    }

    /// The quota from `RATE_LIMIT_<NAME>_WINDOW` (whole milliseconds) and
    /// `RATE_LIMIT_<NAME>_MAX` (a non-zero count), each defaulting to
    /// [`defaults`](Self::defaults) when unset or empty.
    pub fn quota_from<L: Fn(&str) -> Option<String>>(self, env: &Env<L>) -> Result<Quota> {
        let defaults = self.defaults();
        let window = env
            .millis(self.window_variable())?
            .unwrap_or(defaults.window());
        let max = env
            .non_zero_u32(self.max_variable())?
            .unwrap_or(defaults.limit());
        Quota::new(max, window)
            .map_err(|e| Error::Config(ConfigError::invalid(self.window_variable(), e.to_string())))
    }

    /// The preset's configuration read through `env`.
    pub fn config_from<L: Fn(&str) -> Option<String>>(
        self,
        env: &Env<L>,
    ) -> Result<RateLimitConfig> {
        let quota = self.quota_from(env)?;
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::quota::MAX_WINDOW;

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
            assert_eq!(c.quota, preset.defaults(), "{preset:?}");
            assert_eq!(c.name, preset.name());
        }
        let auth = Preset::Auth.config_from_lookup(none)?;
        assert_eq!(auth.block_duration, Some(Duration::from_secs(900)));
        Ok(())
    }

    /// The table's algorithm, block and failure policy columns, preset by
    /// preset (GCRA's burst is the limit: `burst: None`).
    #[test]
    fn should_use_the_documented_algorithm_block_and_policy() -> Result<()> {
        use crate::policy::FailurePolicy;
        let window = |p: Preset| Some(p.defaults().window());
        let expect = [
            (Preset::Auth, Algorithm::SlidingLog, window(Preset::Auth)),
            (Preset::Chat, Algorithm::SlidingLog, None),
            (Preset::Combat, Algorithm::Gcra { burst: None }, None),
            (Preset::Movement, Algorithm::Gcra { burst: None }, None),
            (Preset::Api, Algorithm::SlidingWindow, None),
        ];
        for (preset, algorithm, block) in expect {
            let c = preset.config_from_lookup(none)?;
            assert_eq!(c.algorithm, algorithm, "{preset:?}");
            assert_eq!(c.block_duration, block, "{preset:?}");
            assert_eq!(c.failure_policy, FailurePolicy::LocalFallback, "{preset:?}");
        }
        // the block follows a configured window
        let auth = Preset::Auth
            .config_from_lookup(|n| (n == "RATE_LIMIT_AUTH_WINDOW").then(|| "60000".to_owned()))?;
        assert_eq!(auth.block_duration, Some(Duration::from_secs(60)));
        Ok(())
    }

    #[test]
    fn should_name_the_variable_of_a_bad_value() {
        for (variable, value) in [
            ("RATE_LIMIT_API_WINDOW", "0"),
            ("RATE_LIMIT_API_WINDOW", "-5"),
            ("RATE_LIMIT_API_WINDOW", "1.5"),
            ("RATE_LIMIT_API_WINDOW", "5s"),
            ("RATE_LIMIT_API_WINDOW", "99999999999999999999999"),
            ("RATE_LIMIT_API_WINDOW", "18446744073709551615"),
            ("RATE_LIMIT_API_WINDOW", "40000000000"),
            ("RATE_LIMIT_API_MAX", "0"),
            ("RATE_LIMIT_API_MAX", "-1"),
            ("RATE_LIMIT_API_MAX", "5000000000"),
            ("RATE_LIMIT_API_MAX", "ten"),
        ] {
            let lookup = |name: &str| (name == variable).then(|| value.to_owned());
            let err = Preset::Api.config_from_lookup(lookup);
            assert!(
                matches!(&err, Err(e @ Error::Config(_)) if e.variable() == Some(variable)),
                "{variable}={value:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn should_treat_an_empty_value_as_unset() -> Result<()> {
        for value in ["", "   "] {
            let lookup = |_: &str| Some(value.to_owned());
            let c = Preset::Api.config_from_lookup(lookup)?;
            assert_eq!(c.quota, Preset::Api.defaults(), "{value:?}");
        }
        Ok(())
    }

    #[test]
    fn should_accept_the_extreme_values_and_refuse_one_past_them() -> Result<()> {
        let max_ms = MAX_WINDOW.as_millis().to_string();
        let past_ms = (MAX_WINDOW.as_millis() + 1).to_string();
        let env = |window: &str, max: &str| {
            let vars = HashMap::from([
                ("RATE_LIMIT_CHAT_WINDOW", window.to_owned()),
                ("RATE_LIMIT_CHAT_MAX", max.to_owned()),
            ]);
            move |name: &str| vars.get(name).cloned()
        };
        let shortest = Preset::Chat.config_from_lookup(env("1", "4294967295"))?;
        assert_eq!(shortest.quota.window(), Duration::from_millis(1));
        assert_eq!(shortest.quota.limit().get(), u32::MAX);
        let longest = Preset::Chat.config_from_lookup(env(&max_ms, "1"))?;
        assert_eq!(longest.quota.window(), MAX_WINDOW);
        let err = Preset::Chat.config_from_lookup(env(&past_ms, "1"));
        assert!(
            matches!(&err, Err(e) if e.variable() == Some("RATE_LIMIT_CHAT_WINDOW")),
            "{err:?}"
        );
        let err = Preset::Chat.config_from_lookup(env("1", "4294967296"));
        assert!(
            matches!(&err, Err(e) if e.variable() == Some("RATE_LIMIT_CHAT_MAX")),
            "{err:?}"
        );
        Ok(())
    }

    /// `deploy/.env.example` and the code cannot drift apart: the file
    /// names exactly the presets' variables, and reading it gives the
    /// defaults it documents.
    #[test]
    fn should_read_the_deploy_env_example() -> Result<()> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/.env.example");
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(ConfigError::invalid(path, e.to_string())))?;
        let vars: HashMap<String, String> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut ours: Vec<&str> = vars
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("RATE_LIMIT_"))
            .collect();
        ours.sort_unstable();
        let mut expected: Vec<&str> = Preset::ALL
            .iter()
            .flat_map(|p| [p.window_variable(), p.max_variable()])
            .collect();
        expected.sort_unstable();
        assert_eq!(ours, expected);
        for preset in Preset::ALL {
            let c = RateLimitConfig::from_lookup(preset, |name| vars.get(name).cloned())?;
            assert_eq!(c.quota, preset.defaults(), "{preset:?}");
        }
        Ok(())
    }
}
