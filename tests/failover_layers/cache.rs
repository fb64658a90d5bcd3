//! Cache: every acknowledged `set` is readable from the new primary.

use std::time::Duration;

use aeturnis_cache::{Cache, RedisKey};

use super::support::*;

const TTL: Duration = Duration::from_secs(600);

fn key(cache: &Cache, i: u64) -> RedisKey {
    cache.key("fo").id(i.to_string()).build().unwrap()
}

/// A sequential writer `cache.set(fo:{i}, i)` across `fault`; every
/// acknowledged `set` is read back with `cache.mget` from a cache pinned to
/// the new primary.
async fn sets_survive(fault: Fault) -> anyhow::Result<()> {
    let set = sentinel_set().await?;
    let redis = connect(&set).await?;
    let cache = Cache::from_redis(redis.clone());
    let c = cache.clone();
    let (log, switched) = across(set, fault, WARM_UP, move |i| {
        let c = c.clone();
        Box::pin(async move {
            c.set(&key(&c, i), &i, TTL)
                .await
                .map(|()| i)
                .map_err(|e| e.to_string())
        })
    })
    .await?;
    redis.shutdown().await?;

    let reader = Cache::from_redis(pinned(switched.new_port).await?);
    let ids: Vec<u64> = log.acked.iter().map(|(_, i)| *i).collect();
    let mut lost = Vec::new();
    for chunk in ids.chunks(500) {
        let keys: Vec<RedisKey> = chunk.iter().map(|i| key(&reader, *i)).collect();
        let values: Vec<Option<u64>> = reader.mget(&keys).await?;
        for (i, value) in chunk.iter().zip(values) {
            if value != Some(*i) {
                lost.push(*i);
            }
        }
    }
    reader.redis().shutdown().await?;
    report_and_check_recovery("cache set", fault, &log, lost.len(), &format!(" {lost:?}"));
    check_loss("cache set", fault, &log, switched.at, lost.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_every_acknowledged_set_across_a_planned_failover() -> anyhow::Result<()> {
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    sets_survive(Fault::Planned).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_lose_only_sets_inside_the_replication_lag_when_the_primary_is_killed(
) -> anyhow::Result<()> {
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    sets_survive(Fault::Killed).await
}
