//! Single-instance locks: one Redis (standalone, sentinel or cluster).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aeturnis_redis_core::fred::interfaces::HashesInterface;
use aeturnis_redis_core::fred::types::Value;
use aeturnis_redis_core::Redis;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backoff::Backoff;
use crate::config::{ttl_millis, LockConfig};
use crate::error::{Error, Result};
use crate::guard::{Backend, Lease, LockContext, LockGuard};
use crate::scripts::{self, Attempt, LockKeys, ReleaseMode, ReleaseOutcome, WaitAttempt};
use crate::stats::{LockStats, StatsCell};
use crate::token::{FencingToken, LockToken};
use crate::wake::Wakers;

/// Distributed locks on one Redis deployment. Cheap to clone; clones share
/// the connection, the pub/sub client that wakes waiters, and the stats.
///
/// ```no_run
/// # async fn demo(redis: aeturnis_redis_core::Redis) -> aeturnis_lock::Result<()> {
/// use std::time::Duration;
/// use aeturnis_lock::{LockConfig, LockManager};
///
/// let locks = LockManager::new(redis, LockConfig::default())?;
/// let guard = locks.acquire("trade:alice:bob", Duration::from_secs(10)).await?;
/// // ... pass guard.fence() to whatever the lock protects ...
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LockManager {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Redis,
    config: LockConfig,
    fence_ttl_ms: u64,
    fenced: bool,
    stats: StatsCell,
    wakers: Wakers,
}

impl fmt::Debug for LockManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockManager")
            .field("redis", &self.inner.redis)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Leaves the fair queue (in a spawned task) unless disarmed: a waiter
/// that times out, fails or is cancelled must not hold up the queue until
/// its lease runs out, and a lock handed to it meanwhile is passed on.
struct QueueExit(Option<(LockManager, Arc<LockKeys>, LockToken)>);

impl Drop for QueueExit {
    fn drop(&mut self) {
        let Some((manager, keys, token)) = self.0.take() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = manager.leave(&keys, &token).await {
                    tracing::debug!(error = %e, "lock: leaving the wait queue failed; its lease will expire");
                }
            });
        }
    }
}

/// A fenced write was refused: a holder with a newer fencing token has
/// already written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleFence {
    /// The token that was refused.
    pub offered: FencingToken,
    /// The newest token accepted so far.
    pub current: FencingToken,
}

