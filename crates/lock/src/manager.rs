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
use crate::scripts::{self, Attempt, LockKeys};
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
/// its lease runs out.
struct QueueExit(Option<(Redis, Arc<LockKeys>, LockToken)>);

impl Drop for QueueExit {
    fn drop(&mut self) {
        let Some((redis, keys, token)) = self.0.take() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = scripts::dequeue(&redis, &keys, token.as_str()).await {
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
        let wakers = Wakers::new(config.wake_on_release.then(|| redis.clone()));
        Ok(LockManager {
            inner: Arc::new(Inner {
                redis,
                config,
                fence_ttl_ms,
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

    /// One attempt (one script call): the lock, or
    /// [`Error::Contended`] saying how long the holder still has.
    ///
    /// # Errors
    /// [`Error::Contended`]; [`Error::InvalidResource`] /
    /// [`Error::InvalidTtl`] for bad input; [`Error::Redis`].
    pub async fn try_acquire(&self, resource: &str, ttl: Duration) -> Result<LockGuard> {
        let keys = self.keys(resource)?;
        let ttl_ms = ttl_millis(ttl, Duration::ZERO)?;
        let token = LockToken::random();
        match self.attempt(&keys, &token, ttl_ms, 0).await {
            Ok(Attempt::Acquired(fence)) => Ok(self.guard(keys, token, fence, ttl)),
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
            Ok(fence) => Ok(self.guard(keys, token, fence, ttl)),
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
    ) -> Result<u64> {
        let lease = self.wait_lease_ms();
        // registered before the first attempt: a local release that names
        // us from now on leaves a wake-up even if we are not waiting yet
        let mut waiter = self
            .inner
            .wakers
            .register_local(&keys.channel, Some(token.as_str()));
        let mut held = match self.attempt(keys, token, ttl_ms, lease).await? {
            Attempt::Acquired(fence) => return Ok(fence),
            Attempt::Held(pttl) => pttl,
        };
        // from here on we may sit in the fair queue: leave it if we give up
        let mut queued = QueueExit(Some((
            self.inner.redis.clone(),
            Arc::clone(keys),
            token.clone(),
        )));
        let deadline = started + timeout;
        self.inner.stats.wait_started();
        // a release message sent before the channel was subscribed was
        // missed: then re-try at once
        let mut retry_now = self.inner.wakers.subscribe(&mut waiter).await;
        let mut backoff = Backoff::new(&self.inner.config);
        let outcome = loop {
            if !retry_now {
                let now = Instant::now();
                if now >= deadline {
                    break Err(Error::Timeout {
                        resource: keys.resource.clone(),
                        waited: now - started,
                        retry_after: Duration::from_millis(held),
                    });
                }
                let mut delay = backoff.next_delay().min(deadline - now);
                if held > 0 {
                    // held: no point sleeping past the holder's expiry
                    delay = delay.min(Duration::from_millis(held + 1));
                }
                // woken (only when a release names us as the queue's head):
                // re-try at once
                tokio::select! {
                    () = waiter.notify().notified() => {}
                    () = tokio::time::sleep(delay) => {}
                }
            }
            retry_now = false;
            held = match self.attempt(keys, token, ttl_ms, lease).await {
                Ok(Attempt::Acquired(fence)) => {
                    queued.0 = None;
                    break Ok(fence);
                }
                Ok(Attempt::Held(pttl)) => pttl,
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

    async fn attempt(
        &self,
        keys: &LockKeys,
        token: &LockToken,
        ttl_ms: u64,
        wait_lease_ms: u64,
    ) -> Result<Attempt> {
        scripts::acquire(
            &self.inner.redis,
            keys,
            token.as_str(),
            ttl_ms,
            self.inner.fence_ttl_ms,
            0,
            wait_lease_ms,
        )
        .await
    }

    fn guard(&self, keys: Arc<LockKeys>, token: LockToken, fence: u64, ttl: Duration) -> LockGuard {
        self.inner.stats.acquired();
        LockGuard::new(
            Backend::Single(self.clone()),
            Lease {
                keys,
                token,
                fence: FencingToken::new(fence),
                ttl,
            },
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

    /// Deletes the lock whoever holds it and wakes its waiters (admin use:
    /// a stuck holder). The holder finds out at its next extend or release.
    /// Returns whether a lock was held.
    ///
    /// # Errors
    /// Bad resource, or Redis.
    pub async fn force_release(&self, resource: &str) -> Result<bool> {
        let keys = self.keys(resource)?;
        let Some(head) = scripts::force_release(&self.inner.redis, &keys).await? else {
            return Ok(false);
        };
        self.inner.stats.forced();
        if let Some(head) = head {
            self.inner.wakers.wake_token(&head);
        }
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
        let bytes = self
            .inner
            .redis
            .codec()
            .encode(keys.fenced.as_str(), value)?;
        let outcome = scripts::fenced_write(
            &self.inner.redis,
            &keys,
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
            .hmget(&keys.fenced, vec!["f", "v"])
            .await
            .map_err(aeturnis_redis_core::Error::from)?;
        let (Some(fence), Some(value)) = (fence, value) else {
            return Ok(None);
        };
        let bytes = value.as_bytes().map(<[u8]>::to_vec).unwrap_or_default();
        let value = self
            .inner
            .redis
            .codec()
            .decode(keys.fenced.as_str(), &bytes)?;
        Ok(Some((FencingToken::new(fence), value)))
    }

    pub(crate) async fn extend_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        let ttl_ms = ttl_millis(ttl, Duration::ZERO)?;
        scripts::extend(&self.inner.redis, &lease.keys, lease.token.as_str(), ttl_ms).await
    }

    pub(crate) async fn release_lease(&self, lease: &Lease) -> Result<bool> {
        let released = scripts::release(
            &self.inner.redis,
            &lease.keys,
            lease.token.as_str(),
            self.inner.fence_ttl_ms,
        )
        .await?;
        let Some(head) = released else {
            return Ok(false);
        };
        // only the head of the fair queue may take the lock: wake just it
        if let Some(head) = head {
            self.inner.wakers.wake_token(&head);
        }
        Ok(true)
    }
}
