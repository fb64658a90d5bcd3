//! [`RateLimitLayer`]: builds [`RateLimit`] services.

use aeturnis_ratelimit::{Preset, RateLimiter};
use aeturnis_redis_core::Redis;
use tower::Layer;

use crate::error::LayerError;
use crate::ratelimit::headers::HeaderOptions;
use crate::ratelimit::key::PeerIp;
use crate::ratelimit::limiter::{RequestLimiter, UnitCost};
use crate::ratelimit::service::RateLimit;

/// Rate limits every request of the service it wraps. Cheap to clone.
///
/// ```no_run
/// use aeturnis_tower::ratelimit::{ClientIp, PeerIp, RateLimitLayer};
/// use aeturnis_ratelimit::{Preset, RateLimiter, RateLimitConfig, Redis, RedisConfig};
/// use axum::{routing::post, Router};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = Redis::connect(RedisConfig::from_env()?).await?;
/// let app: Router = Router::new()
///     // one line per route: the auth preset per client IP
///     .route("/login", post(|| async { "welcome" }))
///     .route_layer(RateLimitLayer::preset(&redis, Preset::Auth)?)
///     // behind a proxy in 10.0.0.0/8: the client is found in X-Forwarded-For
///     .layer(RateLimitLayer::new(
///         RateLimiter::new(redis.clone(), RateLimitConfig::from_env(Preset::Api)?)?,
///         ClientIp::new(["10.0.0.0/8"])?,
///     ));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer<K, C = UnitCost> {
    limiter: RequestLimiter<K, C>,
    headers: HeaderOptions,
}

impl<K> RateLimitLayer<K, UnitCost> {
    /// One limiter, keyed by `key`.
    pub fn new(limiter: RateLimiter, key: K) -> Self {
        RateLimitLayer::from_limiter(RequestLimiter::new(limiter, key))
    }

    /// Several limiters that must all admit each request (a denial refunds
    /// the others). None is [`Error::NoLimiter`](crate::Error::NoLimiter).
    pub fn all(limiters: impl IntoIterator<Item = RateLimiter>, key: K) -> crate::Result<Self> {
        Ok(RateLimitLayer::from_limiter(RequestLimiter::all(
            limiters, key,
        )?))
    }
}

impl RateLimitLayer<PeerIp, UnitCost> {
    /// A preset (`auth`, `chat`, `combat`, `movement`, `api`) read from its
    /// `RATE_LIMIT_*` variables, per peer IP: one line per route with
    /// axum's `route_layer`. Key on something else with
    /// [`with_key`](Self::with_key).
    pub fn preset(redis: &Redis, preset: Preset) -> crate::Result<Self> {
        let config = preset.config_from_env().map_err(LayerError::new)?;
        let limiter = RateLimiter::new(redis.clone(), config).map_err(LayerError::new)?;
        Ok(RateLimitLayer::new(limiter, PeerIp::default()))
    }
}

impl<K, C> RateLimitLayer<K, C> {
    /// The layer over an already built [`RequestLimiter`].
    pub fn from_limiter(limiter: RequestLimiter<K, C>) -> Self {
        RateLimitLayer {
            limiter,
            headers: HeaderOptions::default(),
        }
    }

    /// Keys requests with `key` instead.
    pub fn with_key<K2>(self, key: K2) -> RateLimitLayer<K2, C> {
        RateLimitLayer {
            limiter: self.limiter.with_key(key),
            headers: self.headers,
        }
    }

    /// Charges each request what `cost` says (`Fn(&Request<B>) -> NonZeroU32`).
    pub fn with_cost<C2>(self, cost: C2) -> RateLimitLayer<K, C2> {
        RateLimitLayer {
            limiter: self.limiter.with_cost(cost),
            headers: self.headers,
        }
    }

    /// Whether admitted responses carry the headers. Default: `true`.
    #[must_use]
    pub fn with_headers_on_allowed(mut self, on: bool) -> Self {
        self.headers.on_allowed = on;
        self
    }

    /// Whether responses also carry the legacy `X-RateLimit-*` headers.
    /// Default: `false`.
    #[must_use]
    pub fn with_legacy_headers(mut self, on: bool) -> Self {
        self.headers.legacy = on;
        self
    }

    /// The header options.
    pub fn header_options(&self) -> HeaderOptions {
        self.headers
    }
}

impl<S, K: Clone, C: Clone> Layer<S> for RateLimitLayer<K, C> {
    type Service = RateLimit<S, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            headers: self.headers,
        }
    }
}
