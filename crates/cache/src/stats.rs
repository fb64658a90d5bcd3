//! In-process statistics: lock-free counters per operation kind.
//!
//! Each operation adds to a handful of relaxed atomics (count, errors, total
//! and maximum latency in microseconds; hits and misses for reads). A
//! [`CacheStats`] snapshot reads them without stopping writers, so figures
//! taken while operations run may be a few operations apart from each other.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};

/// The kinds of operation the statistics are kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// `get`, `get_raw`, `counter`.
    Get,
    /// `set` and its variants.
    Set,
    /// `delete`.
    Delete,
    /// `exists`.
    Exists,
    /// `ttl`, `expire`.
    Ttl,
    /// `mget`.
    GetMany,
    /// `mset`.
    SetMany,
    /// `incr`, `decr`.
    Counter,
    /// Redis-set operations (`members_add`, ...).
    Collection,
    /// List operations.
    List,
    /// Sorted-set and leaderboard operations.
    SortedSet,
    /// `delete_matching`, `count_matching`, `redis_stats`.
    Scan,
}

impl OpKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OpKind; 12] = [
        OpKind::Get,
        OpKind::Set,
        OpKind::Delete,
        OpKind::Exists,
        OpKind::Ttl,
        OpKind::GetMany,
        OpKind::SetMany,
        OpKind::Counter,
        OpKind::Collection,
        OpKind::List,
        OpKind::SortedSet,
        OpKind::Scan,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// A short lower-case name for logs and metrics.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Set => "set",
            OpKind::Delete => "delete",
            OpKind::Exists => "exists",
            OpKind::Ttl => "ttl",
            OpKind::GetMany => "mget",
            OpKind::SetMany => "mset",
            OpKind::Counter => "counter",
            OpKind::Collection => "set_ops",
            OpKind::List => "list",
            OpKind::SortedSet => "sorted_set",
            OpKind::Scan => "scan",
        }
    }
}

/// Serialised as its [`name`](OpKind::name).
impl Serialize for OpKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Default)]
struct Counters {
    count: AtomicU64,
    errors: AtomicU64,
    total_us: AtomicU64,
    max_us: AtomicU64,
}

/// The live counters. One per [`Cache`](crate::Cache), shared by its clones.
#[derive(Default)]
pub(crate) struct Stats {
    ops: [Counters; OpKind::ALL.len()],
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Stats {
    #[inline]
    pub(crate) fn record(&self, kind: OpKind, started: Instant, ok: bool) {
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let c = &self.ops[kind.index()];
        c.count.fetch_add(1, Relaxed);
        c.total_us.fetch_add(us, Relaxed);
        if us > c.max_us.load(Relaxed) {
            c.max_us.fetch_max(us, Relaxed);
        }
        if !ok {
            c.errors.fetch_add(1, Relaxed);
        }
    }

    #[inline]
    pub(crate) fn hit(&self, n: u64) {
        if n > 0 {
            self.hits.fetch_add(n, Relaxed);
        }
    }

    #[inline]
    pub(crate) fn miss(&self, n: u64) {
        if n > 0 {
            self.misses.fetch_add(n, Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let ops = OpKind::ALL
            .iter()
            .map(|&kind| {
                let c = &self.ops[kind.index()];
                OpStats {
                    kind,
                    count: c.count.load(Relaxed),
                    errors: c.errors.load(Relaxed),
                    total_latency: Duration::from_micros(c.total_us.load(Relaxed)),
                    max_latency: Duration::from_micros(c.max_us.load(Relaxed)),
                }
            })
            .collect();
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            ops,
        }
    }

    pub(crate) fn reset(&self) {
        for c in &self.ops {
            c.count.store(0, Relaxed);
            c.errors.store(0, Relaxed);
            c.total_us.store(0, Relaxed);
            c.max_us.store(0, Relaxed);
        }
        self.hits.store(0, Relaxed);
        self.misses.store(0, Relaxed);
    }
}

/// Figures for one operation kind. Serialised with the latencies in whole
/// microseconds (`total_latency_us`, `max_latency_us`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OpStats {
    /// Which operations.
    pub kind: OpKind,
    /// Calls, failed ones included.
    pub count: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Sum of call latencies (µs resolution).
    #[serde(rename = "total_latency_us", serialize_with = "micros")]
    pub total_latency: Duration,
    /// Slowest call.
    #[serde(rename = "max_latency_us", serialize_with = "micros")]
    pub max_latency: Duration,
}

impl OpStats {
    /// Mean call latency, when there were calls.
    #[must_use]
    pub fn mean_latency(&self) -> Option<Duration> {
        u32::try_from(self.count)
            .ok()
            .filter(|&n| n > 0)
            .map(|n| self.total_latency / n)
    }
}

fn micros<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A snapshot of a cache's statistics ([`Cache::stats`](crate::Cache::stats)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Keys read that existed (`get`, each key of `mget`).
    pub hits: u64,
    /// Keys read that did not exist.
    pub misses: u64,
    /// Per operation kind, in [`OpKind::ALL`] order.
    pub ops: Vec<OpStats>,
}

