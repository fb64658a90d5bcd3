//! What sits around the scripts: the whitelist, the deny cache under
//! skewed clocks, composed limits and shadow mode.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aeturnis_ratelimit::core::prelude::*;
use aeturnis_ratelimit::{
    check_all, parse_ip_range, Algorithm, DecisionSource, LimitKey, RateLimiter, SkewedClock,
    Whitelist,
};
use aeturnis_testkit::{topology_tests, TestCtx};
use anyhow::ensure;

use crate::support::*;

async fn should_skip_whitelisted_users_and_ranges(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let whitelist = Whitelist::new()
        .with_user("admin")
        .with_range(parse_ip_range("10.8.0.0/16")?)
        .with_ranges_from_str("2001:db8::/32, 192.0.2.1")?;
    let limiter = RateLimiter::new(
        redis.clone(),
        config("wl", Algorithm::gcra(), 1, HOUR)?.with_whitelist(whitelist),
    )?;
    let trusted = [
        LimitKey::user("admin")?,
        LimitKey::ip("10.8.200.1".parse()?),
        LimitKey::ip("::ffff:10.8.0.9".parse()?),
        LimitKey::ip("2001:db8::5".parse()?),
        LimitKey::hybrid("someone", "192.0.2.1".parse()?)?,
    ];
    for key in &trusted {
        for _ in 0..3 {
            let d = limiter.check(key).await?;
            ensure!(
                d.allowed && d.source == DecisionSource::Whitelist,
                "{key}: {d:?}"
            );
        }
        let exists: i64 = redis.client().exists(limiter.redis_key(key)?).await?;
        ensure!(exists == 0, "whitelisted {key} touched Redis");
    }
    let other = LimitKey::ip("10.9.0.1".parse()?);
    ensure!(limiter.check(&other).await?.allowed);
    ensure!(!limiter.check(&other).await?.allowed);
    ensure!(limiter.stats().whitelisted == 15);
    Ok(())
}

async fn should_share_one_limit_despite_skewed_clocks(ctx: TestCtx) -> anyhow::Result<()> {
    let ahead = Arc::new(SkewedClock::new());
    ahead.skew_forward(Duration::from_secs(600));
    let behind = Arc::new(SkewedClock::new());
    behind.skew_back(Duration::from_secs(420));
    let a = RateLimiter::with_clock(
        connect(&ctx).await?,
        config("skew", Algorithm::SlidingLog, 10, Duration::from_secs(60))?,
        ahead.clone(),
    )?;
    let b = RateLimiter::with_clock(
        connect(&ctx).await?,
        config("skew", Algorithm::SlidingLog, 10, Duration::from_secs(60))?,
        behind.clone(),
    )?;
    let key = LimitKey::user("shared")?;
    let mut admitted = 0;
    for i in 0..30 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        if limiter.check(&key).await?.allowed {
            admitted += 1;
        }
    }
    ensure!(admitted == 10, "{admitted} admitted");
    // The deny cache answers repeats locally...
    let d = a.check(&key).await?;
    ensure!(!d.allowed && d.source == DecisionSource::DenyCache, "{d:?}");
    // ...but a clock that jumps back does not make it trust an entry longer:
    ahead.skew_back(Duration::from_secs(900));
    let d = a.check(&key).await?;
    ensure!(!d.allowed && d.source == DecisionSource::Redis, "{d:?}");
    // and a clock that jumps forward past the entry asks Redis, which still denies
    ahead.skew_forward(Duration::from_secs(3600));
    let d = a.check(&key).await?;
    ensure!(!d.allowed && d.source == DecisionSource::Redis, "{d:?}");
    Ok(())
}

