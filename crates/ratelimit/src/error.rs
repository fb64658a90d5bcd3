//! The crate's error type and its [`Classify`] answer.

use aeturnis_redis_core::{Classify, ConfigError, ErrorClass, KeyError};

/// Result alias used across `aeturnis-ratelimit`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong building or running a limiter.
///
/// A *denial* is not an error: it is a [`Decision`](crate::Decision) with
/// `allowed == false`. Ask an error what kind it is through [`Classify`]
/// (`is_invalid_input`, `is_unavailable`, `is_retryable`, ...): the
/// [`FailurePolicy`](crate::FailurePolicy) handles exactly the
/// [unavailable](Classify::is_unavailable) ones.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis failed, and the limiter's
    /// [`FailurePolicy`](crate::FailurePolicy) is
    /// [`Propagate`](crate::FailurePolicy::Propagate) (or the error is not an
    /// availability problem, so no policy applies). Classified as the core
    /// classifies it.
    #[error(transparent)]
    Redis(#[from] aeturnis_redis_core::Error),
    /// The limiter name or the limit key cannot form a Redis key (bad input).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A limit key (user id, custom text) is empty (bad input).
    #[error("the rate-limit key is empty")]
    EmptyKey,
    /// A quota cannot be used (zero or sub-millisecond window, window too
    /// long; bad input).
    #[error("invalid quota: {0}")]
    InvalidQuota(&'static str),
    /// A request costs more than the limiter can ever admit (bad input).
    #[error("a cost of {cost} exceeds the maximum of {max} for this limiter")]
    InvalidCost {
        /// The requested cost.
        cost: u32,
        /// The largest cost this limiter accepts (its limit or burst).
        max: u32,
    },
    /// An environment variable or setting holds a bad value; the error
    /// names it ([`ConfigError::variable`]; bad input).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An IP address or CIDR range does not parse (bad input).
    #[error("invalid IP range `{input}`: {reason}")]
    InvalidIpRange {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A script answered with a reply of an unexpected shape (internal).
    #[error("unexpected reply from the {script} script: {reply}")]
    UnexpectedReply {
        /// The script name.
        script: &'static str,
        /// What came back.
        reply: String,
    },
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Redis(e) => e.class(),
            Error::Key(_)
            | Error::EmptyKey
            | Error::InvalidQuota(_)
            | Error::InvalidCost { .. }
            | Error::Config(_)
            | Error::InvalidIpRange { .. } => ErrorClass::InvalidInput,
            Error::UnexpectedReply { .. } => ErrorClass::Internal,
        }
    }
}

impl Error {
    /// The variable or setting a [`Config`](Error::Config) error names, such
    /// as `RATE_LIMIT_AUTH_WINDOW` or `block_duration`.
    #[must_use]
    pub fn variable(&self) -> Option<&str> {
        match self {
            Error::Config(e) => Some(e.variable()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_class_every_local_variant() {
        let invalid = [
            Error::Key(KeyError::Empty),
            Error::EmptyKey,
            Error::InvalidQuota("x"),
            Error::InvalidCost { cost: 2, max: 1 },
            Error::Config(ConfigError::invalid("RATE_LIMIT_API_MAX", "zero")),
            Error::InvalidIpRange {
                input: "x".to_owned(),
                reason: "y",
            },
        ];
        for e in &invalid {
            assert_eq!(e.class(), ErrorClass::InvalidInput, "{e:?}");
            assert!(e.is_invalid_input() && !e.is_retryable(), "{e:?}");
        }
        let internal = Error::UnexpectedReply {
            script: "s",
            reply: "r".to_owned(),
        };
        assert_eq!(internal.class(), ErrorClass::Internal);
        assert!(!internal.is_retryable());
        let config = Error::Config(ConfigError::invalid("RATE_LIMIT_API_MAX", "zero"));
        assert_eq!(config.variable(), Some("RATE_LIMIT_API_MAX"));
        assert_eq!(Error::EmptyKey.variable(), None);
    }
}
