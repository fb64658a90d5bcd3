//! Behaviour of the managed connection on every topology: connect, health,
//! scripts with NOSCRIPT recovery, codec interop, key escaping in SCAN.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::Value;
use aeturnis_redis_core::{ConnectionState, Error, HealthStatus, LuaScript, Redis, RedisConfig};
use aeturnis_testkit::{RedisServer, TestCtx, Topology};

async fn connect(ctx: &TestCtx) -> anyhow::Result<Redis> {
    let config = RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix);
    Ok(Redis::connect(config).await?)
}

fn set_and_get() -> LuaScript {
    LuaScript::new(
        "set_and_get",
        "redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000) return redis.call('GET', KEYS[1])",
    )
}

async fn should_connect_and_report_health(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let health = redis.health().await;
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    assert!(health.latency.is_some());
    assert_eq!(health.state, ConnectionState::Connected);
    assert!(health.connections >= 1);
    let version = health.server_version.clone().unwrap_or_default();
    assert!(version.starts_with('7'), "server version {version:?}");
    assert_eq!(health.role.as_deref(), Some("master"));
    assert!(health.used_memory.unwrap_or(0) > 0);
    assert_eq!(redis.is_cluster(), ctx.topology == Topology::Cluster);
    redis.shutdown().await?;
    redis.shutdown().await?; // idempotent
    let after = redis.health().await;
    assert_eq!(after.status, HealthStatus::Unhealthy);
    assert!(matches!(redis.server_time().await, Err(Error::Shutdown)));
    Ok(())
}

async fn should_reload_scripts_after_script_flush(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    // a script no other test loads (scripts are server-wide), so "not
    // loaded after the flush" cannot be undone by a test running beside
    let script = LuaScript::new(
        "set_and_get_after_flush",
        "redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000) return redis.call('GET', KEYS[1]) -- flush",
    );
    let key = redis.keys().key("script").id("k").build()?;
    let v: String = redis.script(&script, &key, "one").await?;
    assert_eq!(v, "one");
    redis.client().script_flush_cluster(false).await?;
    let exists: Vec<bool> = redis.client().script_exists(script.sha1()).await?;
    assert_eq!(exists, vec![false]);
    let v: String = redis.script(&script, &key, "two").await?;
    assert_eq!(v, "two");
    let v: String = redis.script_no_replay(&script, &key, "three").await?;
    assert_eq!(v, "three");
    // the one-key forms load it too
    redis.client().script_flush_cluster(false).await?;
    let v: String = redis
        .script_on(&script, &key, |args| args.push(Value::from("four")))
        .await?;
    assert_eq!(v, "four");
    redis.client().script_flush_cluster(false).await?;
    let v: String = redis
        .script_on_no_replay(&script, &key, |args| args.push(Value::from("five")))
        .await?;
    assert_eq!(v, "five");
    redis.shutdown().await?;
    assert!(matches!(
        redis
            .script_on::<String, _>(&script, &key, |args| args.push(Value::from("six")))
            .await,
        Err(Error::Shutdown)
    ));
    Ok(())
}

/// `script_on` builds its command once, and once more only after
/// `NOSCRIPT` (the first one never ran). On a server of its own: scripts
/// and `SCRIPT FLUSH` are server-wide, and the shared topologies' other
/// tests load and flush scripts concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_build_script_arguments_again_only_after_noscript() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = Redis::connect(RedisConfig::from_url(&server.url())?).await?;
    let script = set_and_get();
    let key = redis.keys().key("script").id("built").build()?;
    let built = AtomicUsize::new(0);
    let args = |word: &'static str| {
        let built = &built;
        move |args: &mut Vec<Value>| {
            built.fetch_add(1, Ordering::Relaxed);
            args.push(Value::from(word));
        }
    };
    // not loaded yet: NOSCRIPT, load, build again
    let v: String = redis.script_on(&script, &key, args("one")).await?;
    assert_eq!((v.as_str(), built.swap(0, Ordering::Relaxed)), ("one", 2));
    let v: String = redis.script_on(&script, &key, args("two")).await?;
    assert_eq!((v.as_str(), built.swap(0, Ordering::Relaxed)), ("two", 1));
    let v: String = redis
        .script_on_no_replay(&script, &key, args("three"))
        .await?;
    assert_eq!((v.as_str(), built.swap(0, Ordering::Relaxed)), ("three", 1));
    redis.client().script_flush(false).await?;
    let v: String = redis
        .script_on_no_replay(&script, &key, args("four"))
        .await?;
    assert_eq!((v.as_str(), built.swap(0, Ordering::Relaxed)), ("four", 2));
    redis.shutdown().await?;
    Ok(())
}

