//! # aeturnis-ratelimit
//!
//! Distributed rate limiting on Redis: four algorithms, each one atomic
//! `EVALSHA` on one key timed by the Redis server's clock, with the
//! original's per-action presets, whitelists, block durations, composed
//! limits, failure policies, a local deny cache, shadow mode and stats.
//!
//! ```no_run
//! use aeturnis_ratelimit::{LimitKey, Preset, RateLimiter};
//! use aeturnis_redis_core::{Redis, RedisConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::from_env()?).await?;
//! // RATE_LIMIT_AUTH_WINDOW / RATE_LIMIT_AUTH_MAX, default 5 per 15 min, blocks 15 min
//! let auth = RateLimiter::new(redis, Preset::Auth.config_from_env()?)?;
//! let decision = auth.check(&LimitKey::ip("203.0.113.9".parse()?)).await?;
//! if !decision.allowed {
//!     println!("429, Retry-After: {:?}", decision.retry_after);
//! }
//! println!("{} of {} left", decision.remaining, decision.limit);
//! # Ok(()) }
//! ```
//!
//! | item | what it is |
//! |---|---|
//! | [`RateLimiter`] | one limiter: `check`, `check_cost`, `check_request`, `peek`, `refund`, `reset`, `stats`, `active_windows` |
//! | [`Algorithm`] | sliding log (exact), sliding window counter (approximate, O(1)), GCRA (O(1), burst), fixed window |
//! | [`RateLimitConfig`] | quota, algorithm, block duration, failure policy, shadow mode, deny cache, whitelist |
//! | [`Decision`] | allowed, limit, remaining, reset-after, retry-after, who decided |
//! | [`Preset`] | auth, chat, combat, movement, api quotas from `RATE_LIMIT_*` variables |
//! | [`check_all`] | several limits that must all pass; a denial refunds the others |
//! | [`FailurePolicy`] | fail-open, fail-closed, local in-process fallback, or return the error |
//! | [`Whitelist`], [`IpRange`] | users and IPs/CIDR ranges that skip the limiter |
//! | [`Clock`] | the local clock for the deny cache and fallback (injectable) |
//!
//! The crate has no cargo features.
//!
//! Keys are `<prefix>rl:<limiter name>:<subject>` (for example
//! `aeturnis:rl:api:ip:203.0.113.9`): one key per limiter and subject, so no
//! script touches two keys and none needs a hash tag, and every key has a
//! TTL equal to what is left of its window or block.

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

pub use algorithm::Algorithm;
pub use clock::{Clock, SkewedClock, SystemClock};
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
pub use whitelist::{IpRange, Whitelist};
