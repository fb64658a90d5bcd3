//! Counters every manager keeps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Serialize, Serializer};

/// A snapshot of a manager's counters since it was created.
///
/// Serialises with the durations as `total_wait_ms` and `total_hold_ms`,
/// floats of milliseconds (as the core's `Health` does for its latency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LockStats {
    /// Acquisitions that succeeded.
    pub acquired: u64,
    /// Acquisitions that ended without the lock (contended, timed out, or
    /// failed on Redis).
    pub failed: u64,
    /// Acquisitions that found the lock held and had to wait.
    pub waits: u64,
    /// Total time spent waiting, over all waits.
    #[serde(rename = "total_wait_ms", serialize_with = "serialize_ms")]
    pub total_wait: Duration,
    /// Successful extensions (by hand or by the watchdog).
    pub extends: u64,
    /// Locks found lost while held (extend or release found another owner).
    pub losses: u64,
    /// Locks given back (by `release`, by drop, or by `with_lock`).
    pub released: u64,
    /// Total time locks were held, over all releases.
    #[serde(rename = "total_hold_ms", serialize_with = "serialize_ms")]
    pub total_hold: Duration,
    /// Locks deleted by [`force_release`](crate::LockManager::force_release).
    pub forced: u64,
    /// Releases that handed the lock straight to the next waiter (in
    /// Redis's FIFO queue or this manager's local queue) instead of
    /// freeing it: by the holder, by `force_release`, or by a waiter that
    /// gave up a lock handed to it. A lock passed on from a waiter that had
    /// gone counts once per hand-off. Always 0 for Redlock (no queue).
    pub handoffs: u64,
}

impl LockStats {
    /// Mean wait of the acquisitions that waited.
    #[must_use]
    pub fn average_wait(&self) -> Duration {
        average(self.total_wait, self.waits)
    }

    /// Mean time from acquisition to release.
    #[must_use]
    pub fn average_hold(&self) -> Duration {
        average(self.total_hold, self.released)
    }
}

/// A duration as a float of milliseconds.
fn serialize_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

fn average(total: Duration, n: u64) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let nanos = total.as_nanos() / u128::from(n);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[derive(Debug, Default)]
pub(crate) struct StatsCell {
    acquired: AtomicU64,
    failed: AtomicU64,
    waits: AtomicU64,
    wait_nanos: AtomicU64,
    extends: AtomicU64,
    losses: AtomicU64,
    released: AtomicU64,
    hold_nanos: AtomicU64,
    forced: AtomicU64,
    handoffs: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl StatsCell {
    pub(crate) fn acquired(&self) {
        self.acquired.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
    /// Counted once the waiter is registered for wake-ups.
    pub(crate) fn wait_started(&self) {
        self.waits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn wait_ended(&self, d: Duration) {
        self.wait_nanos.fetch_add(nanos(d), Ordering::Relaxed);
    }
    pub(crate) fn extended(&self) {
        self.extends.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn lost(&self) {
        self.losses.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn released(&self, held: Duration) {
        self.released.fetch_add(1, Ordering::Relaxed);
        self.hold_nanos.fetch_add(nanos(held), Ordering::Relaxed);
    }
    pub(crate) fn forced(&self) {
        self.forced.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn handed_off(&self) {
        self.handoffs.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LockStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LockStats {
            acquired: get(&self.acquired),
            failed: get(&self.failed),
            waits: get(&self.waits),
            total_wait: Duration::from_nanos(get(&self.wait_nanos)),
            extends: get(&self.extends),
            losses: get(&self.losses),
            released: get(&self.released),
            total_hold: Duration::from_nanos(get(&self.hold_nanos)),
            forced: get(&self.forced),
            handoffs: get(&self.handoffs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_average_waits_and_holds() {
        let cell = StatsCell::default();
        assert_eq!(cell.snapshot().average_hold(), Duration::ZERO);
        cell.released(Duration::from_millis(10));
        cell.released(Duration::from_millis(30));
        cell.wait_started();
        cell.wait_ended(Duration::from_millis(4));
        let s = cell.snapshot();
        assert_eq!(s.released, 2);
        assert_eq!(s.average_hold(), Duration::from_millis(20));
        assert_eq!(s.average_wait(), Duration::from_millis(4));
    }

    #[test]
    fn should_serialise_durations_as_milliseconds() {
        let cell = StatsCell::default();
        cell.acquired();
        cell.released(Duration::from_micros(1500));
        let json = serde_json::to_value(cell.snapshot()).unwrap();
        assert_eq!(json["acquired"], 1);
        assert_eq!(json["released"], 1);
        assert_eq!(json["total_hold_ms"], 1.5);
        assert_eq!(json["total_wait_ms"], 0.0);
        assert!(json.get("total_hold").is_none());
    }
}
