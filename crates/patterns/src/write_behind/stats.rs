//! [`WriteBehindStats`]: what the workers of this process did, and what
//! the streams hold.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters of one [`WriteBehind`](super::WriteBehind) (this process) and
/// the streams' backlog (all processes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WriteBehindStats {
    /// Acknowledged `write` calls.
    pub writes: u64,
    /// Batches handed to the writer successfully.
    pub batches: u64,
    /// Entries written (after coalescing).
    pub written: u64,
    /// Entries dropped by coalescing (a later write of the key in the same
    /// batch won).
    pub coalesced: u64,
    /// Failed `write_batch` calls that were retried.
    pub retries: u64,
    /// Batches that failed `max_attempts` times with more than one entry,
    /// then written entry by entry to find the failing ones.
    pub split_batches: u64,
    /// Entries moved to the dead-letter stream.
    pub dead_letters: u64,
    /// Entries taken over from another consumer (`XAUTOCLAIM`).
    pub claimed: u64,
    /// Entries in the streams not yet written (`XLEN`; written entries are
    /// deleted), all processes.
    pub lag: u64,
    /// Entries delivered to some worker and not yet acknowledged
    /// (`XPENDING`), all processes.
    pub pending: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) writes: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) split_batches: AtomicU64,
    pub(crate) dead_letters: AtomicU64,
    pub(crate) claimed: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self, lag: u64, pending: u64) -> WriteBehindStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WriteBehindStats {
            writes: get(&self.writes),
            batches: get(&self.batches),
            written: get(&self.written),
            coalesced: get(&self.coalesced),
            retries: get(&self.retries),
            split_batches: get(&self.split_batches),
            dead_letters: get(&self.dead_letters),
            claimed: get(&self.claimed),
            lag,
            pending,
        }
    }
}