async fn should_run_scripts_on_keys_in_many_slots(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    redis.register_script(&set_and_get());
    assert_eq!(redis.load_scripts().await?, 1);
    for i in 0..64 {
        let key = redis.keys().key("slots").id(i.to_string()).build()?;
        let v: String = redis.script(&set_and_get(), &key, i).await?;
        assert_eq!(v, i.to_string());
        // the one-key form routes by the key's slot too
        let v: String = redis
            .script_on(&set_and_get(), &key, |args| args.push(Value::Integer(-i)))
            .await?;
        assert_eq!(v, (-i).to_string());
    }
    // two keys in different slots are refused before any round trip
    let a = redis.keys().key("x").id("a").build()?;
    let b = redis.keys().key("x").id("b").build()?;
    assert_ne!(a.slot(), b.slot());
    let err = redis
        .script::<String, _, _>(&set_and_get(), vec![a, b], "v")
        .await;
    assert!(matches!(err, Err(Error::CrossSlot { .. })), "{err:?}");
    // keys with one hash tag run together
    let t1 = redis.keys().key("x").tag("user").id("a").build()?;
    let t2 = redis.keys().key("x").tag("user").id("b").build()?;
    let v: String = redis.script(&set_and_get(), vec![t1, t2], "tagged").await?;
    assert_eq!(v, "tagged");
    redis.shutdown().await?;
    Ok(())
}

async fn should_read_plain_strings_written_by_other_clients(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let key = redis.keys().key("plain").id("greeting").build()?;
    redis
        .client()
        .set::<(), _, _>(
            &key,
            "hello from ioredis",
            Some(Expiration::EX(60)),
            None,
            false,
        )
        .await?;
    let bytes: Vec<u8> = redis.client().get(&key).await?;
    let text: String = redis.codec().decode(key.as_str(), &bytes)?;
    assert_eq!(text, "hello from ioredis");
    let err = redis
        .codec()
        .decode::<Vec<u64>>(key.as_str(), &bytes)
        .unwrap_err();
    match err {
        Error::Decode { key: k, .. } => assert_eq!(k, key.as_str()),
        other => panic!("expected a decode error, got {other:?}"),
    }
    redis.shutdown().await?;
    Ok(())
}

async fn should_work_through_a_pool(ctx: TestCtx) -> anyhow::Result<()> {
    let config = RedisConfig::from_url(&ctx.url)?
        .with_key_prefix(&ctx.prefix)
        .with_pool_size(std::num::NonZeroUsize::new(3).expect("3 > 0"));
    let redis = Redis::connect(config).await?;
    assert_eq!(redis.pool().map(|p| p.size()), Some(3));
    redis.client().script_flush_cluster(false).await?;
    for i in 0..12 {
        let key = redis.keys().key("pool").id(i.to_string()).build()?;
        let v: i64 = redis.script(&set_and_get(), &key, i).await?;
        assert_eq!(v, i);
    }
    assert!(redis.health().await.is_healthy());
    redis.shutdown().await?;
    Ok(())
}

async fn should_give_a_dedicated_client_for_blocking_commands(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let blocking = redis.dedicated_client().await?;
    let key = redis.keys().key("queue").id("jobs").build()?;
    let waiter = {
        let key = key.clone();
        tokio::spawn(async move {
            blocking
                .blpop::<Option<(String, String)>, _>(&key, 5.0)
                .await
        })
    };
    // the shared connection keeps serving while the dedicated one blocks
    for _ in 0..10 {
        let _: i64 = redis.client().exists(&key).await?;
    }
    redis.client().rpush::<(), _, _>(&key, "job-1").await?;
    redis.client().expire::<(), _>(&key, 60, None).await?;
    let popped = waiter.await??;
    assert_eq!(popped.map(|(_, v)| v).as_deref(), Some("job-1"));
    redis.shutdown().await?;
    Ok(())
}

async fn should_read_server_time(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let t = redis.server_time().await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let skew = if t > now { t - now } else { now - t };
    // the server runs on this machine, on the same clock: the skew is the
    // round trip plus scheduling, far below a second
    assert!(
        skew < Duration::from_secs(1),
        "server time {t:?} vs local {now:?}"
    );
    redis.shutdown().await?;
    Ok(())
}

aeturnis_testkit::topology_tests!(sentinel: should_connect_and_report_health, should_read_server_time);
aeturnis_testkit::topology_tests!(
    should_reload_scripts_after_script_flush,
    should_run_scripts_on_keys_in_many_slots,
    should_read_plain_strings_written_by_other_clients,
    should_work_through_a_pool,
    should_give_a_dedicated_client_for_blocking_commands,
);
