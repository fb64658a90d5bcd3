//! The cache error type.

use aeturnis_redis_core::Classify as _;
use std::time::Duration;

use aeturnis_redis_core::fred::error::Error as FredError;
use aeturnis_redis_core::KeyError;

/// Result alias used across `aeturnis-cache`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a cache operation can fail with. Errors about one key name it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the Redis layer: connection, timeout, server error,
    /// invalid key segment, or a value that could not be encoded or decoded
    /// (those two name the key).
    #[error(transparent)]
    Redis(#[from] aeturnis_redis_core::Error),
    /// The encoded value is larger than [`CacheConfig::max_value_bytes`](crate::CacheConfig::max_value_bytes).
    #[error("value for key `{key}` is {size} bytes, the limit is {limit}")]
    ValueTooLarge {
        /// The key being written.
        key: String,
        /// The encoded size.
        size: usize,
        /// The configured limit.
        limit: u32,
    },
    /// A TTL of zero, below one millisecond, or too large for Redis.
    #[error("invalid TTL {ttl:?} for key `{key}`: {reason}")]
    InvalidTtl {
        /// The key being written.
        key: String,
        /// The TTL given.
        ttl: Duration,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The key holds a value of another Redis type (`WRONGTYPE`).
    #[error("key `{key}` holds a value of another type")]
    WrongType {
        /// The key.
        key: String,
    },
    /// The key holds something that is not an integer counter.
    #[error("key `{key}` does not hold an integer counter (or the increment would overflow)")]
    NotACounter {
        /// The key.
        key: String,
    },
    /// An argument other than the key or TTL was refused (an empty member
    /// list, a non-finite score, ...).
    #[error("invalid argument for key `{key}`: {reason}")]
    InvalidArgument {
        /// The key (or pattern) concerned.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The cache configuration is invalid; names the field or environment
    /// variable at fault.
    #[error("invalid cache configuration `{variable}`: {reason}")]
    Config {
        /// The field or environment variable.
        variable: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// The operation may succeed if tried again later (a timeout, a dropped
    /// connection, a cluster reconfiguring).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Redis(e) if e.is_retryable())
    }

    /// The operation ran out of time.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Redis(e) if e.is_timeout())
    }

    /// The connection to Redis is down or dropped mid-command.
    #[must_use]
    pub fn is_connection(&self) -> bool {
        matches!(self, Error::Redis(e) if e.is_connection())
    }

    /// The caller's input was refused before anything was sent (key, value
    /// size, TTL, argument, configuration).
    #[must_use]
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::ValueTooLarge { .. }
                | Error::InvalidTtl { .. }
                | Error::InvalidArgument { .. }
                | Error::Config { .. }
                | Error::Redis(aeturnis_redis_core::Error::Key(_))
                | Error::Redis(aeturnis_redis_core::Error::Encode { .. })
        )
    }

    /// Maps a fred error for an operation on `key`, turning the server's
    /// `WRONGTYPE` and "not an integer" replies into typed variants.
    pub(crate) fn from_fred(key: &str, e: FredError) -> Error {
        let details = e.details();
        if details.starts_with("WRONGTYPE") || details.contains("WRONGTYPE") {
            Error::WrongType {
                key: key.to_owned(),
            }
        } else if details.contains("not an integer") || details.contains("would overflow") {
            Error::NotACounter {
                key: key.to_owned(),
            }
        } else {
            Error::Redis(e.into())
        }
    }

    /// Like [`from_fred`](Self::from_fred) for an error already wrapped by
    /// redis-core (script calls).
    pub(crate) fn from_core(key: &str, e: aeturnis_redis_core::Error) -> Error {
        match e {
            aeturnis_redis_core::Error::Redis(f) => Error::from_fred(key, f),
            other => Error::Redis(other),
        }
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::Redis(aeturnis_redis_core::Error::Key(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aeturnis_redis_core::fred::error::ErrorKind;

    #[test]
    fn should_map_server_replies_to_typed_errors() {
        let e = Error::from_fred(
            "k",
            FredError::new(
                ErrorKind::Unknown,
                "WRONGTYPE Operation against a key holding the wrong kind of value",
            ),
        );
        assert!(matches!(e, Error::WrongType { key } if key == "k"));
        let e = Error::from_fred(
            "c",
            FredError::new(
                ErrorKind::Unknown,
                "ERR value is not an integer or out of range",
            ),
        );
        assert!(matches!(e, Error::NotACounter { key } if key == "c"));
        let e = Error::from_fred("c", FredError::new(ErrorKind::IO, "Connection reset"));
        assert!(e.is_connection() && e.is_retryable() && !e.is_invalid_input());
    }

    #[test]
    fn should_classify_input_errors() {
        assert!(Error::from(KeyError::Empty).is_invalid_input());
        assert!(Error::InvalidTtl {
            key: "k".into(),
            ttl: Duration::ZERO,
            reason: "zero"
        }
        .is_invalid_input());
    }
}
