//! # aeturnis-ratelimit
//!
//! Distributed rate limiting on Redis: four algorithms, each one atomic
//! `EVALSHA` on one key timed by the Redis server's clock, with the
//! original's per-action presets, whitelists, block durations, composed
//! limits, failure policies, a local deny cache, shadow mode and stats.
//!
//! ```no_run
//! use aeturnis_ratelimit::{LimitKey, Preset, RateLimitConfig, RateLimiter, Redis, RedisConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::from_env()?).await?;
//! // RATE_LIMIT_AUTH_WINDOW (ms) / RATE_LIMIT_AUTH_MAX: default 5 per 15 min, blocks 15 min
//! let auth = RateLimiter::new(redis, RateLimitConfig::from_env(Preset::Auth)?)?;
//! let decision = auth.check(&LimitKey::ip("203.0.113.9".parse()?)).await?;
//! if !decision.allowed {
//!     println!("429, Retry-After: {:?}", decision.retry_after);
//! }
//! # Ok(()) }
//! ```
//!
//! | item | what it is |
//! |---|---|
//! | [`RateLimiter`] | one limiter: `check`, `check_cost`, `check_request`, `peek`, `refund`, `reset`, `stats`, `active_windows` |
//! | [`Algorithm`], [`Quota`] | sliding log, sliding window counter, GCRA, fixed window; `limit` per `window` |
//! | [`RateLimitConfig`], [`Preset`] | settings; `from_env` / `from_lookup` of the `RATE_LIMIT_*` presets |
//! | [`Decision`] | allowed, limit, remaining, reset-after, retry-after, who decided (`Serialize`) |
//! | [`check_all`] | several limits that must all pass; a denial refunds the others |
//! | [`FailurePolicy`] | fail-open, fail-closed, local in-process fallback, or return the error |
//! | [`Whitelist`], [`parse_ip_range`] | users and IPs / CIDR ranges ([`ipnet::IpNet`]) that skip the limiter |
//! | [`RateLimitStats`], [`Clock`] | counters (`Serialize`); the local clock of the in-process helpers |
//! | [`Error`], [`Classify`] | the error and its class (invalid input, unavailable, internal) |
//! | [`guide`] | algorithms, keys, replay, blocks, composed limits, outages |
//!
//! | feature | what it adds |
//! |---|---|
//! | `test-hooks` | `SkewedClock`, `RateLimiter::script`, `RateLimiter::script_args` (tests and benches only) |

mod algorithm;
mod clock;
mod composed;
mod config;
mod decision;
mod error;
mod key;
mod limiter;
mod local;
mod policy;
mod preset;
mod quota;
mod scripts;
mod stats;
mod whitelist;

/// The rate-limiting guide (`docs/guide.md`).
#[doc = include_str!("../docs/guide.md")]
pub mod guide {}

pub use aeturnis_redis_core as core;
pub use aeturnis_redis_core::{Classify, ErrorClass, Redis, RedisConfig, RedisKey};
pub use ipnet;

pub use algorithm::Algorithm;
#[cfg(feature = "test-hooks")]
pub use clock::SkewedClock;
pub use clock::{Clock, SystemClock};
pub use composed::{check_all, ComposedDecision};
pub use config::{RateLimitConfig, MAX_SLIDING_LOG_COST};
pub use decision::{Decision, DecisionSource};
pub use error::{Error, Result};
pub use key::{LimitKey, RequestId};
pub use limiter::{RateLimiter, NAMESPACE};
pub use policy::FailurePolicy;
pub use preset::Preset;
pub use quota::{Quota, MAX_WINDOW, MIN_WINDOW};
pub use stats::RateLimitStats;
pub use whitelist::{parse_ip_range, Whitelist};
