//! Metrics through the [`metrics`](https://docs.rs/metrics) facade: install
//! any recorder (Prometheus, StatsD, ...) and these names appear. The names
//! are stable.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `aeturnis_ratelimit_checks_total` | counter | `limiter`, `outcome` (`allowed`, `denied`, `fail_closed`) | every check of a `RateLimitLayer` / `RequestLimiter` |
//! | `aeturnis_ratelimit_fallback_total` | counter | `limiter`, `source` (`fail_open`, `fail_closed`, `local_fallback`) | checks decided without Redis |
//! | `aeturnis_session_loads_total` | counter | `outcome` (`found`, `missing`) | lazy session loads of a `SessionLayer` |
//! | `aeturnis_ratelimit_violations` | gauge | `limiter` | a limiter's violations since start (`record_limiter_stats`) |
//! | `aeturnis_ratelimit_redis_unavailable` | gauge | `limiter` | a limiter's checks decided by its failure policy |
//! | `aeturnis_sessions_active` | gauge | | active sessions (`record_session_stats`) |
//! | `aeturnis_sessions_unique_users` | gauge | | users with a session |
//! | `aeturnis_sessions_average_duration_seconds` | gauge | | average length of ended sessions |
//!
//! The gauges are snapshots: call the `record_*` functions where the
//! exporter is scraped (the demo does it in its `/metrics` handler).

#[cfg(feature = "ratelimit")]
use aeturnis_ratelimit::DecisionSource;

/// `aeturnis_ratelimit_checks_total`.
pub const RATELIMIT_CHECKS: &str = "aeturnis_ratelimit_checks_total";
/// `aeturnis_ratelimit_fallback_total`.
pub const RATELIMIT_FALLBACK: &str = "aeturnis_ratelimit_fallback_total";
/// `aeturnis_session_loads_total`.
pub const SESSION_LOADS: &str = "aeturnis_session_loads_total";
/// `aeturnis_ratelimit_violations`.
pub const RATELIMIT_VIOLATIONS: &str = "aeturnis_ratelimit_violations";
/// `aeturnis_ratelimit_redis_unavailable`.
pub const RATELIMIT_UNAVAILABLE: &str = "aeturnis_ratelimit_redis_unavailable";
/// `aeturnis_sessions_active`.
pub const SESSIONS_ACTIVE: &str = "aeturnis_sessions_active";
/// `aeturnis_sessions_unique_users`.
pub const SESSIONS_UNIQUE_USERS: &str = "aeturnis_sessions_unique_users";
/// `aeturnis_sessions_average_duration_seconds`.
pub const SESSIONS_AVERAGE_DURATION: &str = "aeturnis_sessions_average_duration_seconds";

#[cfg(feature = "ratelimit")]
pub(crate) fn record_verdict(verdict: &crate::ratelimit::Verdict) {
    let outcome = if verdict.allowed {
        "allowed"
    } else if verdict.is_fail_closed() {
        "fail_closed"
    } else {
        "denied"
    };
    metrics::counter!(RATELIMIT_CHECKS, "limiter" => verdict.limiter.clone(), "outcome" => outcome)
        .increment(1);
    let source = match verdict.decision.source {
        DecisionSource::FailOpen => "fail_open",
        DecisionSource::FailClosed => "fail_closed",
        DecisionSource::LocalFallback => "local_fallback",
        _ => return,
    };
    metrics::counter!(RATELIMIT_FALLBACK, "limiter" => verdict.limiter.clone(), "source" => source)
        .increment(1);
}

#[cfg(feature = "session")]
pub(crate) fn record_session_load(found: bool) {
    let outcome = if found { "found" } else { "missing" };
    metrics::counter!(SESSION_LOADS, "outcome" => outcome).increment(1);
}

/// Sets the gauges of `limiter` from its stats.
#[cfg(feature = "ratelimit")]
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
pub fn record_limiter_stats(limiter: &aeturnis_ratelimit::RateLimiter) {
    let name = limiter.config().name.clone();
    let stats = limiter.stats();
    metrics::gauge!(RATELIMIT_VIOLATIONS, "limiter" => name.clone()).set(stats.violations as f64);
    metrics::gauge!(RATELIMIT_UNAVAILABLE, "limiter" => name).set(stats.redis_unavailable as f64);
}

/// Sets the session gauges from `stats`.
#[cfg(feature = "session")]
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
pub fn record_session_stats(stats: &aeturnis_session::SessionStats) {
    metrics::gauge!(SESSIONS_ACTIVE).set(stats.active as f64);
    metrics::gauge!(SESSIONS_UNIQUE_USERS).set(stats.unique_users as f64);
    if let Some(d) = stats.average_duration {
        metrics::gauge!(SESSIONS_AVERAGE_DURATION).set(d.as_secs_f64());
    }
}