async fn should_not_consume_other_limits_when_one_denies(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    for (wide, narrow) in [
        (Algorithm::FixedWindow, Algorithm::SlidingLog),
        (Algorithm::gcra(), Algorithm::SlidingWindow),
        (Algorithm::SlidingLog, Algorithm::FixedWindow),
        (Algorithm::SlidingWindow, Algorithm::gcra()),
    ] {
        let name = format!("{}-{}", wide.name(), narrow.name());
        let a = RateLimiter::new(redis.clone(), config(&format!("a{name}"), wide, 5, HOUR)?)?;
        let b = RateLimiter::new(redis.clone(), config(&format!("b{name}"), narrow, 2, HOUR)?)?;
        let user = LimitKey::user("composer")?;
        let ip = LimitKey::ip("198.51.100.7".parse()?);
        let mut allowed = 0;
        for _ in 0..5 {
            let d = check_all(&[(&a, &user), (&b, &ip)], NonZeroU32::MIN).await?;
            if d.allowed {
                allowed += 1;
            } else {
                ensure!(d.denied_by().collect::<Vec<_>>() == [1], "{d:?}");
                ensure!(d
                    .decision()
                    .is_some_and(|x| !x.allowed && x.retry_after.is_some()));
            }
        }
        ensure!(allowed == 2, "{name}: {allowed}");
        let left = a.peek(&user, NonZeroU32::MIN).await?;
        ensure!(left.allowed && left.remaining == 3, "{name}: {left:?}");
    }
    assert_all_keys_expire(&redis).await?;
    Ok(())
}

async fn should_record_but_never_reject_in_shadow_mode(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let limiter = RateLimiter::new(
        redis.clone(),
        config("shadow", Algorithm::SlidingWindow, 2, HOUR)?.with_shadow(true),
    )?;
    let key = LimitKey::user("watched")?;
    let mut shadowed = 0;
    for _ in 0..5 {
        let d = limiter.check(&key).await?;
        ensure!(d.allowed, "{d:?}");
        if d.shadowed {
            shadowed += 1;
            ensure!(d.is_violation());
        }
    }
    ensure!(shadowed == 3);
    let stats = limiter.stats();
    ensure!(
        stats.checks == 5 && stats.violations == 3 && stats.shadow_violations == 3,
        "{stats:?}"
    );
    Ok(())
}

/// Shadow mode never answers from the deny cache (it would skip the
/// script, and so the record of what would have been denied): every check
/// of a shadowed limiter reaches Redis, where an enforcing twin with the
/// same deny cache setting answers repeats locally.
async fn should_bypass_the_deny_cache_in_shadow_mode(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let shadow = RateLimiter::new(
        redis.clone(),
        config("shadow-dc", Algorithm::gcra(), 2, HOUR)?.with_shadow(true),
    )?;
    let enforcing = RateLimiter::new(
        redis.clone(),
        config("enforce-dc", Algorithm::gcra(), 2, HOUR)?,
    )?;
    ensure!(shadow.config().deny_cache && enforcing.config().deny_cache);
    let key = LimitKey::user("cached")?;
    for i in 0..5 {
        let e = enforcing.check(&key).await?;
        let expected = match i {
            0..=2 => DecisionSource::Redis,
            _ => DecisionSource::DenyCache,
        };
        ensure!(e.allowed == (i < 2) && e.source == expected, "{i}: {e:?}");
        let s = shadow.check(&key).await?;
        ensure!(
            s.allowed && s.shadowed == (i >= 2) && s.source == DecisionSource::Redis,
            "{i}: {s:?}"
        );
    }
    let stats = shadow.stats();
    ensure!(
        stats.deny_cache_hits == 0 && stats.shadow_violations == 3,
        "{stats:?}"
    );
    ensure!(enforcing.stats().deny_cache_hits == 2);
    Ok(())
}

topology_tests!(
    should_skip_whitelisted_users_and_ranges,
    should_share_one_limit_despite_skewed_clocks,
    should_not_consume_other_limits_when_one_denies,
    should_record_but_never_reject_in_shadow_mode,
    should_bypass_the_deny_cache_in_shadow_mode,
);
