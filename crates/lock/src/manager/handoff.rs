//! Release and hand-off: to the oldest live waiter in Redis, or, in the
//! same script call, to the next local waiter of this manager.

use std::time::Instant;

use super::LockManager;
use crate::error::Result;
use crate::guard::Lease;
use crate::local::{Handoff, Next};
use crate::scripts::{self, LockKeys, ReleaseMode, ReleaseOutcome};

impl LockManager {
    pub(super) async fn release_as(
        &self,
        keys: &LockKeys,
        token: &str,
        fence: u64,
        mode: ReleaseMode,
    ) -> Result<ReleaseOutcome> {
        let released = scripts::release(&self.inner.redis, keys, token, fence, mode).await?;
        // handed to a waiter: if it waits in this process, it holds the
        // lock as of now (the pub/sub message tells the others)
        if let ReleaseOutcome::Released(Some(value)) = &released {
            self.inner.stats.handed_off();
            self.inner.wakers.grant(value);
        }
        Ok(released)
    }

    /// Releases `token`'s lock (the holder's, or one handed to a local
    /// waiter that has gone) and, when `token` owns the local slot, hands
    /// the lock to the next local waiter in the same script call. Returns
    /// the outcome of `token`'s own release.
    pub(super) async fn release_owned(
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
            &next.token,
            next.ttl_ms,
        )
        .await;
        if let Ok(ReleaseOutcome::Released(Some(_))) = &outcome {
            self.inner.stats.handed_off();
        }
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
}
