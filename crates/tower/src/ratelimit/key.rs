//! Key extractors: which [`LimitKey`] a request counts against.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use aeturnis_ratelimit::LimitKey;
use http::{HeaderName, Request};

use crate::error::{KeyError, LayerError};
use crate::ratelimit::client_ip::group_ip;

/// A key that needs a round trip (the session's user).
pub type KeyFuture = Pin<Box<dyn Future<Output = Result<LimitKey, KeyError>> + Send>>;

/// What an extractor answers: a key now, or a future of one.
#[non_exhaustive]
pub enum Extracted {
    /// Known from the request alone.
    Ready(Result<LimitKey, KeyError>),
    /// Needs I/O (a session load); `'static`, so it owns what it reads.
    Later(KeyFuture),
}

impl std::fmt::Debug for Extracted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Extracted::Ready(key) => f.debug_tuple("Ready").field(key).finish(),
            Extracted::Later(_) => f.write_str("Later(..)"),
        }
    }
}

impl Extracted {
    /// Resolves the key.
    pub async fn resolve(self) -> Result<LimitKey, KeyError> {
        match self {
            Extracted::Ready(key) => key,
            Extracted::Later(key) => key.await,
        }
    }
}

/// Which key a request of type `R` counts against. Implemented for the
/// extractors of this module over `http::Request`, and for any
/// `Fn(&R) -> Result<LimitKey, KeyError>` closure over any `R` (a WebSocket
/// message, a gRPC request).
pub trait KeyExtractor<R>: Clone + Send + Sync + 'static {
    /// The key of `request`.
    fn extract(&self, request: &R) -> Extracted;
}

impl<R, F> KeyExtractor<R> for F
where
    F: Fn(&R) -> Result<LimitKey, KeyError> + Clone + Send + Sync + 'static,
{
    fn extract(&self, request: &R) -> Extracted {
        Extracted::Ready(self(request))
    }
}

/// The TCP peer address of the request, with IPv6 grouped by prefix
/// (default /64: one host usually owns the whole /64). Read from a
/// `SocketAddr` request extension, or axum's `ConnectInfo<SocketAddr>`
/// (feature `axum`). Never reads a forwarding header: behind a proxy use
/// [`ClientIp`](super::ClientIp).
#[derive(Debug, Clone, Copy)]
pub struct PeerIp {
    pub(crate) v6_prefix: u8,
}

impl Default for PeerIp {
    fn default() -> Self {
        PeerIp { v6_prefix: 64 }
    }
}

impl PeerIp {
    /// Groups IPv6 addresses by their first `bits` bits (`128` keys every
    /// address apart). More than 128 is [`Error::InvalidPrefix`](crate::Error::InvalidPrefix).
    pub fn with_v6_prefix(self, bits: u8) -> crate::Result<PeerIp> {
        if bits > 128 {
            return Err(crate::Error::InvalidPrefix(bits));
        }
        Ok(PeerIp { v6_prefix: bits })
    }
}

/// The peer address of `request`: a `SocketAddr` extension, or axum's
/// `ConnectInfo<SocketAddr>`.
pub fn peer_addr<B>(request: &Request<B>) -> Option<IpAddr> {
    if let Some(addr) = request.extensions().get::<SocketAddr>() {
        return Some(addr.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(info) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0.ip());
    }
    None
}

impl<B> KeyExtractor<Request<B>> for PeerIp {
    fn extract(&self, request: &Request<B>) -> Extracted {
        Extracted::Ready(
            peer_addr(request)
                .map(|ip| LimitKey::ip(group_ip(ip, self.v6_prefix)))
                .ok_or(KeyError::NoPeerAddress),
        )
    }
}

/// The value of one request header (an API key, a tenant id), used as the
/// key text `h:<value>`. An absent or non-ASCII header is
/// [`KeyError::MissingHeader`] (400).
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
}

impl HeaderKey {
    /// Keys on header `name`.
    pub fn new(name: &str) -> crate::Result<HeaderKey> {
        HeaderName::from_bytes(name.as_bytes())
            .map(|name| HeaderKey { name })
            .map_err(|_| crate::Error::InvalidHeaderName(name.to_owned()))
    }
}

impl<B> KeyExtractor<Request<B>> for HeaderKey {
    fn extract(&self, request: &Request<B>) -> Extracted {
        let value = request
            .headers()
            .get(&self.name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        Extracted::Ready(match value {
            Some(v) => LimitKey::new(&format!("h:{v}")).map_err(|e| LayerError::new(e).into()),
            None => Err(KeyError::MissingHeader(self.name.clone())),
        })
    }
}

/// The user id of the request's session (the [`SessionLayer`](crate::SessionLayer)
/// must run first). Loads the session lazily, sharing the one load with
/// the handler. No live session is [`KeyError::NoSession`] (401).
#[cfg(feature = "session")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionUser;

#[cfg(feature = "session")]
impl<B> KeyExtractor<Request<B>> for SessionUser {
    fn extract(&self, request: &Request<B>) -> Extracted {
        let Some(handle) = request
            .extensions()
            .get::<crate::session::SessionHandle>()
            .cloned()
        else {
            return Extracted::Ready(Err(KeyError::NoSession));
        };
        Extracted::Later(Box::pin(async move {
            match handle.get().await {
                Ok(Some(session)) => LimitKey::user(session.user.as_str())
                    .map_err(|e| KeyError::Layer(LayerError::new(e))),
                Ok(None) => Err(KeyError::NoSession),
                Err(e) => Err(KeyError::Layer(LayerError::new(e))),
            }
        }))
    }
}
