//! [`ServerClock`]: an estimate of the Redis server's clock, without a
//! round trip per call.
//!
//! See [`ServerClock`] for how it works and what it may be used for.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::client::Redis;
use crate::error::{Error, Result};

/// How old a calibration may get before a call starts a background
/// recalibration: 30 s.
pub const DEFAULT_REFRESH_PERIOD: Duration = Duration::from_secs(30);

/// `TIME` round trips per calibration; the one with the shortest round trip
/// is kept.
pub const SAMPLES: usize = 3;

/// How far the local monotonic clock and the server's clock may run apart:
/// one part in this many of the time since the calibration (1,000 ppm,
/// twice the fastest rate at which NTP slews a clock). Part of
/// [`ServerTime::uncertainty`].
const DRIFT_DIVISOR: u32 = 1_000;

/// After a failed background recalibration, the next one starts no sooner
/// than this (or the refresh period, if shorter).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// An estimate of the server's clock: the true server time is within
/// `ms ± uncertainty`, unless the server's clock was stepped since the
/// calibration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerTime {
    /// Milliseconds since the Unix epoch, by the server's clock.
    pub ms: u64,
    /// The bound on the estimate's error: half the kept sample's round
    /// trip, plus 1 ms for rounding, plus the drift allowance (1 ms per
    /// second since the calibration).
    pub uncertainty: Duration,
}

impl ServerTime {
    /// The uncertainty in whole milliseconds, rounded up.
    #[must_use]
    pub fn uncertainty_ms(&self) -> u64 {
        let us = self.uncertainty.as_micros().div_ceil(1_000);
        u64::try_from(us).unwrap_or(u64::MAX)
    }

    /// The latest the server's clock can read now: `ms + uncertainty`.
    #[must_use]
    pub fn latest_ms(&self) -> u64 {
        self.ms.saturating_add(self.uncertainty_ms())
    }

    /// The earliest the server's clock can read now: `ms - uncertainty`.
    #[must_use]
    pub fn earliest_ms(&self) -> u64 {
        self.ms.saturating_sub(self.uncertainty_ms())
    }
}

/// One calibration: the server's clock at a local instant.
#[derive(Debug, Clone, Copy)]
struct Calibration {
    /// Server time at `at`, µs since the Unix epoch.
    server_us: u128,
    /// The midpoint of the kept sample's round trip.
    at: Instant,
    /// Half the kept sample's round trip.
    half_rtt: Duration,
}

impl Calibration {
    fn estimate(&self, now: Instant) -> ServerTime {
        let age = now.saturating_duration_since(self.at);
        let us = self.server_us + age.as_micros();
        let drift = age / DRIFT_DIVISOR;
        ServerTime {
            ms: u64::try_from(us / 1_000).unwrap_or(u64::MAX),
            uncertainty: self.half_rtt + Duration::from_millis(1) + drift,
        }
    }
}

struct Inner {
    redis: Redis,
    refresh: Duration,
    first: OnceCell<()>,
    current: RwLock<Option<Calibration>>,
    refreshing: AtomicBool,
    calibrations: AtomicU64,
}

/// An estimate of the Redis server's clock, calibrated with `TIME` and
/// carried forward with the local monotonic clock. Cheap to clone; clones
/// share the calibration.
///
/// A calibration sends `TIME` a few times ([`SAMPLES`]) and keeps the reply
/// with the shortest round trip. The server read its clock somewhere between
/// sending and receiving, so taking its reply as the server time at the
/// midpoint of the round trip is wrong by at most half the round trip. From
/// then on the estimate is that server time plus the time elapsed on the
/// local **monotonic** clock ([`Instant`]): the application server's wall
/// clock (which may be minutes off) never enters.
///
/// The first call awaits a calibration (concurrent first callers share
/// one). Once the calibration is older than the refresh period (default
/// [`DEFAULT_REFRESH_PERIOD`], 30 s), the next call starts one background
/// recalibration (never more than one at a time) and, like every call
/// until it finishes, answers from the previous calibration.
///
/// # What it is for
///
/// Decisions that a script re-checks with the real server `TIME` when it
/// matters: "is a touch due?", "is this session near its absolute
/// expiry?". Never use it as the only guard of something that must be
/// exact: the server clock can be stepped (by an administrator or NTP)
/// between calibrations, and a suspended process's monotonic clock stops.
/// On a Redis Cluster, `TIME` goes to one node (any); the nodes' clocks are
/// independent (kept close by NTP, typically within milliseconds), so the
/// estimate is one node's clock, not every node's.
///
/// ```no_run
/// # async fn demo() -> aeturnis_redis_core::Result<()> {
/// use aeturnis_redis_core::{Redis, RedisConfig, ServerClock};
/// let redis = Redis::connect(RedisConfig::from_env()?).await?;
/// let clock = ServerClock::new(redis);
/// let now = clock.now().await?; // the first call calibrates
/// println!("server time {} ms, ± {:?}", now.ms, now.uncertainty);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerClock {
    inner: Arc<Inner>,
}

