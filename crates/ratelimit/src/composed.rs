//! Several limits that must all pass.

use std::num::NonZeroU32;

use futures::future::join_all;

use crate::decision::{Decision, DecisionSource};
use crate::error::Result;
use crate::key::{LimitKey, RequestId};
use crate::limiter::RateLimiter;

/// The outcome of [`check_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComposedDecision {
    /// Whether every limiter admitted the request.
    pub allowed: bool,
    /// Each limiter's own decision, in the order given.
    pub decisions: Vec<Decision>,
}

impl ComposedDecision {
    /// The decision that matters to the client: the denial with the longest
    /// retry-after, or (all allowed) the one with the fewest units left.
    #[must_use]
    pub fn decision(&self) -> Option<&Decision> {
        if self.allowed {
            self.decisions.iter().min_by_key(|d| d.remaining)
        } else {
            self.decisions
                .iter()
                .filter(|d| !d.allowed)
                .max_by_key(|d| d.retry_after)
        }
    }

    /// The positions of the limiters that denied.
    pub fn denied_by(&self) -> impl Iterator<Item = usize> + '_ {
        self.decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.allowed)
            .map(|(i, _)| i)
    }
}

/// Checks every `(limiter, key)` pair; the request passes only if all admit
/// it.
///
/// **A request rejected by one limiter does not use up the others.** Keys of
/// different limiters live in different cluster slots, so no single script
/// can check them all atomically. Instead every check runs at once (one
/// pipelined round trip); if any denies, each limiter that admitted the
/// request is refunded by request id (a second, pipelined round trip, only
/// on denial). Between the two round trips the refunded units are briefly
/// taken, so a concurrent request may see one limit a little lower than it
/// will be a moment later; it never sees it higher. A refund that cannot
/// reach Redis is logged and that unit stays consumed (the conservative
/// direction). Whitelisted, fail-open and fail-closed decisions consumed
/// nothing and get no refund; local-fallback decisions are refunded locally.
///
/// A check that returns an error refunds the others and returns the error.
pub async fn check_all(
    checks: &[(&RateLimiter, &LimitKey)],
    cost: NonZeroU32,
) -> Result<ComposedDecision> {
    // only the sliding log refunds by id; the counters need none
    let ids: Vec<Option<RequestId>> = checks
        .iter()
        .map(|(limiter, _)| limiter.sends_id().then(RequestId::new))
        .collect();
    let results = join_all(
        checks
            .iter()
            .zip(&ids)
            .map(|((limiter, key), id)| limiter.check_inner(key, cost, *id)),
    )
    .await;
    let allowed = results.iter().all(|r| matches!(r, Ok(d) if d.allowed));
    if !allowed {
        let refunds = checks
            .iter()
            .zip(&ids)
            .zip(&results)
            .filter_map(|(((limiter, key), id), r)| match r {
                Ok(d) if d.allowed && !d.shadowed => Some((limiter, key, id, d.source)),
                _ => None,
            })
            .map(|(limiter, key, id, source)| async move {
                match source {
                    DecisionSource::Redis => {
                        if let Err(e) = limiter.refund_inner(key, cost, *id).await {
                            tracing::warn!(limiter = %limiter.config().name, error = %e,
                                "could not refund a composed check; the unit stays consumed");
                        }
                    }
                    DecisionSource::LocalFallback => limiter.refund_local(key, cost),
                    _ => {}
                }
            });
        join_all(refunds).await;
    }
    let decisions = results.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(ComposedDecision { allowed, decisions })
}
