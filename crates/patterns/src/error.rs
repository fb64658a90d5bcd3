//! The error type of `aeturnis-patterns`.

use std::error::Error as StdError;
use std::sync::Arc;

use aeturnis_redis_core::{Classify, ConfigError, ErrorClass, KeyError};

/// Result alias of `aeturnis-patterns`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a pattern can fail with. `Clone` (sources behind `Arc`), so
/// one failed load reaches every caller that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis failed (after the policy's fallback, if any).
    #[error(transparent)]
    Redis(Arc<aeturnis_redis_core::Error>),
    /// A cache call failed (a value too large, a wrong type, ...).
    #[error(transparent)]
    Cache(Arc<aeturnis_cache::Error>),
    /// A key is invalid.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A policy setting is invalid; names it.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The caller's loader or writer failed; its error is the source.
    #[error("loading `{key}` from the source failed: {source}")]
    Load {
        /// The key being loaded.
        key: String,
        /// The loader's own error (downcast it to your type).
        source: Arc<dyn StdError + Send + Sync>,
    },
    /// The key holds a value this crate did not write (written by other
    /// code under the same name).
    #[error("`{key}` holds a value that is not a cache-aside entry")]
    Foreign {
        /// The key.
        key: String,
    },
}

impl From<aeturnis_redis_core::Error> for Error {
    fn from(e: aeturnis_redis_core::Error) -> Self {
        match e {
            aeturnis_redis_core::Error::Key(k) => Error::Key(k),
            aeturnis_redis_core::Error::Config(c) => Error::Config(c),
            other => Error::Redis(Arc::new(other)),
        }
    }
}

impl From<aeturnis_redis_core::fred::error::Error> for Error {
    fn from(e: aeturnis_redis_core::fred::error::Error) -> Self {
        Error::from(aeturnis_redis_core::Error::from(e))
    }
}

impl Error {
    pub(crate) fn load(key: &str, source: impl StdError + Send + Sync + 'static) -> Self {
        Error::Load {
            key: key.to_owned(),
            source: Arc::new(source),
        }
    }
}

impl Classify for Error {
    /// Redis errors answer as the core classes them; a bad key or policy is
    /// invalid input; a loader's failure and a foreign value are internal
    /// (the source of truth's own error is kept as the source, for the
    /// caller to classify).
    fn class(&self) -> ErrorClass {
        match self {
            Error::Redis(e) => e.class(),
            Error::Cache(e) => e.class(),
            Error::Key(_) | Error::Config(_) => ErrorClass::InvalidInput,
            Error::Load { .. } | Error::Foreign { .. } => ErrorClass::Internal,
        }
    }
}
