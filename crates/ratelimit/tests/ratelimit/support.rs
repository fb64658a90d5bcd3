//! What every module shares: connections, configurations, the algorithms,
//! the waits (all through `aeturnis_testkit::eventually`), connections
//! killed with a script provably in flight, and command counts.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use aeturnis_ratelimit::core::prelude::*;
use aeturnis_ratelimit::{
    Algorithm, FailurePolicy, LimitKey, Quota, RateLimitConfig, RateLimiter, Redis, RedisConfig,
};
use aeturnis_testkit::{eventually, RedisServer, TestCtx};
use anyhow::ensure;

/// Every algorithm, GCRA with its default burst.
pub(crate) const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::SlidingLog,
    Algorithm::SlidingWindow,
    Algorithm::Gcra { burst: None },
    Algorithm::FixedWindow,
];

/// A window nothing refills within during a test.
pub(crate) const HOUR: Duration = Duration::from_secs(3600);

pub(crate) fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// A client on the test's server, under the test's own prefix.
pub(crate) async fn connect(ctx: &TestCtx) -> anyhow::Result<Redis> {
    let config = RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix);
    Ok(Redis::connect(config).await?)
}

/// A client on `url` under `prefix` with a command timeout.
pub(crate) async fn connect_url(
    url: &str,
    prefix: &str,
    timeout: Duration,
) -> anyhow::Result<Redis> {
    let config = RedisConfig::from_url(url)?
        .with_key_prefix(prefix)
        .with_command_timeout(timeout);
    Ok(Redis::connect(config).await?)
}

/// `limit` per `window` with `algorithm`; Redis errors are returned.
pub(crate) fn config(
    name: &str,
    algorithm: Algorithm,
    limit: u32,
    window: Duration,
) -> anyhow::Result<RateLimitConfig> {
    Ok(RateLimitConfig::new(name, Quota::new(nz(limit), window)?)
        .with_algorithm(algorithm)
        .with_failure_policy(FailurePolicy::Propagate))
}

/// A limiter of `limit` per `window` that blocks for `block` once
/// exceeded, without the deny cache (every check reaches Redis).
pub(crate) fn blocking(
    redis: &Redis,
    name: &str,
    algorithm: Algorithm,
    limit: u32,
    window: Duration,
    block: Duration,
) -> anyhow::Result<RateLimiter> {
    Ok(RateLimiter::new(
        redis.clone(),
        config(name, algorithm, limit, window)?
            .with_block_duration(block)
            .with_deny_cache(false),
    )?)
}

/// Checks `key` (cost `cost`) until one is admitted, within `within`; a
/// Redis error fails at once. Returns the time it took.
pub(crate) async fn allowed_within(
    limiter: &RateLimiter,
    key: &LimitKey,
    cost: NonZeroU32,
    within: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let checked = eventually("a check admitted", within, || async {
        match limiter.check_cost(key, cost).await {
            Ok(d) if !d.allowed => Err(format!("denied: {d:?}")),
            other => Ok(other.map(drop)),
        }
    })
    .await?;
    checked?;
    Ok(start.elapsed())
}

/// Every key under the test's prefix has a TTL (no immortal limiter key);
/// returns how many there are (`SCAN` of every primary, each key once).
pub(crate) async fn assert_all_keys_expire(redis: &Redis) -> anyhow::Result<usize> {
    let keys = redis
        .scan_keys(&redis.keys().pattern_all(), nz(1000))
        .await?;
    for key in &keys {
        let ttl: i64 = redis.client().pttl(key).await?;
        ensure!(ttl > 0, "key {key:?} has no TTL ({ttl})");
    }
    Ok(keys.len())
}

/// Calls per command since the last `CONFIG RESETSTAT` (`INFO
/// commandstats`), e.g. `"evalsha"`.
pub(crate) fn calls(server: &RedisServer) -> anyhow::Result<HashMap<String, u64>> {
    let info = server.cli(&["INFO", "commandstats"])?;
    let mut out = HashMap::new();
    for line in info.lines() {
        let Some((name, stats)) = line
            .strip_prefix("cmdstat_")
            .and_then(|r| r.split_once(':'))
        else {
            continue;
        };
        let n = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        out.insert(name.to_owned(), n);
    }
    Ok(out)
}
