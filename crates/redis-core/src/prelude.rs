//! The names most code needs, in one import, without clashing with your
//! own `Error` or `Result`.
//!
//! ```no_run
//! use aeturnis_redis_core::prelude::*;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::standalone("127.0.0.1", 6380)).await?;
//! let key = redis.keys().key("motd").build()?;
//! // fred's command traits are in scope (imported as `_`), so raw commands work
//! redis.client().set::<(), _, _>(&key, "welcome", Some(Expiration::EX(60)), None, false).await?;
//! let motd: Option<String> = redis.client().get(&key).await?;
//! # let _ = motd; Ok(()) }
//! ```
//!
//! It holds the core's types ([`Redis`], [`RedisConfig`], [`RedisKey`],
//! [`KeySpace`], [`Classify`], [`ErrorClass`]), fred's command traits
//! imported anonymously (their methods are callable, their names do not
//! take up yours), and fred's argument types ([`Expiration`],
//! [`SetOptions`], [`Value`], [`Key`], [`FromValue`]). fred's own `Error`
//! is deliberately left out: errors reach you as
//! [`aeturnis_redis_core::Error`](crate::Error).

pub use crate::class::{Classify, ErrorClass};
pub use crate::client::Redis;
pub use crate::config::RedisConfig;
pub use crate::keys::{KeySpace, RedisKey};

pub use fred::interfaces::{
    ClientInterface as _, ClientLike as _, ClusterInterface as _, ConfigInterface as _,
    HashesInterface as _, KeysInterface as _, ListInterface as _, LuaInterface as _,
    MemoryInterface as _, PubsubInterface as _, ServerInterface as _, SetsInterface as _,
    SortedSetsInterface as _, StreamsInterface as _, TransactionInterface as _,
};
pub use fred::types::{Expiration, FromValue, Key, SetOptions, Value};
