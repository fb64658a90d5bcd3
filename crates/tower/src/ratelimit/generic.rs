//! [`GenericRateLimit`]: the rate-limit service over any request type (a
//! gRPC call, a message of a socket), where a denial is an error of the
//! service rather than an HTTP response.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::ratelimit::key::KeyExtractor;
use crate::ratelimit::limiter::{Cost, LimitError, RequestLimiter, UnitCost, Verdict};

/// Why a [`GenericRateLimit`] call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Limited<E> {
    /// The limiter said no (its [`Verdict`] says how long to wait; a
    /// fail-closed denial is [`Verdict::is_fail_closed`]).
    #[error("rate limit `{}` exceeded", .0.limiter)]
    Denied(Box<Verdict>),
    /// No key, or the limiter failed.
    #[error(transparent)]
    Check(LimitError),
    /// The inner service failed.
    #[error("{0}")]
    Inner(E),
}

/// Builds [`GenericRateLimit`] services from a [`RequestLimiter`].
#[derive(Debug, Clone)]
pub struct GenericRateLimitLayer<K, C = UnitCost> {
    limiter: RequestLimiter<K, C>,
}

impl<K, C> GenericRateLimitLayer<K, C> {
    /// The layer over `limiter` (any request type its key function takes).
    pub fn new(limiter: RequestLimiter<K, C>) -> Self {
        GenericRateLimitLayer { limiter }
    }
}

impl<S, K: Clone, C: Clone> Layer<S> for GenericRateLimitLayer<K, C> {
    type Service = GenericRateLimit<S, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        GenericRateLimit {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// Checks each request of type `R` before the inner service sees it; a
/// denial is [`Limited::Denied`].
///
/// ```
/// use aeturnis_tower::ratelimit::{GenericRateLimitLayer, Limited, RequestLimiter};
/// # fn demo(limiter: aeturnis_ratelimit::RateLimiter) {
/// struct Move { player: String }
/// let per_player = RequestLimiter::new(limiter, |m: &Move| {
///     aeturnis_ratelimit::LimitKey::user(&m.player)
///         .map_err(|e| aeturnis_tower::KeyError::Layer(aeturnis_tower::LayerError::new(e)))
/// });
/// let layer = GenericRateLimitLayer::new(per_player);
/// # let _ = layer;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GenericRateLimit<S, K, C = UnitCost> {
    inner: S,
    limiter: RequestLimiter<K, C>,
}

impl<S, K, C> GenericRateLimit<S, K, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The response future of [`GenericRateLimit`].
pub type GenericResponseFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, Limited<E>>> + Send>>;

impl<S, K, C, R> Service<R> for GenericRateLimit<S, K, C>
where
    S: Service<R> + Clone + Send + 'static,
    S::Future: Send + 'static,
    K: KeyExtractor<R>,
    C: Cost<R>,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = Limited<S::Error>;
    type Future = GenericResponseFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Limited::Inner)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let check = self.limiter.check(&request);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let verdict = check.await.map_err(Limited::Check)?;
            if !verdict.allowed {
                return Err(Limited::Denied(Box::new(verdict)));
            }
            inner.call(request).await.map_err(Limited::Inner)
        })
    }
}
