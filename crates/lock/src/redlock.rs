//! Redlock over N independent masters.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aeturnis_redis_core::duration::MAX_DURATION;
use aeturnis_redis_core::Redis;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::backoff::{jitter, Backoff};
use crate::config::{clock_drift, ttl_millis, RedlockConfig};
use crate::error::{Error, Result};
use crate::guard::{Backend, Lease, LockContext, LockGuard};
use crate::lock::run_locked;
use crate::scripts::{self, Attempt, LockKeys, ReleaseMode, ReleaseOutcome};
use crate::stats::{LockStats, StatsCell};
use crate::token::LockToken;
use crate::wake::Wakers;

/// The Redlock algorithm over N independent masters (3 or 5, odd).
///
/// An acquisition sends the acquire script to every master in parallel
/// (with [`LockConfig::fencing`](crate::LockConfig::fencing) off in
/// [`RedlockConfig::lock`], the native `SET key token NX PX ttl GET` of the
/// original algorithm instead, and guards carry fence `0`), each bounded
/// by [`RedlockConfig::master_timeout`], and holds the lock
/// only if a quorum of `N/2 + 1` granted it with validity left:
/// `ttl − elapsed − drift`, where `drift = ttl × 0.01 + 2 ms`. On failure
/// it releases on every master and retries after a random delay. Extension
/// needs a quorum too. See the crate's [safety notes](crate#redlock-safety).
///
/// ```no_run
/// # async fn demo(masters: Vec<aeturnis_redis_core::Redis>) -> aeturnis_lock::Result<()> {
/// use std::time::Duration;
/// use aeturnis_lock::{Redlock, RedlockConfig};
///
/// let redlock = Redlock::new(masters, RedlockConfig::default())?;
/// let guard = redlock.acquire("payout:42", Duration::from_secs(5)).await?;
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Redlock {
    inner: Arc<Inner>,
}

struct Inner {
    masters: Vec<Redis>,
    config: RedlockConfig,
    quorum: usize,
    fence_ttl_ms: u64,
    /// Highest fencing token seen: passed as a floor so lagging masters
    /// catch up and this process never sees its fences go backwards.
    floor: AtomicU64,
    stats: StatsCell,
    wakers: Wakers,
}

impl fmt::Debug for Redlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redlock")
            .field("masters", &self.inner.masters.len())
            .field("quorum", &self.inner.quorum)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Per-master outcomes of one fan-out.
#[derive(Debug, Default)]
struct Tally {
    yes: usize,
    no: usize,
    failed: usize,
    fence: u64,
    held_ms: u64,
}

enum Round {
    /// `started`: before the round's first request was sent.
    Acquired {
        fence: u64,
        started: Instant,
    },
    Held {
        retry_after: Duration,
    },
}

impl Redlock {
    /// A Redlock over `masters`, which must be independent servers (not
    /// replicas of each other) sharing one key prefix.
    ///
    /// # Errors
    /// [`Error::InvalidMasters`] for fewer than 3 masters or an even
    /// count, or masters with different key prefixes; [`Error::Config`]
    /// naming the setting for a bad config.
    pub fn new(masters: Vec<Redis>, config: RedlockConfig) -> Result<Redlock> {
        let n = masters.len();
        if n < 3 {
            return Err(Error::InvalidMasters {
                masters: n,
                reason: "with fewer than 3 masters the loss of one master makes the lock unavailable or unsafe",
            });
        }
        if n % 2 == 0 {
            return Err(Error::InvalidMasters {
                masters: n,
                reason: "an even count needs the same majority as the next odd count up, so the extra master adds load and no fault tolerance",
            });
        }
        config.validate()?;
        let prefix = masters[0].keys().prefix();
        if masters.iter().any(|m| m.keys().prefix() != prefix) {
            return Err(Error::InvalidMasters {
                masters: n,
                reason: "every Redlock master must use the same key prefix",
            });
        }
        for m in &masters {
            scripts::register(m);
        }
        let fence_ttl_ms = config.lock.fence_ttl_ms();
        Ok(Redlock {
            inner: Arc::new(Inner {
                quorum: n / 2 + 1,
                masters,
                config,
                fence_ttl_ms,
                floor: AtomicU64::new(0),
                stats: StatsCell::default(),
                wakers: Wakers::new(None),
            }),
        })
    }

