//! [`Error`]: what building a layer can refuse, and [`KeyError`]: why a
//! request has no rate-limit key.

use aeturnis_redis_core::{Classify, ErrorClass};

/// A layer's configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A trusted-proxy range is not a CIDR (`10.0.0.0/8`) or an address.
    #[error("trusted proxy range `{0}` is not an address or CIDR range")]
    InvalidCidr(String),
    /// A cookie name is empty or holds characters a cookie name cannot.
    #[error("cookie name `{0}` is not an RFC 6265 token")]
    InvalidCookieName(String),
    /// A cookie `Path` or `Domain` with `;` or a control character.
    #[error("cookie attribute `{0}` holds `;` or a control character")]
    InvalidCookieAttribute(String),
    /// An IPv6 grouping prefix above 128 bits.
    #[error("IPv6 prefix /{0} is longer than 128 bits")]
    InvalidPrefix(u8),
    /// A header name that is not a valid HTTP field name.
    #[error("`{0}` is not a valid HTTP header name")]
    InvalidHeaderName(String),
    /// No limiter given to a rate-limit layer.
    #[error("a rate-limit layer needs at least one limiter")]
    NoLimiter,
    /// A layer crate refused (a preset's variables are wrong, ...); its
    /// class is kept.
    #[error(transparent)]
    Layer(#[from] LayerError),
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Layer(e) => e.class,
            _ => ErrorClass::InvalidInput,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request yields no rate-limit key. The HTTP layer answers each with
/// a problem+json response (status in each variant's doc); it is never a
/// panic and never a silent shared key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// 500: the request carries no peer address (serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`, or insert a
    /// `SocketAddr` extension).
    #[error("the request carries no peer address")]
    NoPeerAddress,
    /// 400: the header the key is read from is absent or not visible ASCII.
    #[error("missing or unreadable `{0}` header")]
    MissingHeader(http::HeaderName),
    /// 401: the key is the session's user and the request has no live
    /// session.
    #[error("no live session to key the limit on")]
    NoSession,
    /// By class (400, 503 with `Retry-After`, 500): a layer crate failed
    /// (the key text is invalid, loading the session failed).
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// 400: a caller-defined reason.
    #[error("{0}")]
    Rejected(String),
}

impl Classify for KeyError {
    fn class(&self) -> ErrorClass {
        match self {
            KeyError::Layer(e) => e.class,
            KeyError::NoPeerAddress => ErrorClass::Internal,
            _ => ErrorClass::InvalidInput,
        }
    }
}

/// Any Aeturnis layer's error with its [`ErrorClass`], so this crate's
/// errors need no variant per optional dependency.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct LayerError {
    /// The class the layer gave it.
    pub class: ErrorClass,
    /// The layer's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl LayerError {
    /// Wraps `e`, keeping its class.
    pub fn new<E: Classify + std::error::Error + Send + Sync + 'static>(e: E) -> LayerError {
        LayerError {
            class: e.class(),
            source: Box::new(e),
        }
    }
}

impl Classify for LayerError {
    fn class(&self) -> ErrorClass {
        self.class
    }
}
