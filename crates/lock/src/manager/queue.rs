//! Waiting in Redis's FIFO queue: join, keep the lease, be handed the
//! lock by a release (reply or sharded pub/sub), or leave on giving up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aeturnis_redis_core::duration::ceil_millis;

use super::LockManager;
use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::scripts::{self, Attempt, LockKeys, ReleaseMode, WaitAttempt};
use crate::token::LockToken;

/// Leaves the fair queue (in a spawned task) unless disarmed: a waiter
/// that times out, fails or is cancelled must not hold up the queue until
/// its lease runs out, and a lock handed to it meanwhile is passed on.
pub(super) struct QueueExit(Option<(LockManager, Arc<LockKeys>, LockToken)>);

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

impl LockManager {
    pub(super) async fn wait_for(
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
            held = match scripts::wait(&self.inner.redis, keys, token.as_str(), ttl_ms, lease).await
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
        ceil_millis(lease)
    }

    /// A waiter gives up: out of the queue, and the lock passed on if a
    /// release handed it to us meanwhile.
    pub(super) async fn leave(&self, keys: &LockKeys, token: &LockToken) -> Result<()> {
        self.release_as(keys, token.as_str(), 0, ReleaseMode::Leave)
            .await
            .map(drop)
    }
}
