//! The answer of a check, as data.

use std::time::Duration;

/// Who made a [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecisionSource {
    /// The limiter script in Redis.
    Redis,
    /// The key's user or IP is whitelisted; Redis was not asked.
    Whitelist,
    /// The local deny cache knew the key was blocked; Redis was not asked.
    DenyCache,
    /// Redis was unavailable and the policy is fail-open.
    FailOpen,
    /// Redis was unavailable and the policy is fail-closed.
    FailClosed,
    /// Redis was unavailable and the in-process fallback limiter decided.
    LocalFallback,
}

/// The outcome of a check: allowed or not, and the numbers a client needs
/// (`RateLimit-*` and `Retry-After` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request may proceed. Always `true` in shadow mode.
    pub allowed: bool,
    /// The quota: the limit (for GCRA, the burst).
    pub limit: u32,
    /// Units left right now (after this request, if it was admitted).
    pub remaining: u32,
    /// Time until the key is back to its full quota (zero when it is).
    pub reset_after: Duration,
    /// For a denial: how long to wait before a request of the same cost can
    /// be admitted. `None` when allowed.
    pub retry_after: Option<Duration>,
    /// Who decided.
    pub source: DecisionSource,
    /// Shadow mode only: the limiter would have denied this request.
    pub shadowed: bool,
    /// The check was a re-sent request id that Redis had already admitted
    /// (sliding log); it was not counted again.
    pub replayed: bool,
}

impl Decision {
    /// Whether the request may proceed.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Whether the limiter judged the request over the limit (also true for
    /// a shadowed request that was let through).
    #[must_use]
    pub fn is_violation(&self) -> bool {
        !self.allowed || self.shadowed
    }

    pub(crate) fn allow(limit: u32, source: DecisionSource) -> Decision {
        Decision {
            allowed: true,
            limit,
            remaining: limit,
            reset_after: Duration::ZERO,
            retry_after: None,
            source,
            shadowed: false,
            replayed: false,
        }
    }

    pub(crate) fn deny(limit: u32, retry_after: Duration, source: DecisionSource) -> Decision {
        Decision {
            allowed: false,
            limit,
            remaining: 0,
            reset_after: retry_after,
            retry_after: Some(retry_after),
            source,
            shadowed: false,
            replayed: false,
        }
    }
}
