//! Each algorithm admits exactly its quota: under concurrency, by cost,
//! as windows slide and as GCRA refills, and the sliding counter's bound.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use aeturnis_ratelimit::{Algorithm, DecisionSource, Error, LimitKey, RateLimiter};
use aeturnis_testkit::{topology_tests, TestCtx};
use anyhow::{ensure, Context};

use crate::support::*;

async fn should_admit_exactly_the_limit_under_concurrency(ctx: TestCtx) -> anyhow::Result<()> {
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connect(&ctx).await?);
    }
    for algorithm in ALGORITHMS {
        let limiters: Vec<RateLimiter> = clients
            .iter()
            .map(|r| {
                RateLimiter::new(
                    r.clone(),
                    config("exact", algorithm, 100, HOUR)?.with_deny_cache(false),
                )
                .map_err(anyhow::Error::from)
            })
            .collect::<anyhow::Result<_>>()?;
        let key = LimitKey::new(algorithm.name())?;
        let mut tasks = Vec::new();
        for i in 0..256 {
            let limiter = limiters[i % 4].clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move { limiter.check(&key).await }));
        }
        let mut admitted = 0;
        for t in tasks {
            let d = t.await??;
            ensure!(d.source == DecisionSource::Redis);
            if d.allowed {
                admitted += 1;
            } else {
                ensure!(d.retry_after.is_some_and(|r| r > Duration::ZERO));
            }
        }
        ensure!(admitted == 100, "{}: {admitted} admitted", algorithm.name());
    }
    ensure!(assert_all_keys_expire(&clients[0]).await? == 4);
    Ok(())
}

async fn should_respect_cost_for_every_algorithm(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    for algorithm in ALGORITHMS {
        let limiter = RateLimiter::new(redis.clone(), config("cost", algorithm, 10, HOUR)?)?;
        let key = LimitKey::new(algorithm.name())?;
        let d = limiter.check_cost(&key, nz(4)).await?;
        ensure!(d.allowed && d.remaining == 6, "{}: {d:?}", algorithm.name());
        let d = limiter.check_cost(&key, nz(4)).await?;
        ensure!(d.allowed && d.remaining == 2, "{}: {d:?}", algorithm.name());
        let d = limiter.check_cost(&key, nz(4)).await?;
        ensure!(
            !d.allowed && d.remaining == 2,
            "{}: {d:?}",
            algorithm.name()
        );
        let d = limiter.check_cost(&key, nz(2)).await?;
        ensure!(d.allowed && d.remaining == 0, "{}: {d:?}", algorithm.name());
        let err = limiter.check_cost(&key, nz(11)).await;
        ensure!(
            matches!(err, Err(Error::InvalidCost { cost: 11, max: 10 })),
            "{err:?}"
        );
    }
    assert_all_keys_expire(&redis).await?;
    Ok(())
}

async fn should_slide_the_log_window(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    // 2 s: a stall of the loaded CI host between two checks stays well
    // inside the window
    let window = Duration::from_secs(2);
    let limiter = RateLimiter::new(
        redis.clone(),
        config("slide", Algorithm::SlidingLog, 3, window)?.with_deny_cache(false),
    )?;
    let key = LimitKey::user("slider")?;
    let start = Instant::now();
    ensure!(limiter.check_cost(&key, nz(2)).await?.allowed);
    tokio::time::sleep(window / 2).await; // time passing is what is tested
    let d = limiter.check(&key).await?;
    ensure!(d.allowed && d.remaining == 0);
    // at most this far apart on the server: the third unit stays this much
    // longer than the first two (window / 2, plus what the sleep overran
    // on a loaded machine)
    let apart = start.elapsed();
    let d = limiter.check(&key).await?;
    let retry = d.retry_after.context("a denial carries retry_after")?;
    let slack = Duration::from_millis(10); // timer and scheduling jitter
    ensure!(!d.allowed && retry <= window / 2 + slack, "{d:?}");
    // the first two units leave the window together; the third stays
    allowed_within(&limiter, &key, nz(2), Duration::from_secs(10)).await?;
    let d = limiter.check(&key).await?;
    let retry = d.retry_after.context("a denial carries retry_after")?;
    ensure!(
        !d.allowed && retry > window / 8 && retry <= apart + slack,
        "{d:?} (the units were {apart:?} apart at most)"
    );
    Ok(())
}

