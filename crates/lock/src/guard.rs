//! The guard a successful acquisition returns, its watchdog, and the
//! context `with_lock` hands to its closure.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::manager::LockManager;
use crate::redlock::Redlock;
use crate::scripts::LockKeys;
use crate::stats::StatsCell;
use crate::token::{FencingToken, LockToken};

/// Where a lease lives: one Redis, or a Redlock set of masters.
#[derive(Clone)]
pub(crate) enum Backend {
    Single(LockManager),
    Redlock(Redlock),
}

impl Backend {
    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        match self {
            Backend::Single(m) => m.extend_lease(lease, ttl).await,
            Backend::Redlock(r) => r.extend_lease(lease, ttl).await,
        }
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        match self {
            Backend::Single(m) => m.release_lease(lease).await,
            Backend::Redlock(r) => r.release_lease(lease).await,
        }
    }

    /// The guard is dropped where no release can run: let the next local
    /// waiter go to Redis (the lock itself expires after its TTL).
    fn abandon(&self, lease: &Lease) {
        if let Backend::Single(m) = self {
            m.abandon_slot(lease);
        }
    }

    /// A fence for `lease`: `Ok(None)` when the lock is no longer ours.
    async fn fence(&self, lease: &Lease) -> Result<Option<u64>> {
        match self {
            Backend::Single(m) => m.fence_lease(lease).await,
            // Redlock issues its fence with the acquisition
            Backend::Redlock(_) => Ok(Some(lease.issued_fence()).filter(|&f| f > 0)),
        }
    }

    fn fenced(&self) -> bool {
        match self {
            Backend::Single(m) => m.config().fencing,
            Backend::Redlock(r) => r.fenced(),
        }
    }

    fn stats(&self) -> &StatsCell {
        match self {
            Backend::Single(m) => m.stats_cell(),
            Backend::Redlock(r) => r.stats_cell(),
        }
    }
}

/// One acquisition: what it takes to extend or release it.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) keys: Arc<LockKeys>,
    pub(crate) token: LockToken,
    /// The fence, once issued (on demand, or with a Redlock acquisition).
    pub(crate) fence: OnceCell<u64>,
    pub(crate) ttl: Duration,
    /// A conservative bound on when the lock expires, by this process's
    /// monotonic clock: counted from before the request that took (or last
    /// extended) the lock was sent, so the real expiry is never earlier
    /// (clock rate drift aside: see [`still_valid`](Self::still_valid)).
    pub(crate) valid_until: std::sync::Mutex<Instant>,
}

impl Lease {
    /// `fence`: issued with the acquisition (Redlock), or `0` (none yet).
    pub(crate) fn new(
        keys: Arc<LockKeys>,
        token: LockToken,
        fence: u64,
        ttl: Duration,
        taken_before: Instant,
    ) -> Lease {
        Lease {
            keys,
            token,
            fence: if fence > 0 {
                OnceCell::new_with(Some(fence))
            } else {
                OnceCell::new()
            },
            ttl,
            valid_until: std::sync::Mutex::new(taken_before + ttl),
        }
    }

    /// The fence issued so far (`0`: none).
    pub(crate) fn issued_fence(&self) -> u64 {
        self.fence.get().copied().unwrap_or(0)
    }

    /// Records an extension sent at `sent` for `ttl`.
    pub(crate) fn extended(&self, sent: Instant, ttl: Duration) {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = sent + ttl;
    }

