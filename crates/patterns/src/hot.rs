//! The bounded sampler of hot keys behind the
//! [`WarmScheduler`](crate::WarmScheduler): a Misra–Gries summary (a
//! capped counter map).
//!
//! At most `capacity` keys are counted. A read of a counted key adds one;
//! a read of an uncounted key takes a free slot with a count of one, or,
//! when there is none, takes one from every count (dropping those that
//! reach zero) and is not kept. Each such sweep removes `capacity` from
//! the counts' sum, which only reads add to, so a read costs O(1)
//! amortised; and any key read more than `n / (capacity + 1)` times out of
//! `n` reads is always counted (Misra and Gries, 1982). Every tick of the
//! scheduler takes the top K and halves every count, so a key that stops
//! being read drops out within a few ticks.

use std::collections::HashMap;
use std::sync::Mutex;

use aeturnis_redis_core::RedisKey;

/// The counts; see the module docs.
#[derive(Debug)]
pub(crate) struct HotKeys {
    capacity: usize,
    counts: Mutex<HashMap<RedisKey, u64>>,
}

impl HotKeys {
    /// An empty sampler holding at most `capacity` keys.
    pub(crate) fn new(capacity: usize) -> Self {
        HotKeys {
            capacity,
            counts: Mutex::new(HashMap::with_capacity(capacity)),
        }
    }

    /// Counts one read of `key`.
    pub(crate) fn record(&self, key: &RedisKey) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(key) {
            *count = count.saturating_add(1);
        } else if counts.len() < self.capacity {
            counts.insert(key.clone(), 1);
        } else {
            counts.retain(|_, count| {
                *count -= 1;
                *count > 0
            });
        }
    }

    /// The at most `k` keys counted at least `min_reads` times, hottest
    /// first; then halves every count (dropping zeros).
    pub(crate) fn take_top(&self, k: usize, min_reads: u64) -> Vec<RedisKey> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut hot: Vec<(&RedisKey, u64)> = counts
            .iter()
            .filter(|(_, c)| **c >= min_reads)
            .map(|(key, c)| (key, *c))
            .collect();
        hot.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let top = hot
            .into_iter()
            .take(k)
            .map(|(key, _)| key.clone())
            .collect();
        counts.retain(|_, count| {
            *count /= 2;
            *count > 0
        });
        top
    }

    /// How many keys are counted now.
    pub(crate) fn len(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(s: &str) -> RedisKey {
        aeturnis_redis_core::KeySpace::new("t:")
            .unwrap()
            .key("k")
            .id(s)
            .build()
            .unwrap()
    }

    #[test]
    fn should_stay_bounded_and_keep_the_hot_keys_under_100000_distinct_keys() {
        let hot = HotKeys::new(256);
        let (a, b) = (key("hot-a"), key("hot-b"));
        for i in 0..100_000 {
            hot.record(&key(&format!("cold-{i}")));
            if i % 50 == 0 {
                hot.record(&a);
                hot.record(&b);
            }
            assert!(hot.len() <= 256);
        }
        // 2,000 reads each out of 104,000: more than n / 257
        assert_eq!(hot.take_top(2, 2), vec![a, b]);
    }

    #[test]
    fn should_leave_out_keys_read_fewer_than_min_reads_times() {
        let hot = HotKeys::new(16);
        let (warm, cold) = (key("warm"), key("cold"));
        for _ in 0..3 {
            hot.record(&warm);
        }
        hot.record(&cold);
        assert_eq!(hot.take_top(5, 2), vec![warm]);
        // halved: 3 -> 1, 1 -> 0 (dropped)
        assert_eq!(hot.len(), 1);
        assert!(hot.take_top(5, 2).is_empty());
    }
}
