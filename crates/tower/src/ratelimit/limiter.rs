//! [`RequestLimiter`]: the protocol-agnostic core (a key extractor, a cost
//! function and one or more limiters that must all pass) and its
//! [`Verdict`].

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aeturnis_ratelimit::{check_all, Decision, DecisionSource, RateLimiter};
use http::{HeaderMap, StatusCode};

use crate::error::{KeyError, LayerError};
use crate::problem::Problem;
use crate::ratelimit::headers;
use crate::ratelimit::key::KeyExtractor;

/// How many units a request of type `R` costs. Implemented by [`UnitCost`]
/// and by any `Fn(&R) -> NonZeroU32` closure.
pub trait Cost<R>: Clone + Send + Sync + 'static {
    /// The cost of `request`.
    fn cost(&self, request: &R) -> NonZeroU32;
}

/// Every request costs one unit. Default.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitCost;

impl<R> Cost<R> for UnitCost {
    fn cost(&self, _: &R) -> NonZeroU32 {
        NonZeroU32::MIN
    }
}

impl<R, F> Cost<R> for F
where
    F: Fn(&R) -> NonZeroU32 + Clone + Send + Sync + 'static,
{
    fn cost(&self, request: &R) -> NonZeroU32 {
        self(request)
    }
}

/// The outcome of a check: allowed or not, the decision that matters to
/// the client, and every limiter's own decision.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Verdict {
    /// Whether every limiter admitted the request.
    pub allowed: bool,
    /// The decision reported to the client: the denial with the longest
    /// wait, or (admitted) the one with the fewest units left.
    pub decision: Decision,
    /// Which limiter made [`decision`](Self::decision).
    pub limiter: String,
    /// Each limiter's decision, in the order the limiters were given.
    pub decisions: Vec<Decision>,
    limiters: Arc<[RateLimiter]>,
}

impl Verdict {
    /// A denial because Redis is down and the limiter fails closed: HTTP
    /// answers 503, not 429.
    #[must_use]
    pub fn is_fail_closed(&self) -> bool {
        !self.allowed && self.decision.source == DecisionSource::FailClosed
    }

    /// How long to wait before retrying (denials only).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        (!self.allowed).then(|| {
            self.decision
                .retry_after
                .unwrap_or(self.decision.reset_after)
        })
    }

    /// Writes `RateLimit-Policy` and `RateLimit`
    /// (draft-ietf-httpapi-ratelimit-headers-11), and with `legacy` the
    /// `X-RateLimit-*` headers.
    pub fn write_headers(&self, headers: &mut HeaderMap, legacy: bool) {
        headers::write(
            headers,
            &self.limiters,
            &self.decisions,
            &self.decision,
            legacy,
        );
    }

    /// The denial as a problem: 429 (or 503 when failing closed) with
    /// `Retry-After`; `None` when allowed.
    #[must_use]
    pub fn problem(&self) -> Option<Problem> {
        let wait = self.retry_after()?;
        let problem = if self.is_fail_closed() {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("rate limit `{}` cannot be checked now", self.limiter),
            )
        } else {
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("rate limit `{}` exceeded", self.limiter),
            )
            .with("limit", self.decision.limit)
            .with("remaining", self.decision.remaining)
        };
        Some(
            problem
                .with("limiter", self.limiter.as_str())
                .with_retry_after(wait),
        )
    }
}

/// Why a check gave no verdict.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The request has no key (see [`KeyError`] for each status).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The limiter failed: a cost above its maximum (400), or Redis down
    /// under [`FailurePolicy::Propagate`](aeturnis_ratelimit::FailurePolicy::Propagate) (503).
    #[error(transparent)]
    Limiter(LayerError),
}

