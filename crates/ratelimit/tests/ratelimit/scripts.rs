//! Every script of the crate is registered when a limiter is built, so
//! `Redis::load_scripts` preloads all of them.

use std::time::Duration;

use aeturnis_ratelimit::core::prelude::*;
use aeturnis_ratelimit::{Algorithm, RateLimiter};
use aeturnis_testkit::{topology_tests, TestCtx};
use anyhow::ensure;

use crate::support::*;

/// The crate's scripts, by name.
const NAMES: [&str; 5] = [
    "ratelimit_sliding_log",
    "ratelimit_fixed_window",
    "ratelimit_sliding_window",
    "ratelimit_gcra",
    "ratelimit_gcra_ms",
];

async fn should_register_and_load_every_script_with_one_limiter(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    // the SHA-1 of each script, from one limiter per script on a scratch handle
    let scratch = connect(&ctx).await?;
    let mut shas = Vec::new();
    for (algorithm, limit, window) in [
        (Algorithm::SlidingLog, 1, HOUR),
        (Algorithm::FixedWindow, 1, HOUR),
        (Algorithm::SlidingWindow, 1, HOUR),
        // 3 per second: an emission interval of 333,334 µs (the µs script)
        (Algorithm::gcra(), 3, Duration::from_secs(1)),
        // 1 per second: 1,000 ms (the expiry-based ms script)
        (Algorithm::gcra(), 1, Duration::from_secs(1)),
    ] {
        let limiter = RateLimiter::new(scratch.clone(), config("sha", algorithm, limit, window)?)?;
        shas.push((limiter.script().name(), limiter.script().sha1().to_owned()));
    }
    let names: Vec<&str> = shas.iter().map(|(name, _)| *name).collect();
    ensure!(names == NAMES, "{names:?}");

    // a fresh handle with one limiter registers all five
    let redis = connect(&ctx).await?;
    let before = redis.registered_scripts();
    ensure!(
        NAMES.iter().all(|n| !before.contains(n)),
        "registered before any limiter: {before:?}"
    );
    let _gcra = RateLimiter::new(redis.clone(), config("one", Algorithm::gcra(), 10, HOUR)?)?;
    let registered = redis.registered_scripts();
    for name in NAMES {
        ensure!(
            registered.iter().filter(|r| **r == name).count() == 1,
            "{name} not registered once: {registered:?}"
        );
    }
    // a second limiter registers nothing twice
    let _log = RateLimiter::new(
        redis.clone(),
        config("two", Algorithm::SlidingLog, 10, HOUR)?,
    )?;
    ensure!(redis.registered_scripts() == registered);

    // after a flush, load_scripts loads every registered script again
    redis.client().script_flush_cluster(false).await?;
    let loaded = redis.load_scripts().await?;
    ensure!(
        loaded == registered.len(),
        "{loaded} loaded, {} registered",
        registered.len()
    );
    if !redis.is_cluster() {
        let digests: Vec<String> = shas.iter().map(|(_, sha)| sha.clone()).collect();
        let exists: Vec<bool> = redis.client().script_exists(digests).await?;
        ensure!(exists == [true; 5], "{exists:?}");
    }
    Ok(())
}

topology_tests!(should_register_and_load_every_script_with_one_limiter);
