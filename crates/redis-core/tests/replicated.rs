//! The write concern (`Redis::replicated`): a batch is acknowledged only once
//! a replica holds it, a lagging replica gives `NotReplicated`, a dropped
//! connection is never answered by a `WAIT` re-sent on another connection,
//! and the cluster form waits on the primary of the key's slot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure
#![allow(clippy::print_stdout)] // the cost figure is printed

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::Value;
use aeturnis_redis_core::hash_slot;
use aeturnis_redis_core::{Classify, Error, Redis, RedisConfig, WriteConcern};
use aeturnis_testkit::{eventually, Cluster, RedisServer, TestCtx};

const WITHIN: Duration = Duration::from_secs(10);

fn concern(timeout: Duration) -> WriteConcern {
    WriteConcern::new(NonZeroU32::MIN, timeout).unwrap()
}

/// A primary with one replica whose link is up.
async fn primary_with_replica() -> anyhow::Result<(RedisServer, RedisServer)> {
    let primary = RedisServer::start_standalone()?;
    let replica = RedisServer::start_standalone()?;
    replica.cli(&["REPLICAOF", "127.0.0.1", &primary.port().to_string()])?;
    replica
        .cli_until(
            "the replica's link to be up",
            WITHIN,
            &["INFO", "replication"],
            |info| info.contains("master_link_status:up"),
        )
        .await?;
    Ok((primary, replica))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_acknowledge_a_batch_once_a_replica_holds_it_and_report_a_lagging_one(
) -> anyhow::Result<()> {
    let (primary, replica) = primary_with_replica().await?;
    let redis = Redis::connect(RedisConfig::from_url(&primary.url())?).await?;
    let key = redis.keys().key("wc").id("order").build()?;

    let batch = redis.replicated(concern(Duration::from_secs(2)), &key)?;
    let _: () = batch.set(key.as_str(), "paid", None, None, false).await?;
    let _: () = batch.incr(format!("{key}:n")).await?;
    let replies = batch.send().await?;
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[1], Value::Integer(1));
    // acknowledged means on the replica: read it there, no waiting
    let held = replica.cli(&["GET", key.as_str()])?;
    assert_eq!(held.trim(), "paid");

    // the cost: one replica round trip per batch (printed, not asserted)
    let rounds = 300_u32;
    let started = Instant::now();
    for i in 0..rounds {
        let _: () = redis
            .client()
            .set(key.as_str(), i, None, None, false)
            .await?;
    }
    let plain = started.elapsed() / rounds;
    let started = Instant::now();
    for i in 0..rounds {
        let batch = redis.replicated(concern(Duration::from_secs(2)), &key)?;
        let _: () = batch.set(key.as_str(), i, None, None, false).await?;
        batch.send().await?;
    }
    let replicated = started.elapsed() / rounds;
    println!(
        "sequential SET: {plain:?} plain, {replicated:?} with WAIT 1 ({:.1}x)",
        replicated.as_secs_f64() / plain.as_secs_f64()
    );

    // a frozen replica acknowledges nothing: the write is applied on the
    // primary, reported NotReplicated, and still reaches the replica later
    replica.pause()?;
    let batch = redis.replicated(concern(Duration::from_millis(200)), &key)?;
    let _: () = batch
        .set(key.as_str(), "shipped", None, None, false)
        .await?;
    let err = batch.send().await.unwrap_err();
    replica.resume()?;
    assert!(
        matches!(
            err,
            Error::NotReplicated {
                acked: 0,
                wanted: 1
            }
        ),
        "{err:?}"
    );
    assert!(err.is_unavailable() && err.is_retryable());
    let on_primary: String = redis.client().get(&key).await?;
    assert_eq!(on_primary, "shipped");
    replica
        .cli_until(
            "the late write to reach the replica",
            WITHIN,
            &["GET", key.as_str()],
            |v| v.trim() == "shipped",
        )
        .await?;
    redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_report_not_replicated_when_the_server_has_no_replica() -> anyhow::Result<()> {
    let ctx = TestCtx::standalone("wc_no_replica").await;
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    let key = redis.keys().key("wc").id("alone").build()?;
    let batch = redis.replicated(concern(Duration::from_millis(50)), &key)?;
    let _: () = batch.set(key.as_str(), "v", None, None, false).await?;
    let err = batch.send().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotReplicated {
                acked: 0,
                wanted: 1
            }
        ),
        "{err:?}"
    );
    let applied: Option<String> = redis.client().get(&key).await?;
    assert_eq!(applied.as_deref(), Some("v"));
    redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_not_resend_a_replicated_batch_whose_connection_drops_during_wait(
) -> anyhow::Result<()> {
    // no replica: WAIT blocks for its whole timeout, and the test kills the
    // connection meanwhile. With replay, fred would re-send the INCR (a
    // second increment) and a WAIT on the new connection, which covers no
    // write of its own and could count replicas it never waited for.
    let server = RedisServer::start_standalone()?;
    let redis = Redis::connect(
        RedisConfig::from_url(&server.url())?.with_command_timeout(Duration::from_secs(5)),
    )
    .await?;
    let key = redis.keys().key("wc").id("counter").build()?;
    let batch = redis.replicated(concern(Duration::from_secs(4)), &key)?;
    let _: () = batch.incr(key.as_str()).await?;
    let sent = tokio::spawn(batch.send());
    server
        .cli_until(
            "the batch to block in WAIT",
            WITHIN,
            &["CLIENT", "LIST"],
            |list| list.contains("cmd=wait"),
        )
        .await?;
    server.cli(&["CLIENT", "KILL", "TYPE", "normal"])?;
    let err = sent.await?.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    let count: i64 = eventually("the client to reconnect", WITHIN, || {
        let redis = redis.clone();
        let key = key.clone();
        async move { redis.client().get::<i64, _>(&key).await }
    })
    .await?;
    assert_eq!(count, 1, "the INCR ran {count} times");
    redis.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn should_refuse_a_concern_timeout_not_below_the_command_timeout() -> anyhow::Result<()> {
    let ctx = TestCtx::standalone("wc_timeout").await;
    let redis = Redis::connect(
        RedisConfig::from_url(&ctx.url)?
            .with_key_prefix(&ctx.prefix)
            .with_command_timeout(Duration::from_secs(1)),
    )
    .await?;
    let key = redis.keys().key("wc").id("slow").build()?;
    let err = redis
        .replicated(concern(Duration::from_secs(1)), &key)
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref c) if c.variable() == "write concern timeout"),
        "{err:?}"
    );
    assert!(err.is_invalid_input());
    redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_acknowledge_batches_in_every_shard_of_a_cluster() -> anyhow::Result<()> {
    let ctx = TestCtx::cluster("wc_cluster").await;
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    for id in ["a", "b", "c", "d"] {
        let key = redis.keys().key("wc").id(id).build()?;
        let batch = redis.replicated(concern(Duration::from_secs(2)), &key)?;
        let _: () = batch.set(key.as_str(), id, None, None, false).await?;
        let replies = batch.send().await?;
        assert_eq!(replies, vec![Value::from("OK")], "{key}");
    }
    redis.shutdown().await?;
    Ok(())
}

