//! The crate's error type.

use aeturnis_redis_core::Classify as _;
use aeturnis_redis_core::KeyError;

/// Result alias used across `aeturnis-ratelimit`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong building or running a limiter.
///
/// A *denial* is not an error: it is a [`Decision`](crate::Decision) with
/// `allowed == false`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis failed, and the limiter's
    /// [`FailurePolicy`](crate::FailurePolicy) is
    /// [`Propagate`](crate::FailurePolicy::Propagate) (or the error is not an
    /// availability problem, so no policy applies).
    #[error(transparent)]
    Redis(#[from] aeturnis_redis_core::Error),
    /// The limiter name or the limit key cannot form a Redis key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A limit key (user id, custom text) is empty.
    #[error("the rate-limit key is empty")]
    EmptyKey,
    /// A quota cannot be used (zero or sub-millisecond window, window too long).
    #[error("invalid quota: {0}")]
    InvalidQuota(&'static str),
    /// A request costs more than the limiter can ever admit.
    #[error("a cost of {cost} exceeds the maximum of {max} for this limiter")]
    InvalidCost {
        /// The requested cost.
        cost: u32,
        /// The largest cost this limiter accepts (its limit or burst).
        max: u32,
    },
    /// An environment variable or setting holds a bad value.
    #[error("invalid {variable}: {reason}")]
    InvalidSetting {
        /// The variable or setting, such as `RATE_LIMIT_AUTH_WINDOW`.
        variable: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An IP address or CIDR range does not parse.
    #[error("invalid IP range `{input}`: {reason}")]
    InvalidIpRange {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A script answered with a reply of an unexpected shape.
    #[error("unexpected reply from the {script} script: {reply}")]
    UnexpectedReply {
        /// The script name.
        script: &'static str,
        /// What came back.
        reply: String,
    },
}

impl Error {
    /// The Redis call may succeed later (timeout, dropped connection,
    /// cluster reconfiguring). These are the errors a
    /// [`FailurePolicy`](crate::FailurePolicy) handles.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Redis(e) if e.is_retryable() || e.is_connection())
    }

    /// The connection to Redis is down or was dropped mid-command.
    #[must_use]
    pub fn is_connection(&self) -> bool {
        matches!(self, Error::Redis(e) if e.is_connection())
    }

    /// A Redis command ran out of time.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Redis(e) if e.is_timeout())
    }

    /// Bad input or configuration (fix the caller, do not retry).
    #[must_use]
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::Key(_)
                | Error::EmptyKey
                | Error::InvalidQuota(_)
                | Error::InvalidCost { .. }
                | Error::InvalidSetting { .. }
                | Error::InvalidIpRange { .. }
        )
    }

    /// The variable or setting an [`InvalidSetting`](Error::InvalidSetting) names.
    #[must_use]
    pub fn variable(&self) -> Option<&str> {
        match self {
            Error::InvalidSetting { variable, .. } => Some(variable),
            _ => None,
        }
    }
}
