//! Faults on a cluster of the test's own: `FLUSHALL` on every primary, a
//! primary restarted (empty), eviction under `maxmemory`, and a slot moved
//! to another primary while B holds one of its keys. Each test holds
//! [`one_failover_at_a_time`]: they change a topology and its timing.

use aeturnis_cache::core::fred::prelude::*;
use aeturnis_cache::near::NearCache;
use aeturnis_cache::{Cache, RedisKey, Ttl};
use aeturnis_testkit::{eventually, one_failover_at_a_time, Cluster};
use anyhow::{ensure, Context, Result};

use crate::faults::coherent_again;
use crate::support::{fill_until_evicted, pair, until, NS, WAIT};

/// Keys without a hash tag: they spread over every primary.
fn spread(a: &Cache, n: usize) -> Result<Vec<RedisKey>> {
    Ok((0..n)
        .map(|i| a.key(NS).id(i.to_string()).build())
        .collect::<Result<_, _>>()?)
}

/// Reads `key` through B until B returns `want` and holds it (a flush on a
/// cluster change may refuse the first fills).
async fn hold(b: &NearCache, key: &RedisKey, want: &str) -> Result<()> {
    eventually("B to hold the key", WAIT, || async {
        let v = b.get::<String>(key).await?;
        if v.as_deref() == Some(want) && b.is_held(key) {
            Ok(())
        } else {
            Err(anyhow::anyhow!("{key}: {v:?}, {:?}", b.stats()))
        }
    })
    .await
}

/// Index in [`Cluster::nodes`] of the primary serving `key`.
fn owner_index(cluster: &Cluster, key: &RedisKey) -> Result<usize> {
    let port = cluster.slot_owner(key.slot())?;
    cluster
        .nodes()
        .iter()
        .position(|n| n.port() == port)
        .context("the owner is not a node of the cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_flush_everything_on_flushall_on_a_cluster() -> Result<()> {
    let _one = one_failover_at_a_time().await;
    let cluster = Cluster::start()?;
    let (a, b) = pair(&cluster.url(), "near:flushall:").await?;
    let keys = spread(&a, 32)?;
    for key in &keys {
        a.set(key, "v", Ttl::Default).await?;
        hold(&b, key, "v").await?;
    }
    ensure!(b.stats().entries == keys.len() as u64);
    let flushes = b.stats().flushes;

    a.redis().client().flushall_cluster().await?;
    // one null invalidation per primary, each a flush
    until(&b, "the null invalidations", |s| {
        s.flushes >= flushes + 3 && s.entries == 0
    })
    .await?;
    for key in &keys {
        ensure!(
            b.get::<String>(key).await?.is_none(),
            "{key} survived FLUSHALL"
        );
    }
    a.set(&keys[0], "again", Ttl::Default).await?;
    hold(&b, &keys[0], "again").await?;
    coherent_again(&a, &b, &keys[0]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_flush_and_serve_again_after_a_cluster_primary_restart() -> Result<()> {
    let _one = one_failover_at_a_time().await;
    let mut cluster = Cluster::start()?;
    let (a, b) = pair(&cluster.url(), "near:restart:").await?;
    let key = a.key(NS).id("r").build()?;
    a.set(&key, "before", Ttl::Default).await?;
    hold(&b, &key, "before").await?;
    let flushes = b.stats().flushes;

    // the key's primary comes back empty, with its slots
    let i = owner_index(&cluster, &key)?;
    let _cluster =
        tokio::task::spawn_blocking(move || cluster.restart_node(i).map(|()| cluster)).await??;
    eventually("A to write after the restart", WAIT, || async {
        a.set(&key, "during", Ttl::Default).await
    })
    .await?;
    let s = until(&b, "the flush", |s| s.flushes > flushes).await?;
    ensure!(
        b.get::<String>(&key).await?.as_deref() == Some("during"),
        "old value after the restart: {s:?}"
    );
    hold(&b, &key, "during").await?;
    coherent_again(&a, &b, &key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_invalidate_a_key_redis_evicts_on_a_cluster() -> Result<()> {
    let _one = one_failover_at_a_time().await;
    let cluster = Cluster::start()?;
    for node in cluster.nodes() {
        node.cli(&["CONFIG", "SET", "maxmemory", "4mb"])?;
        node.cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])?;
    }
    let (a, b) = pair(&cluster.url(), "near:evict:").await?;
    // one hash tag: the cold key and the fillers share a primary
    let key = a.key(NS).tag("evict").id("cold").build()?;
    a.set(&key, "cold", Ttl::Default).await?;
    hold(&b, &key, "cold").await?;
    let seen = b.stats().invalidations;

    fill_until_evicted(&a, &key, Some("evict")).await?;
    until(&b, "the eviction invalidation", |s| s.invalidations > seen).await?;
    ensure!(!b.is_held(&key));
    ensure!(b.get::<String>(&key).await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_never_serve_the_old_value_after_its_slot_moved_to_another_primary() -> Result<()> {
    let _one = one_failover_at_a_time().await;
    let cluster = Cluster::start()?;
    let (a, b) = pair(&cluster.url(), "near:reshard:").await?;
    let key = a.key(NS).id("moved").build()?;
    a.set(&key, "before", Ttl::Default).await?;
    hold(&b, &key, "before").await?;
    let before = b.stats();

    let slot = key.slot();
    let from = cluster.slot_owner(slot)?;
    let to = cluster
        .primary_ports()?
        .into_iter()
        .find(|p| *p != from)
        .context("a second primary")?;
    let cluster =
        tokio::task::spawn_blocking(move || cluster.migrate_slot(slot, to).map(|()| cluster))
            .await??;
    ensure!(cluster.slot_owner(slot)? == to);

    // MIGRATE deleted the key on its old primary: B heard of it (or flushed)
    let s = until(&b, "B to drop the moved key", |s| {
        s.invalidations > before.invalidations || s.flushes > before.flushes
    })
    .await?;
    ensure!(!b.is_held(&key), "still held after the move: {s:?}");
    println!("slot {slot} moved from {from} to {to}: {s:?}");
    a.set(&key, "on the new owner", Ttl::Default).await?;
    for _ in 0..3 {
        let v = b.get::<String>(&key).await?;
        ensure!(v.as_deref() == Some("on the new owner"), "read {v:?}");
    }
    // held again, now tracked on the new owner: A's next write reaches B
    hold(&b, &key, "on the new owner").await?;
    coherent_again(&a, &b, &key).await
}
