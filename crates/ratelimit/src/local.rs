//! In-process helpers: the deny cache and the fallback limiter. Both are
//! bounded maps behind a `Mutex`, timed by the injected clock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::decision::{Decision, DecisionSource};
use crate::quota::Quota;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps inconsistent
    // (every update is a single insert/remove), so poisoning is ignored.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keys Redis recently denied, with when the denial ends. A hit answers
/// without a round trip. An entry is trusted only while the clock is between
/// the time it was stored and its end: a clock that jumps forward ends it
/// early (Redis is asked again), a clock that jumps back drops it.
#[derive(Debug)]
pub(crate) struct DenyCache {
    map: Mutex<HashMap<String, (Duration, Duration)>>,
    capacity: usize,
}

impl DenyCache {
    pub(crate) fn new(capacity: usize) -> DenyCache {
        DenyCache {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The time left on a cached denial of `key`.
    pub(crate) fn get(&self, key: &str, now: Duration) -> Option<Duration> {
        let mut map = lock(&self.map);
        let (stored, until) = *map.get(key)?;
        if now < stored || now >= until {
            map.remove(key);
            return None;
        }
        Some(until - now)
    }

    pub(crate) fn insert(&self, key: &str, now: Duration, retry_after: Duration) {
        if self.capacity == 0 || retry_after.is_zero() {
            return;
        }
        let mut map = lock(&self.map);
        if map.len() >= self.capacity && !map.contains_key(key) {
            map.retain(|_, (stored, until)| now >= *stored && now < *until);
            if map.len() >= self.capacity {
                return; // an optimisation only: skip rather than grow
            }
        }
        map.insert(key.to_owned(), (now, now + retry_after));
    }

    pub(crate) fn remove(&self, key: &str) {
        lock(&self.map).remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

/// The fallback limiter used while Redis is unavailable: a fixed window per
/// key anchored at its first request on this instance, `quota.limit()` per
/// `quota.window()`.
#[derive(Debug)]
pub(crate) struct LocalLimiter {
    map: Mutex<HashMap<String, (Duration, u32)>>,
    quota: Quota,
    capacity: usize,
}

impl LocalLimiter {
    pub(crate) fn new(quota: Quota, capacity: usize) -> LocalLimiter {
        LocalLimiter {
            map: Mutex::new(HashMap::new()),
            quota,
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn check(&self, key: &str, cost: u32, now: Duration) -> Decision {
        let limit = self.quota.limit().get();
        let window = self.quota.window();
        let mut map = lock(&self.map);
        if map.len() >= self.capacity && !map.contains_key(key) {
            map.retain(|_, (start, _)| now >= *start && now < *start + window);
            if map.len() >= self.capacity {
                // Still full of live windows: forget the oldest one.
                let oldest = map
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        let entry = map.entry(key.to_owned()).or_insert((now, 0));
        // A new window when the old one ended, or when the clock went back.
        if now >= entry.0 + window || now < entry.0 {
            *entry = (now, 0);
        }
        let reset = entry.0 + window - now;
        if entry.1.saturating_add(cost) <= limit {
            entry.1 += cost;
            Decision {
                remaining: limit - entry.1,
                reset_after: reset,
                ..Decision::allow(limit, DecisionSource::LocalFallback)
            }
        } else {
            Decision {
                remaining: limit.saturating_sub(entry.1),
                ..Decision::deny(limit, reset, DecisionSource::LocalFallback)
            }
        }
    }

    pub(crate) fn refund(&self, key: &str, cost: u32) {
        if let Some(entry) = lock(&self.map).get_mut(key) {
            entry.1 = entry.1.saturating_sub(cost);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn should_trust_a_cached_denial_only_inside_its_interval() {
        let cache = DenyCache::new(10);
        let t0 = Duration::from_secs(1_000);
        cache.insert("k", t0, 10 * S);
        assert_eq!(cache.get("k", t0 + 4 * S), Some(6 * S));
        // clock jumped back: the entry is dropped rather than trusted longer
        assert_eq!(cache.get("k", t0 - 60 * S), None);
        assert_eq!(cache.get("k", t0 + 4 * S), None);
        cache.insert("k", t0, 10 * S);
        // clock jumped forward past the end: expired
        assert_eq!(cache.get("k", t0 + 600 * S), None);
    }

    #[test]
    fn should_keep_the_deny_cache_bounded() {
        let cache = DenyCache::new(2);
        let t0 = Duration::from_secs(1_000);
        cache.insert("a", t0, S);
        cache.insert("b", t0, S);
        cache.insert("c", t0, S);
        assert_eq!(cache.len(), 2);
        cache.insert("c", t0 + 2 * S, S); // a and b have expired: room again
        assert_eq!(cache.get("c", t0 + 2 * S), Some(S));
    }

    #[test]
    fn should_grant_the_same_quota_per_window_locally() {
        let quota = Quota::new(NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN), 10 * S);
        let local = LocalLimiter::new(quota.unwrap_or(Quota::per_second(NonZeroU32::MIN)), 2);
        let t0 = Duration::from_secs(1_000);
        let admitted = (0..5).filter(|_| local.check("k", 1, t0).allowed).count();
        assert_eq!(admitted, 3);
        let denied = local.check("k", 1, t0 + S);
        assert_eq!(denied.retry_after, Some(9 * S));
        assert!(local.check("k", 1, t0 + 10 * S).allowed);
        assert!(local.check("x", 1, t0).allowed);
        assert!(local.check("y", 1, t0 + S).allowed);
        assert_eq!(local.len(), 2);
    }
}
