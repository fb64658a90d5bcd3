//! Settings that only a real server can prove: the database index (from
//! `REDIS_DB` and from the URL), an ACL user name, giving up after
//! `REDIS_RECONNECT_MAX_ATTEMPTS`, and `REDIS_SENTINEL_SERVICE`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::collections::HashMap;
use std::time::Duration;

use aeturnis_redis_core::prelude::*;
use aeturnis_redis_core::{ConnectionState, Topology};
use aeturnis_testkit::{eventually, RedisServer, TestCtx};

fn lookup(vars: HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> {
    move |name| vars.get(name).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_select_the_database_from_redis_db_and_from_the_url() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let port = server.port();
    let from_env = RedisConfig::from_lookup(lookup(HashMap::from([
        ("REDIS_HOST", "127.0.0.1".to_owned()),
        ("REDIS_PORT", port.to_string()),
        ("REDIS_DB", "3".to_owned()),
    ])))?;
    let from_url = RedisConfig::from_url(&format!("redis://127.0.0.1:{port}/5"))?;
    for (config, db) in [(from_env, "3"), (from_url, "5")] {
        let redis = Redis::connect(config).await?;
        redis
            .client()
            .set::<(), _, _>("where", db, None, None, false)
            .await?;
        redis.shutdown().await?;
        assert_eq!(server.cli(&["-n", db, "GET", "where"])?.trim(), db);
    }
    assert_eq!(server.cli(&["-n", "0", "EXISTS", "where"])?.trim(), "0");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_log_in_as_the_acl_user_named_in_the_environment() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    server.cli(&[
        "ACL",
        "SETUSER",
        "game",
        "on",
        ">Tiger-Lamp-20",
        "~*",
        "+@all",
    ])?;
    let vars = |password: &str| {
        HashMap::from([
            ("REDIS_HOST", "127.0.0.1".to_owned()),
            ("REDIS_PORT", server.port().to_string()),
            ("REDIS_USERNAME", "game".to_owned()),
            ("REDIS_PASSWORD", password.to_owned()),
        ])
    };
    let redis = Redis::connect(RedisConfig::from_lookup(lookup(vars("Tiger-Lamp-20")))?).await?;
    let me: String = redis
        .client()
        .custom(
            aeturnis_redis_core::fred::types::CustomCommand::new_static(
                "ACL",
                aeturnis_redis_core::fred::types::ClusterHash::Random,
                false,
            ),
            vec!["WHOAMI"],
        )
        .await?;
    assert_eq!(me, "game");
    redis.shutdown().await?;
    let wrong = RedisConfig::from_lookup(lookup(vars("not-it")))?;
    let err = Redis::connect(wrong).await.expect_err("wrong password");
    assert!(err.is_auth() && err.is_invalid_input(), "{err:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_give_up_after_the_configured_reconnect_attempts() -> anyhow::Result<()> {
    let mut server = RedisServer::start_standalone()?;
    let config = RedisConfig::from_lookup(lookup(HashMap::from([
        ("REDIS_URL", server.url()),
        ("REDIS_RECONNECT_MAX_ATTEMPTS", "2".to_owned()),
        ("REDIS_RECONNECT_MAX_DELAY_MS", "200".to_owned()),
        ("REDIS_COMMAND_TIMEOUT_MS", "300".to_owned()),
        ("REDIS_CONNECT_TIMEOUT_MS", "300".to_owned()),
    ])))?;
    assert_eq!(config.reconnect.max_attempts, 2);
    let reconnect = config
        .reconnect
        .clone()
        .with_min_delay(Duration::from_millis(100))
        .with_jitter(Duration::ZERO);
    let config = config.with_reconnect(reconnect);
    let redis = Redis::connect(config).await?;
    redis
        .client()
        .set::<(), _, _>("k", "v", None, None, false)
        .await?;
    assert!(!redis.has_stopped());
    server.kill()?;
    // fred's connection task ends once the two attempts are spent
    eventually("the client gives up", Duration::from_secs(10), || async {
        if redis.has_stopped() {
            Ok(())
        } else {
            Err(format!("still trying ({})", redis.state()))
        }
    })
    .await?;
    server.restart()?;
    // it does not come back on its own: every call fails, unavailable
    for _ in 0..3 {
        let err = redis
            .client()
            .get::<Option<String>, _>("k")
            .await
            .map_err(aeturnis_redis_core::Error::from)
            .expect_err("the client gave up");
        assert!(err.is_unavailable(), "{err:?}");
    }
    assert_eq!(redis.state(), ConnectionState::Disconnected);
    let _ = redis.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_find_the_primary_by_the_sentinel_service_name() -> anyhow::Result<()> {
    let ctx = TestCtx::sentinel("sentinel_service").await;
    let Topology::Sentinel { nodes, .. } = RedisConfig::from_url(&ctx.url)?.topology else {
        panic!(
            "the shared sentinel URL is not a sentinel topology: {}",
            ctx.url
        );
    };
    let nodes: Vec<String> = nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
    let vars = |service: &str| {
        HashMap::from([
            ("REDIS_TOPOLOGY", "sentinel".to_owned()),
            ("REDIS_SENTINEL_NODES", nodes.join(",")),
            ("REDIS_SENTINEL_SERVICE", service.to_owned()),
            ("REDIS_CONNECT_TIMEOUT_MS", "2000".to_owned()),
        ])
    };
    let config = RedisConfig::from_lookup(lookup(vars("mymaster")))?.with_key_prefix(&ctx.prefix);
    let redis = Redis::connect(config).await?;
    let health = redis.health().await;
    assert_eq!(health.role.as_deref(), Some("master"), "{health:?}");
    redis.shutdown().await?;
    let unknown = RedisConfig::from_lookup(lookup(vars("no-such-service")))?;
    let err = Redis::connect(unknown).await.expect_err("unknown service");
    // the sentinels know no such primary: a configuration error, not an outage
    assert!(err.is_invalid_input(), "{err:?}");
    Ok(())
}