impl CacheStats {
    /// `hits / (hits + misses)`, when anything was read.
    #[must_use]
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }

    /// The figures for one kind.
    #[must_use]
    pub fn op(&self, kind: OpKind) -> Option<&OpStats> {
        self.ops.iter().find(|o| o.kind == kind)
    }

    /// Calls of every kind.
    #[must_use]
    pub fn total_ops(&self) -> u64 {
        self.ops.iter().map(|o| o.count).sum()
    }

    /// Failed calls of every kind.
    #[must_use]
    pub fn total_errors(&self) -> u64 {
        self.ops.iter().map(|o| o.errors).sum()
    }
}

/// Figures read from Redis on demand ([`Cache::redis_stats`](crate::Cache::redis_stats)):
/// the original system's `{totalKeys, memoryUsage}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RedisStats {
    /// Keys under the cache's namespace prefix, counted with `SCAN` on every
    /// primary.
    pub keys: u64,
    /// `used_memory` from `INFO memory`, summed over every primary (bytes).
    pub used_memory: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_count_and_compute_hit_rate() {
        let s = Stats::default();
        assert_eq!(s.snapshot().hit_rate(), None);
        let t = Instant::now();
        s.record(OpKind::Get, t, true);
        s.record(OpKind::Get, t, false);
        s.hit(3);
        s.miss(1);
        let snap = s.snapshot();
        assert_eq!(snap.hit_rate(), Some(0.75));
        let get = snap.op(OpKind::Get).unwrap();
        assert_eq!((get.count, get.errors), (2, 1));
        assert!(get.mean_latency().is_some());
        assert_eq!(snap.op(OpKind::Set).unwrap().mean_latency(), None);
        assert_eq!(snap.total_ops(), 2);
        s.reset();
        assert_eq!(s.snapshot().total_ops(), 0);
    }

    #[test]
    fn should_serialise_stats_with_names_and_microseconds() {
        let s = Stats::default();
        s.record(OpKind::Collection, Instant::now(), false);
        s.hit(2);
        let json = serde_json::to_value(s.snapshot()).unwrap();
        assert_eq!(json["hits"], 2);
        assert_eq!(json["misses"], 0);
        let ops = json["ops"].as_array().unwrap();
        assert_eq!(ops.len(), OpKind::ALL.len());
        let set_ops = &ops[OpKind::Collection.index()];
        assert_eq!(set_ops["kind"], "set_ops");
        assert_eq!(
            (set_ops["count"].as_u64(), set_ops["errors"].as_u64()),
            (Some(1), Some(1))
        );
        assert!(set_ops["total_latency_us"].is_u64() && set_ops["max_latency_us"].is_u64());
        let redis = serde_json::to_value(RedisStats {
            keys: 3,
            used_memory: 9,
        })
        .unwrap();
        assert_eq!(redis, serde_json::json!({ "keys": 3, "used_memory": 9 }));
    }
}
