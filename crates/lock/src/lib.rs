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
//! Every key of a resource shares the hash tag `{resource}`, so each script
//! runs on one slot of a cluster; the scripts are given the lock key and
//! derive the others (see the key table in the README).
//!
//! * **acquire** (uncontended) is one script: the per-resource counter
//!   issues the [`FencingToken`] and `SET NX PX GET` stores `TOKEN:FENCE`
//!   under a fresh 128-bit random [`LockToken`]. It is idempotent for its
//!   token: when fred re-sends it after a reconnect, a replay of an acquire
//!   that succeeded finds its own token and answers "acquired" with the same
//!   fence, never "held by someone else". With [`LockConfig::fencing`] off
//!   it is one native `SET key TOKEN NX PX ttl GET` (replay-safe the same
//!   way) and guards carry fence `0`.
//! * **waiting**: a waiter that finds the lock held joins a FIFO queue in
//!   Redis (kept alive by a lease it refreshes on every poll, server time)
//!   and marks the lock value with `!`.
//! * **release** is compare-and-delete (`GET` + `DEL` when nobody waits)
//!   and keeps no record. A release that fred replays after a reconnect
//!   finds the lock already gone; the guard tells that from a loss by its
//!   lease: while the lease certainly runs (counted from before the
//!   acquire was sent, less the drift allowance) only a force release or
//!   a Redis data loss could have taken the lock, and the script reports
//!   both (a `:forced` marker; a fencing counter below the holder's fence),
//!   so "gone" can only be our own release. After the lease, "gone" is
//!   [`Error::LockLost`]. When the
//!   value carries the `!` mark, the release **hands the lock over**: it
//!   sets the lock to the oldest live waiter's token, with the TTL that
//!   waiter asked for and a new fence, and publishes the new value with
//!   sharded pub/sub (`SPUBLISH` on the lock's own hash slot). That
//!   waiter holds the lock from that instant; it learns so from the
//!   release's reply (same process) or the message (one shared
//!   `SSUBSCRIBE` client per manager), with no further round trip, and a waiter that
//!   missed both finds its own token at its next poll. Nobody can barge in
//!   between, so no waiter starves. A waiter that gives up (timeout,
//!   cancellation) leaves the queue and passes on a lock handed to it
//!   meanwhile; one that dies is skipped once its lease runs out.
//! * **in-process queue**: tasks of one [`LockManager`] (clones share it)
//!   that want the same resource are coalesced in front of Redis. One of
//!   them at a time (the *slot owner*) acquires, waits in the Redis queue,
//!   or holds the lock; the others wait in a local FIFO queue. The owner's
//!   release pops the next local waiter and sends **one** release script
//!   in "hand to local" mode: if waiters of other processes are queued in
//!   Redis (the `!` mark), the oldest live one gets the lock exactly as
//!   above and the local waiter goes on to queue in Redis itself;
//!   otherwise the lock is set to the local waiter's token with a new
//!   fence and its TTL, with no `PUBLISH`, and the script's reply is
//!   handed to the waiter: no further round trip. A replay of that script
//!   finds the lock starting with the waiter's token and answers the same
//!   grant. A local waiter that times out or is cancelled leaves the local
//!   queue and passes on a grant (or its turn) that reached it; a release
//!   whose waiter vanished before the reply releases or hands on that
//!   grant itself, so the lock is never stuck until its TTL. A local
//!   holder that overruns its lease (by this process's clock) does not
//!   hold up the local queue: its head goes to Redis, which decides as
//!   for any waiter. [`try_acquire`](LockManager::try_acquire) never
//!   queues locally: it is one attempt in Redis.
//! * **fairness**: the local queue is FIFO, the Redis queue is FIFO, and
//!   at every release the waiters queued in Redis are served before the
//!   releasing process's own local waiters. A busy process therefore
//!   cannot starve others: a remote waiter gets the lock at the next
//!   release after it queued. Within a process, local waiters are served
//!   in arrival order. Separate managers do not share a local queue and
//!   are remote to each other.
//! * **extend** is compare-and-`PEXPIRE`; it fails with
//!   [`Error::LockLost`] when the token no longer matches, and never
//!   re-acquires.
//! * A [`LockGuard`] released by drop spawns the release on the current
//!   Tokio runtime: drop never blocks.
//! * The fencing counter and the [fenced write](LockManager::fenced_write)
//!   record live for [`LockConfig::fence_ttl`] (7 days by default),
//!   refreshed on use, so they do not pile up forever.

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
mod local;
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
