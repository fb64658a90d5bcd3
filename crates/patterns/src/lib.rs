//! # aeturnis-patterns
//!
//! Cache patterns on Redis, built on `aeturnis-cache`: cache-aside reads
//! that survive stampedes and never write back a stale load, with
//! stale-while-revalidate, early refresh and negative caching; and
//! write-through, write-behind, tags and warming.
//!
//! ```no_run
//! use std::time::Duration;
//! use aeturnis_patterns::{CacheAside, LoadPolicy};
//! use aeturnis_patterns::cache::Cache;
//!
//! # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Profile { level: u32 }
//! # #[derive(Debug, thiserror::Error)] #[error("db")] struct DbError;
//! # async fn load_profile(id: u64) -> Result<Option<Profile>, DbError> { Ok(None) }
//! # async fn demo(cache: Cache) -> Result<(), aeturnis_patterns::Error> {
//! let profiles = CacheAside::<Profile>::new(&cache);
//! let policy = LoadPolicy::new(Duration::from_secs(300))
//!     .with_soft_ttl(Duration::from_secs(60))
//!     .with_negative_ttl(Duration::from_secs(5))
//!     .build()?;
//! let key = cache.key("profile").id("42").build()?;
//! let profile = profiles.get_or_load(&key, &policy, || load_profile(42)).await?;
//! // after changing the row: no reader in flight writes the old one back
//! profiles.invalidate(&key).await?;
//! # let _ = profile; Ok(()) }
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`cache_aside`] | [`CacheAside::get_or_load`], [`CacheAside::invalidate`] |
//! | [`write_through`] | [`CacheAside::write_through`]: the source first, then the cache |
//! | [`warm`] | [`CacheAside::warm`]: many keys, bounded concurrency, progress |
//! | [`scheduler`] | [`WarmScheduler`]: keeps the hottest keys warm before they expire |
//! | [`write_behind`] | [`WriteBehind`]: cache now, write the source later through Redis Streams |
//! | [`tags`] | [`TagIndex`]: `set_tagged`, `invalidate_tag`, bounded tag sets |
//! | [`policy`] | [`LoadPolicy`] → [`Policy`]: TTLs, soft TTL, negative TTL, β, fallbacks |
//! | [`guide`] | how leases, tokens and early refresh work, and their limits |

pub use aeturnis_cache as cache;
pub use aeturnis_redis_core as core;
pub use aeturnis_redis_core::{Classify, ErrorClass, Redis, RedisConfig, RedisKey};

pub mod cache_aside;
mod envelope;
mod error;
mod hot;
mod notify;
pub mod policy;
pub mod scheduler;
mod scripts;
mod stats;
pub mod tags;
pub mod warm;
pub mod write_behind;
pub mod write_through;
mod xfetch;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// How the patterns work, what they guarantee, and their limits.
#[doc = include_str!("../docs/guide.md")]
pub mod guide {}

pub use cache_aside::{CacheAside, Cacheable};
pub use error::{Error, Result};
pub use policy::{LoadPolicy, OnRedisError, Policy};
pub use scheduler::{WarmScheduler, WarmSchedulerConfig, WarmSchedulerStats};
pub use stats::CacheAsideStats;
pub use tags::TagIndex;
pub use warm::WarmProgress;
pub use write_behind::{
    Pending, StreamId, WriteBehind, WriteBehindConfig, WriteBehindStats, Writer,
};
pub use write_through::{WriteMode, WriteOutcome};
