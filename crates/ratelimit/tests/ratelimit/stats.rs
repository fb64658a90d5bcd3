//! Stats: counters, and `active_windows` counting each live key once.

use aeturnis_ratelimit::{Algorithm, LimitKey, RateLimiter};
use aeturnis_testkit::{topology_tests, TestCtx};
use anyhow::ensure;

use crate::support::*;

async fn should_report_violations_active_windows_and_rate(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let limiter = RateLimiter::new(
        redis.clone(),
        config("stats", Algorithm::FixedWindow, 1, HOUR)?,
    )?;
    for user in ["a", "b", "c"] {
        let key = LimitKey::user(user)?;
        ensure!(limiter.check(&key).await?.allowed);
        ensure!(!limiter.check(&key).await?.allowed);
        ensure!(!limiter.check(&key).await?.allowed);
    }
    let other = RateLimiter::new(
        redis.clone(),
        config("other", Algorithm::FixedWindow, 1, HOUR)?,
    )?;
    ensure!(other.check(&LimitKey::user("a")?).await?.allowed);
    let stats = limiter.stats();
    ensure!(
        stats.checks == 9 && stats.allowed == 3 && stats.violations == 6,
        "{stats:?}"
    );
    // the second denial of each key came from the deny cache
    ensure!(stats.deny_cache_hits == 3, "{stats:?}");
    ensure!(stats.average_request_rate > 0.0);
    ensure!(limiter.active_windows().await? == 3);
    limiter.reset(&LimitKey::user("a")?).await?;
    ensure!(limiter.active_windows().await? == 2);
    ensure!(limiter.check(&LimitKey::user("a")?).await?.allowed);
    Ok(())
}

/// `active_windows` is exact over many `SCAN` pages on every primary: each
/// live key of the limiter once, none of a limiter whose name merely
/// starts the same, none that expired or was reset.
async fn should_count_each_active_window_exactly_once(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let limiter = RateLimiter::new(
        redis.clone(),
        config("windows", Algorithm::FixedWindow, 5, HOUR)?,
    )?;
    let lookalike = RateLimiter::new(
        redis.clone(),
        config("windows2", Algorithm::FixedWindow, 5, HOUR)?,
    )?;
    ensure!(limiter.active_windows().await? == 0);
    let n = 2_500_usize;
    let checks = (0..n).map(|i| {
        let (limiter, lookalike) = (limiter.clone(), lookalike.clone());
        async move {
            let key = LimitKey::user(&format!("u{i}"))?;
            let d = limiter.check(&key).await?;
            ensure!(d.allowed, "{d:?}");
            if i % 2 == 0 {
                let d = lookalike.check(&key).await?;
                ensure!(d.allowed, "{d:?}");
            }
            anyhow::Ok(())
        }
    });
    for r in futures::future::join_all(checks).await {
        r?;
    }
    // several pages (SCAN COUNT 1000), on each primary of a cluster
    ensure!(assert_all_keys_expire(&redis).await? == n + n / 2);
    let counted = limiter.active_windows().await?;
    ensure!(counted == n as u64, "{counted} of {n}");
    ensure!(lookalike.active_windows().await? == (n / 2) as u64);
    for i in 0..10 {
        limiter.reset(&LimitKey::user(&format!("u{i}"))?).await?;
    }
    ensure!(limiter.active_windows().await? == (n - 10) as u64);
    Ok(())
}

topology_tests!(
    should_report_violations_active_windows_and_rate,
    should_count_each_active_window_exactly_once,
);
