//! Block durations: a blocked key stays blocked, then starts again from
//! its full quota.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use aeturnis_ratelimit::core::prelude::*;
use aeturnis_ratelimit::LimitKey;
use aeturnis_testkit::{topology_tests, TestCtx};
use anyhow::{ensure, Context};

use crate::support::*;

async fn should_keep_a_key_blocked_for_the_block_duration(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    // 1.5 s: a stall of the loaded CI host between two checks stays inside
    // the block
    let block = Duration::from_millis(1_500);
    for algorithm in ALGORITHMS {
        let limiter = blocking(&redis, "block", algorithm, 2, HOUR, block)?;
        let key = LimitKey::ip(format!("10.0.0.{}", algorithm.name().len()).parse()?);
        ensure!(limiter.check(&key).await?.allowed);
        ensure!(limiter.check(&key).await?.allowed);
        let started = Instant::now();
        let d = limiter.check(&key).await?;
        let retry = d.retry_after.context("retry_after")?;
        ensure!(
            !d.allowed && retry <= block && retry > block / 2,
            "{}: {d:?}",
            algorithm.name()
        );
        // the key's TTL is the block now, not the hour-long window
        let ttl: i64 = redis.client().pttl(limiter.redis_key(&key)?).await?;
        ensure!(ttl > 0 && ttl <= 1_500, "{}: ttl {ttl}", algorithm.name());
        // denials during the block do not extend it
        let again = limiter.check(&key).await?;
        ensure!(
            !again.allowed && again.retry_after <= Some(retry),
            "{again:?}"
        );
        let waited =
            allowed_within(&limiter, &key, NonZeroU32::MIN, Duration::from_secs(10)).await?;
        ensure!(
            started.elapsed() >= block - Duration::from_millis(20),
            "{}: admitted after {waited:?}",
            algorithm.name()
        );
    }
    assert_all_keys_expire(&redis).await?;
    Ok(())
}

/// When a block ends, every algorithm starts the key again from its full
/// quota (GCRA: a full burst, not the single unit a pushed-back arrival time
/// would give).
async fn should_restore_the_full_quota_when_a_block_ends(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let block = Duration::from_millis(200);
    for algorithm in ALGORITHMS {
        let limiter = blocking(&redis, "unblock", algorithm, 3, HOUR, block)?;
        let key = LimitKey::user(algorithm.name())?;
        for _ in 0..3 {
            ensure!(limiter.check(&key).await?.allowed);
        }
        let d = limiter.check(&key).await?;
        ensure!(
            !d.allowed && d.reset_after <= block,
            "{}: {d:?}",
            algorithm.name()
        );
        // the first check after the block takes one unit of a full quota
        allowed_within(&limiter, &key, NonZeroU32::MIN, Duration::from_secs(3)).await?;
        let peek = limiter.peek(&key, NonZeroU32::MIN).await?;
        ensure!(
            peek.allowed && peek.remaining == 2,
            "{}: {peek:?}",
            algorithm.name()
        );
        for left in [1, 0] {
            let d = limiter.check(&key).await?;
            ensure!(
                d.allowed && d.remaining == left,
                "{}: {d:?}",
                algorithm.name()
            );
        }
        let d = limiter.check(&key).await?;
        ensure!(!d.allowed, "{}: {d:?}", algorithm.name());
    }
    Ok(())
}

topology_tests!(
    should_keep_a_key_blocked_for_the_block_duration,
    should_restore_the_full_quota_when_a_block_ends,
);
