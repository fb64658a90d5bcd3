//! Behaviour of every algorithm against real Redis, on standalone and the
//! 6-node cluster.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aeturnis_ratelimit::{
    check_all, Algorithm, DecisionSource, Error, FailurePolicy, LimitKey, Quota, RateLimitConfig,
    RateLimiter, RequestId, SkewedClock, Whitelist,
};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_testkit::{topology_tests, TestCtx};
use anyhow::{ensure, Context};

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::SlidingLog,
    Algorithm::SlidingWindow,
    Algorithm::Gcra { burst: None },
    Algorithm::FixedWindow,
];

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

async fn connect(ctx: &TestCtx) -> anyhow::Result<Redis> {
    let config = RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix);
    Ok(Redis::connect(config).await?)
}

fn config(
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
fn blocking(
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

const HOUR: Duration = Duration::from_secs(3600);

/// Every key under the test's prefix has a TTL (no immortal limiter key).
async fn assert_all_keys_expire(redis: &Redis) -> anyhow::Result<usize> {
    use futures::StreamExt;
    let pattern = redis.keys().pattern_all();
    let client = redis.client();
    let keys: Vec<_> = if redis.is_cluster() {
        client
            .scan_cluster_buffered(pattern, Some(1000), None)
            .collect()
            .await
    } else {
        client
            .scan_buffered(pattern, Some(1000), None)
            .collect()
            .await
    };
    let mut n = 0;
    for key in keys {
        let key = key?;
        let ttl: i64 = client.pttl(&key).await?;
        ensure!(ttl > 0, "key {key:?} has no TTL ({ttl})");
        n += 1;
    }
    Ok(n)
}

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

/// Polls `check` until it admits, within `deadline`.
async fn poll_until_allowed(
    limiter: &RateLimiter,
    key: &LimitKey,
    cost: NonZeroU32,
    deadline: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if limiter.check_cost(key, cost).await?.allowed {
            return Ok(start.elapsed());
        }
        ensure!(
            start.elapsed() < deadline,
            "not admitted within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn should_slide_the_log_window(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let window = Duration::from_millis(400);
    let limiter = RateLimiter::new(
        redis.clone(),
        config("slide", Algorithm::SlidingLog, 3, window)?.with_deny_cache(false),
    )?;
    let key = LimitKey::user("slider")?;
    ensure!(limiter.check_cost(&key, nz(2)).await?.allowed);
    tokio::time::sleep(window / 2).await; // time passing is what is tested
    let d = limiter.check(&key).await?;
    ensure!(d.allowed && d.remaining == 0);
    let d = limiter.check(&key).await?;
    let retry = d.retry_after.context("a denial carries retry_after")?;
    let slack = Duration::from_millis(10); // timer and scheduling jitter
    ensure!(!d.allowed && retry <= window / 2 + slack, "{d:?}");
    // the first two units leave the window together; the third stays
    poll_until_allowed(&limiter, &key, nz(2), Duration::from_secs(3)).await?;
    let d = limiter.check(&key).await?;
    let retry = d.retry_after.context("a denial carries retry_after")?;
    ensure!(
        !d.allowed && retry > window / 8 && retry <= window / 2 + slack,
        "{d:?}"
    );
    Ok(())
}

async fn should_refill_gcra_at_its_rate_after_a_burst(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    // one every 100 ms, bursts of 3
    let limiter = RateLimiter::new(
        redis.clone(),
        config(
            "gcra",
            Algorithm::gcra_with_burst(nz(3)),
            10,
            Duration::from_secs(1),
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
    ensure!(!d.allowed && retry <= Duration::from_millis(100), "{d:?}");
    ensure!(d.reset_after > Duration::from_millis(200), "{d:?}");
    poll_until_allowed(&limiter, &key, NonZeroU32::MIN, Duration::from_secs(2)).await?;
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

async fn should_keep_a_key_blocked_for_the_block_duration(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let block = Duration::from_millis(300);
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
        ensure!(ttl > 0 && ttl <= 300, "{}: ttl {ttl}", algorithm.name());
        // denials during the block do not extend it
        let again = limiter.check(&key).await?;
        ensure!(
            !again.allowed && again.retry_after <= Some(retry),
            "{again:?}"
        );
        let waited =
            poll_until_allowed(&limiter, &key, NonZeroU32::MIN, Duration::from_secs(3)).await?;
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
        poll_until_allowed(&limiter, &key, NonZeroU32::MIN, Duration::from_secs(3)).await?;
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

async fn should_skip_whitelisted_users_and_ranges(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let whitelist = Whitelist::new()
        .with_user("admin")
        .with_range("10.8.0.0/16".parse()?)
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

async fn should_report_violations_active_windows_and_rate(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let limiter = RateLimiter::new(
        redis.clone(),
        config("stats", Algorithm::FixedWindow, 1, HOUR)?,
    )?;
    for user in ["a", "b", "c"] {
        let key = LimitKey::user(user)?;
        limiter.check(&key).await?;
        limiter.check(&key).await?;
        limiter.check(&key).await?;
    }
    let other = RateLimiter::new(
        redis.clone(),
        config("other", Algorithm::FixedWindow, 1, HOUR)?,
    )?;
    other.check(&LimitKey::user("a")?).await?;
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
        matches!(bad_block, Err(Error::InvalidSetting { .. })),
        "{bad_block:?}"
    );
    let limiter = RateLimiter::new(
        redis.clone(),
        config("input", Algorithm::SlidingLog, 5, HOUR)?,
    )?;
    let long = LimitKey::new(&"x".repeat(5000))?;
    ensure!(matches!(limiter.check(&long).await, Err(Error::Key(_))));
    let ctl = LimitKey::new("a\nb")?;
    ensure!(matches!(limiter.check(&ctl).await, Err(Error::Key(_))));
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
    while start.elapsed() < window * 5 {
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
    ensure!(
        n >= f64::from(limit) * (windows - 2.0),
        "{n} admitted in {windows:.1} windows: too strict"
    );
    Ok(())
}

/// Timestamps reach Redis as exact integer microseconds: the scripts hand
/// numbers to `redis.call` (which formats them with `%.17g`) instead of
/// text made by Lua (`%.14g`, exponent form for 16 digits), so GCRA's
/// arrival time, the sliding log's scores and both block markers read back
/// as plain integers within a second of the server's clock.
async fn should_store_exact_microsecond_timestamps(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let client = redis.client();
    let now_us = || async {
        let t = redis.server_time().await?;
        anyhow::Ok(i64::try_from(t.as_micros())?)
    };
    let near_now = |text: &str, what: &str, lo: i64, hi: i64| -> anyhow::Result<i64> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        ensure!(
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
            "{what}: {text:?} is not a plain integer"
        );
        let v: i64 = text.parse()?;
        ensure!(
            v.abs() >= lo && v.abs() <= hi,
            "{what}: {v} not in {lo}..={hi}"
        );
        Ok(v)
    };
    let window = Duration::from_secs(60);
    let block = Duration::from_secs(30);
    let block_us = 30_000_000;

    // GCRA at 3 per second: an emission interval of 333,334 µs, not a whole
    // number of milliseconds, so the µs script; one check stores now + one
    // interval
    let gcra = blocking(
        &redis,
        "exact-gcra",
        Algorithm::gcra(),
        3,
        Duration::from_secs(1),
        block,
    )?;
    let emission_us = 333_334;
    let key = LimitKey::user("exact")?;
    let before = now_us().await?;
    ensure!(gcra.check(&key).await?.allowed);
    let after = now_us().await?;
    let stored: String = client.get(gcra.redis_key(&key)?).await?;
    near_now(
        &stored,
        "GCRA arrival time",
        before + emission_us,
        after + emission_us,
    )?;
    // exhaust, then the fourth check blocks: `-<block end µs>`
    ensure!(gcra.check(&key).await?.allowed);
    ensure!(gcra.check(&key).await?.allowed);
    ensure!(!gcra.check(&key).await?.allowed);
    let after = now_us().await?;
    let marker: String = client.get(gcra.redis_key(&key)?).await?;
    ensure!(marker.starts_with('-'), "GCRA block marker {marker:?}");
    near_now(
        &marker,
        "GCRA block end",
        before + block_us,
        after + block_us,
    )?;

    // sliding log: the admitted entry's score is its admission time
    let log = blocking(&redis, "exact-log", Algorithm::SlidingLog, 1, window, block)?;
    let before = now_us().await?;
    ensure!(log.check(&key).await?.allowed);
    ensure!(!log.check(&key).await?.allowed);
    let after = now_us().await?;
    let entries: Vec<(String, String)> = client
        .zrange(log.redis_key(&key)?, 0, -1, None, false, None, true)
        .await?;
    ensure!(entries.len() == 2, "{entries:?}");
    for (member, score) in &entries {
        // ZRANGE WITHSCORES prints the double; an integer score has no '.'
        if member == "#b" {
            near_now(
                score,
                "sliding log block end",
                before + block_us,
                after + block_us,
            )?;
        } else {
            near_now(score, "sliding log entry", before, after)?;
        }
    }

    // sliding window: `start:count:previous` and the block marker
    let counter = blocking(
        &redis,
        "exact-window",
        Algorithm::SlidingWindow,
        1,
        window,
        block,
    )?;
    let before = now_us().await?;
    ensure!(counter.check(&key).await?.allowed);
    let after = now_us().await?;
    let state: String = client.get(counter.redis_key(&key)?).await?;
    let parts: Vec<&str> = state.split(':').collect();
    ensure!(
        parts.len() == 3 && parts[1] == "1" && parts[2] == "0",
        "{state:?}"
    );
    near_now(parts[0], "sliding window start", before, after)?;
    ensure!(!counter.check(&key).await?.allowed);
    let after = now_us().await?;
    let marker: String = client.get(counter.redis_key(&key)?).await?;
    near_now(
        &marker,
        "sliding window block end",
        before + block_us,
        after + block_us,
    )?;
    assert_all_keys_expire(&redis).await?;
    Ok(())
}

/// GCRA whose emission interval is a whole number of milliseconds keeps
/// its arrival time as the key's expiry (value `0`, `PTTL` = arrival time
/// − now): two checks at 2 per minute leave 60 s of TTL, the third is
/// denied and blocks (`-1`, TTL = the block), and a check during the block
/// that would fit the quota again neither ends nor extends the block.
async fn should_keep_gcra_arrival_time_in_the_expiry(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let client = redis.client();
    let block = Duration::from_secs(30);
    let gcra = blocking(
        &redis,
        "gcra-ms",
        Algorithm::gcra(),
        2,
        Duration::from_secs(60),
        block,
    )?;
    let key = LimitKey::user("expiry")?;
    let rkey = gcra.redis_key(&key)?;
    let d = gcra.check(&key).await?;
    ensure!(d.allowed && d.remaining == 1, "{d:?}");
    let value: String = client.get(&rkey).await?;
    let ttl: i64 = client.pttl(&rkey).await?;
    ensure!(
        value == "0" && (29_000..=30_000).contains(&ttl),
        "{value:?} {ttl}"
    );
    let d = gcra.check(&key).await?;
    ensure!(d.allowed && d.remaining == 0, "{d:?}");
    let ttl: i64 = client.pttl(&rkey).await?;
    ensure!((59_000..=60_000).contains(&ttl), "ttl {ttl}");
    // over the burst: denied and blocked for 30 s
    let d = gcra.check(&key).await?;
    ensure!(!d.allowed, "{d:?}");
    let value: String = client.get(&rkey).await?;
    let ttl: i64 = client.pttl(&rkey).await?;
    ensure!(
        value == "-1" && (29_000..=30_000).contains(&ttl),
        "{value:?} {ttl}"
    );
    // 30 s of block + one 30 s interval fits the 60 s burst: still denied,
    // and the block is neither ended nor extended
    let d = gcra.check(&key).await?;
    let retry = d.retry_after.context("retry_after")?;
    ensure!(!d.allowed && retry <= block, "{d:?}");
    let value: String = client.get(&rkey).await?;
    let after: i64 = client.pttl(&rkey).await?;
    ensure!(
        value == "-1" && after <= ttl && after > 28_000,
        "{value:?} {after}"
    );
    // a peek and a refund leave the block alone too
    ensure!(!gcra.peek(&key, NonZeroU32::MIN).await?.allowed);
    gcra.refund(&key, NonZeroU32::MIN, RequestId::new()).await?;
    let value: String = client.get(&rkey).await?;
    ensure!(value == "-1", "{value:?}");
    assert_all_keys_expire(&redis).await?;
    Ok(())
}

topology_tests!(
    should_keep_gcra_arrival_time_in_the_expiry,
    should_store_exact_microsecond_timestamps,
    should_admit_exactly_the_limit_under_concurrency,
    should_respect_cost_for_every_algorithm,
    should_slide_the_log_window,
    should_refill_gcra_at_its_rate_after_a_burst,
    should_keep_a_key_blocked_for_the_block_duration,
    should_restore_the_full_quota_when_a_block_ends,
    should_answer_a_replay_during_a_block_as_admitted,
    should_skip_whitelisted_users_and_ranges,
    should_share_one_limit_despite_skewed_clocks,
    should_count_a_replayed_sliding_log_check_once,
    should_not_consume_other_limits_when_one_denies,
    should_record_but_never_reject_in_shadow_mode,
    should_report_violations_active_windows_and_rate,
    should_refuse_bad_input_with_typed_errors,
    should_bound_sliding_counter_at_window_edges,
);
