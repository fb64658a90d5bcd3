//! The limiter: one script call per check, plus the in-process policies.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aeturnis_redis_core::duration::ceil_millis;
use aeturnis_redis_core::fred::bytes_utils::Str;
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::Value;
use aeturnis_redis_core::{Classify, LuaScript, Redis, RedisKey};

use crate::algorithm::Algorithm;
use crate::clock::{Clock, SystemClock};
use crate::config::RateLimitConfig;
use crate::decision::{Decision, DecisionSource};
use crate::error::{Error, Result};
use crate::key::{LimitKey, RequestId};
use crate::local::{DenyCache, LocalLimiter};
use crate::policy::FailurePolicy;
use crate::scripts;
use crate::stats::{bump, Counters, RateLimitStats};

/// The key namespace every limiter key lives under: `<prefix>rl:<name>:<subject>`
/// (see [`LimitKey`] for the subject's segments).
pub const NAMESPACE: &str = "rl";

/// A distributed rate limiter. Cheap to clone; clones share the counters,
/// the deny cache and the fallback limiter.
///
/// Every check is one `EVALSHA` on one key, timed by the Redis server
/// (`TIME`), so instances whose clocks disagree still share one limit.
///
/// # Replay
///
/// fred re-sends a command whose connection dropped while it was in
/// flight. The sliding log is safe to re-send: its members are the check's
/// [`RequestId`], and a check whose id is already in the log answers
/// "allowed" again without counting. GCRA, the fixed window and the sliding
/// window counter are counters, so their checks are sent with replay
/// disabled ([`Redis::script_no_replay`]): a check whose connection drops
/// mid-flight fails with a connection error, and the limiter's
/// [`FailurePolicy`] decides it (it may or may not have been counted; it is
/// never counted twice).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    redis: Redis,
    config: RateLimitConfig,
    script: &'static LuaScript,
    clock: Arc<dyn Clock>,
    deny_cache: DenyCache,
    local: LocalLimiter,
    counters: Counters,
    /// `ARGV[2]`: the limit, or GCRA's burst.
    limit_arg: i64,
    /// `ARGV[3]`: the window in µs (fixed window: in ms, rounded up), or
    /// GCRA's emission interval in µs (millisecond GCRA: in ms).
    window_arg: i64,
    /// `ARGV[5]`: the block in µs (fixed window, millisecond GCRA: in ms,
    /// rounded up), `0` for none.
    block_arg: i64,
    /// Sliding log only: the script takes the request id as `ARGV[6]`. The
    /// counters ignore it, so they are sent no id and none is generated.
    sends_id: bool,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Whole milliseconds, rounded up (the core's one rule); the quota and the
/// block are bounded to one year, so this never saturates.
fn millis_ceil(d: Duration) -> i64 {
    i64::try_from(ceil_millis(d)).unwrap_or(i64::MAX)
}

/// The batch size of [`RateLimiter::active_windows`]'s `SCAN`.
const SCAN_BATCH: NonZeroU32 = NonZeroU32::MIN.saturating_add(999);

impl RateLimiter {
    /// A limiter on `redis` with the system clock.
    pub fn new(redis: Redis, config: RateLimitConfig) -> Result<RateLimiter> {
        RateLimiter::with_clock(redis, config, Arc::new(SystemClock))
    }

    /// A limiter whose in-process helpers (deny cache, fallback limiter)
    /// use `clock`. Limits themselves always use the Redis server's time.
    pub fn with_clock(
        redis: Redis,
        config: RateLimitConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<RateLimiter> {
        config.validate()?;
        // Validates the name as a fixed key segment.
        redis
            .keys()
            .key(NAMESPACE)
            .part(&config.name)
            .id("x")
            .build()?;
        let limit = config.quota.limit().get();
        let window_us = micros(config.quota.window());
        let block_us = config.block_duration.map_or(0, micros);
        let (script, limit_arg, window_arg, block_arg) = match config.algorithm {
            Algorithm::SlidingLog => (&*scripts::SLIDING_LOG, limit, window_us, block_us),
            Algorithm::SlidingWindow => (&*scripts::SLIDING_WINDOW, limit, window_us, block_us),
            // the window is the key's TTL, which Redis keeps in milliseconds
            Algorithm::FixedWindow => (
                &*scripts::FIXED_WINDOW,
                limit,
                millis_ceil(config.quota.window()),
                config.block_duration.map_or(0, millis_ceil),
            ),
            Algorithm::Gcra { burst } => {
                let emission = (window_us + i64::from(limit) - 1) / i64::from(limit);
                let burst = burst.map_or(limit, NonZeroU32::get);
                if emission >= 1000 && emission % 1000 == 0 {
                    // whole milliseconds: the arrival time lives in the
                    // key's expiry (no `TIME`, see `scripts::GCRA_MS`)
                    (
                        &*scripts::GCRA_MS,
                        burst,
                        emission / 1000,
                        config.block_duration.map_or(0, millis_ceil),
                    )
                } else {
                    (&*scripts::GCRA, burst, emission.max(1), block_us)
                }
            }
        };
        // every script of the crate, so `Redis::load_scripts` preloads them
        // all, whichever algorithms the application's limiters use
        redis.register_scripts(scripts::all());
        let capacity = config.local_capacity;
        Ok(RateLimiter {
            inner: Arc::new(Inner {
                deny_cache: DenyCache::new(capacity),
                local: LocalLimiter::new(config.quota, capacity),
                counters: Counters::new(),
                block_arg,
                sends_id: config.algorithm == Algorithm::SlidingLog,
                limit_arg: i64::from(limit_arg),
                window_arg,
                script,
                clock,
                config,
                redis,
            }),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RateLimitConfig {
        &self.inner.config
    }

    /// The Redis handle.
    #[must_use]
    pub fn redis(&self) -> &Redis {
        &self.inner.redis
    }

    /// The Lua script this limiter runs (to preload it, inspect it, or
    /// benchmark it raw). `ARGV` is `mode` (`c`, `p` or `r`), the limit (GCRA:
    /// the burst), the window in µs (GCRA: the emission interval
    /// `ceil(window / limit)` in µs, or in ms when that is a whole number
    /// of milliseconds, which selects the expiry-based GCRA script; fixed
    /// window: the window in whole ms, rounded up), the cost, the block in
    /// µs (fixed window and millisecond GCRA: in ms; `0` = none) and, for
    /// the sliding log only, the request id; the reply is
    /// `{allowed, remaining, reset_after_us, retry_after_us or -1, replayed}`
    /// ([`script_args`](Self::script_args) gives the fixed arguments).
    ///
    /// A test and bench hook: needs the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    #[must_use]
    pub fn script(&self) -> &LuaScript {
        self.inner.script
    }

    /// The fixed arguments this limiter sends its [`script`](Self::script):
    /// `(limit, window, block)` (`ARGV[2]`, `ARGV[3]`, `ARGV[5]`, in the
    /// units the script documents), for a raw baseline that must send
    /// exactly what the limiter sends.
    ///
    /// A test and bench hook: needs the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    #[must_use]
    pub fn script_args(&self) -> (i64, i64, i64) {
        (
            self.inner.limit_arg,
            self.inner.window_arg,
            self.inner.block_arg,
        )
    }

    /// The Redis key that holds `key`'s state: `<prefix>rl:<name>:<subject>`,
    /// for example `aeturnis:rl:api:ip:203.0.113.9` (see [`LimitKey`]). It
    /// has no hash tag: each script touches this one key, and
    /// [`check_all`](crate::check_all) sends one script per limiter.
    pub fn redis_key(&self, key: &LimitKey) -> Result<RedisKey> {
        let inner = &*self.inner;
        let builder = inner.redis.keys().key(NAMESPACE).part(&inner.config.name);
        Ok(key.append_to(builder).build()?)
    }

    /// Checks one request of cost 1 and counts it if admitted.
    ///
    /// ```no_run
    /// # async fn demo(limiter: aeturnis_ratelimit::RateLimiter) -> aeturnis_ratelimit::Result<()> {
    /// use aeturnis_ratelimit::LimitKey;
    /// let d = limiter.check(&LimitKey::ip("10.0.0.1".parse().unwrap())).await?;
    /// if !d.allowed {
    ///     println!("retry in {:?}", d.retry_after);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn check(&self, key: &LimitKey) -> Result<Decision> {
        self.check_inner(key, NonZeroU32::MIN, None).await
    }

    /// Checks one request costing `cost` units.
    pub async fn check_cost(&self, key: &LimitKey, cost: NonZeroU32) -> Result<Decision> {
        self.check_inner(key, cost, None).await
    }

    /// Checks one request with a caller-chosen id. Sending the same id
    /// again is how a caller retries safely: the sliding log counts an id
    /// once and answers "allowed" again for an id it admitted.
    pub async fn check_request(
        &self,
        key: &LimitKey,
        cost: NonZeroU32,
        id: RequestId,
    ) -> Result<Decision> {
        self.check_inner(key, cost, Some(id)).await
    }

    /// `id` is `None` when the caller did not choose one: the sliding log
    /// then gets a fresh id, the counters (which ignore it) none at all.
    pub(crate) async fn check_inner(
        &self,
        key: &LimitKey,
        cost: NonZeroU32,
        id: Option<RequestId>,
    ) -> Result<Decision> {
        let inner = &*self.inner;
        let config = &inner.config;
        config.check_cost(cost)?;
        bump(&inner.counters.checks);
        if !config.whitelist.is_empty() && config.whitelist.matches(key) {
            bump(&inner.counters.whitelisted);
            bump(&inner.counters.allowed);
            return Ok(Decision::allow(
                config.reported_limit(),
                DecisionSource::Whitelist,
            ));
        }
        let rkey = self.redis_key(key)?;
        if config.deny_cache && !config.shadow {
            if let Some(left) = inner.deny_cache.get(rkey.as_str(), inner.clock.now()) {
                bump(&inner.counters.deny_cache_hits);
                bump(&inner.counters.violations);
                return Ok(Decision::deny(
                    config.reported_limit(),
                    left,
                    DecisionSource::DenyCache,
                ));
            }
        }
        let decision = match self.eval(&rkey, "c", cost.get(), id).await {
            Ok(d) => {
                if !d.allowed && d.remaining == 0 && config.deny_cache && !config.shadow {
                    if let Some(retry) = d.retry_after {
                        inner
                            .deny_cache
                            .insert(rkey.as_str(), inner.clock.now(), retry);
                    }
                }
                d
            }
            Err(e) => self.unavailable(e, rkey.as_str(), cost.get())?,
        };
        Ok(self.record(decision))
    }

    /// What a check of `cost` would answer now, without counting anything
    /// (a read-only script; `remaining` is the units left before this
    /// request). Redis errors are returned, not handled by the failure policy.
    pub async fn peek(&self, key: &LimitKey, cost: NonZeroU32) -> Result<Decision> {
        self.inner.config.check_cost(cost)?;
        let rkey = self.redis_key(key)?;
        self.eval(&rkey, "p", cost.get(), None).await
    }

    /// Gives back `cost` units that the admitted check `id` took (used by
    /// [`check_all`](crate::check_all) when another limiter denies). The
    /// sliding log removes exactly that request's entries; the counters
    /// subtract `cost` from the current state (GCRA: moves the arrival time
    /// back by `cost` intervals).
    pub async fn refund(&self, key: &LimitKey, cost: NonZeroU32, id: RequestId) -> Result<()> {
        self.refund_inner(key, cost, Some(id)).await
    }

    pub(crate) async fn refund_inner(
        &self,
        key: &LimitKey,
        cost: NonZeroU32,
        id: Option<RequestId>,
    ) -> Result<()> {
        let rkey = self.redis_key(key)?;
        self.eval(&rkey, "r", cost.get(), id).await.map(drop)
    }

    /// Whether checks carry a request id (the sliding log); a refund of
    /// the counters needs none.
    pub(crate) fn sends_id(&self) -> bool {
        self.inner.sends_id
    }

    pub(crate) fn refund_local(&self, key: &LimitKey, cost: NonZeroU32) {
        if let Ok(rkey) = self.redis_key(key) {
            self.inner.local.refund(rkey.as_str(), cost.get());
        }
    }

    /// Forgets `key` (deletes its Redis state and its deny-cache entry).
    pub async fn reset(&self, key: &LimitKey) -> Result<()> {
        let rkey = self.redis_key(key)?;
        self.inner.deny_cache.remove(rkey.as_str());
        self.inner
            .redis
            .client()
            .del::<(), _>(&rkey)
            .await
            .map_err(aeturnis_redis_core::Error::from)?;
        Ok(())
    }

    /// This limiter's counters.
    #[must_use]
    pub fn stats(&self) -> RateLimitStats {
        self.inner.counters.snapshot()
    }

    /// How many keys of this limiter currently exist in Redis: a `SCAN` of
    /// every primary of a cluster ([`Redis::scan_keys`]), each key counted
    /// once even when `SCAN` reports it twice. Costs a full keyspace scan:
    /// for dashboards, not for the request path.
    pub async fn active_windows(&self) -> Result<u64> {
        let pattern = self
            .inner
            .redis
            .keys()
            .pattern(NAMESPACE)
            .part(&self.inner.config.name)
            .any()
            .build()?;
        let keys = self.inner.redis.scan_keys(&pattern, SCAN_BATCH).await?;
        Ok(u64::try_from(keys.len()).unwrap_or(u64::MAX))
    }

    async fn eval(
        &self,
        rkey: &RedisKey,
        mode: &'static str,
        cost: u32,
        id: Option<RequestId>,
    ) -> Result<Decision> {
        let inner = &*self.inner;
        let mut buf = [0_u8; uuid::fmt::Simple::LENGTH];
        let id: Option<&str> = inner.sends_id.then(|| {
            &*id.unwrap_or_default()
                .as_uuid()
                .simple()
                .encode_lower(&mut buf)
        });
        // pushed straight onto the command (built again only on NOSCRIPT)
        let args = |args: &mut Vec<Value>| {
            args.extend([
                Value::String(Str::from_static(mode)),
                Value::Integer(inner.limit_arg),
                Value::Integer(inner.window_arg),
                Value::Integer(i64::from(cost)),
                Value::Integer(inner.block_arg),
            ]);
            if let Some(id) = id {
                args.push(Value::from(id));
            }
        };
        // Peeks write nothing; sliding-log checks and refunds are idempotent.
        let replayable = mode == "p" || inner.config.algorithm.is_replay_safe();
        // NOSCRIPT (after a restart or SCRIPT FLUSH) is handled by the core,
        // which loads the script and re-sends; NOSCRIPT means it did not run.
        let reply: Vec<i64> = if replayable {
            inner.redis.script_on(inner.script, rkey, args).await?
        } else {
            inner
                .redis
                .script_on_no_replay(inner.script, rkey, args)
                .await?
        };
        let [allowed, remaining, reset_us, retry_us, replayed] = reply[..] else {
            return Err(Error::UnexpectedReply {
                script: inner.script.name(),
                reply: format!("{reply:?}"),
            });
        };
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            limit: inner.config.reported_limit(),
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            reset_after: us(reset_us),
            retry_after: (allowed != 1).then(|| us(retry_us.max(1))),
            source: DecisionSource::Redis,
            shadowed: false,
            replayed: replayed == 1,
        })
    }

    /// Applies the failure policy to a Redis error.
    fn unavailable(&self, error: Error, rkey: &str, cost: u32) -> Result<Decision> {
        let inner = &*self.inner;
        let config = &inner.config;
        if !error.is_unavailable() {
            return Err(error);
        }
        let decision = match config.failure_policy {
            FailurePolicy::Propagate => return Err(error),
            FailurePolicy::FailOpen => {
                Decision::allow(config.reported_limit(), DecisionSource::FailOpen)
            }
            FailurePolicy::FailClosed => Decision::deny(
                config.reported_limit(),
                config.unavailable_retry_after,
                DecisionSource::FailClosed,
            ),
            FailurePolicy::LocalFallback => inner.local.check(rkey, cost, inner.clock.now()),
        };
        bump(&inner.counters.redis_unavailable);
        tracing::debug!(limiter = %config.name, error = %error, source = ?decision.source,
            "Redis unavailable; failure policy decided");
        Ok(decision)
    }

    /// Counts the decision and applies shadow mode.
    fn record(&self, mut decision: Decision) -> Decision {
        let counters = &self.inner.counters;
        if !decision.allowed {
            bump(&counters.violations);
            if self.inner.config.shadow {
                bump(&counters.shadow_violations);
                decision.allowed = true;
                decision.shadowed = true;
            }
        }
        if decision.allowed {
            bump(&counters.allowed);
        }
        decision
    }
}
