//! Network faults between the client and Redis, injected by testkit's
//! `FaultProxy`: latency, a black hole, connection resets and a reply cut in
//! the middle. Each gives a typed error within the command timeout, and the
//! handle serves normally again once the fault is lifted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure
#![allow(clippy::print_stdout)] // the observed errors are printed

use std::time::{Duration, Instant};

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{Classify, Error, ReconnectConfig, Redis, RedisConfig, RedisKey};
use aeturnis_testkit::{eventually, Fault, FaultProxy, RedisServer};

/// Long enough that the round trips the tests expect to succeed (the setup,
/// twenty after recovery) do not time out on a stalled CI host.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1_500);
/// Scheduling slack on a loaded 2-core machine, on top of the command timeout.
const SLACK: Duration = Duration::from_millis(1_500);
const RECOVERY: Duration = Duration::from_secs(10);

struct Setup {
    _server: RedisServer,
    proxy: FaultProxy,
    redis: Redis,
    key: RedisKey,
}

async fn setup() -> anyhow::Result<Setup> {
    let server = RedisServer::start_standalone()?;
    let proxy = FaultProxy::start(server.addr()).await?;
    let config = RedisConfig::from_url(&proxy.url())?
        .with_command_timeout(COMMAND_TIMEOUT)
        .with_unresponsive_timeout(Some(Duration::from_secs(1)))
        .with_reconnect(
            ReconnectConfig::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_millis(200)),
        );
    let redis = Redis::connect(config).await?;
    let key = redis.keys().key("proxy").id("value").build()?;
    let _: () = redis
        .client()
        .set(key.as_str(), "v".repeat(64 * 1024), None, None, false)
        .await?;
    Ok(Setup {
        _server: server,
        proxy,
        redis,
        key,
    })
}

/// A `GET` under the fault in force: its error and how long it took.
async fn get_under_fault(s: &Setup) -> (Error, Duration) {
    let started = Instant::now();
    let result: Result<String, Error> = s
        .redis
        .client()
        .get(s.key.as_str())
        .await
        .map_err(Error::from);
    check_error(s, result, started.elapsed(), "GET")
}

/// The same `GET` with replay off (`Redis::no_replay`).
async fn get_no_replay_under_fault(s: &Setup) -> (Error, Duration) {
    let started = Instant::now();
    let result: Result<String, Error> = s
        .redis
        .no_replay()
        .get(s.key.as_str())
        .await
        .map_err(Error::from);
    check_error(s, result, started.elapsed(), "GET, no replay")
}

fn check_error(
    s: &Setup,
    result: Result<String, Error>,
    took: Duration,
    what: &str,
) -> (Error, Duration) {
    let err = result.expect_err("a GET under the fault succeeded");
    println!("{:?}, {what}: {err} after {took:?}", s.proxy.fault());
    assert!(
        took <= COMMAND_TIMEOUT + SLACK,
        "the error came after {took:?}, command timeout {COMMAND_TIMEOUT:?}"
    );
    assert!(err.is_unavailable(), "{err:?}");
    (err, took)
}

/// Lifts the fault; the handle serves every command again (the full value
/// comes back, and ten more round trips in a row succeed).
async fn recovers(s: Setup) -> anyhow::Result<()> {
    s.proxy.set(Fault::Pass);
    let lifted = Instant::now();
    eventually("the handle to serve again", RECOVERY, || {
        let redis = s.redis.clone();
        let key = s.key.clone();
        async move {
            let v: String = redis.client().get(key.as_str()).await?;
            if v.len() == 64 * 1024 {
                Ok(())
            } else {
                Err(Error::UnexpectedReply(format!("{} bytes", v.len())))
            }
        }
    })
    .await?;
    println!(
        "recovered {:?} after the fault was lifted",
        lifted.elapsed()
    );
    for i in 0..10 {
        let _: () = s
            .redis
            .client()
            .set(s.key.as_str(), i, None, None, false)
            .await?;
        let got: i64 = s.redis.client().get(s.key.as_str()).await?;
        assert_eq!(got, i, "a reply out of step after recovery");
    }
    s.redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_time_out_under_latency_and_recover_when_it_is_lifted() -> anyhow::Result<()> {
    let s = setup().await?;
    s.proxy.set(Fault::Latency(COMMAND_TIMEOUT * 2));
    let (err, _) = get_under_fault(&s).await;
    assert!(err.is_timeout(), "{err:?}");
    recovers(s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_time_out_on_a_black_hole_and_recover_when_it_is_lifted() -> anyhow::Result<()> {
    let s = setup().await?;
    s.proxy.set(Fault::BlackHole);
    let (err, _) = get_under_fault(&s).await;
    assert!(err.is_timeout(), "{err:?}");
    recovers(s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fail_on_reset_connections_and_recover_when_they_stop() -> anyhow::Result<()> {
    let s = setup().await?;
    s.proxy.set(Fault::Reset);
    // fred re-sends the GET on every reconnection, each one reset, until
    // the command timeout
    let (err, _) = get_under_fault(&s).await;
    assert!(err.is_timeout(), "{err:?}");
    recovers(s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fail_on_a_reply_cut_in_the_middle_and_recover() -> anyhow::Result<()> {
    let s = setup().await?;
    s.proxy.set(Fault::CutReply);
    // with replay off, the cut reply is a connection error at once
    let (err, took) = get_no_replay_under_fault(&s).await;
    assert!(err.is_connection(), "{err:?}");
    assert!(took < COMMAND_TIMEOUT, "{took:?}");
    // with replay on, the GET is re-sent after each reconnection, and cut
    // again, until the command timeout
    let (err, _) = get_under_fault(&s).await;
    assert!(err.is_timeout(), "{err:?}");
    recovers(s).await
}
