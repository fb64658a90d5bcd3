//! TLS end to end (feature `tls`): a server with certificates made at test
//! time (testkit's `TlsRedis`), trusted through `RedisConfig::tls_ca_file`:
//! connect, health, a script, cache- and session-like round trips, and a
//! server signed by another CA refused with a typed error.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::collections::HashMap;
use std::time::Duration;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{
    Classify, ConfigError, Error, HealthStatus, LuaScript, Redis, RedisConfig,
};
use aeturnis_testkit::TlsRedis;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    level: u32,
}

fn config(tls: &TlsRedis) -> anyhow::Result<RedisConfig> {
    Ok(RedisConfig::from_url(&tls.url())?
        .with_tls_ca_file(tls.ca_file())
        .with_connect_timeout(Duration::from_secs(5)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_serve_health_scripts_and_round_trips_over_tls() -> anyhow::Result<()> {
    let tls = tokio::task::spawn_blocking(TlsRedis::start).await??;
    let redis = Redis::connect(config(&tls)?).await?;
    assert!(redis.config().tls);

    let health = redis.health().await;
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    assert!(health.server_version.is_some(), "{health:?}");

    // a script (EVALSHA, loaded on NOSCRIPT)
    let script = LuaScript::new("tls_incr", "return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let counter = redis.keys().key("tls").id("counter").build()?;
    let n: i64 = redis.script(&script, counter.as_str(), 5).await?;
    assert_eq!(n, 5);

    // cache-like: an encoded value with a TTL, read back and decoded
    let key = redis.keys().key("tls").id("profile").build()?;
    let profile = Profile {
        name: "ada".into(),
        level: 7,
    };
    let bytes = redis.codec().encode(key.as_str(), &profile)?;
    let _: () = redis
        .client()
        .set(
            key.as_str(),
            bytes,
            Some(Expiration::PX(60_000)),
            None,
            false,
        )
        .await?;
    let stored: Vec<u8> = redis.client().get(key.as_str()).await?;
    let back: Profile = redis.codec().decode(key.as_str(), &stored)?;
    assert_eq!(back, profile);
    let ttl: i64 = redis.client().pttl(key.as_str()).await?;
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");

    // session-like: a hash with an expiry, then revoked
    let session = redis.keys().key("tls").id("session").build()?;
    let _: () = redis
        .client()
        .hset(session.as_str(), [("user", "42"), ("role", "admin")])
        .await?;
    let _: () = redis
        .client()
        .pexpire(session.as_str(), 60_000, None)
        .await?;
    let fields: HashMap<String, String> = redis.client().hgetall(session.as_str()).await?;
    assert_eq!(fields.get("user").map(String::as_str), Some("42"));
    let removed: i64 = redis.client().del(session.as_str()).await?;
    assert_eq!(removed, 1);

    // the plain port is not what the client used: the data is there all the same
    let seen = tls.server().cli(&["GET", counter.as_str()])?;
    assert_eq!(seen.trim(), "5");
    redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_refuse_a_server_signed_by_a_ca_it_does_not_trust() -> anyhow::Result<()> {
    let tls = tokio::task::spawn_blocking(TlsRedis::start).await??;
    let config = RedisConfig::from_url(&tls.url())?
        .with_tls_ca_file(tls.other_ca_file())
        .with_connect_timeout(Duration::from_secs(5));
    let err = Redis::connect(config).await.unwrap_err();
    println!("{err:?}");
    assert!(err.is_tls(), "{err:?}");
    assert!(err.is_invalid_input(), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn should_refuse_a_ca_file_that_is_missing_or_holds_no_certificate() -> anyhow::Result<()> {
    let missing = RedisConfig::from_url("rediss://127.0.0.1:1")?
        .with_tls_ca_file("/nonexistent/aeturnis-ca.pem");
    let err = Redis::connect(missing).await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ConfigError::Invalid { ref variable, .. }) if variable == "tls_ca_file"),
        "{err:?}"
    );
    let dir = std::env::temp_dir().join(format!("aeturnis-tls-empty-{}", std::process::id()));
    std::fs::write(&dir, "not a certificate\n")?;
    let empty = RedisConfig::from_url("rediss://127.0.0.1:1")?.with_tls_ca_file(&dir);
    let err = Redis::connect(empty).await.unwrap_err();
    std::fs::remove_file(&dir)?;
    assert!(
        matches!(err, Error::Config(ConfigError::Invalid { ref variable, .. }) if variable == "tls_ca_file"),
        "{err:?}"
    );
    let plain = RedisConfig::from_url("redis://127.0.0.1:1")?.with_tls_ca_file("/tmp/ca.pem");
    assert!(matches!(
        plain.validate(),
        Err(ConfigError::Invalid { ref variable, .. }) if variable == "tls_ca_file"
    ));
    Ok(())
}
