//! [`Sample`]: one reading of every layer's figures, what the dashboard
//! draws once a second. Its JSON has the shape of the demo's `Snapshot`
//! (branch wt-demo), so the page reads either: once that lands, the feed
//! can send `AppState::snapshot` instead and this file goes.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::state::AppState;

/// One reading of the figures the dashboard shows. Counters are totals
/// since the server started; the page turns them into rates.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Sample {
    /// When the sample was taken, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The Redis connection: PING latency and memory.
    pub redis: RedisSample,
    /// The cache's reads and operations.
    pub cache: CacheSample,
    /// Live sessions (`None` when the session counters could not be read).
    pub sessions: Option<SessionSample>,
    /// Every rate-limit preset, in [`Limiters::all`](crate::Limiters::all) order.
    pub limiters: Vec<LimiterSample>,
    /// The trade locks' counters.
    pub locks: LockSample,
    /// Write-behind lag and dead letters: `None` here, the demo has no
    /// write-behind queue yet (the page hides the panel).
    pub write_behind: Option<serde_json::Value>,
    /// Online players per zone: empty here, the demo has no presence yet
    /// (the page hides the panel).
    pub zones: Vec<serde_json::Value>,
}

/// The lock manager's counters.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct LockSample {
    /// Acquisitions that succeeded.
    pub acquisitions: u64,
    /// Acquisitions that found the lock held and waited.
    pub waits: u64,
    /// Acquisitions that ended without the lock.
    pub failures: u64,
    /// Hand-offs between local waiters: `None`, `aeturnis_lock::LockStats`
    /// does not count them.
    pub hand_offs: Option<u64>,
}

/// The Redis connection's health.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RedisSample {
    /// Whether PING answered.
    pub healthy: bool,
    /// PING round trip in milliseconds, when it answered.
    pub latency_ms: Option<f64>,
    /// `used_memory` in bytes, when `INFO` answered.
    pub used_memory: Option<u64>,
}

/// The cache's counters.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CacheSample {
    /// Keys read that existed.
    pub hits: u64,
    /// Reads answered by a stale entry (0: the demo has no
    /// stale-while-revalidate yet).
    pub stale: u64,
    /// Keys read that did not exist.
    pub misses: u64,
    /// `hits / (hits + misses)`, once anything was read.
    pub hit_rate: Option<f64>,
    /// Cache operations of every kind.
    pub ops: u64,
    /// Cache operations that failed.
    pub errors: u64,
}

/// The session manager's live figures.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SessionSample {
    /// Live sessions.
    pub active: u64,
    /// Distinct users (HyperLogLog estimate).
    pub unique_users: u64,
}

/// One rate-limit preset's decisions.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct LimiterSample {
    /// The preset (`auth`, `chat`, `combat`, `movement`, `api`).
    pub preset: &'static str,
    /// Checks made.
    pub checks: u64,
    /// Checks allowed.
    pub allowed: u64,
    /// Checks over the limit.
    pub violations: u64,
}

impl Sample {
    /// Reads every figure: one PING and one `INFO` (through
    /// [`Redis::health`](aeturnis_redis_core::Redis::health)) and the session
    /// counters; the rest is in memory.
    pub async fn take(state: &AppState) -> Sample {
        let health = state.redis().health().await;
        let cache = state.cache().stats();
        let sessions = match state.sessions().stats().await {
            Ok(s) => Some(SessionSample {
                active: s.active,
                unique_users: s.unique_users,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "session stats for the dashboard");
                None
            }
        };
        let limiters = state
            .limits()
            .all()
            .into_iter()
            .map(|(preset, limiter)| {
                let s = limiter.stats();
                LimiterSample {
                    preset,
                    checks: s.checks,
                    allowed: s.allowed,
                    violations: s.violations,
                }
            })
            .collect();
        Sample {
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            redis: RedisSample {
                healthy: health.is_healthy(),
                latency_ms: health.latency.map(|d| d.as_secs_f64() * 1000.0),
                used_memory: health.used_memory,
            },
            cache: CacheSample {
                hits: cache.hits,
                stale: 0,
                misses: cache.misses,
                hit_rate: cache.hit_rate(),
                ops: cache.total_ops(),
                errors: cache.total_errors(),
            },
            sessions,
            limiters,
            locks: {
                let locks = state.locks().stats();
                LockSample {
                    acquisitions: locks.acquired,
                    waits: locks.waits,
                    failures: locks.failed,
                    hand_offs: None,
                }
            },
            write_behind: None,
            zones: Vec::new(),
        }
    }
}
