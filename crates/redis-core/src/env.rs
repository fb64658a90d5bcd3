//! The one environment reader every Aeturnis crate uses.
//!
//! [`Env`] reads variables through a lookup function, so a test hands it a
//! map and never touches the process environment, and a service can feed it
//! from any configuration source. Its rules are the same for every crate:
//!
//! - a value is trimmed, and an empty (or all-space) value means *unset*;
//! - every getter returns `Ok(None)` for an unset variable, the parsed value
//!   for a good one, and a [`ConfigError`] that names the variable for a bad
//!   one;
//! - durations carry their unit in the getter's name ([`millis`](Env::millis),
//!   [`seconds`](Env::seconds)) and are checked against
//!   [`MAX_DURATION`] and zero;
//! - an error quotes the offending value except for [`secret`](Env::secret)
//!   variables, which are never echoed.
//!
//! ```
//! use std::time::Duration;
//! use aeturnis_redis_core::Env;
//!
//! let env = Env::new(|name| match name {
//!     "WINDOW" => Some("1500".to_owned()),
//!     "ENABLED" => Some(" yes ".to_owned()),
//!     "EMPTY" => Some("   ".to_owned()),
//!     _ => None,
//! });
//! assert_eq!(env.millis("WINDOW")?, Some(Duration::from_millis(1500)));
//! assert_eq!(env.bool("ENABLED")?, Some(true));
//! assert_eq!(env.string("EMPTY"), None);
//! assert_eq!(env.millis("MISSING")?, None);
//! # Ok::<(), aeturnis_redis_core::ConfigError>(())
//! ```

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::str::FromStr;
use std::time::Duration;

use crate::config::{ConfigError, Secret};
use crate::duration::{checked_millis, MAX_DURATION};

/// A typed reader over a variable lookup (the process environment, a map,
/// a config file). See the [module docs](self) for its rules.
pub struct Env<L> {
    lookup: L,
}

impl<L> fmt::Debug for Env<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

/// The lookup of [`Env::process`]: `std::env::var`, with non-Unicode values
/// treated as unset.
pub type ProcessLookup = fn(&str) -> Option<String>;

fn process_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Env<ProcessLookup> {
    /// Reads the process environment.
    #[must_use]
    pub fn process() -> Self {
        Env {
            lookup: process_var,
        }
    }
}

impl<L: Fn(&str) -> Option<String>> Env<L> {
    /// Reads through `lookup`.
    #[must_use]
    pub fn new(lookup: L) -> Self {
        Env { lookup }
    }

