//! # aeturnis-lock
//!
//! Distributed locks on Redis: single-instance locks ([`LockManager`]),
//! Redlock over independent masters ([`Redlock`]), both behind the
//! [`Lock`] trait; `with_lock`, a watchdog that keeps a lock alive while
//! its guard lives, FIFO hand-off to waiters, and fencing tokens.
//!
//! ```no_run
//! use std::time::Duration;
//! use aeturnis_lock::{Error, LockConfig, LockManager, Redis, RedisConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::from_env()?).await?;
//! let locks = LockManager::new(redis, LockConfig::from_env()?.with_watchdog(true))?;
//!
//! // released on success, error, panic and cancellation
//! let fence = locks
//!     .with_lock("trade:alice:bob", Duration::from_secs(10), |ctx| async move {
//!         // a fence on demand (one script), for the store the lock protects;
//!         // stop early if ctx.lost() fires
//!         Ok::<_, Error>(ctx.fence().await?.get())
//!     })
//!     .await?;
//! # let _ = fence;
//! # Ok(()) }
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`LockManager`] | one Redis: acquire, try, `with_lock`, force release, fenced writes |
//! | [`Redlock`] | a majority of independent masters |
//! | [`Lock`] | the operations both share |
//! | [`LockGuard`], [`LockContext`] | a held lock: fence, extend, release, `lost()` |
//! | [`LockConfig`], [`RedlockConfig`] | settings, `from_env` (`LOCK_*`) |
//! | [`Error`] | typed errors, classed by [`Classify`] |
//! | [`LockStats`] | in-process counters (`Serialize`) |
//!
//! The crate has no cargo features (`test-hooks` is for its own tests).
//! How it works, and what Redlock promises, is in [`guide`].

mod backoff;
mod config;
mod error;
mod guard;
mod local;
mod lock;
mod manager;
mod redlock;
#[cfg_attr(not(feature = "test-hooks"), allow(unreachable_pub))]
mod scripts;
mod stats;
mod token;
mod wake;

/// The lock guide (`docs/guide.md`): how it works, Redlock safety.
#[doc = include_str!("../docs/guide.md")]
pub mod guide {}

/// Each Lua script called directly: for this crate's own tests only.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod raw {
    pub use crate::scripts::*;
}

pub use aeturnis_redis_core as core;
pub use aeturnis_redis_core::{Classify, ErrorClass, Redis, RedisConfig, RedisKey};
pub use config::{clock_drift, LockConfig, RedlockConfig, MAX_TTL};
pub use error::{Error, Result};
pub use guard::{LockContext, LockGuard};
pub use lock::Lock;
pub use manager::{LockManager, StaleFence};
pub use redlock::Redlock;
pub use stats::LockStats;
pub use token::{FencingToken, LockToken};
