//! The error type of `aeturnis-session`.

use aeturnis_redis_core::duration::DurationError;
use aeturnis_redis_core::{Classify, ConfigError, ErrorClass, KeyError};

/// Result alias used across `aeturnis-session`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a session token was refused (no Redis round trip is made for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is empty.
    #[error("empty session token")]
    Empty,
    /// The token does not have the one accepted length.
    #[error("session token is {len} bytes long, expected {expected}")]
    Length {
        /// Its length.
        len: usize,
        /// The only accepted length.
        expected: usize,
    },
    /// The token holds a character outside its alphabet, or its parts are
    /// not where they belong.
    #[error("session token is malformed")]
    Malformed,
}

/// Everything that can go wrong with sessions.
///
/// Classified with [`Classify`]: Redis failures answer as the core error
/// does; bad tokens, ids, metadata, durations, keys and settings are
/// [`InvalidInput`](ErrorClass::InvalidInput); a corrupt stored session is
/// [`Internal`](ErrorClass::Internal).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis (or the connection to it) failed.
    #[error(transparent)]
    Redis(#[from] aeturnis_redis_core::Error),
    /// A key built from the input is invalid (bad input, not a Redis
    /// failure).
    #[error("invalid session key: {0}")]
    Key(#[from] KeyError),
    /// A setting of the [`SessionConfig`](crate::SessionConfig) (or its
    /// environment variable) is invalid; the error names it.
    #[error("session config: {0}")]
    Config(#[from] ConfigError),
    /// A session token or id is malformed.
    #[error("invalid session token: {0}")]
    InvalidToken(#[from] TokenError),
    /// A user id or character id is empty, too long, or holds control
    /// characters.
    #[error("invalid {what}: {reason}")]
    InvalidId {
        /// `user id` or `character id`.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A metadata field is longer than its limit.
    #[error("session metadata field `{field}` is {len} bytes long, the limit is {max}")]
    MetadataTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A duration passed to a call is zero or above
    /// [`MAX_DURATION`](aeturnis_redis_core::duration::MAX_DURATION)
    /// (a sub-millisecond remainder rounds up, see
    /// [`aeturnis_redis_core::duration`]).
    #[error("{what} {source}")]
    InvalidDuration {
        /// Which duration (`extension`).
        what: &'static str,
        /// What is wrong with it.
        source: DurationError,
    },
    /// The session id belongs to another user's slot tag, or is already used
    /// by another session.
    #[error("session id {id} cannot be used for this user: {reason}")]
    IdConflict {
        /// The id.
        id: String,
        /// Why.
        reason: &'static str,
    },
    /// The session named as "current" is not a live session of this user.
    #[error("session {id} is not a live session of this user")]
    UnknownSession {
        /// The id.
        id: String,
    },
    /// A stored session could not be decoded (written by something else, or
    /// by an incompatible version).
    #[error("stored session at `{key}` is corrupt: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Redis(e) => e.class(),
            Error::Key(_)
            | Error::Config(_)
            | Error::InvalidToken(_)
            | Error::InvalidId { .. }
            | Error::MetadataTooLong { .. }
            | Error::InvalidDuration { .. }
            | Error::IdConflict { .. }
            | Error::UnknownSession { .. } => ErrorClass::InvalidInput,
            Error::Corrupt { .. } => ErrorClass::Internal,
        }
    }
}

impl From<aeturnis_redis_core::fred::error::Error> for Error {
    fn from(e: aeturnis_redis_core::fred::error::Error) -> Self {
        Error::Redis(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_classify_bad_input_corruption_and_redis_failures() {
        let bad = [
            Error::from(KeyError::Empty),
            Error::from(ConfigError::invalid("SESSION_TTL", "nope")),
            Error::from(TokenError::Empty),
            Error::InvalidDuration {
                what: "extension",
                source: DurationError::Zero,
            },
            Error::IdConflict {
                id: "x".into(),
                reason: "r",
            },
            Error::UnknownSession { id: "x".into() },
        ];
        for e in &bad {
            assert_eq!(e.class(), ErrorClass::InvalidInput, "{e:?}");
            assert!(!e.is_retryable(), "{e:?}");
        }
        let corrupt = Error::Corrupt {
            key: "k".into(),
            reason: "r".into(),
        };
        assert_eq!(corrupt.class(), ErrorClass::Internal);
        let down = Error::Redis(aeturnis_redis_core::Error::Shutdown);
        assert_eq!(
            down.class(),
            aeturnis_redis_core::Error::Shutdown.class(),
            "a Redis failure answers as the core does"
        );
    }
}
