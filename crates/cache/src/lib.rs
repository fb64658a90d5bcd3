//! # aeturnis-cache
//!
//! A typed Redis cache over [`aeturnis_redis_core`]: values through the core
//! codec (MessagePack by default, JSON selectable), a TTL on every write,
//! pipelined and cluster-aware bulk operations, counters that can never be
//! left without expiry, sets, lists, sorted sets and leaderboards, pattern
//! delete that never uses `KEYS`, and lock-free statistics.
//!
//! ```no_run
//! use aeturnis_cache::{Cache, CacheConfig, Redis, RedisConfig, Ttl};
//! use std::time::Duration;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Profile { name: String, level: u32 }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::from_env()?).await?;
//! let cache = Cache::new(redis, CacheConfig::from_env()?)?;
//!
//! let key = cache.schema().user_profile("42")?;          // aeturnis:user:{42}:profile
//! cache.set(&key, &Profile { name: "Ælfrida".into(), level: 7 }, Ttl::Default).await?;
//! let profile: Option<Profile> = cache.get(&key).await?;
//!
//! let board = cache.schema().leaderboard("pvp")?;
//! cache.leaderboard_incr(&board, "ælfrida", 25.0, Duration::from_secs(86_400)).await?;
//! let top = cache.leaderboard_top(&board, 10.try_into()?).await?;
//!
//! let removed = cache.delete_matching(cache.pattern("user").any()).await?;
//! println!("hit rate {:?}", cache.stats().hit_rate());
//! # Ok(()) }
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`Cache`] | get/set/delete/exists/ttl/expire, NX/XX, `set_persistent`; the replay table |
//! | `mget`/`mset` | one round trip standalone, per-slot groups in parallel on a cluster |
//! | `incr`/`decr` | `INCRBY` + `PEXPIRE` in one script, never replayed |
//! | `members_*`, `list_*`, `zset_*`, `leaderboard_*` | Redis sets, lists, sorted sets; every addition sets the TTL atomically |
//! | `delete_matching`, `count_matching` | `SCAN` every primary, `UNLINK` in batches |
//! | [`CacheStats`], [`RedisStats`] | in-process counters; Redis figures on demand (`Serialize`) |
//! | [`Error`], [`Classify`] | typed errors; invalid input / unavailable / internal |
//! | [`Schema`] | `user:{id}:profile`, `char:{id}:inventory`, `leaderboard:{type}` |
//! | `near` (feature `near`) | `NearCache`: an in-process tier kept coherent by RESP3 client tracking |
//!
//! One cargo feature, `near` (off by default). The guide (key conventions,
//! TTL choice, stats, near cache) is in [`guide`].

mod bulk;
mod cache;
mod collections;
mod config;
mod counter;
mod error;
#[cfg(feature = "near")]
pub mod near;
mod pattern;
pub mod schema;
mod sorted;
mod stats;
mod ttl;
mod write_ttl;

/// The caching guide (`docs/caching.md`).
#[doc = include_str!("../docs/caching.md")]
pub mod guide {}

pub use aeturnis_redis_core as core;
pub use aeturnis_redis_core::{Classify, ErrorClass, Redis, RedisConfig, RedisKey};

pub use cache::Cache;
pub use config::CacheConfig;
pub use error::{Error, Result};
pub use pattern::{DeleteProgress, MatchPattern};
pub use schema::Schema;
pub use sorted::RankedEntry;
pub use stats::{CacheStats, OpKind, OpStats, RedisStats};
pub use ttl::{KeyTtl, Ttl};