impl LockManager {
    /// A manager over `redis`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `config` does not validate.
    pub fn new(redis: Redis, config: LockConfig) -> Result<LockManager> {
        config.validate()?;
        scripts::register(&redis);
        let fence_ttl_ms = u64::try_from(config.fence_ttl.as_millis()).unwrap_or(u64::MAX);
        let fenced = config.fencing;
        let wakers = Wakers::new(config.wake_on_release.then(|| redis.clone()));
        Ok(LockManager {
            inner: Arc::new(Inner {
                redis,
                config,
                fence_ttl_ms,
                fenced,
                stats: StatsCell::default(),
                wakers,
            }),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &LockConfig {
        &self.inner.config
    }

    /// The Redis handle.
    #[must_use]
    pub fn redis(&self) -> &Redis {
        &self.inner.redis
    }

    /// Counters since this manager was created.
    #[must_use]
    pub fn stats(&self) -> LockStats {
        self.inner.stats.snapshot()
    }

    pub(crate) fn stats_cell(&self) -> &StatsCell {
        &self.inner.stats
    }

    fn keys(&self, resource: &str) -> Result<Arc<LockKeys>> {
        LockKeys::new(self.inner.redis.keys(), resource)
    }

    /// One attempt: the lock, or [`Error::Contended`] saying how long the
    /// holder still has. Fenced (the default): one script call. Unfenced
    /// ([`LockConfig::fencing`] off): one native `SET NX PX GET`, plus a
    /// `PTTL` when the lock is held.
    ///
    /// # Errors
    /// [`Error::Contended`]; [`Error::InvalidResource`] /
    /// [`Error::InvalidTtl`] for bad input; [`Error::Redis`].
    pub async fn try_acquire(&self, resource: &str, ttl: Duration) -> Result<LockGuard> {
        let keys = self.keys(resource)?;
        let ttl_ms = ttl_millis(ttl, Duration::ZERO)?;
        let token = LockToken::random();
        let sent = Instant::now();
        match self.attempt(&keys, &token, ttl_ms).await {
            Ok(Attempt::Acquired(fence)) => Ok(self.guard(keys, token, fence, ttl, sent)),
            Ok(Attempt::Held(pttl)) => {
                self.inner.stats.failed();
                Err(Error::Contended {
                    resource: keys.resource.clone(),
                    retry_after: Duration::from_millis(pttl),
                })
            }
            Err(e) => {
                self.inner.stats.failed();
                Err(e)
            }
        }
    }

    /// Waits up to [`LockConfig::wait_timeout`] for the lock.
    ///
    /// # Errors
    /// As [`acquire_within`](Self::acquire_within).
    pub async fn acquire(&self, resource: &str, ttl: Duration) -> Result<LockGuard> {
        self.acquire_within(resource, ttl, self.inner.config.wait_timeout)
            .await
    }

    /// Waits up to `timeout` for the lock: attempts with exponential
    /// back-off and jitter (capped by [`LockConfig::backoff_max`] and by the
    /// holder's remaining lease), woken early when the holder releases.
    ///
    /// # Errors
    /// [`Error::Timeout`] (with the holder's remaining lease) when the wait
    /// runs out; bad input and Redis errors as
    /// [`try_acquire`](Self::try_acquire).
    pub async fn acquire_within(
        &self,
        resource: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<LockGuard> {
        let keys = self.keys(resource)?;
        let ttl_ms = ttl_millis(ttl, Duration::ZERO)?;
        let token = LockToken::random();
        let started = Instant::now();
        let result = self.wait_for(&keys, &token, ttl_ms, started, timeout).await;
        match result {
            Ok((fence, taken_before)) => Ok(self.guard(keys, token, fence, ttl, taken_before)),
            Err(e) => {
                self.inner.stats.failed();
                Err(e)
            }
        }
    }

    async fn wait_for(
        &self,
        keys: &Arc<LockKeys>,
        token: &LockToken,
        ttl_ms: u64,
        started: Instant,
        timeout: Duration,
    ) -> Result<(u64, Instant)> {
        let channel = keys.channel();
        // a free lock costs one call; when tasks of this process already
        // wait for it, it is not free: queue up at once (behind them)
        let mut held = if self.inner.wakers.has_waiters(&channel) {
            1
        } else {
            match self.attempt(keys, token, ttl_ms).await? {
                Attempt::Acquired(fence) => return Ok((fence, started)),
                Attempt::Held(pttl) => pttl,
            }
        };
        // the lock was not ours when the last "held" answer was sent: the
        // lease of a lock we get later starts after that
        let mut not_ours_at = started;
        let lease = self.wait_lease_ms();
        // registered (and subscribed) before we join the queue, so the
        // hand-off that names us cannot slip past
        let mut waiter = self
            .inner
            .wakers
            .register_local(&channel, Some(token.as_str()));
        // from here on we may sit in the fair queue: leave it if we give up
        let mut queued = QueueExit(Some((self.clone(), Arc::clone(keys), token.clone())));
        let deadline = started + timeout;
        self.inner.stats.wait_started();
        // with wake-ups on, a hand-off reaches us by message (or at once, in
        // this process): polls only keep our lease and catch a holder's
        // expiry (no hand-off then), so they need not be frequent
        let woken = self.inner.wakers.subscribe(&mut waiter).await;
        let refresh = Duration::from_millis((lease / 3).max(1));
        let mut backoff = Backoff::new(&self.inner.config);
        let mut join_now = true;
        let outcome = loop {
            if !join_now {
                let now = Instant::now();
                if now >= deadline {
                    break Err(Error::Timeout {
                        resource: keys.resource.clone(),
                        waited: now - started,
                        retry_after: Duration::from_millis(held),
                    });
                }
                let mut delay = if woken && held > 0 {
                    refresh
                } else {
                    backoff.next_delay()
                };
                if held > 0 {
                    // held: no point sleeping past the holder's expiry
                    delay = delay.min(Duration::from_millis(held + 1));
                }
                tokio::select! {
                    () = waiter.notify().notified() => {}
                    () = tokio::time::sleep(delay.min(deadline - now)) => {}
                }
                // handed over by a release: ours, no round trip needed
                if let Some(value) = waiter.granted() {
                    queued.0 = None;
                    break Ok((scripts::fence_of(&value), not_ours_at));
                }
            }
            join_now = false;
            let sent = Instant::now();
            held = match scripts::wait(
                &self.inner.redis,
                keys,
                token.as_str(),
                ttl_ms,
                self.inner.fenced,
                self.inner.fence_ttl_ms,
                lease,
            )
            .await
            {
                Ok(WaitAttempt::Acquired(value)) => {
                    queued.0 = None;
                    break Ok((scripts::fence_of(&value), not_ours_at));
                }
                Ok(WaitAttempt::Held(pttl)) => {
                    not_ours_at = sent;
                    pttl
                }
                Err(e) => break Err(e),
            };
        };
        self.inner.stats.wait_ended(started.elapsed());
        outcome
    }

    /// How long a queued waiter keeps its place without re-trying: four
    /// back-off ceilings, at least 200 ms.
    fn wait_lease_ms(&self) -> u64 {
        let lease = (self.inner.config.backoff_max * 4).max(Duration::from_millis(200));
        u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)
    }

    async fn attempt(&self, keys: &LockKeys, token: &LockToken, ttl_ms: u64) -> Result<Attempt> {
        if self.inner.fenced {
            scripts::acquire(
                &self.inner.redis,
                keys,
                token.as_str(),
                ttl_ms,
                self.inner.fence_ttl_ms,
                0,
            )
            .await
        } else {
            scripts::acquire_unfenced(&self.inner.redis, keys, token.as_str(), ttl_ms).await
        }
    }

    async fn release_as(
        &self,
        keys: &LockKeys,
        token: &str,
        fence: u64,
        mode: ReleaseMode,
    ) -> Result<ReleaseOutcome> {
        let released = scripts::release(
            &self.inner.redis,
            keys,
            token,
            fence,
            self.inner.fenced,
            self.inner.fence_ttl_ms,
            mode,
        )
        .await?;
        // handed to a waiter: if it waits in this process, it holds the
        // lock as of now (the pub/sub message tells the others)
        if let ReleaseOutcome::Released(Some(value)) = &released {
            self.inner.wakers.grant(value);
        }
        Ok(released)
    }

    /// A waiter gives up: out of the queue, and the lock passed on if a
    /// release handed it to us meanwhile.
    async fn leave(&self, keys: &LockKeys, token: &LockToken) -> Result<()> {
        self.release_as(keys, token.as_str(), 0, ReleaseMode::Leave)
            .await
            .map(drop)
    }

    fn guard(
        &self,
        keys: Arc<LockKeys>,
        token: LockToken,
        fence: u64,
        ttl: Duration,
        taken_before: Instant,
    ) -> LockGuard {
        self.inner.stats.acquired();
        LockGuard::new(
            Backend::Single(self.clone()),
            Lease::new(keys, token, fence, ttl, taken_before),
            self.inner.config.watchdog,
        )
    }

    /// Acquires `resource` (waiting as [`acquire`](Self::acquire)), runs
    /// `f`, and releases, whatever happens: on success, when `f`'s output
    /// is an error (it is returned as is), when `f` panics (unwinding drops
    /// the guard, which releases in a spawned task), and when the returned
    /// future is dropped or cancelled (same). Nothing here blocks.
    ///
    /// # Errors
    /// The acquisition's errors, and [`Error::LockLost`] when the lock
    /// turned out to be lost at release: the closure's output is then
    /// discarded, because its critical section was not exclusive.
    pub async fn with_lock<F, Fut, T>(&self, resource: &str, ttl: Duration, f: F) -> Result<T>
    where
        F: FnOnce(LockContext) -> Fut,
        Fut: Future<Output = T>,
    {
        let guard = self.acquire(resource, ttl).await?;
        let out = f(guard.context()).await;
        guard.release().await?;
        Ok(out)
    }

    /// Takes the lock from whoever holds it (admin use: a stuck holder) and
    /// hands it to the oldest live waiter, if any. The holder finds out at its next extend or release.
    /// Returns whether a lock was held.
    ///
    /// # Errors
    /// Bad resource, or Redis.
    pub async fn force_release(&self, resource: &str) -> Result<bool> {
        let keys = self.keys(resource)?;
        if self.release_as(&keys, "", 0, ReleaseMode::Force).await? == ReleaseOutcome::NotOurs {
            return Ok(false);
        }
        self.inner.stats.forced();
        Ok(true)
    }

    /// Whether `resource` is locked right now, and for how much longer.
    ///
    /// # Errors
    /// Bad resource, or Redis.
    pub async fn remaining(&self, resource: &str) -> Result<Option<Duration>> {
        use aeturnis_redis_core::fred::interfaces::KeysInterface;
        let keys = self.keys(resource)?;
        let pttl: i64 = self
            .inner
            .redis
            .client()
            .pttl(&keys.lock)
            .await
            .map_err(aeturnis_redis_core::Error::from)?;
        Ok(u64::try_from(pttl).ok().map(Duration::from_millis))
    }

    /// Writes `value` for `resource` unless a newer fencing token has
    /// already written: one compare-and-set script that keeps the highest
    /// accepted token. Writing again with the same token is accepted (a
    /// replay is harmless). Returns `Ok(Err(StaleFence))` on refusal.
    ///
    /// The record lives beside the lock (same hash slot) with
    /// [`LockConfig::fence_ttl`].
    ///
    /// # Errors
    /// Bad resource, encoding, or Redis.
    pub async fn fenced_write<T: Serialize + ?Sized>(
        &self,
        resource: &str,
        fence: FencingToken,
        value: &T,
    ) -> Result<std::result::Result<(), StaleFence>> {
        let keys = self.keys(resource)?;
        if fence.get() == 0 {
            return Err(Error::Unfenced {
                resource: keys.resource.clone(),
            });
        }
        let bytes = self.inner.redis.codec().encode(&keys.fenced(), value)?;
        let outcome = scripts::fenced_write(
            &self.inner.redis,
            keys.fenced(),
            keys.state(),
            fence.get(),
            bytes,
            self.inner.fence_ttl_ms,
        )
        .await?;
        Ok(outcome.map(drop).map_err(|last| StaleFence {
            offered: fence,
            current: FencingToken::new(last),
        }))
    }

    /// Reads the last accepted fenced write: its token and value.
    ///
    /// # Errors
    /// Bad resource, decoding, or Redis.
    pub async fn fenced_read<T: DeserializeOwned>(
        &self,
        resource: &str,
    ) -> Result<Option<(FencingToken, T)>> {
        let keys = self.keys(resource)?;
        let (fence, value): (Option<u64>, Option<Value>) = self
            .inner
            .redis
            .client()
            .hmget(keys.fenced(), vec!["f", "v"])
            .await
            .map_err(aeturnis_redis_core::Error::from)?;
        let (Some(fence), Some(value)) = (fence, value) else {
            return Ok(None);
        };
        let bytes = value.as_bytes().map(<[u8]>::to_vec).unwrap_or_default();
        let value = self.inner.redis.codec().decode(&keys.fenced(), &bytes)?;
        Ok(Some((FencingToken::new(fence), value)))
    }

    pub(crate) async fn extend_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        let ttl_ms = ttl_millis(ttl, Duration::ZERO)?;
        let sent = Instant::now();
        let extended =
            scripts::extend(&self.inner.redis, &lease.keys, lease.token.as_str(), ttl_ms).await?;
        if extended {
            lease.extended(sent, ttl);
        }
        Ok(extended)
    }

    /// Releases a holder's lock. A release keeps no record on the server,
    /// so when fred replays one that already ran (after a reconnect), the
    /// replay finds the lock gone or someone else's. The lease tells that
    /// apart from a loss: while our lease is certainly still running,
    /// nobody can have taken the lock from us except by force release or a
    /// Redis data loss, and the script reports those as
    /// [`ReleaseOutcome::Lost`]; so "not ours" within the lease can only be our
    /// own release, already done. After the lease, "not ours" is a loss.
    pub(crate) async fn release_lease(&self, lease: &Lease) -> Result<bool> {
        let sent = Instant::now();
        Ok(
            match self
                .release_as(
                    &lease.keys,
                    lease.token.as_str(),
                    lease.fence.get(),
                    ReleaseMode::Release,
                )
                .await?
            {
                ReleaseOutcome::Released(_) => true,
                ReleaseOutcome::NotOurs => lease.still_valid(sent),
                ReleaseOutcome::Lost => false,
            },
        )
    }
}
