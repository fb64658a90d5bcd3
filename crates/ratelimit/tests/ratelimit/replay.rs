//! Replays: a re-sent sliding-log check counts once, also during a block.

use aeturnis_ratelimit::core::prelude::*;
use aeturnis_ratelimit::{Algorithm, LimitKey, RateLimiter, RequestId};
use aeturnis_testkit::{topology_tests, TestCtx};
use anyhow::ensure;

use crate::support::*;

async fn should_count_a_replayed_sliding_log_check_once(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let limiter = RateLimiter::new(
        redis.clone(),
        config("replay", Algorithm::SlidingLog, 2, HOUR)?.with_deny_cache(false),
    )?;
    let key = LimitKey::user("replayer")?;
    let id = RequestId::new();
    let first = limiter.check_request(&key, nz(2), id).await?;
    ensure!(
        first.allowed && !first.replayed && first.remaining == 0,
        "{first:?}"
    );
    // the exact same invocation again, as fred would re-send it
    let replay = limiter.check_request(&key, nz(2), id).await?;
    ensure!(
        replay.allowed && replay.replayed && replay.remaining == 0,
        "{replay:?}"
    );
    let members: i64 = redis.client().zcard(limiter.redis_key(&key)?).await?;
    ensure!(members == 2, "{members} members");
    // a new id is a new request, and the limit holds
    ensure!(!limiter.check(&key).await?.allowed);
    // a replay is not a new request with a reused id: an id whose entries
    // left the window is counted again (here: refunded entries)
    limiter.refund(&key, nz(2), id).await?;
    let again = limiter.check_request(&key, nz(2), id).await?;
    ensure!(again.allowed && !again.replayed, "{again:?}");
    // counters are sent with replay disabled instead
    ensure!(Algorithm::SlidingLog.is_replay_safe());
    ensure!(ALGORITHMS[1..].iter().all(|a| !a.is_replay_safe()));
    Ok(())
}

/// A replay that lands after a block started still finds its request in the
/// log: "allowed, replayed", not a denial. Anything else is denied.
async fn should_answer_a_replay_during_a_block_as_admitted(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let limiter = RateLimiter::new(
        redis.clone(),
        config("replayblock", Algorithm::SlidingLog, 2, HOUR)?
            .with_block_duration(HOUR)
            .with_deny_cache(false),
    )?;
    let key = LimitKey::ip("192.0.2.77".parse()?);
    let (a, b, c) = (RequestId::new(), RequestId::new(), RequestId::new());
    ensure!(limiter.check_request(&key, nz(1), a).await?.allowed);
    ensure!(limiter.check_request(&key, nz(1), b).await?.allowed);
    let denied = limiter.check_request(&key, nz(1), c).await?;
    ensure!(
        !denied.allowed && denied.retry_after > Some(HOUR / 2),
        "{denied:?}"
    );
    // the block is on; the admitted requests are re-sent
    for id in [a, b] {
        let replay = limiter.check_request(&key, nz(1), id).await?;
        ensure!(
            replay.allowed && replay.replayed && replay.remaining == 0,
            "{replay:?}"
        );
        ensure!(replay.reset_after > HOUR / 2, "{replay:?}");
    }
    // the denied request re-sent is still denied, and so is a new one
    for id in [c, RequestId::new()] {
        let d = limiter.check_request(&key, nz(1), id).await?;
        ensure!(!d.allowed && !d.replayed, "{d:?}");
    }
    // the replays counted nothing and did not end or extend the block
    let members: i64 = redis.client().zcard(limiter.redis_key(&key)?).await?;
    ensure!(
        members == 3,
        "{members} members (two requests and the block)"
    );
    let ttl: i64 = redis.client().pttl(limiter.redis_key(&key)?).await?;
    ensure!(ttl > 0 && ttl <= 3_600_000, "ttl {ttl}");
    Ok(())
}

topology_tests!(
    should_count_a_replayed_sliding_log_check_once,
    should_answer_a_replay_during_a_block_as_admitted,
);
