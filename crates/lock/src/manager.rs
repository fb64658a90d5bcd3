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
use crate::local::{Handoff, LocalQueues, Next};
use crate::scripts::{self, Attempt, LockKeys, ReleaseMode, ReleaseOutcome, WaitAttempt};
use crate::stats::{LockStats, StatsCell};
use crate::token::{FencingToken, LockToken};
use crate::wake::Wakers;

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

/// Passes the local slot on (to the next local waiter, who goes to Redis)
/// unless disarmed: a slot owner that gives up, fails or is cancelled
/// before it holds the lock.
struct SlotExit<'a> {
    local: &'a LocalQueues,
    resource: &'a str,
    token: &'a str,
    armed: bool,
}

impl Drop for SlotExit<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.local.pass(self.resource, self.token);
        }
    }
}

/// A local waiter's place: leaves the local queue when dropped (timeout,
/// cancellation) unless disarmed, and passes on what already reached it
/// (a grant is released or handed to the next local waiter; the slot goes
/// to the next local waiter).
struct LocalWait {
    manager: LockManager,
    keys: Arc<LockKeys>,
    token: LockToken,
    rx: Option<tokio::sync::oneshot::Receiver<Handoff>>,
}

impl LocalWait {
    /// Stops waiting: what had reached us, if anything. When a release
    /// popped us but has not answered yet, it finds us gone and passes
    /// the grant on itself.
    fn close(&mut self) -> Option<std::result::Result<Handoff, ()>> {
        let mut rx = self.rx.take()?;
        let local = &self.manager.inner.local;
        if local.leave(&self.keys.resource, self.token.as_str()) {
            return None;
        }
        use tokio::sync::oneshot::error::TryRecvError;
        match rx.try_recv() {
            Ok(handoff) => return Some(Ok(handoff)),
            // the releasing task was dropped after it popped us: it may
            // or may not have handed the lock to us in Redis
            Err(TryRecvError::Closed) => return Some(Err(())),
            Err(TryRecvError::Empty) => {}
        }
        rx.close();
        rx.try_recv().ok().map(Ok)
    }

    /// Passes on what `close` found, in a spawned task when it needs Redis.
    fn pass_on(&self, found: std::result::Result<Handoff, ()>) {
        let local = &self.manager.inner.local;
        let (manager, keys, token) = (
            self.manager.clone(),
            Arc::clone(&self.keys),
            self.token.clone(),
        );
        match found {
            Ok(Handoff::Redis) => local.pass(&keys.resource, token.as_str()),
            Ok(Handoff::Granted { value, .. }) => {
                spawn_or_pass(&self.manager, &self.keys, &self.token, async move {
                    manager
                        .release_owned(&keys, token.as_str(), scripts::fence_of(&value))
                        .await
                        .map(drop)
                })
            }
            Err(()) => {
                local.pass(&keys.resource, token.as_str());
                spawn_or_pass(&self.manager, &self.keys, &self.token, async move {
                    manager.leave(&keys, &token).await
                });
            }
        }
    }
}

/// Runs `work` (passing on a lock) in a spawned task; without a runtime,
/// only the local slot can be passed on (the lock expires after its TTL).
fn spawn_or_pass<F>(manager: &LockManager, keys: &LockKeys, token: &LockToken, work: F)
where
    F: Future<Output = Result<()>> + Send + 'static,
{
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            if let Err(e) = work.await {
                tracing::debug!(error = %e, "lock: passing on a local hand-off failed; it expires after its TTL");
            }
        });
    } else {
        manager.inner.local.pass(&keys.resource, token.as_str());
    }
}

impl Drop for LocalWait {
    fn drop(&mut self) {
        if let Some(found) = self.close() {
            self.pass_on(found);
        }
    }
}

