//! # aeturnis-redis-core
//!
//! The layer every Aeturnis crate stands on: one managed Redis connection
//! (fred, configured rather than re-implemented), the configuration that
//! reads a URL or the environment, the key namespace, the value codec, the
//! Lua script registry, and the plumbing every layer shares: one
//! environment reader, one `SCAN` over every primary, one duration rule and
//! one error classification.
//!
//! ```no_run
//! use aeturnis_redis_core::prelude::*;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::from_env()?).await?;
//! let key = redis.keys().key("user").id("42").part("profile").build()?;
//! redis.client().set::<(), _, _>(&key, "hello", Some(Expiration::EX(60)), None, false).await?;
//! let health = redis.health().await;
//! println!("{} in {:?}", health.state, health.latency);
//! redis.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`acl`] | the least-privilege ACL rules for an application user |
//! | [`config`] | [`RedisConfig`]: URL, environment, builder; the variable table |
//! | [`env`](mod@env) | [`Env`]: the typed environment reader every crate's `from_env` uses |
//! | [`duration`] | Duration to milliseconds, with the one rounding rule and bounds |
//! | [`class`] | [`Classify`] / [`ErrorClass`]: the error classes every crate answers |
//! | [`keys`] | [`KeySpace`], [`RedisKey`]: validated keys, segment encoding, `SCAN` patterns |
//! | [`scan`] | [`KeyScan`]: `SCAN` over every primary, each key once |
//! | [`prelude`] | the common names and fred's command traits, in one import |
//! | [`guide`] | replay, server time, fail-fast, failover: the design notes |
//!
//! | feature | what it adds |
//! |---|---|
//! | `tls` | `rediss://` URLs, [`RedisConfig::tls`], [`RedisConfig::tls_ca_file`] and client certificates ([`RedisConfig::tls_client_cert`]), through fred's rustls (ring) support |

pub use fred;

pub mod acl;
pub mod class;
mod client;
mod clock;
mod codec;
pub mod config;
pub mod duration;
pub mod env;
mod error;
mod failover;
mod health;
pub mod keys;
pub mod prelude;
mod replicated;
pub mod scan;
mod script;
mod watchdog;

/// Design notes: what fred does for us, replay, server time, failing fast,
/// failover.
#[doc = include_str!("../docs/guide.md")]
pub mod guide {}

pub use class::{Classify, ErrorClass};
pub use client::Redis;
pub use clock::{ServerClock, ServerTime, DEFAULT_REFRESH_PERIOD, SAMPLES};
pub use codec::{Codec, CodecKind};
pub use config::{ConfigError, ReconnectConfig, RedisConfig, Secret, TlsClientCert, Topology};
pub use env::Env;
pub use error::{Error, Result};
pub use health::{ConnectionState, Health, HealthStatus};
pub use keys::{escape_pattern, hash_slot, KeyError, KeySpace, RedisKey};
pub use replicated::{Replicated, WriteConcern};
pub use scan::KeyScan;
pub use script::LuaScript;
