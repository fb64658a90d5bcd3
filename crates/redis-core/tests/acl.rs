//! Least privilege: the core works under an ACL user made from
//! `aeturnis_redis_core::acl::acl_rules` (keys and channels under the prefix,
//! the command categories the crates use), and a command, key or channel
//! outside it is refused with a typed `NOPERM` error (naming the command;
//! Redis 7.0 does not name a refused key or channel).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use aeturnis_redis_core::acl::acl_rules;
use aeturnis_redis_core::fred::interfaces::EventInterface;
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{
    Classify, Error, HealthStatus, LuaScript, Redis, RedisConfig, Secret, WriteConcern,
};
use aeturnis_testkit::RedisServer;

const PREFIX: &str = "app:";

/// A server with the user `app` (password `app-secret`) made from the rules.
fn server_with_app_user() -> anyhow::Result<RedisServer> {
    let server = RedisServer::start_standalone()?;
    server.acl_setuser("app", "app-secret", &acl_rules(PREFIX))?;
    Ok(server)
}

async fn connect_as_app(server: &RedisServer) -> anyhow::Result<Redis> {
    let config = RedisConfig::from_url(&server.url())?
        .with_credentials(Some("app".into()), Some(Secret::new("app-secret")))
        .with_key_prefix(PREFIX);
    Ok(Redis::connect(config).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_work_under_the_least_privilege_acl_user() -> anyhow::Result<()> {
    let server = server_with_app_user()?;
    let redis = connect_as_app(&server).await?;

    // health: PING and INFO
    let health = redis.health().await;
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    assert!(health.server_version.is_some(), "INFO refused: {health:?}");
    // server time (TIME)
    assert!(redis.server_time().await? > Duration::ZERO);

    // scripts: SCRIPT LOAD, EVALSHA, a script calling TIME and writing a key
    let script = LuaScript::new(
        "acl_stamp",
        "local t = redis.call('TIME') \
         redis.call('SET', KEYS[1], t[1], 'PX', ARGV[1]) \
         return redis.call('PTTL', KEYS[1])",
    );
    redis.register_script(&script);
    assert_eq!(redis.load_scripts().await?, 1);
    let key = redis.keys().key("acl").id("stamp").build()?;
    let ttl: i64 = redis.script(&script, key.as_str(), 60_000).await?;
    assert!(ttl > 0, "{ttl}");

    // plain commands: strings, hashes, sorted sets, expiry, UNLINK
    let session = redis.keys().key("acl").id("session").build()?;
    let _: () = redis
        .client()
        .hset(session.as_str(), [("user", "42")])
        .await?;
    let _: () = redis
        .client()
        .pexpire(session.as_str(), 60_000, None)
        .await?;
    let user: String = redis.client().hget(session.as_str(), "user").await?;
    assert_eq!(user, "42");
    let board = redis.keys().key("acl").id("board").build()?;
    let _: () = redis
        .client()
        .zadd(board.as_str(), None, None, false, false, (1.0, "a"))
        .await?;
    let _: () = redis.client().unlink(board.as_str()).await?;

    // SCAN over the prefix
    let found = redis
        .scan_keys(&redis.keys().pattern_all(), NonZeroU32::new(100).unwrap())
        .await?;
    assert_eq!(found.len(), 2, "{found:?}");

    // WAIT is allowed: no replica, so NotReplicated rather than NOPERM
    let concern = WriteConcern::new(NonZeroU32::MIN, Duration::from_millis(20))?;
    let batch = redis.replicated(concern, &key)?;
    let _: () = batch.set(key.as_str(), "v", None, None, false).await?;
    let err = batch.send().await.unwrap_err();
    assert!(matches!(err, Error::NotReplicated { .. }), "{err:?}");

    // shard channels under the prefix (lock wake-ups, patterns' notifications)
    let subscriber = redis.subscriber().await?;
    let mut messages = subscriber.message_rx();
    let channel = format!("{key}:filled");
    subscriber.ssubscribe(channel.as_str()).await?;
    let receivers: i64 = redis.client().spublish(channel.as_str(), "x").await?;
    assert_eq!(receivers, 1);
    let message = tokio::time::timeout(Duration::from_secs(5), messages.recv()).await??;
    assert_eq!(message.channel.to_string(), channel);
    subscriber.quit().await?;

    // a pool (every client authenticates)
    let pooled = Redis::connect(
        RedisConfig::from_url(&server.url())?
            .with_credentials(Some("app".into()), Some(Secret::new("app-secret")))
            .with_key_prefix(PREFIX)
            .with_pool_size(NonZeroUsize::new(2).unwrap()),
    )
    .await?;
    let stamp: String = pooled.client().get(key.as_str()).await?;
    assert_eq!(stamp, "v");
    pooled.shutdown().await?;
    redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_refuse_commands_keys_and_channels_outside_the_acl_with_noperm() -> anyhow::Result<()>
{
    let server = server_with_app_user()?;
    let redis = connect_as_app(&server).await?;

    let denied = |e: Error, names: &str| {
        assert!(e.is_no_permission(), "{e:?}");
        assert!(
            e.is_auth() && e.is_invalid_input() && !e.is_retryable(),
            "{e:?}"
        );
        assert!(e.to_string().contains(names), "{e} does not name {names}");
    };
    let e = redis.client().flushall::<()>(false).await.unwrap_err();
    denied(e.into(), "flushall");
    let e = redis
        .client()
        .config_set("maxmemory", "1")
        .await
        .unwrap_err();
    denied(e.into(), "config|set");
    let e = redis
        .client()
        .get::<Option<String>, _>("other:key")
        .await
        .unwrap_err();
    denied(e.into(), "one of the keys");
    let e = redis
        .client()
        .spublish::<i64, _, _>("other:channel", "x")
        .await
        .unwrap_err();
    denied(e.into(), "one of the channels");
    // refused, not executed: the key outside the prefix was never written
    let e = redis
        .client()
        .set::<(), _, _>("other:key", "x", None, None, false)
        .await
        .unwrap_err();
    denied(e.into(), "one of the keys");
    assert_eq!(server.cli(&["EXISTS", "other:key"])?.trim(), "0");
    redis.shutdown().await?;
    Ok(())
}
