//! Single-instance locks: one Redis (standalone, sentinel or cluster).
//!
//! | file | concept |
//! |---|---|
//! | `mod.rs` | the manager: acquire, try, `with_lock`, extend, release, force |
//! | `local_wait.rs` | the in-process queue in front of Redis |
//! | `queue.rs` | waiting in Redis's FIFO queue |
//! | `handoff.rs` | release, and hand-off to the next waiter |
//! | `fencing.rs` | fenced writes and reads |

mod fencing;
mod handoff;
mod local_wait;
mod queue;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aeturnis_redis_core::duration::MAX_DURATION;
use aeturnis_redis_core::Redis;

use crate::config::{ttl_millis, LockConfig};
use crate::error::{Error, Result};
use crate::guard::{Backend, Lease, LockContext, LockGuard};
use crate::local::LocalQueues;
use crate::lock::run_locked;
use crate::scripts::{self, Attempt, LockKeys, ReleaseMode, ReleaseOutcome};
use crate::stats::{LockStats, StatsCell};
use crate::token::LockToken;
use crate::wake::Wakers;

pub use fencing::StaleFence;
use local_wait::{LocalTurn, SlotExit};

/// Distributed locks on one Redis deployment. Cheap to clone; clones share
/// the connection, the pub/sub client that wakes waiters, the in-process
/// queue (see below) and the stats.
///
/// **In-process queue.** Tasks of one manager (and its clones) that want
/// the same resource are coalesced: one of them at a time acquires in (or
/// waits in) Redis or holds the lock, the others wait in a local FIFO
/// queue, and a release hands the lock straight to the next of them in
/// the same script call (no pub/sub message, no further round trip).
/// Fairness: the local queue is FIFO, the Redis queue is FIFO, and at each
/// release waiters queued in Redis (other processes, other managers) are
/// served first, the local waiter then queuing in Redis behind them; so a
/// busy process cannot starve others. Separate managers do not share a
/// local queue: to each other they are remote.
///
/// ```no_run
/// # async fn demo(redis: aeturnis_redis_core::Redis) -> aeturnis_lock::Result<()> {
/// use std::time::Duration;
/// use aeturnis_lock::{LockConfig, LockManager};
///
/// let locks = LockManager::new(redis, LockConfig::default())?;
/// let guard = locks.acquire("trade:alice:bob", Duration::from_secs(10)).await?;
/// // ... pass guard.fence().await? to whatever the lock protects ...
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
    stats: StatsCell,
    wakers: Wakers,
    local: LocalQueues,
}

