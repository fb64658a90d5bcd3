//! Per-limiter counters (the original's figures and a few more).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// A snapshot of a limiter's counters since it was created. Serialises
/// with `uptime` as whole milliseconds (`uptime_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RateLimitStats {
    /// Checks made.
    pub checks: u64,
    /// Checks allowed (including shadowed and whitelisted ones).
    pub allowed: u64,
    /// Checks judged over the limit (`totalViolations`), whether rejected or
    /// let through by shadow mode.
    pub violations: u64,
    /// Violations let through because the limiter is in shadow mode.
    pub shadow_violations: u64,
    /// Checks that skipped the limiter because of the whitelist.
    pub whitelisted: u64,
    /// Denials answered by the local deny cache without a round trip.
    pub deny_cache_hits: u64,
    /// Checks for which Redis was unavailable (the failure policy decided).
    pub redis_unavailable: u64,
    /// Checks per second since the limiter was created (`averageRequestRate`).
    pub average_request_rate: f64,
    /// Time since the limiter was created.
    #[serde(rename = "uptime_ms", serialize_with = "crate::decision::millis")]
    pub uptime: Duration,
}

#[derive(Debug)]
pub(crate) struct Counters {
    started: Instant,
    pub(crate) checks: AtomicU64,
    pub(crate) allowed: AtomicU64,
    pub(crate) violations: AtomicU64,
    pub(crate) shadow_violations: AtomicU64,
    pub(crate) whitelisted: AtomicU64,
    pub(crate) deny_cache_hits: AtomicU64,
    pub(crate) redis_unavailable: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            started: Instant::now(),
            checks: AtomicU64::new(0),
            allowed: AtomicU64::new(0),
            violations: AtomicU64::new(0),
            shadow_violations: AtomicU64::new(0),
            whitelisted: AtomicU64::new(0),
            deny_cache_hits: AtomicU64::new(0),
            redis_unavailable: AtomicU64::new(0),
        }
    }

    pub(crate) fn snapshot(&self) -> RateLimitStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let uptime = self.started.elapsed();
        let checks = get(&self.checks);
        #[allow(clippy::cast_precision_loss)] // a rate, not a count
        let average_request_rate = if uptime.is_zero() {
            0.0
        } else {
            checks as f64 / uptime.as_secs_f64()
        };
        RateLimitStats {
            checks,
            allowed: get(&self.allowed),
            violations: get(&self.violations),
            shadow_violations: get(&self.shadow_violations),
            whitelisted: get(&self.whitelisted),
            deny_cache_hits: get(&self.deny_cache_hits),
            redis_unavailable: get(&self.redis_unavailable),
            average_request_rate,
            uptime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_serialise_every_counter_and_the_uptime_in_milliseconds() {
        let counters = Counters::new();
        bump(&counters.checks);
        bump(&counters.checks);
        bump(&counters.allowed);
        bump(&counters.violations);
        let mut stats = counters.snapshot();
        stats.uptime = Duration::from_millis(1500);
        stats.average_request_rate = 2.5;
        let json = serde_json::to_value(stats).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "checks": 2,
                "allowed": 1,
                "violations": 1,
                "shadow_violations": 0,
                "whitelisted": 0,
                "deny_cache_hits": 0,
                "redis_unavailable": 0,
                "average_request_rate": 2.5,
                "uptime_ms": 1500,
            })
        );
    }
}