/// How a local wait ended.
enum LocalTurn {
    /// Handed over by a local release: the lock's value, and when the
    /// hand-off was sent.
    Granted(String, Instant),
    /// We own the slot: acquire in Redis.
    Redis,
    /// The deadline passed.
    TimedOut,
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
    /// It never queues in the in-process queue: when another task of this
    /// manager holds or acquires the resource, it is still one attempt in
    /// Redis (usually [`Error::Contended`] with the holder's remaining
    /// lease). When no local task does, a lock it gets takes the local slot,
    /// so tasks that then [`acquire`](Self::acquire) wait behind it locally
    /// and are handed the lock at its release.
    ///
    /// # Errors
    /// [`Error::Contended`]; [`Error::InvalidResource`] /
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

    /// Waits in the local queue until a release hands us the lock or the
    /// slot, the holder's lease runs out by our clock (the head then takes
    /// the slot over), or the deadline passes.
    async fn wait_local(
        &self,
        keys: &Arc<LockKeys>,
        token: &LockToken,
        rx: tokio::sync::oneshot::Receiver<Handoff>,
        deadline: Instant,
    ) -> LocalTurn {
        let mut place = LocalWait {
            manager: self.clone(),
            keys: Arc::clone(keys),
            token: token.clone(),
            rx: Some(rx),
        };
        let local = &self.inner.local;
        loop {
            let check = local
                .check_at(&keys.resource, token.as_str())
                .map_or(deadline, |at| at.min(deadline));
            let Some(rx) = place.rx.as_mut() else {
                return LocalTurn::Redis;
            };
            tokio::select! {
                got = rx => {
                    place.rx = None;
                    return match got {
                        Ok(Handoff::Granted { value, sent }) => LocalTurn::Granted(value, sent),
                        // Closed: the releasing task was dropped after it
                        // popped us; the lock may have been handed to us
                        // in Redis, which our token finds there
                        Ok(Handoff::Redis) | Err(_) => LocalTurn::Redis,
                    };
                }
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(check)) => {}
            }
            if Instant::now() >= deadline {
                return match place.close() {
                    // it arrived as the wait ran out: take it
                    Some(Ok(Handoff::Granted { value, sent })) => LocalTurn::Granted(value, sent),
                    Some(found) => {
                        place.pass_on(found);
                        LocalTurn::TimedOut
                    }
                    None => LocalTurn::TimedOut,
                };
            }
            if local.take_over(&keys.resource, token.as_str()) {
                place.rx = None;
                return LocalTurn::Redis;
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
        waited_locally: bool,
    ) -> Result<(u64, Instant)> {
        let channel = keys.channel();
        // a free lock costs one call; when tasks of this process already
        // wait for it, it is not free: queue up at once (behind them)
        let mut held = if self.inner.wakers.has_waiters(&channel) {
            1
        } else {
            let first = self.attempt(keys, token, ttl_ms).await;
            if waited_locally && !matches!(first, Ok(Attempt::Held(_))) {
                // the wait (counted when it began locally) ends here
                self.inner.stats.wait_ended(started.elapsed());
            }
            match first? {
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
        if !waited_locally {
            self.inner.stats.wait_started();
        }
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

    /// Releases `token`'s lock (the holder's, or one handed to a local
    /// waiter that has gone) and, when `token` owns the local slot, hands
    /// the lock to the next local waiter in the same script call. Returns
    /// the outcome of `token`'s own release.
    async fn release_owned(
        &self,
        keys: &LockKeys,
        token: &str,
        fence: u64,
    ) -> Result<ReleaseOutcome> {
        let (outcome, mut orphan) = self.hand_on(keys, token, fence).await;
        // the waiter we handed the lock to had gone: pass its grant on
        while let Some((token, fence)) = orphan {
            let (passed, next) = self.hand_on(keys, &token, fence).await;
            if let Err(e) = passed {
                tracing::debug!(error = %e, "lock: passing on an unclaimed local hand-off failed; it expires after its TTL");
            }
            orphan = next;
        }
        outcome
    }

    /// One release by `token`, handing over to the next local waiter if
    /// `token` owns the slot and someone waits. Also returns a grant that
    /// reached nobody (the waiter had gone): its token and fence.
    async fn hand_on(
        &self,
        keys: &LockKeys,
        token: &str,
        fence: u64,
    ) -> (Result<ReleaseOutcome>, Option<(String, u64)>) {
        let next = match self.inner.local.pop_next(&keys.resource, token) {
            Next::NotOwner | Next::Idle => {
                return (
                    self.release_as(keys, token, fence, ReleaseMode::Release)
                        .await,
                    None,
                )
            }
            Next::Waiter(next) => next,
        };
        // the next waiter owns the slot now; if this task is dropped before
        // it answers, the waiter finds its sender gone and goes to Redis,
        // where its token finds a lock handed to it
        let sent = Instant::now();
        let outcome = scripts::release_to_local(
            &self.inner.redis,
            keys,
            token,
            fence,
            self.inner.fenced,
            self.inner.fence_ttl_ms,
            &next.token,
            next.ttl_ms,
        )
        .await;
        let handoff = match &outcome {
            Ok(ReleaseOutcome::Released(Some(value))) if value.starts_with(next.token.as_str()) => {
                Handoff::Granted {
                    value: value.clone(),
                    sent,
                }
            }
            Ok(ReleaseOutcome::Released(Some(value))) => {
                // remote waiters come first: the oldest got it (told by
                // pub/sub; by this call if it waits on this manager), and
                // our next waiter queues in Redis behind the others
                self.inner.wakers.grant(value);
                Handoff::Redis
            }
            // released, not ours, lost, or unknown (a Redis error): the
            // waiter goes to Redis; if the hand-off did run, its own token
            // finds the lock there
            _ => Handoff::Redis,
        };
        let orphan = match next.tx.send(handoff) {
            Ok(()) => None,
            Err(Handoff::Granted { value, .. }) => Some((next.token, scripts::fence_of(&value))),
            Err(Handoff::Redis) => {
                self.inner.local.pass(&keys.resource, &next.token);
                None
            }
        };
        (outcome, orphan)
    }

    /// A guard dropped outside a runtime: the next local waiter goes to
    /// Redis (the lock expires after its TTL).
    pub(crate) fn abandon_slot(&self, lease: &Lease) {
        self.inner
            .local
            .pass(&lease.keys.resource, lease.token.as_str());
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
                .release_owned(&lease.keys, lease.token.as_str(), lease.fence.get())
                .await?
            {
                ReleaseOutcome::Released(_) => true,
                ReleaseOutcome::NotOurs => lease.still_valid(sent),
                ReleaseOutcome::Lost => false,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use aeturnis_redis_core::RedisConfig;
    use aeturnis_testkit::TestCtx;

    use super::*;

    /// The in-process table keeps an entry only while a slot is owned.
    async fn should_leave_no_local_entry_behind(ctx: TestCtx) -> anyhow::Result<()> {
        let redis =
            Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
        let locks = LockManager::new(redis, LockConfig::default())?;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..20 {
            let locks = locks.clone();
            set.spawn(async move {
                let resource = format!("r{}", i % 4);
                for _ in 0..5 {
                    locks
                        .acquire(&resource, Duration::from_secs(5))
                        .await?
                        .release()
                        .await?;
                }
                // a try_acquire beside a busy slot, and a timed-out wait
                if let Ok(g) = locks.try_acquire(&resource, Duration::from_secs(5)).await {
                    g.release().await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = set.join_next().await {
            done??;
        }
        let held = locks.acquire("t", Duration::from_secs(5)).await?;
        let err = locks
            .acquire_within("t", Duration::from_secs(5), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        held.release().await?;
        assert_eq!(locks.inner.local.len(), 0, "idle slots must be removed");
        let stats = locks.stats();
        assert_eq!(stats.acquired, stats.released);
        assert_eq!(stats.losses, 0);
        Ok(())
    }

    aeturnis_testkit::topology_tests!(should_leave_no_local_entry_behind);
}