    /// The quorum, `N/2 + 1`.
    #[must_use]
    pub fn quorum(&self) -> usize {
        self.inner.quorum
    }

    /// The masters.
    #[must_use]
    pub fn masters(&self) -> &[Redis] {
        &self.inner.masters
    }

    /// Counters since this Redlock was created.
    #[must_use]
    pub fn stats(&self) -> LockStats {
        self.inner.stats.snapshot()
    }

    pub(crate) fn stats_cell(&self) -> &StatsCell {
        &self.inner.stats
    }

    /// Whether acquisitions issue fences.
    pub(crate) fn fenced(&self) -> bool {
        self.inner.config.lock.fencing
    }

    fn keys(&self, resource: &str) -> Result<Arc<LockKeys>> {
        LockKeys::new(self.inner.masters[0].keys(), resource)
    }

    fn ttl_ms(&self, ttl: Duration) -> Result<u64> {
        ttl_millis(ttl, self.inner.config.master_timeout)
    }

    /// Up to [`RedlockConfig::retry_count`] rounds, with a random delay
    /// between them.
    ///
    /// # Errors
    /// [`Error::Contended`] when a majority is held by others,
    /// [`Error::Quorum`] when too many masters are unreachable, bad input.
    pub async fn try_acquire(&self, resource: &str, ttl: Duration) -> Result<LockGuard> {
        let keys = self.keys(resource)?;
        self.ttl_ms(ttl)?;
        let rounds = self.inner.config.retry_count.get();
        let mut last = None;
        for round in 0..rounds {
            if round > 0 {
                tokio::time::sleep(jitter(self.inner.config.lock.backoff_max)).await;
            }
            match self.round(&keys, ttl).await {
                Ok((token, Round::Acquired { fence, started })) => {
                    return Ok(self.guard(keys, token, fence, ttl, started))
                }
                Ok((_, Round::Held { retry_after })) => {
                    last = Some(Error::Contended {
                        resource: keys.resource.clone(),
                        retry_after,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        self.inner.stats.failed();
        Err(last.unwrap_or(Error::Contended {
            resource: keys.resource.clone(),
            retry_after: Duration::ZERO,
        }))
    }

    /// Waits up to [`LockConfig::wait_timeout`](crate::LockConfig::wait_timeout).
    ///
    /// # Errors
    /// As [`acquire_within`](Self::acquire_within).
    pub async fn acquire(&self, resource: &str, ttl: Duration) -> Result<LockGuard> {
        self.acquire_within(resource, ttl, self.inner.config.lock.wait_timeout)
            .await
    }

    /// Rounds with back-off and jitter until the lock is held or `timeout`
    /// passes.
    ///
    /// # Errors
    /// [`Error::Quorum`] when the last round failed for lack of reachable
    /// masters, [`Error::Timeout`] when it failed on contention; bad input.
    pub async fn acquire_within(
        &self,
        resource: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<LockGuard> {
        let keys = self.keys(resource)?;
        self.ttl_ms(ttl)?;
        let started = Instant::now();
        // a timeout beyond any real wait (Duration::MAX) must not overflow
        let deadline = started + timeout.min(MAX_DURATION);
        let mut backoff = Backoff::new(&self.inner.config.lock);
        let mut waiter = None;
        loop {
            let last = match self.round(&keys, ttl).await {
                Ok((
                    token,
                    Round::Acquired {
                        fence,
                        started: sent,
                    },
                )) => {
                    if waiter.is_some() {
                        self.inner.stats.wait_ended(started.elapsed());
                    }
                    return Ok(self.guard(keys, token, fence, ttl, sent));
                }
                Ok((_, Round::Held { retry_after })) => Error::Timeout {
                    resource: keys.resource.clone(),
                    waited: started.elapsed(),
                    retry_after,
                },
                Err(e @ Error::Quorum { .. }) => e,
                Err(e) => {
                    self.inner.stats.failed();
                    return Err(e);
                }
            };
            let now = Instant::now();
            if now >= deadline {
                if waiter.is_some() {
                    self.inner.stats.wait_ended(started.elapsed());
                }
                self.inner.stats.failed();
                return Err(last);
            }
            let w = match &waiter {
                Some(w) => w,
                None => {
                    let w = waiter.insert(self.inner.wakers.register(&keys.channel(), None).await);
                    self.inner.stats.wait_started();
                    w
                }
            };
            let delay = backoff.next_delay().min(deadline - now);
            tokio::select! {
                () = w.notify().notified() => {}
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// [`LockManager::with_lock`](crate::LockManager::with_lock) over Redlock.
    ///
    /// # Errors
    /// `f`'s own error; as [`acquire`](Self::acquire); and
    /// [`Error::LockLost`] when `f` succeeded but the lock was lost by the
    /// time of release.
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
            Backend::Redlock(self.clone()),
            Lease::new(keys, token, fence, ttl, taken_before),
            self.inner.config.lock.watchdog,
        )
    }

    /// Sends `op` to every master, each bounded by the master timeout, and
    /// tallies answers until `done` says the outcome is decided. The
    /// per-master futures run concurrently in the calling task (no spawn);
    /// stragglers are dropped unanswered once the outcome is decided (a
    /// command already sent may still take effect: that is covered by the
    /// TTL and by the release that fans out to every master).
    async fn fan_out<F, Fut>(&self, op: F, done: impl Fn(&Tally) -> bool) -> Tally
    where
        F: Fn(Redis) -> Fut,
        Fut: Future<Output = Result<Attempt>> + Send + 'static,
    {
        // driven concurrently in the calling task: no spawn per master
        let timeout = self.inner.config.master_timeout;
        let mut pending: FuturesUnordered<_> = self
            .inner
            .masters
            .iter()
            .map(|m| tokio::time::timeout(timeout, op(m.clone())))
            .collect();
        let mut tally = Tally::default();
        while let Some(answered) = pending.next().await {
            match answered {
                Ok(Ok(Attempt::Acquired(fence))) => {
                    tally.yes += 1;
                    tally.fence = tally.fence.max(fence);
                }
                Ok(Ok(Attempt::Held(ms))) => {
                    tally.no += 1;
                    tally.held_ms = tally.held_ms.max(ms);
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "redlock: master failed");
                    tally.failed += 1;
                }
                Err(_) => tally.failed += 1,
            }
            if done(&tally) {
                break;
            }
        }
        tally
    }

    fn quorum_error(&self, resource: &str, tally: &Tally) -> Error {
        Error::Quorum {
            resource: resource.to_owned(),
            reached: tally.yes,
            needed: self.inner.quorum,
            failed: tally.failed,
            masters: self.inner.masters.len(),
        }
    }

    /// One Redlock round with a fresh token (so a straggler of an earlier
    /// round can never be mistaken for this one).
    async fn round(&self, keys: &Arc<LockKeys>, ttl: Duration) -> Result<(LockToken, Round)> {
        let ttl_ms = self.ttl_ms(ttl)?;
        let token = LockToken::random();
        let n = self.inner.masters.len();
        let quorum = self.inner.quorum;
        let floor = self.inner.floor.load(Ordering::Acquire);
        let fence_ttl_ms = self.inner.fence_ttl_ms;
        let fenced = self.inner.config.lock.fencing;
        let started = Instant::now();
        let tally = {
            let keys = Arc::clone(keys);
            let token = token.as_str().to_owned();
            self.fan_out(
                move |m| {
                    let keys = Arc::clone(&keys);
                    let token = token.clone();
                    async move {
                        if fenced {
                            scripts::acquire(&m, &keys, &token, ttl_ms, fence_ttl_ms, floor).await
                        } else {
                            scripts::acquire_unfenced(&m, &keys, &token, ttl_ms).await
                        }
                    }
                },
                |t| t.yes >= quorum || t.no + t.failed > n - quorum,
            )
            .await
        };
        let elapsed = started.elapsed();
        let drift = clock_drift(ttl);
        if tally.yes >= quorum && ttl > elapsed + drift {
            self.inner.floor.fetch_max(tally.fence, Ordering::AcqRel);
            return Ok((
                token,
                Round::Acquired {
                    fence: tally.fence,
                    started,
                },
            ));
        }
        // not held: undo whatever was granted, on every master
        self.release_everywhere(keys, &token, 0, false).await;
        if tally.failed > n - quorum {
            return Err(self.quorum_error(&keys.resource, &tally));
        }
        Ok((
            token,
            Round::Held {
                retry_after: Duration::from_millis(tally.held_ms),
            },
        ))
    }

    /// `valid`: our lease certainly still runs, so "not ours" from a master
    /// is a replay of a release that already ran there (see
    /// `LockManager::release_lease`); `fence` lets a master that lost its
    /// data say so.
    async fn release_everywhere(
        &self,
        keys: &Arc<LockKeys>,
        token: &LockToken,
        fence: u64,
        valid: bool,
    ) -> Tally {
        let keys = Arc::clone(keys);
        let token = token.as_str().to_owned();
        self.fan_out(
            move |m| {
                let keys = Arc::clone(&keys);
                let token = token.clone();
                async move {
                    let released =
                        scripts::release(&m, &keys, &token, fence, ReleaseMode::Release).await?;
                    Ok(match released {
                        ReleaseOutcome::Released(_) => Attempt::Acquired(0),
                        // a replay of a release that already ran, while
                        // the lease certainly runs (see `release_lease`)
                        ReleaseOutcome::NotOurs if valid => Attempt::Acquired(0),
                        ReleaseOutcome::NotOurs | ReleaseOutcome::Lost => Attempt::Held(0),
                    })
                }
            },
            |_| false,
        )
        .await
    }

    pub(crate) async fn extend_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        let ttl_ms = self.ttl_ms(ttl)?;
        let n = self.inner.masters.len();
        let quorum = self.inner.quorum;
        let started = Instant::now();
        let keys = Arc::clone(&lease.keys);
        let token = lease.token.as_str().to_owned();
        let tally = self
            .fan_out(
                move |m| {
                    let keys = Arc::clone(&keys);
                    let token = token.clone();
                    async move {
                        let ok = scripts::extend(&m, &keys, &token, ttl_ms).await?;
                        Ok(if ok {
                            Attempt::Acquired(0)
                        } else {
                            Attempt::Held(0)
                        })
                    }
                },
                |t| t.yes >= quorum || t.no + t.failed > n - quorum,
            )
            .await;
        if tally.yes >= quorum && ttl > started.elapsed() + clock_drift(ttl) {
            lease.extended(started, ttl);
            return Ok(true);
        }
        lost_or_unknown(self, &lease.keys.resource, &tally)
    }

    pub(crate) async fn release_lease(&self, lease: &Lease) -> Result<bool> {
        let valid = lease.still_valid(Instant::now());
        let tally = self
            .release_everywhere(&lease.keys, &lease.token, lease.issued_fence(), valid)
            .await;
        let quorum = self.inner.quorum;
        if tally.yes > 0 {
            self.inner.wakers.wake(&lease.keys.channel());
        }
        if tally.yes >= quorum {
            return Ok(true);
        }
        lost_or_unknown(self, &lease.keys.resource, &tally)
    }
}

/// Not confirmed by a quorum: "lost" (`Ok(false)`) only when enough masters
/// answered "not yours" that no quorum could have confirmed it; otherwise
/// the failures leave it unknown, which is a quorum error, not a loss.
fn lost_or_unknown(red: &Redlock, resource: &str, tally: &Tally) -> Result<bool> {
    let n = red.inner.masters.len();
    if tally.no > n - red.inner.quorum {
        Ok(false)
    } else {
        Err(red.quorum_error(resource, tally))
    }
}
