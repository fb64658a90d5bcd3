//! The in-process queue: a task waits behind another task of the same
//! manager for a local hand-off, and passes on what reached it when it
//! gives up.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use super::LockManager;
use crate::error::Result;
use crate::local::{Handoff, LocalQueues};
use crate::scripts::{self, LockKeys};
use crate::token::LockToken;

/// Passes the local slot on (to the next local waiter, who goes to Redis)
/// unless disarmed: a slot owner that gives up, fails or is cancelled
/// before it holds the lock.
pub(super) struct SlotExit<'a> {
    pub(super) local: &'a LocalQueues,
    pub(super) resource: &'a str,
    pub(super) token: &'a str,
    pub(super) armed: bool,
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
pub(super) enum LocalTurn {
    /// Handed over by a local release: the lock's value, and when the
    /// hand-off was sent.
    Granted(String, Instant),
    /// We own the slot: acquire in Redis.
    Redis,
    /// The deadline passed.
    TimedOut,
}

impl LockManager {
    /// Waits in the local queue until a release hands us the lock or the
    /// slot, the holder's lease runs out by our clock (the head then takes
    /// the slot over), or the deadline passes.
    pub(super) async fn wait_local(
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
}
