//! What a limiter does when Redis is unavailable.

/// The behaviour when Redis cannot be reached: an error the core classes as
/// unavailable (a dropped or refused connection, a command timeout, a
/// loading, busy or failing-over server; see
/// [`Classify::is_unavailable`](crate::Classify::is_unavailable)).
/// Other errors (bad input, a script error) are always returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit the request ([`DecisionSource::FailOpen`](crate::DecisionSource::FailOpen)).
    FailOpen,
    /// Deny the request, with
    /// [`RateLimitConfig::unavailable_retry_after`](crate::RateLimitConfig::unavailable_retry_after)
    /// as its retry-after ([`DecisionSource::FailClosed`](crate::DecisionSource::FailClosed)).
    FailClosed,
    /// Decide with an in-process limiter that grants the same quota per
    /// instance (a fixed window per key, anchored at the key's first request
    /// on this instance, timed by the injected [`Clock`](crate::Clock)).
    /// With N instances the cluster-wide limit is at most N × the quota
    /// while Redis is down.
    #[default]
    LocalFallback,
    /// Return the error to the caller.
    Propagate,
}
