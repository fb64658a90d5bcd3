//! Pattern delete and key counts: user text escaped, exact counts,
//! a 100 000-key delete on the cluster.
use std::num::NonZeroU32;

use aeturnis_cache::core::prelude::*;
use aeturnis_cache::core::CodecKind;
use aeturnis_cache::{Cache, CacheConfig, DeleteProgress, Error, MatchPattern, RedisKey, Ttl};
use aeturnis_testkit::{TestCtx, Topology};
use anyhow::{ensure, Result};

use crate::support::*;

async fn should_delete_matching_keys_without_widening_globs(ctx: TestCtx) -> Result<()> {
    let cache = connect(
        &ctx,
        CodecKind::MessagePack,
        CacheConfig::default()
            .with_default_ttl(TTL)
            .with_scan_batch(NonZeroU32::MIN.saturating_add(49)),
    )
    .await?;
    let mut entries = Vec::new();
    for i in 0..300 {
        entries.push((cache.key("user").id("a*b").id(i.to_string()).build()?, i));
    }
    // decoys a widened pattern would catch
    let mut decoys = Vec::new();
    for i in 0..100 {
        for name in ["aXb", "a*bc", "ab", "a?b", "a[b"] {
            decoys.push((cache.key("user").id(name).id(i.to_string()).build()?, i));
        }
        decoys.push((cache.key("other").id("a*b").id(i.to_string()).build()?, i));
    }
    cache.mset(&entries, Ttl::Default).await?;
    cache.mset(&decoys, Ttl::Default).await?;

    let (tx, rx) = tokio::sync::watch::channel(DeleteProgress::default());
    let deleted = cache
        .delete_matching_with_progress(cache.pattern("user").id("a*b").any(), &tx)
        .await?;
    assert_eq!(deleted, 300);
    let progress = *rx.borrow();
    assert!(
        progress.done && progress.deleted == 300 && progress.scanned == 300,
        "{progress:?}"
    );
    let keys: Vec<RedisKey> = entries.iter().map(|(k, _)| k.clone()).collect();
    assert!(cache.mget::<i32>(&keys).await?.iter().all(Option::is_none));
    let decoy_keys: Vec<RedisKey> = decoys.iter().map(|(k, _)| k.clone()).collect();
    assert!(cache
        .mget::<i32>(&decoy_keys)
        .await?
        .iter()
        .all(Option::is_some));

    // `?` and `[` in user text match only themselves too
    assert_eq!(
        cache
            .delete_matching(cache.pattern("user").id("a?b").any())
            .await?,
        100
    );
    assert_eq!(
        cache
            .delete_matching(cache.pattern("user").id("a[b").any())
            .await?,
        100
    );
    // a raw glob is live, and stays inside the namespace
    // left: user:aXb, user:a*bc, user:ab (100 each) and other:a*b (100)
    assert_eq!(
        cache.count_matching(MatchPattern::raw("user:a*")).await?,
        300
    );
    assert_eq!(
        cache.delete_matching(MatchPattern::raw("user:a*")).await?,
        300
    );
    assert_eq!(cache.count_matching(MatchPattern::all()).await?, 100);
    let err = cache.delete_matching(MatchPattern::raw("")).await.err();
    assert!(
        matches!(err, Some(Error::InvalidArgument { reason, .. }) if reason.contains("empty")),
        "{err:?}"
    );
    Ok(())
}

/// Creates `count` keys `purge:{tag}:<name>:<i>` with a TTL, spread over
/// 512 hash tags (so over 512 slots on all three primaries), one `EVAL`
/// per tag: test setup that does not pay for 100k client-side commands.
async fn create_keys(cache: &Cache, name: &str, count: u32) -> Result<()> {
    const TAGS: u32 = 512;
    let lua =
        "for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1], 'PX', 600000) end return #KEYS";
    let mut calls = Vec::new();
    for tag in 0..TAGS {
        let keys: Vec<String> = (tag..count)
            .step_by(TAGS as usize)
            .map(|i| {
                Ok(cache
                    .key("purge")
                    .tag(tag.to_string())
                    .id(name)
                    .id(i.to_string())
                    .build()?
                    .into_string())
            })
            .collect::<Result<_>>()?;
        let client = cache.redis().client().clone();
        calls.push(async move { client.eval::<i64, _, _, _>(lua, keys, vec!["v"]).await });
    }
    let created: i64 = futures::future::try_join_all(calls)
        .await?
        .into_iter()
        .sum();
    ensure!(created == i64::from(count), "created {created}");
    Ok(())
}

/// The large run is on the cluster only (the glob and decoy cases above
/// run on both topologies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_delete_100k_keys_exactly_on_the_cluster() -> Result<()> {
    let ctx = TestCtx::cluster("should_delete_100k_keys_exactly_on_the_cluster").await;
    assert_eq!(ctx.topology, Topology::Cluster);
    let cache = cache(&ctx).await?;
    let started = std::time::Instant::now();
    create_keys(&cache, "x*", 100_000).await?;
    // decoys a widened `x*` would catch
    create_keys(&cache, "xy", 2_000).await?;
    create_keys(&cache, "x", 2_000).await?;
    let written = started.elapsed();

    let (tx, rx) = tokio::sync::watch::channel(DeleteProgress::default());
    let pattern = MatchPattern::raw(format!(
        "purge:*:{}:*",
        aeturnis_redis_core::escape_pattern("x*")
    ));
    let deleted = cache.delete_matching_with_progress(pattern, &tx).await?;
    assert_eq!(deleted, 100_000);
    assert_eq!(rx.borrow().deleted, 100_000);
    assert_eq!(cache.count_matching(MatchPattern::all()).await?, 4_000);
    eprintln!(
        "100k keys: written in {written:?}, deleted in {:?}",
        started.elapsed() - written
    );
    Ok(())
}

aeturnis_testkit::topology_tests!(should_delete_matching_keys_without_widening_globs,);