/// The index in `cluster.nodes()` of the replica of the primary serving `slot`.
fn replica_serving(cluster: &Cluster, slot: u16) -> anyhow::Result<usize> {
    let nodes = cluster.nodes()[0].cli(&["CLUSTER", "NODES"])?;
    let lines: Vec<Vec<&str>> = nodes
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let owns = |fields: &[&str]| {
        fields.iter().skip(8).any(|range| {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            match (lo.parse::<u16>(), hi.parse::<u16>()) {
                (Ok(lo), Ok(hi)) => (lo..=hi).contains(&slot),
                _ => false,
            }
        })
    };
    let primary = lines
        .iter()
        .find(|f| f.len() > 8 && f[2].contains("master") && owns(f))
        .ok_or_else(|| anyhow::anyhow!("no primary serves slot {slot}: {nodes}"))?;
    let replica = lines
        .iter()
        .find(|f| f.len() > 3 && f[2].contains("slave") && f[3] == primary[0])
        .ok_or_else(|| anyhow::anyhow!("no replica of {}: {nodes}", primary[1]))?;
    let port: u16 = replica[1]
        .split(['@', ','])
        .next()
        .and_then(|addr| addr.rsplit(':').next())
        .ok_or_else(|| anyhow::anyhow!("address {}", replica[1]))?
        .parse()?;
    cluster
        .nodes()
        .iter()
        .position(|n| n.port() == port)
        .ok_or_else(|| anyhow::anyhow!("no node on port {port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_wait_for_the_replica_of_the_key_slot_in_a_cluster() -> anyhow::Result<()> {
    // a WAIT sent anywhere else would answer 1 at once (the other primaries'
    // replicas are up and that connection wrote nothing)
    let cluster = tokio::task::spawn_blocking(Cluster::start).await??;
    let redis = Redis::connect(RedisConfig::from_url(&cluster.url())?).await?;
    let key = redis.keys().key("wc").id("frozen").build()?;
    let frozen = replica_serving(&cluster, hash_slot(key.as_str()))?;
    let other = (0..64)
        .map(|i| redis.keys().key("wc").id(i.to_string()).build())
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|k| replica_serving(&cluster, hash_slot(k.as_str())).is_ok_and(|r| r != frozen))
        .expect("a key served by another shard");

    cluster.nodes()[frozen].pause()?;
    let batch = redis.replicated(concern(Duration::from_millis(200)), &key)?;
    let _: () = batch.set(key.as_str(), "v", None, None, false).await?;
    let lagging = batch.send().await;
    // the healthy shard's replica answers as soon as it acks; the generous
    // bound only keeps a loaded CI host (2 cores, the suite in parallel) from
    // reading a slow ack as a lagging replica
    let batch = redis.replicated(concern(Duration::from_secs(4)), &other)?;
    let _: () = batch.set(other.as_str(), "v", None, None, false).await?;
    let healthy = batch.send().await;
    cluster.nodes()[frozen].resume()?;

    let err = lagging.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotReplicated {
                acked: 0,
                wanted: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(healthy?, vec![Value::from("OK")]);
    redis.shutdown().await?;
    Ok(())
}
