//! Exponential back-off with jitter for waiters.

use std::time::Duration;

use rand::Rng;

use crate::config::LockConfig;

/// Delays `min, 2·min, 4·min, …` capped at `max`, each drawn uniformly from
/// its upper half ("equal jitter"), so waiters spread out but never spin.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    current: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(config: &LockConfig) -> Backoff {
        Backoff {
            current: config.backoff_min,
            max: config.backoff_max,
        }
    }

    /// The next delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.current.min(self.max);
        self.current = self.current.saturating_mul(2);
        jitter(ceiling)
    }
}

/// A uniformly random delay in `[d/2, d]`.
pub(crate) fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    let span = u64::try_from((d - half).as_micros()).unwrap_or(u64::MAX);
    half + Duration::from_micros(rand::thread_rng().gen_range(0..=span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let config =
            LockConfig::default().with_backoff(Duration::from_millis(2), Duration::from_millis(10));
        let mut b = Backoff::new(&config);
        let ceilings = [2u64, 4, 8, 10, 10, 10];
        for c in ceilings {
            let d = b.next_delay();
            let c = Duration::from_millis(c);
            assert!(d >= c / 2 && d <= c, "{d:?} outside [{:?}, {c:?}]", c / 2);
        }
    }
}
