//! One error classification for every Aeturnis crate.
//!
//! Each crate's `Error` implements [`Classify`]: it answers
//! [`class`](Classify::class) with one [`ErrorClass`], and the `is_*`
//! methods derive from it, so they mean the same thing in every crate:
//!
//! | class | meaning | what a caller does | HTTP (aeturnis-tower) |
//! |---|---|---|---|
//! | [`InvalidInput`](ErrorClass::InvalidInput) | the caller's input or configuration is wrong (a bad key, TTL, token, setting) | fix the input; retrying unchanged fails again | 400 |
//! | [`Unavailable`](ErrorClass::Unavailable) | Redis cannot serve now: connection down or dropped, timeout, shut-down client, a server that is loading, busy, out of memory, or failing over | retry later, with backoff | 503 |
//! | [`Contended`](ErrorClass::Contended) | someone else holds what was asked for (a lock); the error says how long to wait | retry after `retry_after` | 409 / 429 |
//! | [`Internal`](ErrorClass::Internal) | anything else: a corrupt stored value, an unexpected reply, a server error no class above covers | report it; it is a bug or data problem | 500 |
//!
//! ```
//! use aeturnis_redis_core::{Classify, Error, ErrorClass};
//! use aeturnis_redis_core::fred::error::{Error as FredError, ErrorKind};
//!
//! let down = Error::from(FredError::new(ErrorKind::IO, "Connection refused"));
//! assert_eq!(down.class(), ErrorClass::Unavailable);
//! assert!(down.is_unavailable() && down.is_retryable() && !down.is_invalid_input());
//! ```

use std::time::Duration;

/// What kind of failure an error is; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The input or configuration is wrong; do not retry unchanged.
    InvalidInput,
    /// Redis cannot serve now; retry later with backoff.
    Unavailable,
    /// Held by someone else; retry after the given time (when known).
    Contended {
        /// How long to wait before trying again, when known.
        retry_after: Option<Duration>,
    },
    /// Anything else: a bug, corrupt data, an unexpected reply.
    Internal,
}

/// The classification every Aeturnis error implements. Only
/// [`class`](Self::class) is required; the rest derive from it.
pub trait Classify {
    /// The error's class.
    fn class(&self) -> ErrorClass;

    /// The caller's input or configuration is at fault.
    fn is_invalid_input(&self) -> bool {
        self.class() == ErrorClass::InvalidInput
    }

    /// Redis cannot serve right now (connection, timeout, shutdown, a
    /// loading, busy, out-of-memory or failing-over server).
    fn is_unavailable(&self) -> bool {
        self.class() == ErrorClass::Unavailable
    }

    /// Someone else holds what was asked for.
    fn is_contended(&self) -> bool {
        matches!(self.class(), ErrorClass::Contended { .. })
    }

    /// Trying again later may succeed: [`is_unavailable`](Self::is_unavailable)
    /// or [`is_contended`](Self::is_contended).
    fn is_retryable(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::Unavailable | ErrorClass::Contended { .. }
        )
    }

    /// How long to wait before retrying a contended call, when known.
    fn retry_after(&self) -> Option<Duration> {
        match self.class() {
            ErrorClass::Contended { retry_after } => retry_after,
            _ => None,
        }
    }
}

impl Classify for crate::KeyError {
    /// Always invalid input: the key text is at fault.
    fn class(&self) -> ErrorClass {
        ErrorClass::InvalidInput
    }
}

impl Classify for crate::ConfigError {
    /// Always invalid input: a setting is at fault.
    fn class(&self) -> ErrorClass {
        ErrorClass::InvalidInput
    }
}