impl LimitError {
    /// The HTTP answer: by the key error's documented status, or by the
    /// limiter error's class.
    #[must_use]
    pub fn problem(&self) -> Problem {
        match self {
            LimitError::Key(KeyError::NoSession) => {
                Problem::new(StatusCode::UNAUTHORIZED, KeyError::NoSession.to_string()).with_header(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                )
            }
            LimitError::Key(KeyError::Layer(e)) | LimitError::Limiter(e) => Problem::from_class(e),
            LimitError::Key(e @ KeyError::NoPeerAddress) => Problem::from_class(e),
            LimitError::Key(e) => Problem::new(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
}

/// A check of any request type `R`: the key from `K`, the cost from `C`,
/// then one limiter or a composition that must all pass
/// ([`check_all`]: a denial refunds the others).
///
/// This is the protocol-agnostic form: the HTTP layer is built on it, and
/// a WebSocket loop or a gRPC service calls [`check`](Self::check) itself
/// (see the [module docs](super) for a WebSocket message limiter).
#[derive(Debug, Clone)]
pub struct RequestLimiter<K, C = UnitCost> {
    limiters: Arc<[RateLimiter]>,
    key: K,
    cost: C,
}

impl<K> RequestLimiter<K, UnitCost> {
    /// One limiter, keyed by `key`, each request one unit.
    pub fn new(limiter: RateLimiter, key: K) -> Self {
        RequestLimiter {
            limiters: Arc::from([limiter]),
            key,
            cost: UnitCost,
        }
    }

    /// Several limiters that must all admit the request. None is
    /// [`Error::NoLimiter`](crate::Error::NoLimiter).
    pub fn all(limiters: impl IntoIterator<Item = RateLimiter>, key: K) -> crate::Result<Self> {
        let limiters: Arc<[RateLimiter]> = limiters.into_iter().collect();
        if limiters.is_empty() {
            return Err(crate::Error::NoLimiter);
        }
        Ok(RequestLimiter {
            limiters,
            key,
            cost: UnitCost,
        })
    }
}

impl<K, C> RequestLimiter<K, C> {
    /// Charges each request what `cost` says.
    pub fn with_cost<C2>(self, cost: C2) -> RequestLimiter<K, C2> {
        RequestLimiter {
            limiters: self.limiters,
            key: self.key,
            cost,
        }
    }

    /// Keys requests with `key` instead.
    pub fn with_key<K2>(self, key: K2) -> RequestLimiter<K2, C> {
        RequestLimiter {
            limiters: self.limiters,
            key,
            cost: self.cost,
        }
    }

    /// The limiters, in order.
    #[must_use]
    pub fn limiters(&self) -> &[RateLimiter] {
        &self.limiters
    }

    /// Checks `request`. The returned future owns what it needs (`'static`),
    /// so `request` may be moved on before it is awaited.
    pub fn check<R>(&self, request: &R) -> impl Future<Output = Result<Verdict, LimitError>> + Send
    where
        K: KeyExtractor<R>,
        C: Cost<R>,
    {
        let key = self.key.extract(request);
        let cost = self.cost.cost(request);
        let limiters = Arc::clone(&self.limiters);
        async move {
            let key = key.resolve().await?;
            let (allowed, decisions) = match &*limiters {
                [one] => {
                    let d = one
                        .check_cost(&key, cost)
                        .await
                        .map_err(|e| LimitError::Limiter(LayerError::new(e)))?;
                    (d.allowed, vec![d])
                }
                many => {
                    let pairs: Vec<_> = many.iter().map(|l| (l, &key)).collect();
                    let composed = check_all(&pairs, cost)
                        .await
                        .map_err(|e| LimitError::Limiter(LayerError::new(e)))?;
                    let mut decisions = composed.decisions;
                    if !composed.allowed {
                        refunded(&mut decisions, cost);
                    }
                    (composed.allowed, decisions)
                }
            };
            let index = reported(allowed, &decisions);
            let verdict = Verdict {
                allowed,
                decision: decisions[index],
                limiter: limiters[index].config().name.clone(),
                decisions,
                limiters,
            };
            #[cfg(feature = "metrics")]
            crate::metrics::record_verdict(&verdict);
            Ok(verdict)
        }
    }
}

/// A composed denial refunded every limiter that admitted the request
/// ([`check_all`]): their headers show the units as they are after the
/// refund. (A refund that could not reach Redis is logged by the limiter
/// and the unit stays taken; the header is then one unit optimistic.)
fn refunded(decisions: &mut [Decision], cost: NonZeroU32) {
    for d in decisions.iter_mut() {
        let consumed = matches!(
            d.source,
            DecisionSource::Redis | DecisionSource::LocalFallback
        );
        if d.allowed && !d.shadowed && consumed {
            d.remaining = d.remaining.saturating_add(cost.get()).min(d.limit);
        }
    }
}

/// The index of the decision that matters: the denial with the longest
/// wait, or the admission with the fewest units left.
fn reported(allowed: bool, decisions: &[Decision]) -> usize {
    let mut best = 0;
    for (i, d) in decisions.iter().enumerate() {
        let b = &decisions[best];
        let better = if allowed {
            d.remaining < b.remaining
        } else {
            !d.allowed && (b.allowed || d.retry_after > b.retry_after)
        };
        if better {
            best = i;
        }
    }
    best
}
