//! The cache error type and its [`Classify`] answer.

use std::time::Duration;

use aeturnis_redis_core::fred::error::Error as FredError;
use aeturnis_redis_core::{Classify, ConfigError, ErrorClass, KeyError};

/// Result alias used across `aeturnis-cache`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a cache operation can fail with. Errors about one key name it.
///
/// Ask what kind of failure it is with [`Classify`] (re-exported by this
/// crate): see [`class`](Error::class) for how each variant is classed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the Redis layer: connection, timeout, server error, or
    /// a value that could not be encoded or decoded (those two name the
    /// key). Classed as the core error is.
    #[error(transparent)]
    Redis(#[from] aeturnis_redis_core::Error),
    /// A key, key segment or pattern was refused before anything was sent.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The cache configuration is invalid; names the field or environment
    /// variable at fault.
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    /// A TTL of zero or above
    /// [`MAX_DURATION`](aeturnis_redis_core::duration::MAX_DURATION).
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
    /// A score increment would leave a score that is not a finite number
    /// (it would overflow to infinity). Checked atomically on the server:
    /// nothing was stored.
    #[error("adding to the score of `{member}` at `{key}` would give a non-finite score; nothing was stored")]
    NotFinite {
        /// The sorted set.
        key: String,
        /// The member whose score was to change.
        member: String,
    },
    /// An argument other than the key or TTL was refused (an empty member
    /// list, a non-finite score or increment, ...); nothing was sent.
    #[error("invalid argument for key `{key}`: {reason}")]
    InvalidArgument {
        /// The key (or pattern) concerned.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl Classify for Error {
    /// [`Redis`](Error::Redis) is classed by the core (connection, timeout
    /// and shutdown are unavailable, a decode failure is internal, ...).
    /// Everything else is [`InvalidInput`](ErrorClass::InvalidInput):
    /// besides the key, configuration, size, TTL and argument errors, which
    /// are refused before anything is sent, this includes the server's
    /// refusals that retrying unchanged cannot fix:
    /// [`WrongType`](Error::WrongType) (the operation does not fit the type
    /// stored at the key), [`NotACounter`](Error::NotACounter) (not an
    /// integer, or an overflow) and [`NotFinite`](Error::NotFinite) (a score
    /// overflow, nothing stored). None of them is retryable.
    fn class(&self) -> ErrorClass {
        match self {
            Error::Redis(e) => e.class(),
            Error::Key(_)
            | Error::Config(_)
            | Error::ValueTooLarge { .. }
            | Error::InvalidTtl { .. }
            | Error::WrongType { .. }
            | Error::NotACounter { .. }
            | Error::NotFinite { .. }
            | Error::InvalidArgument { .. } => ErrorClass::InvalidInput,
        }
    }
}

impl Error {
    /// Maps a fred error for an operation on `key`, turning the server's
    /// `WRONGTYPE` and "not an integer" replies into typed variants.
    pub(crate) fn from_fred(key: &str, e: FredError) -> Error {
        let details = e.details();
        if details.contains("WRONGTYPE") {
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
            aeturnis_redis_core::Error::Key(k) => Error::Key(k),
            other => Error::Redis(other),
        }
    }

    /// An unexpected reply from Redis (a bug or a foreign value), classed
    /// internal.
    pub(crate) fn unexpected(what: impl Into<String>) -> Error {
        Error::Redis(aeturnis_redis_core::Error::UnexpectedReply(what.into()))
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
        assert!(matches!(&e, Error::WrongType { key } if key == "k"));
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        let e = Error::from_fred(
            "c",
            FredError::new(
                ErrorKind::Unknown,
                "ERR value is not an integer or out of range",
            ),
        );
        assert!(matches!(&e, Error::NotACounter { key } if key == "c"));
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        let e = Error::from_fred("c", FredError::new(ErrorKind::IO, "Connection reset"));
        assert!(matches!(&e, Error::Redis(r) if r.is_connection()));
        assert_eq!(e.class(), ErrorClass::Unavailable);
        assert!(e.is_retryable() && e.is_unavailable() && !e.is_invalid_input());
    }

    #[test]
    fn should_class_input_errors_as_invalid_input() {
        let key = Error::from(KeyError::Empty);
        assert!(matches!(key, Error::Key(KeyError::Empty)));
        let nested = Error::from_core("k", aeturnis_redis_core::Error::Key(KeyError::Empty));
        assert!(matches!(nested, Error::Key(KeyError::Empty)), "{nested:?}");
        let config = Error::from(ConfigError::invalid("CACHE_SCAN_BATCH", "zero"));
        for e in [
            key,
            nested,
            config,
            Error::InvalidTtl {
                key: "k".into(),
                ttl: Duration::ZERO,
                reason: "zero",
            },
            Error::NotFinite {
                key: "k".into(),
                member: "m".into(),
            },
        ] {
            assert_eq!(e.class(), ErrorClass::InvalidInput, "{e:?}");
            assert!(e.is_invalid_input() && !e.is_retryable(), "{e:?}");
        }
        let decode = Error::Redis(aeturnis_redis_core::Error::Decode {
            key: "k".into(),
            reason: "junk".into(),
        });
        assert_eq!(decode.class(), ErrorClass::Internal);
        assert_eq!(Error::unexpected("odd").class(), ErrorClass::Internal);
    }
}