impl fmt::Debug for ServerClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerClock")
            .field("refresh", &self.inner.refresh)
            .field("calibrations", &self.calibrations())
            .field("half_rtt", &self.snapshot().map(|c| c.half_rtt))
            .finish_non_exhaustive()
    }
}

impl ServerClock {
    /// A clock over `redis`, recalibrated every
    /// [`DEFAULT_REFRESH_PERIOD`]. Sends nothing until the first call.
    #[must_use]
    pub fn new(redis: Redis) -> Self {
        Self::with_refresh_period(redis, DEFAULT_REFRESH_PERIOD)
    }

    /// A clock recalibrated once its calibration is `period` old (zero:
    /// a background recalibration whenever none is running).
    #[must_use]
    pub fn with_refresh_period(redis: Redis, period: Duration) -> Self {
        ServerClock {
            inner: Arc::new(Inner {
                redis,
                refresh: period,
                first: OnceCell::new(),
                current: RwLock::new(None),
                refreshing: AtomicBool::new(false),
                calibrations: AtomicU64::new(0),
            }),
        }
    }

    /// The refresh period.
    #[must_use]
    pub fn refresh_period(&self) -> Duration {
        self.inner.refresh
    }

    /// The server's clock, now. The first call awaits a calibration
    /// ([`SAMPLES`] `TIME` round trips; concurrent first callers share it);
    /// later calls answer at once, and one of them starts a background
    /// recalibration when the calibration is older than the refresh period.
    ///
    /// # Errors
    /// Only while no calibration has succeeded yet: the error of the
    /// calibration's `TIME` ([`Error::Shutdown`] after
    /// [`Redis::shutdown`], connection errors, timeouts).
    pub async fn now(&self) -> Result<ServerTime> {
        if let Some(c) = self.snapshot() {
            let now = Instant::now();
            if now.saturating_duration_since(c.at) >= self.inner.refresh {
                self.refresh_in_background();
            }
            return Ok(c.estimate(now));
        }
        let inner = &self.inner;
        inner
            .first
            .get_or_try_init(|| async {
                let c = inner.calibrate().await?;
                inner.store(c);
                Ok::<(), Error>(())
            })
            .await?;
        let c = self
            .snapshot()
            .ok_or_else(|| Error::UnexpectedReply("no clock calibration".to_owned()))?;
        Ok(c.estimate(Instant::now()))
    }

    /// [`now`](Self::now) in milliseconds since the Unix epoch.
    ///
    /// # Errors
    /// As [`now`](Self::now).
    pub async fn now_ms(&self) -> Result<u64> {
        Ok(self.now().await?.ms)
    }

    /// The current uncertainty bound (see [`ServerTime::uncertainty`]);
    /// `None` before the first calibration.
    #[must_use]
    pub fn uncertainty(&self) -> Option<Duration> {
        self.snapshot()
            .map(|c| c.estimate(Instant::now()).uncertainty)
    }

    /// How many calibrations have succeeded so far.
    #[must_use]
    pub fn calibrations(&self) -> u64 {
        self.inner.calibrations.load(Ordering::Acquire)
    }

    /// Starts a background recalibration now, whatever the calibration's
    /// age (for a caller that has seen evidence that the estimate is off,
    /// such as a server timestamp later than the estimate). Does nothing
    /// when one is already running, or outside a tokio runtime. Calls keep
    /// answering from the previous calibration until it finishes.
    pub fn refresh_in_background(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self
            .inner
            .refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let inner = Arc::clone(&self.inner);
        drop(runtime.spawn(async move {
            match inner.calibrate().await {
                Ok(c) => inner.store(c),
                Err(e) => {
                    tracing::warn!(error = %e, "server clock recalibration failed; keeping the previous one");
                    tokio::time::sleep(RETRY_AFTER.min(inner.refresh)).await;
                }
            }
            inner.refreshing.store(false, Ordering::Release);
        }));
    }

    fn snapshot(&self) -> Option<Calibration> {
        *self
            .inner
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    /// [`SAMPLES`] `TIME` round trips; the shortest wins.
    async fn calibrate(&self) -> Result<Calibration> {
        let mut best: Option<Calibration> = None;
        for _ in 0..SAMPLES {
            let sent = Instant::now();
            let server = self.redis.server_time().await?;
            let rtt = sent.elapsed();
            let sample = Calibration {
                server_us: server.as_micros(),
                at: sent + rtt / 2,
                half_rtt: rtt / 2,
            };
            if best.map_or(true, |b| sample.half_rtt < b.half_rtt) {
                best = Some(sample);
            }
        }
        best.ok_or_else(|| Error::UnexpectedReply("no TIME sample".to_owned()))
    }

    fn store(&self, c: Calibration) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(c);
        self.calibrations.fetch_add(1, Ordering::AcqRel);
    }
}