    /// The conservative lease end (see the field).
    pub(crate) fn valid_until(&self) -> Instant {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the lock certainly had not expired at `at`: the lease bound,
    /// less the clock-drift allowance.
    pub(crate) fn still_valid(&self, at: Instant) -> bool {
        at + crate::config::clock_drift(self.ttl) < self.valid_until()
    }
}

/// A held lock. Give it back with [`release`](Self::release); dropping it
/// releases it too, in a task spawned on the current Tokio runtime (drop
/// never blocks; outside a runtime the lock simply expires after its TTL).
///
/// [`lost`](Self::lost) completes when the lock is found lost (by
/// [`extend`](Self::extend) or the watchdog), so long work can stop instead
/// of running on unprotected.
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard {
    backend: Backend,
    lease: Arc<Lease>,
    acquired_at: Instant,
    lost: CancellationToken,
    watchdog: Option<JoinHandle<()>>,
    released: bool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("resource", &self.lease.keys.resource)
            .field("fence", &self.lease.fence.get())
            .field("token", &self.lease.token)
            .field("lost", &self.lost.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    pub(crate) fn new(backend: Backend, lease: Lease, watchdog: bool) -> LockGuard {
        let lease = Arc::new(lease);
        let lost = CancellationToken::new();
        let watchdog = watchdog.then(|| {
            tokio::spawn(run_watchdog(
                backend.clone(),
                Arc::clone(&lease),
                lost.clone(),
            ))
        });
        LockGuard {
            backend,
            lease,
            acquired_at: Instant::now(),
            lost,
            watchdog,
            released: false,
        }
    }

    /// The resource name.
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.lease.keys.resource
    }

    /// The random token that owns the lock.
    #[must_use]
    pub fn token(&self) -> &LockToken {
        &self.lease.token
    }

    /// The fencing token of this holding, issued on demand: the first call
    /// runs one script that bumps the resource's counter only while this
    /// guard's token still holds the lock (later calls return the same
    /// token without a round trip). So a holder that lost the lock can never
    /// obtain a fence, fences grow in holding order, and a holder that
    /// never asks pays nothing. A [`Redlock`](crate::Redlock) guard has its
    /// fence from the acquisition.
    ///
    /// # Errors
    /// [`Error::LockLost`] when the lock is no longer ours (and
    /// [`lost`](Self::lost) fires); [`Error::Unfenced`] when the manager
    /// runs with [`fencing`](crate::LockConfig::fencing) off;
    /// [`Error::Redis`].
    pub async fn fence(&self) -> Result<FencingToken> {
        obtain_fence(&self.backend, &self.lease, &self.lost).await
    }

    /// The lease length asked for (and renewed by the watchdog).
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.lease.ttl
    }

    /// Time since the lock was acquired.
    #[must_use]
    pub fn held_for(&self) -> Duration {
        self.acquired_at.elapsed()
    }

    /// Whether the lock has been found lost.
    #[must_use]
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Completes when the lock is found lost (never, if it is kept).
    pub async fn lost(&self) {
        self.lost.cancelled().await;
    }

