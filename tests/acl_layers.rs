//! Issue 17, least privilege across the layers: every layer (cache,
//! patterns' `get_or_load` and write-behind, sessions, the limiter, locks
//! with fenced writes) works under the ACL user made from
//! `aeturnis_redis_core::acl::acl_rules(prefix)`, on a standalone server and
//! on a 6-node cluster, and a command outside the rules is refused with a
//! typed `NOPERM` error classed as invalid input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::collections::HashMap;
use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aeturnis_cache::{Cache, CacheConfig, Ttl};
use aeturnis_lock::{LockConfig, LockManager};
use aeturnis_patterns::{CacheAside, LoadPolicy, Pending, WriteBehind, WriteBehindConfig, Writer};
use aeturnis_ratelimit::{LimitKey, Quota, RateLimitConfig, RateLimiter};
use aeturnis_redis_core::acl::acl_rules;
use aeturnis_redis_core::fred::interfaces::ClientLike;
use aeturnis_redis_core::{Classify, Error, ErrorClass, Redis, RedisConfig, Secret};
use aeturnis_session::{SessionConfig, SessionManager, SessionMetadata, UserId};
use aeturnis_testkit::{Cluster, RedisServer};

const PREFIX: &str = "acl-app:";
const USER: &str = "acl-app";
const PASSWORD: &str = "acl-layers-secret";

/// The source of truth of the write-behind: the last value of each key.
#[derive(Clone, Default)]
struct Rows(Arc<Mutex<HashMap<String, u64>>>);

impl Writer for Rows {
    type Value = u64;
    type Error = Infallible;

    async fn write_batch(&self, batch: &[Pending<u64>]) -> Result<(), Infallible> {
        let mut rows = self.0.lock().unwrap();
        for p in batch {
            rows.insert(p.key.clone(), p.value);
        }
        Ok(())
    }
}

async fn connect_as_app(url: &str) -> anyhow::Result<Redis> {
    let config = RedisConfig::from_url(url)?
        .with_credentials(Some(USER.into()), Some(Secret::new(PASSWORD)))
        .with_key_prefix(PREFIX);
    Ok(Redis::connect(config).await?)
}

/// Every layer's main calls under the ACL user, then a refused command.
async fn should_run_every_layer_under_the_acl_user(url: &str) -> anyhow::Result<()> {
    let redis = connect_as_app(url).await?;

    // cache: set, get, delete
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    let key = cache.key("acl").id("plain").build()?;
    cache.set(&key, &7_u64, Ttl::Default).await?;
    assert_eq!(cache.get::<u64>(&key).await?, Some(7));
    assert!(cache.delete(&key).await?);

    // patterns: get_or_load (lease, load, fill), then a hit
    let aside = CacheAside::<u64>::new(&cache);
    let policy = LoadPolicy::new(Duration::from_secs(60)).build()?;
    let loaded = cache.key("acl").id("aside").build()?;
    let v = aside
        .get_or_load(&loaded, &policy, || async { Ok::<_, Infallible>(Some(11)) })
        .await?;
    assert_eq!(v, Some(11));
    let v = aside
        .get_or_load(&loaded, &policy, || async { Ok::<_, Infallible>(Some(12)) })
        .await?;
    assert_eq!(v, Some(11), "the second read is a hit");

    // patterns: write-behind (script write, stream group, workers, flush)
    let rows = Rows::default();
    let wb = WriteBehind::new(
        &cache,
        WriteBehindConfig::new("acl").with_block(Duration::from_millis(100)),
        rows.clone(),
    )?;
    wb.start().await?;
    let behind = cache.key("acl").id("behind").build()?;
    wb.write(&behind, &42).await?;
    tokio::time::timeout(Duration::from_secs(10), wb.flush()).await??;
    assert_eq!(rows.0.lock().unwrap().get(behind.as_str()), Some(&42));
    wb.shutdown().await;

    // sessions: create (over the per-user limit, so it evicts), get, list, revoke
    let sessions = SessionManager::new(
        redis.clone(),
        SessionConfig::default().with_max_per_user(NonZeroU32::new(2).unwrap()),
    )?;
    let user = UserId::new("acl-player")?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(sessions.create(&user, SessionMetadata::new()).await?.id);
    }
    // one of the three was evicted (the oldest; creations within one
    // millisecond tie, so which one is not asserted here)
    let mut live = Vec::new();
    for id in &ids {
        if sessions.get(id).await?.is_some() {
            live.push(id.clone());
        }
    }
    assert_eq!(live.len(), 2, "one session evicted");
    assert_eq!(sessions.list(&user).await?.len(), 2);
    assert!(sessions.revoke(&live[0]).await?);
    assert!(sessions.get(&live[0]).await?.is_none());

    // ratelimit: the default algorithm admits the quota, then denies
    let limiter = RateLimiter::new(
        redis.clone(),
        RateLimitConfig::new(
            "acl",
            Quota::new(NonZeroU32::new(2).unwrap(), Duration::from_secs(60))?,
        ),
    )?;
    let client = LimitKey::new("acl-client")?;
    assert!(limiter.check(&client).await?.allowed);
    assert!(limiter.check(&client).await?.allowed);
    assert!(!limiter.check(&client).await?.allowed);

    // lock: acquire, fence, fenced write and read, a stale fence refused, release
    let locks = LockManager::new(redis.clone(), LockConfig::default())?;
    let first = locks
        .try_acquire("acl-res", Duration::from_secs(10))
        .await?;
    let old = first.fence().await?;
    assert!(locks.fenced_write("acl-res", old, &1_u64).await?.is_ok());
    first.release().await?;
    let second = locks
        .try_acquire("acl-res", Duration::from_secs(10))
        .await?;
    let new = second.fence().await?;
    assert!(locks.fenced_write("acl-res", new, &2_u64).await?.is_ok());
    let stale = locks.fenced_write("acl-res", old, &3_u64).await?;
    assert_eq!(stale.unwrap_err().current, new);
    let (fence, value) = locks.fenced_read::<u64>("acl-res").await?.unwrap();
    assert_eq!((fence, value), (new, 2));
    second.release().await?;

    // outside the rules: FLUSHALL (@dangerous) is refused, typed
    let refused = redis
        .client()
        .flushall::<()>(false)
        .await
        .map_err(Error::from)
        .unwrap_err();
    assert!(refused.is_no_permission(), "{refused:?}");
    assert_eq!(refused.class(), ErrorClass::InvalidInput);
    assert!(refused.to_string().contains("flushall"), "{refused}");

    redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_run_every_layer_under_the_acl_user_on_standalone() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    server.acl_setuser(USER, PASSWORD, &acl_rules(PREFIX))?;
    should_run_every_layer_under_the_acl_user(&server.url()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_run_every_layer_under_the_acl_user_on_a_cluster() -> anyhow::Result<()> {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await??;
    for node in cluster.nodes() {
        node.acl_setuser(USER, PASSWORD, &acl_rules(PREFIX))?;
    }
    should_run_every_layer_under_the_acl_user(&cluster.url()).await
}
