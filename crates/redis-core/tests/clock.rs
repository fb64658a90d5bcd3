//! [`ServerClock`] against a standalone server the test owns, so that `INFO
//! commandstats` counts only this test's `TIME` calls: the estimate agrees
//! with a `TIME` taken just after it, concurrent first calls share one
//! calibration, a stale calibration is refreshed in the background, and a
//! clock that never calibrated fails with a typed error after shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::time::{Duration, Instant};

use aeturnis_redis_core::{Error, Redis, RedisConfig, ServerClock, SAMPLES};
use aeturnis_testkit::RedisServer;

const DEADLINE: Duration = Duration::from_secs(10);

async fn connect(server: &RedisServer) -> anyhow::Result<Redis> {
    Ok(Redis::connect(RedisConfig::from_url(&server.url())?).await?)
}

/// `calls=` of `cmdstat_time` since the server started.
fn time_calls(server: &RedisServer) -> anyhow::Result<u64> {
    let info = server.cli(&["INFO", "commandstats"])?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_time:"))
        .and_then(|stats| stats.split(',').find_map(|kv| kv.strip_prefix("calls=")))
        .map_or(Ok(0), |n| n.trim().parse())?)
}

fn as_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_estimate_within_its_bound_of_the_server_time() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = connect(&server).await?;
    let clock = ServerClock::new(redis.clone());
    assert_eq!(
        clock.uncertainty(),
        None,
        "nothing sent before the first call"
    );
    clock.now().await?; // calibrate
    for _ in 0..50 {
        let estimate = clock.now().await?;
        let before = Instant::now();
        let server_ms = as_ms(redis.server_time().await?);
        let rtt = as_ms(before.elapsed()) + 1;
        // the server read TIME after the estimate was taken, and within
        // one round trip of it
        assert!(
            server_ms >= estimate.earliest_ms(),
            "TIME {server_ms} is before the estimate {estimate:?}"
        );
        assert!(
            server_ms <= estimate.latest_ms() + rtt,
            "TIME {server_ms} is more than one round trip ({rtt} ms) after the estimate {estimate:?}"
        );
        // on loopback the bound itself is small (generous for a busy box:
        // a calibration round trip stalled by the loaded CI host widens it)
        assert!(
            estimate.uncertainty < Duration::from_secs(1),
            "{estimate:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(clock.calibrations(), 1, "no refresh within the period");
    assert_eq!(clock.now_ms().await? / 1_000, clock.now().await?.ms / 1_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_share_one_calibration_between_concurrent_first_calls() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = connect(&server).await?;
    let before = time_calls(&server)?;
    let clock = ServerClock::new(redis);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let clock = clock.clone();
        tasks.push(tokio::spawn(async move { clock.now().await }));
    }
    for t in tasks {
        t.await??;
    }
    assert_eq!(clock.calibrations(), 1);
    assert_eq!(
        time_calls(&server)? - before,
        SAMPLES as u64,
        "one calibration of {SAMPLES} TIME calls for 50 concurrent first calls"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_recalibrate_in_the_background_once_stale() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = connect(&server).await?;
    let before = time_calls(&server)?;
    let clock = ServerClock::with_refresh_period(redis, Duration::from_millis(100));
    clock.now().await?;
    assert_eq!(clock.calibrations(), 1);
    let deadline = Instant::now() + DEADLINE;
    // calls keep answering; once the calibration is 100 ms old one of them
    // starts a recalibration
    while clock.calibrations() < 3 {
        clock.now().await?;
        assert!(
            Instant::now() < deadline,
            "no recalibration after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // every TIME call belongs to a completed calibration, or to the one
    // (at most) still running
    let done_before = clock.calibrations() * SAMPLES as u64;
    let calls = time_calls(&server)? - before;
    let done_after = clock.calibrations() * SAMPLES as u64;
    assert!(
        (done_before..=done_after + SAMPLES as u64).contains(&calls),
        "{calls} TIME calls for {} calibrations",
        clock.calibrations()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_answering_from_the_last_calibration_when_a_refresh_fails() -> anyhow::Result<()>
{
    let server = RedisServer::start_standalone()?;
    let redis = connect(&server).await?;
    let clock = ServerClock::with_refresh_period(redis.clone(), Duration::from_millis(50));
    let first = clock.now().await?;
    redis.shutdown().await?;
    // stale, and every refresh fails: the estimate still advances
    let deadline = Instant::now() + DEADLINE;
    loop {
        let later = clock.now().await?;
        if later.ms > first.ms + 100 {
            break;
        }
        assert!(Instant::now() < deadline, "the estimate did not advance");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(clock.calibrations(), 1);
    // a clock that never calibrated has nothing to answer from
    let fresh = ServerClock::new(redis);
    assert!(matches!(fresh.now().await, Err(Error::Shutdown)));
    assert_eq!(fresh.uncertainty(), None);
    Ok(())
}
