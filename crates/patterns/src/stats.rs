//! Counters of the cache-aside reads, and their snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A snapshot of [`CacheAside`](crate::CacheAside)'s counters since it was
/// built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CacheAsideStats {
    /// Reads served a fresh entry from Redis.
    pub hits: u64,
    /// Reads served a cached `None`.
    pub negative_hits: u64,
    /// Reads served a stale entry (after the soft TTL) while it refreshed.
    pub stale_served: u64,
    /// Reads that found nothing and loaded (or waited on a load).
    pub misses: u64,
    /// Loader calls (synchronous and background).
    pub loads: u64,
    /// Loader calls that failed.
    pub load_errors: u64,
    /// Background refreshes started early by XFetch, before the soft TTL.
    pub early_refreshes: u64,
    /// Background refreshes started after the soft TTL (one per key at a
    /// time in a process, however many stale reads asked).
    pub stale_refreshes: u64,
    /// Failed refreshes that left the stale value in place (stale-if-error).
    pub stale_on_error: u64,
    /// Loaded values not stored because the key changed meanwhile (an
    /// invalidation or a newer write): the race this crate prevents.
    pub fills_refused: u64,
    /// Reads that found another process's lease and loaded without caching
    /// (no lease wait, or the wait ran out).
    pub lease_contended: u64,
    /// Reads that found another process's lease and were served its value.
    pub lease_waited: u64,
    /// Reads that Redis failed and that loaded from the source uncached
    /// ([`OnRedisError::Bypass`](crate::OnRedisError::Bypass)).
    pub bypassed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) early_refreshes: AtomicU64,
    pub(crate) stale_refreshes: AtomicU64,
    pub(crate) stale_on_error: AtomicU64,
    pub(crate) fills_refused: AtomicU64,
    pub(crate) lease_contended: AtomicU64,
    pub(crate) lease_waited: AtomicU64,
    pub(crate) bypassed: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CacheAsideStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheAsideStats {
            hits: get(&self.hits),
            negative_hits: get(&self.negative_hits),
            stale_served: get(&self.stale_served),
            misses: get(&self.misses),
            loads: get(&self.loads),
            load_errors: get(&self.load_errors),
            early_refreshes: get(&self.early_refreshes),
            stale_refreshes: get(&self.stale_refreshes),
            stale_on_error: get(&self.stale_on_error),
            fills_refused: get(&self.fills_refused),
            lease_contended: get(&self.lease_contended),
            lease_waited: get(&self.lease_waited),
            bypassed: get(&self.bypassed),
        }
    }
}
