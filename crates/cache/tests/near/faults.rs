//! Faults: B's tracking connection killed (both topologies), and on servers
//! of their own a restart, `FLUSHALL` and eviction under `maxmemory`.

use aeturnis_cache::core::fred::prelude::*;
use aeturnis_cache::core::fred::types::{ClusterHash, CustomCommand};
use aeturnis_cache::{RedisKey, Ttl};
use aeturnis_testkit::{eventually, RedisServer, TestCtx};
use anyhow::{ensure, Result};

use crate::support::{fill_until_evicted, pair, until, NS, WAIT};

/// Sends `CLIENT args...` through `client` to the node serving `key`.
async fn client_command(client: &Client, key: &RedisKey, args: Vec<String>) -> Result<Value> {
    let cmd = CustomCommand::new_static("CLIENT", ClusterHash::Custom(key.slot()), false);
    Ok(client.custom(cmd, args).await?)
}

async fn should_flush_and_serve_again_when_its_tracking_connection_is_killed(
    ctx: TestCtx,
) -> Result<()> {
    let (a, b) = pair(&ctx.url, &ctx.prefix).await?;
    let key = a.key(NS).id("kill").build()?;
    a.set(&key, "before", Ttl::Default).await?;
    ensure!(b.get::<String>(&key).await?.as_deref() == Some("before"));
    ensure!(b.is_held(&key));
    let flushes = b.stats().flushes;

    let id = client_command(b.tracking_client(), &key, vec!["ID".into()])
        .await?
        .as_i64()
        .unwrap();
    let killed = client_command(
        a.redis().client(),
        &key,
        vec!["KILL".into(), "ID".into(), id.to_string()],
    )
    .await?;
    ensure!(
        killed.as_i64() == Some(1),
        "CLIENT KILL answered {killed:?}"
    );
    // a write B's dead connection cannot hear about
    a.set(&key, "during", Ttl::Default).await?;

    let s = until(&b, "the flush and tracking back on", |s| {
        s.flushes > flushes && s.serving
    })
    .await?;
    ensure!(!b.is_held(&key), "{s:?}");
    ensure!(b.get::<String>(&key).await?.as_deref() == Some("during"));
    coherent_again(&a, &b, &key).await
}

/// B holds `key`; A's next write reaches it.
pub(crate) async fn coherent_again(
    a: &aeturnis_cache::Cache,
    b: &aeturnis_cache::near::NearCache,
    key: &RedisKey,
) -> Result<()> {
    b.get::<String>(key).await?;
    ensure!(b.is_held(key), "not held again");
    let seen = b.stats().invalidations;
    a.set(key, "after", Ttl::Default).await?;
    until(b, "the invalidation after recovery", |s| {
        s.invalidations > seen
    })
    .await?;
    ensure!(b.get::<String>(key).await?.as_deref() == Some("after"));
    Ok(())
}

aeturnis_testkit::topology_tests!(
    sentinel: should_flush_and_serve_again_when_its_tracking_connection_is_killed
);

