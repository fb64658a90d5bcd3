//! [`Snapshot`]: everything the live dashboard shows, in one cheap,
//! serialisable read ([`AppState::snapshot`]).
//!
//! One call costs a `PING` and an `INFO` (Redis latency and memory), the
//! session counters (one round trip), the write-behind backlog (`XLEN` and
//! `XPENDING` per stream, when write-behind runs) and the presence sets
//! (one `ZCOUNT`-like read per zone, when presence runs); every other
//! figure is an in-process counter. Once a second per dashboard is fine.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::state::AppState;

/// What the dashboard shows at one instant. Counters are totals since the
/// process (or, for sessions, the Redis counters) started: the page turns
/// them into rates by differencing two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// When it was taken, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Redis round trip and memory.
    pub redis: RedisSnapshot,
    /// The cache's reads and operations.
    pub cache: CacheSnapshot,
    /// Sessions, when the counters could be read.
    pub sessions: Option<SessionsSnapshot>,
    /// One entry per rate-limit preset, in a fixed order.
    pub limiters: Vec<LimiterSnapshot>,
    /// The trade locks.
    pub locks: LockSnapshot,
    /// Movement write-behind, when it runs and its backlog could be read.
    pub write_behind: Option<WriteBehindSnapshot>,
    /// Online players per zone (WebSocket presence).
    pub zones: Vec<ZoneSnapshot>,
}

/// Redis as the client sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RedisSnapshot {
    /// `PING` answered.
    pub healthy: bool,
    /// `PING` round trip in milliseconds, when it answered.
    pub latency_ms: Option<f64>,
    /// `used_memory` in bytes, when `INFO` answered.
    pub used_memory: Option<u64>,
}

/// The cache's counters: the plain cache's reads plus the cache-aside
/// reads of profiles and guilds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CacheSnapshot {
    /// Reads answered by a fresh entry.
    pub hits: u64,
    /// Reads answered by a stale entry while it refreshed.
    pub stale: u64,
    /// Reads that found nothing (and loaded from SQLite).
    pub misses: u64,
    /// `(hits + stale) / (hits + stale + misses)`, when anything was read.
    pub hit_rate: Option<f64>,
    /// Cache operations of every kind.
    pub ops: u64,
    /// Cache operations that failed.
    pub errors: u64,
}

/// The session counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SessionsSnapshot {
    /// Live sessions.
    pub active: u64,
    /// Distinct users (HyperLogLog estimate).
    pub unique_users: u64,
}

/// One rate-limit preset's decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LimiterSnapshot {
    /// The preset (`auth`, `chat`, `combat`, `movement`, `api`).
    pub preset: &'static str,
    /// Decisions made.
    pub checks: u64,
    /// Decisions that allowed the request.
    pub allowed: u64,
    /// Decisions over the limit.
    pub violations: u64,
}

/// The lock manager's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LockSnapshot {
    /// Acquisitions that succeeded.
    pub acquisitions: u64,
    /// Acquisitions that found the lock held and waited.
    pub waits: u64,
    /// Acquisitions that ended without the lock.
    pub failures: u64,
    /// Releases that handed the lock straight to a waiting acquisition
    /// (aeturnis-lock's `LockStats::handoffs`).
    pub hand_offs: u64,
}

/// The movement write-behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WriteBehindSnapshot {
    /// Acknowledged moves (this process).
    pub writes: u64,
    /// Moves written to SQLite after coalescing (this process).
    pub written: u64,
    /// Entries in the streams not yet written (all processes).
    pub lag: u64,
    /// Entries moved to the dead-letter stream (this process).
    pub dead_letters: u64,
}

/// Players online in one zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ZoneSnapshot {
    /// The zone's id.
    pub zone: String,
    /// Players whose presence heartbeat has not expired.
    pub online: u64,
}

impl AppState {
    /// Reads everything the dashboard shows. Never fails: a figure that
    /// cannot be read is `None` (and logged at debug level).
    pub async fn snapshot(&self) -> Snapshot {
        let health = self.redis().health().await;
        let cache = self.cache().stats();
        let (hits, stale, misses) = self.store().read_counts();
        let reads = hits + stale + misses;
        let sessions = match self.sessions().stats().await {
            Ok(s) => Some(SessionsSnapshot {
                active: s.active,
                unique_users: s.unique_users,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "snapshot: session stats");
                None
            }
        };
        let locks = self.locks().stats();
        Snapshot {
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            redis: RedisSnapshot {
                healthy: health.is_healthy(),
                latency_ms: health.latency.map(|d| d.as_secs_f64() * 1000.0),
                used_memory: health.used_memory,
            },
            cache: CacheSnapshot {
                hits,
                stale,
                misses,
                hit_rate: (reads > 0).then(|| (hits + stale) as f64 / reads as f64),
                ops: cache.total_ops(),
                errors: cache.total_errors(),
            },
            sessions,
            limiters: self
                .limits()
                .all()
                .into_iter()
                .map(|(preset, l)| {
                    let s = l.stats();
                    LimiterSnapshot {
                        preset,
                        checks: s.checks,
                        allowed: s.allowed,
                        violations: s.violations,
                    }
                })
                .collect(),
            locks: LockSnapshot {
                acquisitions: locks.acquired,
                waits: locks.waits,
                failures: locks.failed,
                hand_offs: locks.handoffs,
            },
            write_behind: match self.store().moves().stats().await {
                Ok(w) => Some(WriteBehindSnapshot {
                    writes: w.writes,
                    written: w.written,
                    lag: w.lag,
                    dead_letters: w.dead_letters,
                }),
                Err(e) => {
                    tracing::debug!(error = %e, "snapshot: write-behind stats");
                    None
                }
            },
            zones: crate::realtime::online(self)
                .await
                .into_iter()
                .map(|(zone, online)| ZoneSnapshot { zone, online })
                .collect(),
        }
    }
}
