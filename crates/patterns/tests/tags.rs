//! `TagIndex` against real Redis, standalone and cluster: invalidation
//! removes exactly the tagged keys across slots, and tag sets stay bounded
//! by their live members.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::time::Duration;

use aeturnis_patterns::cache::{Cache, CacheConfig};
use aeturnis_patterns::core::fred::interfaces::{KeysInterface, SortedSetsInterface};
use aeturnis_patterns::{Error, Redis, RedisConfig, RedisKey, TagIndex};
use aeturnis_testkit::TestCtx;

async fn setup(ctx: &TestCtx) -> anyhow::Result<(Redis, Cache, TagIndex)> {
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    let tags = TagIndex::new(&cache);
    Ok((redis, cache, tags))
}

fn keys(cache: &Cache, kind: &str, n: usize) -> Vec<RedisKey> {
    (0..n)
        .map(|i| cache.key(kind).id(i.to_string()).build().unwrap())
        .collect()
}

async fn count_existing(redis: &Redis, keys: &[RedisKey]) -> anyhow::Result<usize> {
    let checks = keys.iter().map(|k| redis.client().exists::<u64, _>(k));
    Ok(futures::future::try_join_all(checks)
        .await?
        .into_iter()
        .filter(|n| *n > 0)
        .count())
}

async fn should_invalidate_exactly_the_tagged_keys_across_slots(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let (redis, cache, tags) = setup(&ctx).await?;
    let ttl = Duration::from_secs(60);
    let guild = keys(&cache, "member", 300);
    let zone_only = keys(&cache, "npc", 50);
    let untagged = keys(&cache, "item", 100);
    let values: Vec<usize> = (0..guild.len()).collect();
    let writes = guild.iter().zip(&values).map(|(k, i)| {
        let both: &[&str] = if i % 2 == 0 {
            &["guild:7", "zone:1"]
        } else {
            &["guild:7"]
        };
        tags.set_tagged(k, i, ttl, both)
    });
    futures::future::try_join_all(writes).await?;
    let writes = zone_only
        .iter()
        .map(|k| tags.set_tagged(k, &1, ttl, &["zone:1"]));
    futures::future::try_join_all(writes).await?;
    for k in &untagged {
        cache.set(k, &0, ttl).await?;
    }
    assert_eq!(tags.members("guild:7").await?.len(), 300);
    assert_eq!(tags.invalidate_tag("guild:7").await?, 300);
    assert_eq!(count_existing(&redis, &guild).await?, 0);
    assert_eq!(count_existing(&redis, &zone_only).await?, 50);
    assert_eq!(count_existing(&redis, &untagged).await?, 100);
    assert!(tags.members("guild:7").await?.is_empty());
    let exists: u64 = redis.client().exists(tags.tag_key("guild:7")?).await?;
    assert_eq!(exists, 0, "the tag set is gone too");
    // zone:1 still lists its 150 + 50 members; 150 of them are gone now
    assert_eq!(tags.invalidate_tag("zone:1").await?, 50);
    // bad input is typed
    let err = tags
        .set_tagged(&guild[0], &1, Duration::ZERO, &["t"])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let err = tags.invalidate_tag("").await.unwrap_err();
    assert!(matches!(err, Error::Key(_)), "{err:?}");
    redis.shutdown().await?;
    Ok(())
}

/// 100,000 tagged writes, nine in ten of them expiring within a
/// millisecond: the tag set ends with the live tenth, not 100,000
/// members, and its own TTL follows its longest-lived member.
async fn should_keep_tag_sets_bounded_by_live_members(ctx: TestCtx) -> anyhow::Result<()> {
    let (redis, cache, tags) = setup(&ctx).await?;
    let members = keys(&cache, "bounded", 100_000);
    for chunk in members.chunks(2_000) {
        let writes = chunk.iter().enumerate().map(|(i, k)| {
            let ttl = if i % 10 == 0 {
                Duration::from_secs(60)
            } else {
                Duration::from_millis(1)
            };
            tags.tag(k, ttl, &["hot"])
        });
        futures::future::try_join_all(writes).await?;
    }
    let live = tags.members("hot").await?.len();
    let tag_key = tags.tag_key("hot")?;
    let card: u64 = redis.client().zcard(&tag_key).await?;
    assert_eq!(card as usize, live);
    assert!(
        (10_000..=10_000 + 2_000).contains(&live),
        "{live} members kept; 10,000 are live (plus at most the last chunk's short-lived ones)"
    );
    let pttl: i64 = redis.client().pttl(&tag_key).await?;
    assert!(pttl > 55_000 && pttl <= 60_000, "tag set PTTL {pttl}");
    let _ = cache;
    redis.shutdown().await?;
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_invalidate_exactly_the_tagged_keys_across_slots,
    should_keep_tag_sets_bounded_by_live_members,
);