    /// A token cancelled when the lock is found lost, to hand to other tasks.
    #[must_use]
    pub fn lost_token(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// What [`with_lock`](LockManager::with_lock) passes to its closure.
    #[must_use]
    pub fn context(&self) -> LockContext {
        LockContext {
            backend: self.backend.clone(),
            lease: Arc::clone(&self.lease),
            lost: self.lost.clone(),
        }
    }

    /// Resets the lease to `ttl` from now, if the lock is still ours.
    ///
    /// # Errors
    /// [`Error::LockLost`] when the token no longer matches (it expired or
    /// was force-released); the lock is never silently re-acquired, and
    /// [`lost`](Self::lost) fires. [`Error::InvalidTtl`] for a bad `ttl`.
    pub async fn extend(&self, ttl: Duration) -> Result<()> {
        if self.backend.extend(&self.lease, ttl).await? {
            self.backend.stats().extended();
            Ok(())
        } else {
            self.mark_lost();
            Err(Error::LockLost {
                resource: self.lease.keys.resource.clone(),
            })
        }
    }

    /// Gives the lock back (compare-and-delete: never deletes a lock that
    /// is no longer ours).
    ///
    /// # Errors
    /// [`Error::LockLost`] when the lock was no longer ours, or had already
    /// been found lost ([`lost`](Self::lost) fired), so the work done under
    /// it was not exclusive; a Redis error leaves the lock to expire after
    /// its TTL.
    pub async fn release(mut self) -> Result<()> {
        self.released = true;
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
        if self.lost.is_cancelled() {
            // found lost by `extend` or the watchdog (and counted then): the
            // work was not exclusive, whatever the lease says. The lease may
            // still look valid, and a release that finds no lock then answers
            // "released" (a replay looks the same), so it must not decide
            // here; it only clears any copy still holding our token.
            if let Err(e) = self.backend.release(&self.lease).await {
                tracing::debug!(resource = %self.lease.keys.resource, error = %e, "lock: clearing a lost lock failed");
            }
            return Err(Error::LockLost {
                resource: self.lease.keys.resource.clone(),
            });
        }
        release(&self.backend, &self.lease, self.acquired_at).await
    }

    pub(crate) fn lease(&self) -> &Arc<Lease> {
        &self.lease
    }

    fn mark_lost(&self) {
        mark_lost(&self.backend, &self.lost);
    }
}

fn mark_lost(backend: &Backend, lost: &CancellationToken) {
    if !lost.is_cancelled() {
        backend.stats().lost();
        lost.cancel();
    }
}

/// The lease's fence, obtained on first use (see [`LockGuard::fence`]).
async fn obtain_fence(
    backend: &Backend,
    lease: &Lease,
    lost: &CancellationToken,
) -> Result<FencingToken> {
    if !backend.fenced() {
        return Err(Error::Unfenced {
            resource: lease.keys.resource.clone(),
        });
    }
    let fence = lease
        .fence
        .get_or_try_init(|| async {
            match backend.fence(lease).await? {
                Some(fence) => Ok(fence),
                None => {
                    mark_lost(backend, lost);
                    Err(Error::LockLost {
                        resource: lease.keys.resource.clone(),
                    })
                }
            }
        })
        .await?;
    Ok(FencingToken::issued(*fence, &lease.token))
}

async fn release(backend: &Backend, lease: &Lease, acquired_at: Instant) -> Result<()> {
    if backend.release(lease).await? {
        backend.stats().released(acquired_at.elapsed());
        Ok(())
    } else {
        backend.stats().lost();
        Err(Error::LockLost {
            resource: lease.keys.resource.clone(),
        })
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let backend = self.backend.clone();
                let lease = Arc::clone(&self.lease);
                let acquired_at = self.acquired_at;
                handle.spawn(async move {
                    if let Err(e) = release(&backend, &lease, acquired_at).await {
                        tracing::warn!(resource = %lease.keys.resource, error = %e, "lock: release on drop failed");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(
                    resource = %self.lease.keys.resource,
                    "lock guard dropped outside a Tokio runtime; the lock expires after its TTL"
                );
                self.backend.abandon(&self.lease);
            }
        }
    }
}

/// Extends every `ttl / 3`; fires `lost` when the lock is no longer ours,
/// or when failures (Redis down) outlast the lease.
async fn run_watchdog(backend: Backend, lease: Arc<Lease>, lost: CancellationToken) {
    let period = lease.ttl / 3;
    let mut valid_until = Instant::now() + lease.ttl;
    loop {
        tokio::select! {
            () = lost.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let sent = Instant::now();
        match backend.extend(&lease, lease.ttl).await {
            Ok(true) => {
                backend.stats().extended();
                valid_until = sent + lease.ttl;
            }
            Ok(false) => {
                tracing::warn!(resource = %lease.keys.resource, "lock: watchdog found the lock lost");
                backend.stats().lost();
                lost.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(resource = %lease.keys.resource, error = %e, "lock: watchdog extend failed");
                if Instant::now() + period >= valid_until {
                    backend.stats().lost();
                    lost.cancel();
                    return;
                }
            }
        }
    }
}

/// What the closure of [`with_lock`](LockManager::with_lock) gets: the
/// fencing token (on demand) to pass on to protected writes, and the "lock
/// lost" signal.
#[derive(Clone)]
pub struct LockContext {
    backend: Backend,
    lease: Arc<Lease>,
    lost: CancellationToken,
}

impl fmt::Debug for LockContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockContext")
            .field("resource", &self.lease.keys.resource)
            .field("fence", &self.lease.fence.get())
            .field("lost", &self.lost.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl LockContext {
    /// The fencing token of this holding, as [`LockGuard::fence`]: issued
    /// on the first call, only while the lock is still ours.
    ///
    /// # Errors
    /// As [`LockGuard::fence`].
    pub async fn fence(&self) -> Result<FencingToken> {
        obtain_fence(&self.backend, &self.lease, &self.lost).await
    }

    /// Whether the lock has been found lost.
    #[must_use]
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Completes when the lock is found lost.
    pub async fn lost(&self) {
        self.lost.cancelled().await;
    }

    /// The cancellation token behind [`lost`](Self::lost).
    #[must_use]
    pub fn lost_token(&self) -> CancellationToken {
        self.lost.clone()
    }
}
