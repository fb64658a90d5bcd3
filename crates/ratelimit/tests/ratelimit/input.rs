//! Bad input is a typed error, never a panic or a forged key.

use std::time::Duration;

use aeturnis_ratelimit::{Algorithm, Error, LimitKey, Quota, RateLimiter};
use aeturnis_testkit::{topology_tests, TestCtx};
use anyhow::ensure;

use crate::support::*;

async fn should_refuse_bad_input_with_typed_errors(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    ensure!(matches!(LimitKey::user(""), Err(Error::EmptyKey)));
    ensure!(matches!(LimitKey::new(""), Err(Error::EmptyKey)));
    ensure!(matches!(
        Quota::new(nz(1), Duration::ZERO),
        Err(Error::InvalidQuota(_))
    ));
    let bad_name = RateLimiter::new(
        redis.clone(),
        config("bad name!", Algorithm::gcra(), 1, HOUR)?,
    );
    ensure!(matches!(bad_name, Err(Error::Key(_))), "{bad_name:?}");
    let bad_block = RateLimiter::new(
        redis.clone(),
        config("b", Algorithm::gcra(), 1, HOUR)?.with_block_duration(Duration::ZERO),
    );
    ensure!(
        matches!(&bad_block, Err(e @ Error::Config(_)) if e.variable() == Some("block_duration")),
        "{bad_block:?}"
    );
    let huge_block = RateLimiter::new(
        redis.clone(),
        config("b", Algorithm::SlidingLog, 1, HOUR)?.with_block_duration(Duration::MAX),
    );
    ensure!(
        matches!(&huge_block, Err(e) if e.variable() == Some("block_duration")),
        "{huge_block:?}"
    );
    let huge_retry = RateLimiter::new(
        redis.clone(),
        config("b", Algorithm::FixedWindow, 1, HOUR)?.with_unavailable_retry_after(Duration::MAX),
    );
    ensure!(
        matches!(&huge_retry, Err(e) if e.variable() == Some("unavailable_retry_after")),
        "{huge_retry:?}"
    );
    let limiter = RateLimiter::new(
        redis.clone(),
        config("input", Algorithm::SlidingLog, 5, HOUR)?,
    )?;
    // text a key cannot hold fails where the key is made, not at the check
    ensure!(matches!(
        LimitKey::new(&"x".repeat(5000)),
        Err(Error::Key(_))
    ));
    for bad in ["a\nb", "a\0b"] {
        ensure!(matches!(LimitKey::new(bad), Err(Error::Key(_))), "{bad:?}");
        ensure!(matches!(LimitKey::user(bad), Err(Error::Key(_))), "{bad:?}");
    }
    // a name and a subject that are each fine but too long together still
    // fail, at the check, as a key error
    let long_name = RateLimiter::new(
        redis.clone(),
        config(&"n".repeat(512), Algorithm::SlidingLog, 5, HOUR)?,
    )?;
    let long_key = LimitKey::new(&":".repeat(512))?;
    let err = long_name.check(&long_key).await;
    ensure!(matches!(err, Err(Error::Key(_))), "{err:?}");
    ensure!(matches!(
        limiter.check_cost(&LimitKey::user("u")?, nz(6)).await,
        Err(Error::InvalidCost { cost: 6, max: 5 })
    ));
    // user text cannot forge a segment, a kind or a hash tag
    let k = limiter.redis_key(&LimitKey::user("}{evil:x")?)?;
    ensure!(k.as_str().ends_with(":rl:input:u:%7D%7Bevil%3Ax"), "{k}");
    let k = limiter.redis_key(&LimitKey::new("ip:10.0.0.1")?)?;
    ensure!(k.as_str().ends_with(":rl:input:ip%3A10.0.0.1"), "{k}");
    Ok(())
}

topology_tests!(should_refuse_bad_input_with_typed_errors,);
