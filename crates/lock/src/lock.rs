//! The [`Lock`] trait: what [`LockManager`] and [`Redlock`] both do, so
//! code (and tests, and benches) can be written once over either.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::guard::{LockContext, LockGuard};
use crate::stats::LockStats;
use crate::{LockManager, Redlock};

/// A distributed lock service: single-instance ([`LockManager`]) or
/// Redlock ([`Redlock`]). Each method does what the inherent method of the
/// same name does on each type; the inherent methods stay, so a caller
/// that knows its type need not import the trait.
///
/// ```no_run
/// use std::time::Duration;
/// use aeturnis_lock::{Lock, LockGuard, Result};
///
/// async fn settle(locks: &impl Lock) -> Result<u64> {
///     locks
///         .with_lock("trade:alice:bob", Duration::from_secs(5), |ctx| async move {
///             Ok::<_, aeturnis_lock::Error>(ctx.fence().await?.get())
///         })
///         .await
/// }
/// ```
pub trait Lock: Send + Sync {
    /// One attempt; [`Error::Contended`] when held. See
    /// [`LockManager::try_acquire`] and [`Redlock::try_acquire`].
    fn try_acquire(
        &self,
        resource: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<LockGuard>> + Send;

    /// Waits up to the configured `wait_timeout`. See
    /// [`LockManager::acquire`] and [`Redlock::acquire`].
    fn acquire(
        &self,
        resource: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<LockGuard>> + Send;

    /// Waits up to `timeout`. See [`LockManager::acquire_within`] and
    /// [`Redlock::acquire_within`].
    fn acquire_within(
        &self,
        resource: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> impl Future<Output = Result<LockGuard>> + Send;

    /// Acquires, runs `f`, releases whatever happens; the section's own
    /// error comes back typed. See [`LockManager::with_lock`].
    fn with_lock<F, Fut, T, E>(
        &self,
        resource: &str,
        ttl: Duration,
        f: F,
    ) -> impl Future<Output = std::result::Result<T, E>> + Send
    where
        F: FnOnce(LockContext) -> Fut + Send,
        Fut: Future<Output = std::result::Result<T, E>> + Send,
        T: Send,
        E: From<Error> + Send;

    /// Counters since the lock service was created.
    fn stats(&self) -> LockStats;
}

/// Runs `f` under `guard` and releases it, whatever happens (the body of
/// every `with_lock`).
///
/// A section that fails gets its own error back; the release still runs
/// (a failed release is logged: the section's error says more). A section
/// that succeeds gets the release's error, if any ([`Error::LockLost`]:
/// its work was not exclusive, so its output is discarded).
pub(crate) async fn run_locked<F, Fut, T, E>(guard: LockGuard, f: F) -> std::result::Result<T, E>
where
    F: FnOnce(LockContext) -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
    E: From<Error>,
{
    match f(guard.context()).await {
        Ok(out) => {
            guard.release().await?;
            Ok(out)
        }
        Err(e) => {
            if let Err(release) = guard.release().await {
                tracing::debug!(error = %release, "lock: release after a failed section failed");
            }
            Err(e)
        }
    }
}

macro_rules! impl_lock {
    ($ty:ty) => {
        impl Lock for $ty {
            fn try_acquire(
                &self,
                resource: &str,
                ttl: Duration,
            ) -> impl Future<Output = Result<LockGuard>> + Send {
                <$ty>::try_acquire(self, resource, ttl)
            }

            fn acquire(
                &self,
                resource: &str,
                ttl: Duration,
            ) -> impl Future<Output = Result<LockGuard>> + Send {
                <$ty>::acquire(self, resource, ttl)
            }

            fn acquire_within(
                &self,
                resource: &str,
                ttl: Duration,
                timeout: Duration,
            ) -> impl Future<Output = Result<LockGuard>> + Send {
                <$ty>::acquire_within(self, resource, ttl, timeout)
            }

            fn with_lock<F, Fut, T, E>(
                &self,
                resource: &str,
                ttl: Duration,
                f: F,
            ) -> impl Future<Output = std::result::Result<T, E>> + Send
            where
                F: FnOnce(LockContext) -> Fut + Send,
                Fut: Future<Output = std::result::Result<T, E>> + Send,
                T: Send,
                E: From<Error> + Send,
            {
                <$ty>::with_lock(self, resource, ttl, f)
            }

            fn stats(&self) -> LockStats {
                <$ty>::stats(self)
            }
        }
    };
}

impl_lock!(LockManager);
impl_lock!(Redlock);
