//! The error type of `aeturnis-session`.

use aeturnis_redis_core::Classify as _;
use std::time::Duration;

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
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis (or the connection to it) failed.
    #[error(transparent)]
    Redis(#[from] aeturnis_redis_core::Error),
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
    /// A duration that must be positive is zero (or rounds to zero
    /// milliseconds).
    #[error("{what} must be at least 1 ms, got {value:?}")]
    ZeroDuration {
        /// Which duration.
        what: &'static str,
        /// The value given.
        value: Duration,
    },
    /// The configuration is inconsistent.
    #[error("invalid session config: {0}")]
    Config(String),
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

impl Error {
    /// The operation may succeed if tried again later (Redis timeouts,
    /// dropped connections, cluster reconfiguration).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Redis(e) if e.is_retryable())
    }

    /// The operation ran out of time.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Redis(e) if e.is_timeout())
    }

    /// The connection to Redis is down or was dropped mid-command.
    #[must_use]
    pub fn is_connection(&self) -> bool {
        matches!(self, Error::Redis(e) if e.is_connection())
    }

    /// The caller passed bad input (a malformed token, an invalid id, too
    /// much metadata, a zero duration); retrying cannot help.
    #[must_use]
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidToken(_)
                | Error::InvalidId { .. }
                | Error::MetadataTooLong { .. }
                | Error::ZeroDuration { .. }
                | Error::IdConflict { .. }
                | Error::UnknownSession { .. }
        )
    }
}

impl From<aeturnis_redis_core::KeyError> for Error {
    fn from(e: aeturnis_redis_core::KeyError) -> Self {
        Error::Redis(e.into())
    }
}

impl From<aeturnis_redis_core::fred::error::Error> for Error {
    fn from(e: aeturnis_redis_core::fred::error::Error) -> Self {
        Error::Redis(e.into())
    }
}