impl fmt::Debug for LockManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockManager")
            .field("redis", &self.inner.redis)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl LockManager {
    /// A manager over `redis`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting when `config` does not
    /// [validate](LockConfig::validate).
    pub fn new(redis: Redis, config: LockConfig) -> Result<LockManager> {
        config.validate()?;
        scripts::register(&redis);
        let fence_ttl_ms = config.fence_ttl_ms();
        let wakers = Wakers::new(config.wake_on_release.then(|| redis.clone()));
        Ok(LockManager {
            inner: Arc::new(Inner {
                redis,
                config,
                fence_ttl_ms,
                stats: StatsCell::default(),
                wakers,
                local: LocalQueues::default(),
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

    /// Resources with an owned in-process slot (a test hook: an idle
    /// manager must keep none).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    #[must_use]
    pub fn local_slots(&self) -> usize {
        self.inner.local.len()
    }

    pub(crate) fn stats_cell(&self) -> &StatsCell {
        &self.inner.stats
    }

    fn keys(&self, resource: &str) -> Result<Arc<LockKeys>> {
        LockKeys::new(self.inner.redis.keys(), resource)
    }

    /// One attempt: the lock, or [`Error::Contended`] saying how long the
    /// holder still has: one native `SET NX PX GET`, plus a `PTTL` when the
    /// lock is held. The fencing token is issued later, on demand
    /// ([`LockGuard::fence`]), so an acquisition that never asks for one
    /// costs what a hand-rolled lock costs.
    ///
    /// It never queues in the in-process queue: when another task of this
    /// manager holds or acquires the resource, it is still one attempt in
    /// Redis (usually [`Error::Contended`] with the holder's remaining
    /// lease). When no local task does, a lock it gets takes the local slot,
    /// so tasks that then [`acquire`](Self::acquire) wait behind it locally
    /// and are handed the lock at its release.
    ///
    /// # Errors
    /// [`Error::Contended`]; [`Error::Key`] /
    /// [`Error::InvalidTtl`] for bad input; [`Error::Redis`].
    pub async fn try_acquire(&self, resource: &str, ttl: Duration) -> Result<LockGuard> {
        let keys = self.keys(resource)?;
        let ttl_ms = ttl_millis(ttl, Duration::ZERO)?;
        let token = LockToken::random();
        // never queues locally; takes the local slot when it is idle, so
        // tasks that wait behind this holder get the lock by local
        // hand-off (beside a busy slot it is one plain attempt in Redis)
        let mut slot = SlotExit {
            local: &self.inner.local,
            resource: &keys.resource,
            token: token.as_str(),
            armed: self.inner.local.try_own(&keys.resource, token.as_str()),
        };
        let sent = Instant::now();
        let attempt = self.attempt(&keys, &token, ttl_ms).await;
        if matches!(attempt, Ok(Attempt::Acquired(_))) {
            slot.armed = false;
        }
        drop(slot);
        match attempt {
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

    /// Waits up to `timeout` for the lock. When another task of this
    /// manager already holds or acquires the resource, waits in the
    /// in-process queue for a local hand-off (see the type's docs);
    /// otherwise, or when its turn comes with waiters of other processes
    /// queued, waits in Redis's FIFO queue: attempts with exponential
    /// back-off and jitter (capped by [`LockConfig::backoff_max`] and by
    /// the holder's remaining lease), handed the lock by the holder's
    /// release.
    ///
    /// # Errors
    /// [`Error::Timeout`] (with the holder's remaining lease, as far as
    /// known: from Redis, or by this process's clock for a local holder)
    /// when the wait runs out; bad input and Redis errors as
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
        // a timeout beyond any real wait (Duration::MAX) must not overflow
        let timeout = timeout.min(MAX_DURATION);
        let deadline = started + timeout;
        let mut waited_locally = false;
        if let Some(rx) = self
            .inner
            .local
            .join(&keys.resource, token.as_str(), ttl_ms)
        {
            waited_locally = true;
            self.inner.stats.wait_started();
            match self.wait_local(&keys, &token, rx, deadline).await {
                LocalTurn::Granted(value, sent) => {
                    self.inner.stats.wait_ended(started.elapsed());
                    return Ok(self.guard(keys, token, scripts::fence_of(&value), ttl, sent));
                }
                LocalTurn::Redis => {}
                LocalTurn::TimedOut => {
                    self.inner.stats.wait_ended(started.elapsed());
                    self.inner.stats.failed();
                    return Err(Error::Timeout {
                        resource: keys.resource.clone(),
                        waited: started.elapsed(),
                        retry_after: self.inner.local.holder_left(&keys.resource),
                    });
                }
            }
        }
        // we own the local slot: pass it on if we give up
        let mut slot = SlotExit {
            local: &self.inner.local,
            resource: &keys.resource,
            token: token.as_str(),
            armed: true,
        };
        let result = self
            .wait_for(&keys, &token, ttl_ms, started, timeout, waited_locally)
            .await;
        slot.armed = result.is_err();
        drop(slot);
        match result {
            Ok((fence, taken_before)) => Ok(self.guard(keys, token, fence, ttl, taken_before)),
            Err(e) => {
                self.inner.stats.failed();
                Err(e)
            }
        }
    }

    /// One native `SET NX PX GET`: fenced or not, a fence is issued on
    /// demand ([`LockGuard::fence`]), never by the acquisition.
    async fn attempt(&self, keys: &LockKeys, token: &LockToken, ttl_ms: u64) -> Result<Attempt> {
        scripts::acquire_unfenced(&self.inner.redis, keys, token.as_str(), ttl_ms).await
    }

    /// A fence for a lease of this manager (`lock_fence`): `None` when the
    /// lock is no longer ours.
    pub(crate) async fn fence_lease(&self, lease: &Lease) -> Result<Option<u64>> {
        scripts::fence(
            &self.inner.redis,
            &lease.keys,
            lease.token.as_str(),
            self.inner.fence_ttl_ms,
        )
        .await
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
        let guard = LockGuard::new(
            Backend::Single(self.clone()),
            Lease::new(keys, token, fence, ttl, taken_before),
            self.inner.config.watchdog,
        );
        let lease = guard.lease();
        // the local slot owner now holds the lock (a no-op for a guard
        // taken beside the slot owner)
        self.inner.local.hold(
            &lease.keys.resource,
            lease.token.as_str(),
            Arc::clone(lease),
        );
        guard
    }

    /// Acquires `resource` (waiting as [`acquire`](Self::acquire)), runs
    /// `f`, and releases, whatever happens: on success, when `f` returns
    /// an error (it comes back as is, typed: `E` only needs
    /// `From<`[`Error`]`>` for the lock's own errors), when `f` panics
    /// (unwinding drops the guard, which releases in a spawned task), and
    /// when the returned future is dropped or cancelled (same). Nothing
    /// here blocks.
    ///
    /// ```no_run
    /// # async fn demo(locks: aeturnis_lock::LockManager) {
    /// use std::time::Duration;
    /// #[derive(Debug)]
    /// enum TradeError { Lock(aeturnis_lock::Error), NotEnoughGold }
    /// impl From<aeturnis_lock::Error> for TradeError {
    ///     fn from(e: aeturnis_lock::Error) -> Self { TradeError::Lock(e) }
    /// }
    /// let r: Result<u64, TradeError> = locks
    ///     .with_lock("trade:alice:bob", Duration::from_secs(5), |_ctx| async {
    ///         Err(TradeError::NotEnoughGold)
    ///     })
    ///     .await;
    /// assert!(matches!(r, Err(TradeError::NotEnoughGold)));
    /// # }
    /// ```
    ///
    /// # Errors
    /// `f`'s own error; the acquisition's errors; and [`Error::LockLost`]
    /// when `f` succeeded but the lock turned out to be lost at release:
    /// the output is then discarded, because its critical section was not
    /// exclusive.
    pub async fn with_lock<F, Fut, T, E>(
        &self,
        resource: &str,
        ttl: Duration,
        f: F,
    ) -> std::result::Result<T, E>
    where
        F: FnOnce(LockContext) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        let guard = self.acquire(resource, ttl).await?;
        run_locked(guard, f).await
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
                .release_owned(&lease.keys, lease.token.as_str(), lease.issued_fence())
                .await?
            {
                ReleaseOutcome::Released(_) => true,
                ReleaseOutcome::NotOurs => lease.still_valid(sent),
                ReleaseOutcome::Lost => false,
            },
        )
    }
}
