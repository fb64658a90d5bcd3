//! # aeturnis-redis-core
//!
//! The layer every Aeturnis crate stands on: one managed Redis connection
//! (fred, configured rather than re-implemented), the configuration that
//! reads a URL or the environment, the key namespace, the value codec, the
//! Lua script registry and the error type every higher crate wraps.
//!
//! ```no_run
//! use aeturnis_redis_core::{Redis, RedisConfig};
//! use aeturnis_redis_core::fred::prelude::*;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::from_env()?).await?;
//! let key = redis.keys().key("user").id("42").part("profile").build()?;
//! redis.client().set::<(), _, _>(&key, "hello", Some(Expiration::EX(60)), None, false).await?;
//! let health = redis.health().await;
//! println!("{:?} in {:?}", health.status, health.latency);
//! redis.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! | feature | what it adds |
//! |---|---|
//! | `tls` | `rediss://` URLs and [`RedisConfig::tls`], through fred's rustls (ring) support |
//!
//! What fred already does (reconnect with exponential backoff and jitter,
//! auto-pipelining, cluster routing, sentinel discovery, pools, timeouts) is
//! configured through [`RedisConfig`], not rebuilt here. See [`Redis`] for
//! the replay rules.
//!
//! Time that several processes compare comes from Redis, never from the
//! app server's wall clock: scripts read `TIME` themselves;
//! [`Redis::server_time`] asks the server once; [`ServerClock`] estimates
//! the server's clock between calibrations (min-RTT `TIME` samples carried
//! forward on the local monotonic clock, with an explicit error bound), for
//! hot paths that may decide from an estimate as long as a script re-checks
//! with the real `TIME` whenever the estimate is too close to call.

pub use fred;

mod client;
mod clock;
mod codec;
pub mod config;
mod error;
mod health;
pub mod keys;
mod script;

pub use client::Redis;
pub use clock::{ServerClock, ServerTime, DEFAULT_REFRESH_PERIOD, SAMPLES};
pub use codec::{Codec, CodecKind};
pub use config::{ConfigError, ReconnectConfig, RedisConfig, Secret, Topology};
pub use error::{Error, Result};
pub use health::{ConnectionState, Health, HealthStatus};
pub use keys::{escape_pattern, hash_slot, KeyError, KeySpace, RedisKey};
pub use script::LuaScript;
