//! The answer of a check, as data.

use std::time::Duration;

use aeturnis_redis_core::duration::ceil_millis;
use serde::{Serialize, Serializer};

/// Who made a [`Decision`]. Serialises as `"redis"`, `"whitelist"`,
/// `"deny_cache"`, `"fail_open"`, `"fail_closed"` or `"local_fallback"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
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
///
/// Serialises with its durations in whole milliseconds, rounded up
/// (`reset_after_ms`, `retry_after_ms`, `null` when allowed), so a client
/// that waits that long is never early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[must_use = "a dropped decision means the rate-limit check was ignored: test `allowed`"]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request may proceed. Always `true` in shadow mode.
    pub allowed: bool,
    /// The quota: the limit (for GCRA, the burst).
    pub limit: u32,
    /// Units left right now (after this request, if it was admitted).
    pub remaining: u32,
    /// Time until the key is back to its full quota (zero when it is).
    #[serde(rename = "reset_after_ms", serialize_with = "millis")]
    pub reset_after: Duration,
    /// For a denial: how long to wait before a request of the same cost can
    /// be admitted. `None` when allowed.
    #[serde(rename = "retry_after_ms", serialize_with = "opt_millis")]
    pub retry_after: Option<Duration>,
    /// Who decided.
    pub source: DecisionSource,
    /// Shadow mode only: the limiter would have denied this request.
    pub shadowed: bool,
    /// The check was a re-sent request id that Redis had already admitted
    /// (sliding log); it was not counted again.
    pub replayed: bool,
}

/// A duration as whole milliseconds, rounded up (the core's rule).
pub(crate) fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(ceil_millis(*d))
}

#[allow(clippy::ref_option)] // the signature serde's `serialize_with` calls
fn opt_millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&ceil_millis(*d)),
        None => s.serialize_none(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_serialise_durations_as_rounded_up_milliseconds() {
        let mut d = Decision::deny(10, Duration::from_micros(1500), DecisionSource::DenyCache);
        d.reset_after = Duration::from_secs(2);
        let json = serde_json::to_value(d).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "allowed": false,
                "limit": 10,
                "remaining": 0,
                "reset_after_ms": 2000,
                "retry_after_ms": 2,
                "source": "deny_cache",
                "shadowed": false,
                "replayed": false,
            })
        );
        let allowed = Decision::allow(5, DecisionSource::Redis);
        let json = serde_json::to_value(allowed).unwrap();
        assert_eq!(json["retry_after_ms"], serde_json::Value::Null);
        assert_eq!(json["reset_after_ms"], 0);
        assert_eq!(json["source"], "redis");
    }
}