async fn should_refill_gcra_at_its_rate_after_a_burst(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    // one a second, bursts of 3: a stall of the loaded CI host between two
    // checks refills nothing
    let limiter = RateLimiter::new(
        redis.clone(),
        config(
            "gcra",
            Algorithm::gcra_with_burst(nz(3)),
            10,
            Duration::from_secs(10),
        )?
        .with_deny_cache(false),
    )?;
    let key = LimitKey::user("burst")?;
    for left in [2, 1, 0] {
        let d = limiter.check(&key).await?;
        ensure!(d.allowed && d.remaining == left && d.limit == 3, "{d:?}");
    }
    let d = limiter.check(&key).await?;
    let retry = d.retry_after.context("retry_after")?;
    ensure!(!d.allowed && retry <= Duration::from_secs(1), "{d:?}");
    ensure!(d.reset_after > Duration::from_secs(2), "{d:?}");
    allowed_within(&limiter, &key, NonZeroU32::MIN, Duration::from_secs(10)).await?;
    // one emission interval refilled one unit, not the burst
    let d = limiter.check(&key).await?;
    ensure!(!d.allowed, "{d:?}");
    let err = limiter.check_cost(&key, nz(4)).await;
    ensure!(
        matches!(err, Err(Error::InvalidCost { max: 3, .. })),
        "{err:?}"
    );
    Ok(())
}

async fn should_bound_sliding_counter_at_window_edges(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let window = Duration::from_millis(200);
    let limit = 10;
    let limiter = RateLimiter::new(
        redis.clone(),
        config("bound", Algorithm::SlidingWindow, limit, window)?.with_deny_cache(false),
    )?;
    let key = LimitKey::user("steady")?;
    let start = Instant::now();
    let mut admitted = Vec::new();
    // time in which nobody asked: a stall of the loaded CI host between two
    // checks (they are ~2 ms apart otherwise) admits nothing, so it does not
    // count towards the windows the lower bound expects to be filled
    let (mut idle, mut last) = (Duration::ZERO, Duration::ZERO);
    while start.elapsed() < window * 5 {
        let asked = start.elapsed();
        idle += (asked - last).saturating_sub(Duration::from_millis(20));
        last = asked;
        if limiter.check(&key).await?.allowed {
            admitted.push(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let span = start.elapsed();
    // any sliding window (measured here slightly short, for network jitter)
    // holds at most 2 x limit
    for (i, t) in admitted.iter().enumerate() {
        let inside = admitted[i..]
            .iter()
            .take_while(|u| **u < *t + window - Duration::from_millis(10))
            .count();
        ensure!(
            inside <= 2 * limit as usize,
            "{inside} admitted within one window"
        );
    }
    // and it does limit: at most limit per window on average, plus the first
    let windows = span.as_secs_f64() / window.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let n = admitted.len() as f64;
    ensure!(
        n <= f64::from(limit) * (windows + 1.0),
        "{n} admitted in {windows:.1} windows"
    );
    let asking = (span - idle).as_secs_f64() / window.as_secs_f64();
    ensure!(
        n >= f64::from(limit) * (asking - 2.0),
        "{n} admitted in {asking:.1} windows of asking: too strict"
    );
    Ok(())
}

topology_tests!(
    should_admit_exactly_the_limit_under_concurrency,
    should_respect_cost_for_every_algorithm,
    should_slide_the_log_window,
    should_refill_gcra_at_its_rate_after_a_burst,
    should_bound_sliding_counter_at_window_edges,
);