    /// The raw lookup, for callers that need it (such as another crate's
    /// `from_lookup`).
    pub fn lookup(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// The trimmed value, or `None` when unset or empty.
    #[must_use]
    pub fn string(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A secret (a password): taken as given (not trimmed: spaces may be
    /// part of it), `None` when empty. Never echoed in an error.
    #[must_use]
    pub fn secret(&self, name: &str) -> Option<Secret> {
        (self.lookup)(name)
            .filter(|v| !v.is_empty())
            .map(Secret::new)
    }

    /// Any `FromStr` value; the error quotes the value and the parser's
    /// message.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `name` when the value does not parse.
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.string(name)
            .map(|v| {
                v.parse::<T>().map_err(|e| {
                    ConfigError::invalid(name, format!("`{v}` is not a valid value: {e}"))
                })
            })
            .transpose()
    }

    /// A whole number that must not be zero.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `name` for a non-number or zero.
    pub fn non_zero_u32(&self, name: &str) -> Result<Option<NonZeroU32>, ConfigError> {
        self.non_zero::<u32, NonZeroU32>(name)
    }

    /// A whole number that must not be zero.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `name` for a non-number or zero.
    pub fn non_zero_u64(&self, name: &str) -> Result<Option<NonZeroU64>, ConfigError> {
        self.non_zero::<u64, NonZeroU64>(name)
    }

    /// A whole number that must not be zero.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `name` for a non-number or zero.
    pub fn non_zero_usize(&self, name: &str) -> Result<Option<NonZeroUsize>, ConfigError> {
        self.non_zero::<usize, NonZeroUsize>(name)
    }

    fn non_zero<T, N>(&self, name: &str) -> Result<Option<N>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
        N: TryFrom<T>,
    {
        match self.parse::<T>(name)? {
            None => Ok(None),
            Some(v) => N::try_from(v)
                .map(Some)
                .map_err(|_| ConfigError::invalid(name, "must be greater than zero")),
        }
    }

    /// A TCP port, 1 to 65535.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `name` for a non-number, 0 or a value
    /// above 65535.
    pub fn port(&self, name: &str) -> Result<Option<u16>, ConfigError> {
        match self.parse::<u16>(name)? {
            Some(0) => Err(ConfigError::invalid(name, "port 0 is not allowed")),
            other => Ok(other),
        }
    }

    /// A boolean: `1 true yes on` or `0 false no off`, any case.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `name` for anything else.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        self.string(name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::invalid(
                    name,
                    format!("`{v}` is not a boolean (true/false, yes/no, on/off, 1/0)"),
                )),
            })
            .transpose()
    }

    /// A duration given in whole milliseconds: greater than zero and at most
    /// [`MAX_DURATION`].
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `name`.
    pub fn millis(&self, name: &str) -> Result<Option<Duration>, ConfigError> {
        self.duration(name, Duration::from_millis, "milliseconds")
    }

    /// A duration given in whole seconds: greater than zero and at most
    /// [`MAX_DURATION`].
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `name`.
    pub fn seconds(&self, name: &str) -> Result<Option<Duration>, ConfigError> {
        self.duration(name, Duration::from_secs, "seconds")
    }

    fn duration(
        &self,
        name: &str,
        from: fn(u64) -> Duration,
        unit: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(v) = self.string(name) else {
            return Ok(None);
        };
        let n = v.parse::<u64>().map_err(|_| {
            ConfigError::invalid(name, format!("`{v}` is not a whole number of {unit}"))
        })?;
        let d = from(n);
        if d > MAX_DURATION {
            return Err(ConfigError::invalid(
                name,
                format!("{v} {unit} is above the maximum of {MAX_DURATION:?}"),
            ));
        }
        checked_millis(d).map_err(|e| ConfigError::invalid(name, e.to_string()))?;
        Ok(Some(d))
    }

    /// One of a fixed set of names (compared without case), mapped to its
    /// value.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `name` and listing the choices.
    pub fn one_of<T: Copy>(
        &self,
        name: &str,
        choices: &[(&str, T)],
    ) -> Result<Option<T>, ConfigError> {
        let Some(v) = self.string(name) else {
            return Ok(None);
        };
        choices
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&v))
            .map(|(_, t)| Some(*t))
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                ConfigError::invalid(name, format!("`{v}` is not one of {}", names.join(", ")))
            })
    }

    /// A comma-separated list of `host:port` pairs (IPv6 hosts in brackets
    /// are kept as written). Empty items are skipped; an empty list is an
    /// error.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `name`.
    pub fn nodes(&self, name: &str) -> Result<Option<Vec<(String, u16)>>, ConfigError> {
        let Some(v) = self.string(name) else {
            return Ok(None);
        };
        let nodes = v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|node| {
                let (host, port) = node.rsplit_once(':').ok_or_else(|| {
                    ConfigError::invalid(name, format!("`{node}` is not host:port"))
                })?;
                if host.is_empty() {
                    return Err(ConfigError::invalid(name, format!("`{node}` has no host")));
                }
                let port = match port.parse::<u16>() {
                    Ok(0) | Err(_) => {
                        return Err(ConfigError::invalid(
                            name,
                            format!("`{node}` has no valid port (1-65535)"),
                        ))
                    }
                    Ok(p) => p,
                };
                Ok((host.to_owned(), port))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.is_empty() {
            return Err(ConfigError::invalid(name, "no nodes listed"));
        }
        Ok(Some(nodes))
    }

    /// The value, or [`ConfigError::Missing`] naming `name` with `reason`.
    ///
    /// # Errors
    /// [`ConfigError::Missing`].
    pub fn require<T>(&self, name: &str, value: Option<T>, reason: &str) -> Result<T, ConfigError> {
        value.ok_or_else(|| ConfigError::Missing {
            variable: name.to_owned(),
            reason: reason.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::new(move |k| map.get(k).cloned())
    }

    #[test]
    fn should_treat_empty_values_as_unset_in_every_getter() {
        let e = env(&[("X", "  ")]);
        assert_eq!(e.string("X"), None);
        assert_eq!(e.parse::<u8>("X"), Ok(None));
        assert_eq!(e.non_zero_u32("X"), Ok(None));
        assert_eq!(e.port("X"), Ok(None));
        assert_eq!(e.bool("X"), Ok(None));
        assert_eq!(e.millis("X"), Ok(None));
        assert_eq!(e.seconds("X"), Ok(None));
        assert_eq!(e.one_of("X", &[("a", 1)]), Ok(None));
        assert_eq!(e.nodes("X"), Ok(None));
        assert_eq!(env(&[("P", "")]).secret("P"), None);
    }

    #[test]
    fn should_parse_good_values() {
        let e = env(&[
            ("N", " 7 "),
            ("P", "6380"),
            ("B", "OFF"),
            ("MS", "250"),
            ("S", "60"),
            ("K", "Json"),
            ("NODES", "a:1, [::1]:2,"),
            ("PW", " pw "),
        ]);
        assert_eq!(e.non_zero_u32("N"), Ok(NonZeroU32::new(7)));
        assert_eq!(e.port("P"), Ok(Some(6380)));
        assert_eq!(e.bool("B"), Ok(Some(false)));
        assert_eq!(e.millis("MS"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(e.seconds("S"), Ok(Some(Duration::from_secs(60))));
        assert_eq!(e.one_of("K", &[("msgpack", 0), ("json", 1)]), Ok(Some(1)));
        assert_eq!(
            e.nodes("NODES"),
            Ok(Some(vec![("a".into(), 1), ("[::1]".into(), 2)]))
        );
        assert_eq!(e.secret("PW").as_ref().map(Secret::expose), Some(" pw "));
    }

    #[test]
    fn should_name_the_variable_in_every_error() {
        let e = env(&[
            ("N", "0"),
            ("NN", "x"),
            ("P", "0"),
            ("P2", "70000"),
            ("B", "maybe"),
            ("MS", "0"),
            ("MS2", "1.5"),
            ("S", "99999999999999"),
            ("K", "xml"),
            ("NODES", "nohost"),
            ("NODES2", ":1"),
            ("NODES3", "h:0"),
            ("NODES4", ","),
        ]);
        let errors = [
            ("N", e.non_zero_u32("N").map(drop)),
            ("NN", e.non_zero_usize("NN").map(drop)),
            ("P", e.port("P").map(drop)),
            ("P2", e.port("P2").map(drop)),
            ("B", e.bool("B").map(drop)),
            ("MS", e.millis("MS").map(drop)),
            ("MS2", e.millis("MS2").map(drop)),
            ("S", e.seconds("S").map(drop)),
            ("K", e.one_of("K", &[("json", ())]).map(drop)),
            ("NODES", e.nodes("NODES").map(drop)),
            ("NODES2", e.nodes("NODES2").map(drop)),
            ("NODES3", e.nodes("NODES3").map(drop)),
            ("NODES4", e.nodes("NODES4").map(drop)),
        ];
        for (name, result) in errors {
            let err = result.expect_err(name);
            assert!(
                matches!(&err, ConfigError::Invalid { variable, .. } if variable == name),
                "{err:?} should name {name}"
            );
        }
        let missing = e.require::<u8>("NEEDED", None, "for cluster");
        assert!(
            matches!(missing, Err(ConfigError::Missing { variable, .. }) if variable == "NEEDED")
        );
    }

    #[test]
    fn should_read_the_process_environment() {
        // PATH is set in every environment the tests run in
        assert!(Env::process().string("PATH").is_some());
        assert_eq!(
            Env::process().string("AETURNIS_SURELY_UNSET_VARIABLE"),
            None
        );
    }
}
