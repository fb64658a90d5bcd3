//! Faults on servers the tests own: a SIGKILLed and restarted server, a
//! paused server, a cluster failover, NOSCRIPT after restart, and what replay
//! does (and does not do) to a command in flight when a connection dies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::time::{Duration, Instant};

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{
    Classify, ConnectionState, Error, LuaScript, ReconnectConfig, Redis, RedisConfig,
};
use aeturnis_testkit::{Cluster, RedisServer};

const DEADLINE: Duration = Duration::from_secs(30);

fn fast_config(url: &str) -> anyhow::Result<RedisConfig> {
    let mut reconnect = ReconnectConfig::default();
    reconnect.min_delay = Duration::from_millis(50);
    reconnect.max_delay = Duration::from_millis(500);
    Ok(RedisConfig::from_url(url)?
        .with_command_timeout(Duration::from_millis(500))
        .with_connect_timeout(Duration::from_secs(2))
        .with_reconnect(reconnect))
}

/// Polls `probe` until it succeeds or the deadline passes.
async fn eventually<F, Fut, T>(what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        match probe().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(%e, "{what}: not yet");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => anyhow::bail!("{what}: still failing after {DEADLINE:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fail_fast_with_typed_errors_during_an_outage_and_recover_after_restart(
) -> anyhow::Result<()> {
    let mut server = RedisServer::start_standalone()?;
    let redis = Redis::connect(fast_config(&server.url())?).await?;
    let key = redis.keys().key("outage").id("k").build()?;
    redis
        .client()
        .set::<(), _, _>(&key, "before", Some(Expiration::EX(600)), None, false)
        .await?;

    server.kill()?;
    for _ in 0..3 {
        let started = Instant::now();
        let err = redis
            .client()
            .get::<Option<String>, _>(&key)
            .await
            .map_err(Error::from)
            .unwrap_err();
        let took = started.elapsed();
        assert!(err.is_retryable(), "{err:?} should be retryable");
        assert!(err.is_timeout() || err.is_connection(), "{err:?}");
        // bounded by the 500 ms command timeout (generous margin for a loaded CI box)
        assert!(took < Duration::from_secs(3), "outage call took {took:?}");
    }
    assert!(!redis.health().await.is_healthy());

    server.restart()?;
    // same client object: poll until the reconnect completes
    eventually("write after restart", || async {
        redis
            .client()
            .set::<(), _, _>(&key, "after", Some(Expiration::EX(600)), None, false)
            .await
            .map_err(Error::from)
    })
    .await?;
    let v: Option<String> = redis.client().get(&key).await?;
    assert_eq!(v.as_deref(), Some("after"));
    assert!(redis.health().await.is_healthy());
    assert_eq!(redis.state(), ConnectionState::Connected);
    redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_bound_connect_when_no_server_listens() -> anyhow::Result<()> {
    let mut server = RedisServer::start_standalone()?;
    let url = server.url();
    server.kill()?;
    let started = Instant::now();
    let err = Redis::connect(fast_config(&url)?).await.unwrap_err();
    assert!(err.is_connection() || err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // with fail_fast off, connect keeps trying until its own bound
    let started = Instant::now();
    let err = Redis::connect(fast_config(&url)?.with_fail_fast(false))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                operation: "connect",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2) && started.elapsed() < Duration::from_secs(6)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_reload_scripts_after_a_restart() -> anyhow::Result<()> {
    let mut server = RedisServer::start_standalone()?;
    let redis = Redis::connect(fast_config(&server.url())?).await?;
    let script = LuaScript::new("echo", "return ARGV[1]");
    let v: String = redis.script(&script, Vec::<String>::new(), "a").await?;
    assert_eq!(v, "a");
    server.kill()?;
    server.restart()?;
    // the restarted server has an empty script cache; the first call after the
    // reconnect must load it again instead of failing with NOSCRIPT
    let v: String = eventually("script after restart", || async {
        redis
            .script::<String, _, _>(&script, Vec::<String>::new(), "b")
            .await
    })
    .await?;
    assert_eq!(v, "b");
    assert_eq!(
        server.cli(&["SCRIPT", "EXISTS", script.sha1()])?.trim(),
        "1"
    );
    redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_reload_scripts_after_a_cluster_failover() -> anyhow::Result<()> {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await??;
    let redis = Redis::connect(fast_config(&cluster.url())?).await?;
    let script = LuaScript::new(
        "set_get",
        "redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000) return redis.call('GET', KEYS[1])",
    );
    let keys: Vec<_> = (0..16)
        .map(|i| redis.keys().key("fo").id(i.to_string()).build())
        .collect::<Result<_, _>>()?;
    for k in &keys {
        let _: String = redis.script(&script, k, "before").await?;
    }
    let cluster =
        tokio::task::spawn_blocking(move || cluster.failover().map(|()| cluster)).await??;
    // promoted replicas never loaded the script (Redis 7 replicates effects)
    for k in &keys {
        let v: String = eventually("script after failover", || async {
            redis.script::<String, _, _>(&script, k, "after").await
        })
        .await?;
        assert_eq!(v, "after");
    }
    redis.shutdown().await?;
    drop(cluster);
    Ok(())
}

/// A connection that stops answering is closed by fred's unresponsive check;
/// the command that was in flight already sits in the server's socket buffer
/// and runs when the server resumes. With replay (the default) fred sends it
/// again and it runs twice; through `no_replay` the caller gets an error and
/// it runs at most once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_not_replay_commands_sent_with_replay_disabled() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let config = fast_config(&server.url())?
        .with_command_timeout(Duration::from_secs(20))
        .with_unresponsive_timeout(Some(Duration::from_millis(300)));
    let redis = Redis::connect(config).await?;
    let replayed = redis.keys().key("replay").id("default").build()?;
    let single = redis.keys().key("replay").id("disabled").build()?;

    server.pause()?;
    let with_replay = {
        let (redis, key) = (redis.clone(), replayed.clone());
        tokio::spawn(async move { redis.client().incr::<i64, _>(&key).await })
    };
    let without_replay = {
        let (redis, key) = (redis.clone(), single.clone());
        tokio::spawn(async move { redis.no_replay().incr::<i64, _>(&key).await })
    };
    // the no-replay call fails once fred declares the connection dead
    let err = Error::from(without_replay.await?.unwrap_err());
    assert!(err.is_retryable(), "{err:?}");
    server.resume()?;

    let replayed_value = with_replay.await??;
    let single_value: Option<i64> = eventually("read after resume", || async {
        redis
            .client()
            .get::<Option<i64>, _>(&single)
            .await
            .map_err(Error::from)
    })
    .await?;
    assert!(
        single_value.unwrap_or(0) <= 1,
        "no-replay INCR ran {single_value:?} times"
    );
    assert_eq!(
        replayed_value, 2,
        "the default client replays the in-flight INCR (this is the hazard no_replay avoids)"
    );
    redis.shutdown().await?;
    Ok(())
}

/// With `fail_fast_commands`, a script call made while the client knows its
/// connection is down fails at once with `Error::Disconnected` (naming the
/// state), classed unavailable, instead of waiting out the command timeout;
/// after the restart the same handle serves again. Without it, the same
/// call queues and fails only at the command timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fail_script_calls_at_once_while_down_with_fail_fast_commands() -> anyhow::Result<()>
{
    let mut server = RedisServer::start_standalone()?;
    let script = LuaScript::new("ff_get", "return redis.call('GET', KEYS[1])");
    let slow = fast_config(&server.url())?.with_command_timeout(Duration::from_secs(2));
    let fast = Redis::connect(slow.clone().with_fail_fast_commands(true)).await?;
    let queued = Redis::connect(slow).await?;
    let key = fast.keys().key("ff").build()?;
    let _: Option<String> = fast
        .script(&script, vec![key.as_str()], Vec::<String>::new())
        .await?;

    server.kill()?;
    eventually("the client sees the connection down", || async {
        match fast.state() {
            ConnectionState::Connected => Err(Error::UnexpectedReply("still connected".into())),
            _ => Ok(()),
        }
    })
    .await?;
    let started = Instant::now();
    let err = fast
        .script::<Option<String>, _, _>(&script, vec![key.as_str()], Vec::<String>::new())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Disconnected { .. }), "{err:?}");
    assert!(err.is_unavailable() && err.is_connection(), "{err:?}");
    // well below the 2 s command timeout the queued call waits out (room
    // for a stalled CI host)
    assert!(
        took < Duration::from_millis(1_000),
        "failed fast in {took:?}"
    );
    assert!(matches!(
        fast.ensure_connected(),
        Err(Error::Disconnected { .. })
    ));
    // the default queues until the command timeout
    let started = Instant::now();
    let err = queued
        .script::<Option<String>, _, _>(&script, vec![key.as_str()], Vec::<String>::new())
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    server.restart()?;
    eventually("the fail-fast handle serves again", || async {
        fast.script::<Option<String>, _, _>(&script, vec![key.as_str()], Vec::<String>::new())
            .await
    })
    .await?;
    fast.shutdown().await?;
    queued.shutdown().await?;
    Ok(())
}
