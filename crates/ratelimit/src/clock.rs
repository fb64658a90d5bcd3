//! The local clock, injected so tests can skew it.
//!
//! Limits themselves are timed by Redis (`TIME` inside every script); the
//! local clock only drives in-process helpers: the deny cache and the
//! fallback limiter.

use std::fmt;
#[cfg(feature = "test-hooks")]
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A wall clock: time since the Unix epoch. It may jump in either direction.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Duration;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

/// The system clock plus an adjustable offset, for tests: skew it by
/// minutes, or move it back, while everything else keeps running.
/// A test hook: needs the `test-hooks` feature.
///
/// ```
/// use std::time::Duration;
/// use aeturnis_ratelimit::{Clock, SkewedClock, SystemClock};
/// let clock = SkewedClock::new();
/// clock.skew_forward(Duration::from_secs(600));
/// assert!(clock.now() > SystemClock.now() + Duration::from_secs(599));
/// ```
#[cfg(feature = "test-hooks")]
#[derive(Debug, Default)]
pub struct SkewedClock {
    offset_us: AtomicI64,
}

#[cfg(feature = "test-hooks")]
impl SkewedClock {
    /// No skew yet.
    #[must_use]
    pub fn new() -> SkewedClock {
        SkewedClock::default()
    }

    /// Moves the clock forward by `by`.
    pub fn skew_forward(&self, by: Duration) {
        self.offset_us.fetch_add(micros(by), Ordering::Relaxed);
    }

    /// Moves the clock back by `by`.
    pub fn skew_back(&self, by: Duration) {
        self.offset_us.fetch_sub(micros(by), Ordering::Relaxed);
    }
}

#[cfg(feature = "test-hooks")]
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(feature = "test-hooks")]
impl Clock for SkewedClock {
    fn now(&self) -> Duration {
        let base = micros(SystemClock.now());
        let t = base.saturating_add(self.offset_us.load(Ordering::Relaxed));
        Duration::from_micros(u64::try_from(t).unwrap_or(0))
    }
}
