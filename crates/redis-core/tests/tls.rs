//! TLS end to end (feature `tls`): a server with certificates made at test
//! time (testkit's `TlsRedis`), trusted through `RedisConfig::tls_ca_file`:
//! connect, health, a script, cache- and session-like round trips, and a
//! server signed by another CA refused with a typed error. Mutual TLS: the
//! same round trips with a client certificate when the server asks for one,
//! a client without one refused, and bad client files named in typed
//! configuration errors.
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
    round_trips(&tls, config(&tls)?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_serve_the_round_trips_with_a_client_certificate_when_the_server_asks_for_one(
) -> anyhow::Result<()> {
    let tls = tokio::task::spawn_blocking(TlsRedis::start_mutual).await??;
    let config = config(&tls)?.with_tls_client_cert(tls.client_cert_file(), tls.client_key_file());
    round_trips(&tls, config).await
}

/// Connect, health, a script, cache- and session-like round trips.
async fn round_trips(tls: &TlsRedis, config: RedisConfig) -> anyhow::Result<()> {
    let redis = Redis::connect(config).await?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_be_refused_without_a_client_certificate_when_the_server_asks_for_one(
) -> anyhow::Result<()> {
    let tls = tokio::task::spawn_blocking(TlsRedis::start_mutual).await??;
    let err = Redis::connect(config(&tls)?).await.unwrap_err();
    // the server ends the handshake with a `certificate_required` alert,
    // which rustls reports inside an I/O error: a TLS failure, not a
    // dropped connection, and not worth retrying
    assert!(
        matches!(err, Error::Redis(ref e) if e.details().contains("CertificateRequired")),
        "{err:?}"
    );
    assert!(err.is_tls() && err.is_invalid_input(), "{err:?}");
    assert!(!err.is_connection() && !err.is_retryable(), "{err:?}");
    Ok(())
}

/// A client certificate configuration error naming `variable` and the
/// file, not holding `hidden`.
fn assert_names_file(err: &Error, variable: &str, file: &std::path::Path, hidden: &[&str]) {
    let Error::Config(ConfigError::Invalid {
        variable: named,
        reason,
    }) = err
    else {
        panic!("not a config error: {err:?}");
    };
    assert_eq!(named, variable, "{err:?}");
    assert!(reason.contains(&file.display().to_string()), "{err:?}");
    for text in hidden {
        assert!(
            !err.to_string().contains(text) && !format!("{err:?}").contains(text),
            "{err:?} shows {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_name_a_bad_client_key_or_certificate_file_but_never_its_content(
) -> anyhow::Result<()> {
    let tls = tokio::task::spawn_blocking(TlsRedis::start_mutual).await??;
    let key_pem = std::fs::read_to_string(tls.client_key_file())?;
    let key_lines: Vec<&str> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    assert!(!key_lines.is_empty());
    let dir = std::env::temp_dir().join(format!("aeturnis-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let connect = |cert: std::path::PathBuf, key: std::path::PathBuf| {
        let config = config(&tls).map(|c| c.with_tls_client_cert(cert, key));
        async move { Redis::connect(config?).await.map_err(anyhow::Error::from) }
    };

    // missing
    let missing = dir.join("missing.key");
    let err = connect(tls.client_cert_file(), missing.clone())
        .await
        .unwrap_err();
    assert_names_file(err.downcast_ref().unwrap(), "tls_key_file", &missing, &[]);
    let missing_cert = dir.join("missing.crt");
    let err = connect(missing_cert.clone(), tls.client_key_file())
        .await
        .unwrap_err();
    assert_names_file(
        err.downcast_ref().unwrap(),
        "tls_cert_file",
        &missing_cert,
        &[],
    );

    // not PEM: the parser's complaint would quote the line
    let junk = dir.join("junk.key");
    std::fs::write(&junk, "-----BEGIN Sekrit-Line-4711\n")?;
    let err = connect(tls.client_cert_file(), junk.clone())
        .await
        .unwrap_err();
    assert_names_file(
        err.downcast_ref().unwrap(),
        "tls_key_file",
        &junk,
        &["Sekrit-Line-4711"],
    );

    // a PEM key whose body is cut short: bad base64 of the real key
    let cut = dir.join("cut.key");
    let half = &key_lines[0][..key_lines[0].len() - 3];
    std::fs::write(
        &cut,
        format!("-----BEGIN PRIVATE KEY-----\n{half}\n-----END PRIVATE KEY-----\n"),
    )?;
    let err = connect(tls.client_cert_file(), cut.clone())
        .await
        .unwrap_err();
    assert_names_file(err.downcast_ref().unwrap(), "tls_key_file", &cut, &[half]);

    // a real key that does not belong to the certificate (the CA's cert)
    let err = connect(tls.ca_file(), tls.client_key_file())
        .await
        .unwrap_err();
    assert_names_file(
        err.downcast_ref().unwrap(),
        "tls_key_file",
        &tls.client_key_file(),
        &key_lines,
    );
    std::fs::remove_dir_all(&dir)?;

    // the key, and every line of it, never in Debug output
    let config = config(&tls)?.with_tls_client_cert(tls.client_cert_file(), tls.client_key_file());
    let redis = Redis::connect(config.clone()).await?;
    for shown in [
        format!("{config:?}"),
        format!("{config:#?}"),
        format!("{redis:?}"),
    ] {
        for line in &key_lines {
            assert!(!shown.contains(line), "key text in {shown}");
        }
    }
    redis.shutdown().await?;
    Ok(())
}
