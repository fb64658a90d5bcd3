//! # aeturnis-lock
//!
//! Distributed locks on Redis: single-instance locks ([`LockManager`]),
//! Redlock over independent masters ([`Redlock`]), `with_lock`, a watchdog
//! that keeps a lock alive while its guard lives, and fencing tokens.
//!
//! ```no_run
//! use std::time::Duration;
//! use aeturnis_lock::{LockConfig, LockManager};
//! use aeturnis_redis_core::{Redis, RedisConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::from_env()?).await?;
//! let locks = LockManager::new(redis, LockConfig::default().with_watchdog(true))?;
//!
//! // released on success, error, panic and cancellation
//! let total = locks
//!     .with_lock("trade:alice:bob", Duration::from_secs(10), |ctx| async move {
//!         // pass ctx.fence() to the store the lock protects;
//!         // stop early if ctx.lost() fires
//!         ctx.fence().get()
//!     })
//!     .await?;
//! # let _ = total;
//! # Ok(()) }
//! ```
//!
//! | feature | what it adds |
//! |---|---|
//! | (none) | everything; the crate depends only on `aeturnis-redis-core` |
//!
//! ## How it works
//!
//! Each operation is one Lua script on the keys of one resource, which all
//! share the hash tag `{resource}` (so they work on a cluster):
//!
//! * **acquire** is `SET NX PX` with a fresh 128-bit random [`LockToken`],
//!   plus a per-resource counter that issues the [`FencingToken`], in the
//!   same script. It is idempotent for its token: when fred re-sends it after
//!   a reconnect, a replay of an acquire that succeeded answers "acquired"
//!   with the same fence, never "held by someone else".
//! * **release** is compare-and-delete; it remembers the last released
//!   token so that a replayed release still answers "released". When
//!   someone waits, it names the head of the FIFO queue and publishes that
//!   waiter's token on the resource's channel: only that waiter is woken
//!   (locally at once, elsewhere through one shared pub/sub client per
//!   manager; the bounded back-off poll covers a lost message). With nobody
//!   waiting it publishes nothing.
//! * **extend** is compare-and-`PEXPIRE`; it fails with
//!   [`Error::LockLost`] when the token no longer matches, and never
//!   re-acquires.
//! * A [`LockGuard`] released by drop spawns the release on the current
//!   Tokio runtime: drop never blocks.
//! * The fencing counter and the [fenced write](LockManager::fenced_write)
//!   record live for [`LockConfig::fence_ttl`] (7 days by default),
//!   refreshed on use, so they do not pile up forever.
//!
//! ## Redlock safety
//!
//! [`Redlock`] follows the published algorithm: a majority of `N/2 + 1`
//! independent masters, each asked in parallel with a short timeout, and a
//! validity of `ttl − elapsed − (ttl × 0.01 + 2 ms)`. What that does and
//! does not promise:
//!
//! * **Clocks.** Validity is measured with the client's monotonic clock and
//!   expiry by each master's clock. The drift term assumes clocks that run
//!   at nearly the same *rate* (within 1 %); a master whose clock jumps (an
//!   NTP step, a VM pause) can expire a key early and break mutual
//!   exclusion. Lock validity is the one place in Aeturnis that relies on
//!   client time, by design of the algorithm.
//! * **Restarts.** A master that restarts without persistence forgets the
//!   keys it granted; with another master that can re-grant the lock to a
//!   second client. Run masters with `appendfsync always`, or keep a
//!   restarted master out of service for at least the longest TTL (delayed
//!   restart).
//! * **Pauses.** No lease-based lock protects against a holder that pauses
//!   (GC, swap, a stopped process) past its validity. That is what fencing
//!   tokens are for: the protected store must check them.
//! * **Fencing across masters.** Each master keeps its own counter; a
//!   Redlock fence is the highest counter among the masters that granted,
//!   and the client passes its highest fence seen as a floor so lagging
//!   masters catch up. Two successive quorums always share a master, whose
//!   counter grows, but the *maximum* over a quorum is only guaranteed to
//!   grow for clients that share a [`Redlock`] (the floor) or when the
//!   masters stay in step; across independent processes a fence can repeat
//!   or go backwards after a master restart. Use a single-instance lock
//!   (or a consensus store) when a strictly total fence order is required.
//!
//! Fewer than 3 masters, or an even count, is refused with
//! [`Error::InvalidMasters`] and the reason.

mod backoff;
mod config;
mod error;
mod guard;
mod manager;
mod redlock;
mod scripts;
mod stats;
mod token;
mod wake;

pub use config::{clock_drift, LockConfig, RedlockConfig, MAX_TTL};
pub use error::{Error, Result};
pub use guard::{LockContext, LockGuard};
pub use manager::{LockManager, StaleFence};
pub use redlock::Redlock;
pub use stats::LockStats;
pub use token::{FencingToken, LockToken};
