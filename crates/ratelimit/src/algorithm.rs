//! Which algorithm a limiter runs.

use std::num::NonZeroU32;

/// A limiter algorithm. Each is one `EVALSHA` on one key, timed by the
/// Redis server's clock.
///
/// | algorithm | memory per key | accuracy | replay safety |
/// |---|---|---|---|
/// | [`SlidingLog`](Algorithm::SlidingLog) | one sorted-set entry per admitted unit | exact | request-id members: a replay is a no-op |
/// | [`SlidingWindow`](Algorithm::SlidingWindow) | one short string (window start and two counts) | approximate (see below) | sent with replay disabled |
/// | [`Gcra`](Algorithm::Gcra) | one integer string | exact for its model | sent with replay disabled |
/// | [`FixedWindow`](Algorithm::FixedWindow) | one integer string (its TTL is the window) | exact per window | sent with replay disabled |
///
/// **Sliding window counter bound.** The estimate is
/// `previous × (share of the previous window still inside the sliding window) + current`.
/// Within one window at most `limit` units are admitted (exactly like a fixed
/// window). It assumes the previous window's requests were spread evenly; if
/// they all came at its very end, a sliding window straddling the boundary
/// can hold up to `2 × limit` admitted units (never more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// The original's algorithm: a sorted set of request ids, trimmed to the
    /// window. Exact; memory grows with the limit.
    #[default]
    SlidingLog,
    /// Approximate sliding window from two counters; O(1) memory.
    SlidingWindow,
    /// Generic cell rate algorithm: one request every `window / limit`,
    /// with `burst` requests admissible at once (`None` = the limit). O(1)
    /// memory. The emission interval is rounded up to whole microseconds.
    /// When it is a whole number of milliseconds (every preset; any quota
    /// with `window / limit` ≥ 1 ms in whole ms), the theoretical arrival
    /// time is kept as the key's expiry, so a check needs no `TIME` (one
    /// `PTTL` and one `SET`); otherwise it is kept in µs as the key's value
    /// and read against `TIME`.
    Gcra {
        /// How many units may arrive at once. Default: the limit.
        burst: Option<NonZeroU32>,
    },
    /// Fixed window starting at the key's first request; O(1) memory. The
    /// window is the key's TTL, so it is rounded up to whole milliseconds.
    FixedWindow,
}

impl Algorithm {
    /// GCRA with the burst equal to the limit.
    #[must_use]
    pub fn gcra() -> Algorithm {
        Algorithm::Gcra { burst: None }
    }

    /// GCRA with an explicit burst.
    #[must_use]
    pub fn gcra_with_burst(burst: NonZeroU32) -> Algorithm {
        Algorithm::Gcra { burst: Some(burst) }
    }

    /// A short name (`sliding_log`, `sliding_window`, `gcra`, `fixed_window`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::SlidingLog => "sliding_log",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::Gcra { .. } => "gcra",
            Algorithm::FixedWindow => "fixed_window",
        }
    }

    /// Whether the script is safe to re-send after a dropped connection
    /// (so fred may replay it); the others go through
    /// [`Redis::script_no_replay`](aeturnis_redis_core::Redis::script_no_replay).
    #[must_use]
    pub fn is_replay_safe(&self) -> bool {
        matches!(self, Algorithm::SlidingLog)
    }
}
