//! [`ConfigError`]: a setting that is wrong, naming it.

use crate::duration::DurationError;

/// A configuration value that is wrong, naming the variable (or URL part) at fault.
///
/// Every Aeturnis crate's configuration reports its errors with this type,
/// so the same two questions always have an answer: which setting, and
/// what is wrong with it. The message never contains a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A variable or setting holds a value that cannot be used.
    #[error("invalid {variable}: {reason}")]
    Invalid {
        /// The environment variable or setting name, such as `REDIS_PORT`.
        variable: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A variable that the chosen topology needs is missing.
    #[error("missing {variable}: {reason}")]
    Missing {
        /// The environment variable or setting name.
        variable: String,
        /// Why it is needed.
        reason: String,
    },
}

impl ConfigError {
    /// An [`Invalid`](ConfigError::Invalid) error for `variable`.
    #[must_use]
    pub fn invalid(variable: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            variable: variable.to_owned(),
            reason: reason.into(),
        }
    }

    /// An [`Invalid`](ConfigError::Invalid) error for a duration setting
    /// that is zero or too long (see [`crate::duration`]).
    #[must_use]
    pub fn duration(variable: &str, error: DurationError) -> Self {
        ConfigError::invalid(variable, error.to_string())
    }

    /// The variable or setting this error is about.
    #[must_use]
    pub fn variable(&self) -> &str {
        match self {
            ConfigError::Invalid { variable, .. } | ConfigError::Missing { variable, .. } => {
                variable
            }
        }
    }

    /// The same error reported against `outer` (such as `REDIS_URL`), the
    /// inner setting's name kept in the reason.
    #[must_use]
    pub(crate) fn within(self, outer: &str) -> Self {
        match self {
            ConfigError::Invalid { variable, reason } => {
                ConfigError::invalid(outer, format!("{variable}: {reason}"))
            }
            ConfigError::Missing { variable, reason } => ConfigError::Missing {
                variable: outer.to_owned(),
                reason: format!("{variable}: {reason}"),
            },
        }
    }
}