fn prefix(test: &str) -> String {
    format!("near:{test}:")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_flush_and_serve_again_after_a_redis_restart() -> Result<()> {
    let mut server = RedisServer::start_standalone()?;
    let (a, b) = pair(&server.url(), &prefix("restart")).await?;
    let key = a.key(NS).id("r").build()?;
    a.set(&key, "before", Ttl::Default).await?;
    ensure!(b.get::<String>(&key).await?.as_deref() == Some("before"));
    let flushes = b.stats().flushes;

    server.restart()?;
    // the restarted server is empty; A writes again once reconnected
    eventually("A to write after the restart", WAIT, || async {
        a.set(&key, "during", Ttl::Default).await
    })
    .await?;
    let s = until(&b, "the flush and tracking back on", |s| {
        s.flushes > flushes && s.serving
    })
    .await?;
    ensure!(!b.is_held(&key), "{s:?}");
    ensure!(b.get::<String>(&key).await?.as_deref() == Some("during"));
    coherent_again(&a, &b, &key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_flush_everything_on_flushall() -> Result<()> {
    let server = RedisServer::start_standalone()?;
    let (a, b) = pair(&server.url(), &prefix("flushall")).await?;
    let mut keys = Vec::new();
    for i in 0..3 {
        let key = a.key(NS).id(i.to_string()).build()?;
        a.set(&key, "v", Ttl::Default).await?;
        b.get::<String>(&key).await?;
        keys.push(key);
    }
    ensure!(b.stats().entries == 3);
    let flushes = b.stats().flushes;
    a.redis().client().flushall::<()>(false).await?;
    until(&b, "the null invalidation", |s| {
        s.flushes > flushes && s.entries == 0
    })
    .await?;
    for key in &keys {
        ensure!(
            b.get::<String>(key).await?.is_none(),
            "{key} survived FLUSHALL"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_invalidate_a_key_redis_evicts() -> Result<()> {
    let server = RedisServer::start_standalone()?;
    server.cli(&["CONFIG", "SET", "maxmemory", "4mb"])?;
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])?;
    let (a, b) = pair(&server.url(), &prefix("evict")).await?;
    let key = a.key(NS).id("cold").build()?;
    a.set(&key, "cold", Ttl::Default).await?;
    ensure!(b.get::<String>(&key).await?.as_deref() == Some("cold"));
    ensure!(b.is_held(&key));

    // fill past maxmemory until Redis evicts the cold key
    fill_until_evicted(&a, &key, None).await?;
    until(&b, "the eviction invalidation", |s| s.invalidations >= 1).await?;
    ensure!(!b.is_held(&key));
    ensure!(b.get::<String>(&key).await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_stop_serving_until_tracking_is_back() -> Result<()> {
    let mut server = RedisServer::start_standalone()?;
    let (a, b) = pair(&server.url(), &prefix("down")).await?;
    let key = a.key(NS).id("d").build()?;
    a.set(&key, "v", Ttl::Default).await?;
    b.get::<String>(&key).await?;
    ensure!(b.is_held(&key));
    server.kill()?;
    // the tier must not answer from memory while invalidations cannot arrive
    until(&b, "the tier to stop serving", |s| {
        !s.serving && s.entries == 0
    })
    .await?;
    ensure!(!b.is_held(&key));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_stay_coherent_across_a_cluster_failover() -> Result<()> {
    let _one = aeturnis_testkit::one_failover_at_a_time().await;
    let cluster = aeturnis_testkit::Cluster::start()?;
    let (a, b) = pair(&cluster.url(), &prefix("failover")).await?;
    // no hash tag: the keys spread over every primary
    let keys: Vec<RedisKey> = (0..32)
        .map(|i| a.key(NS).id(i.to_string()).build())
        .collect::<Result<_, _>>()?;
    for key in &keys {
        a.set(key, "before", Ttl::Default).await?;
        b.get::<String>(key).await?;
    }
    ensure!(b.stats().entries == keys.len() as u64);

    let _cluster =
        tokio::task::spawn_blocking(move || cluster.failover().map(|()| cluster)).await??;
    for key in &keys {
        eventually("A to write after the failover", WAIT, || async {
            a.set(key, "after", Ttl::Default).await
        })
        .await?;
    }
    // every key B held is dropped (invalidated, or flushed on the change)
    eventually("B to return the new values", WAIT, || async {
        for key in &keys {
            let v = b.get::<String>(key).await?;
            if v.as_deref() != Some("after") {
                return Err(anyhow::anyhow!("{key}: {v:?} {:?}", b.stats()));
            }
        }
        Ok(())
    })
    .await?;
    println!("after the failover: {:?}", b.stats());
    // tracking comes back on the new layout, and with it coherence
    until(&b, "the tier to serve again", |s| s.serving).await?;
    coherent_again(&a, &b, &keys[0]).await
}
