//! Start-up errors: what can stop [`AppState`](crate::AppState) from being built.

use aeturnis_redis_core::{Classify, ErrorClass};

/// Result alias of `aeturnis-demo`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the server state could not be built (bad configuration or an
/// unreachable Redis). Request-time failures are [`ApiError`](crate::ApiError).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid (the error names the variable or field).
    #[error(transparent)]
    Config(#[from] aeturnis_redis_core::ConfigError),
    /// Connecting to Redis failed.
    #[error(transparent)]
    Redis(#[from] aeturnis_redis_core::Error),
    /// The cache configuration is invalid.
    #[error(transparent)]
    Cache(#[from] aeturnis_cache::Error),
    /// The session configuration is invalid.
    #[error(transparent)]
    Session(#[from] aeturnis_session::Error),
    /// A rate-limit preset is invalid.
    #[error(transparent)]
    RateLimit(#[from] aeturnis_ratelimit::Error),
    /// The lock configuration is invalid.
    #[error(transparent)]
    Lock(#[from] aeturnis_lock::Error),
    /// A tower layer's configuration is invalid.
    #[error(transparent)]
    Tower(#[from] aeturnis_tower::Error),
    /// The SQLite database cannot be opened or migrated.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// A cache pattern refused its configuration, or the movement workers
    /// could not start.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A cache pattern refused its configuration.
    #[error(transparent)]
    Patterns(#[from] aeturnis_patterns::Error),
}

impl Classify for Error {
    /// Each wrapped error answers with its own class; a setting is invalid
    /// input.
    fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) => ErrorClass::InvalidInput,
            Error::Redis(e) => e.class(),
            Error::Cache(e) => e.class(),
            Error::Session(e) => e.class(),
            Error::RateLimit(e) => e.class(),
            Error::Lock(e) => e.class(),
            Error::Tower(e) => e.class(),
            Error::Db(e) => e.class(),
            Error::Store(e) => e.class(),
            Error::Patterns(e) => e.class(),
        }
    }
}
