//! Behaviour tests: every operation on the shared standalone server and the
//! shared 6-node cluster.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_cache::{
    Cache, CacheConfig, DeleteProgress, Error, KeyTtl, MatchPattern, OpKind, Ttl,
};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{CodecKind, Redis, RedisConfig, RedisKey};
use aeturnis_testkit::{TestCtx, Topology};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

const TTL: Duration = Duration::from_secs(600);

async fn connect(ctx: &TestCtx, codec: CodecKind, config: CacheConfig) -> Result<Cache> {
    let redis = Redis::connect(
        RedisConfig::from_url(&ctx.url)?
            .with_key_prefix(&ctx.prefix)
            .with_codec(codec),
    )
    .await?;
    Ok(Cache::new(redis, config)?)
}

async fn cache(ctx: &TestCtx) -> Result<Cache> {
    connect(
        ctx,
        CodecKind::MessagePack,
        CacheConfig::default().with_default_ttl(TTL),
    )
    .await
}

/// `PTTL` read straight from Redis.
async fn pttl(cache: &Cache, key: &RedisKey) -> Result<i64> {
    Ok(cache.redis().client().pttl::<i64, _>(key).await?)
}

async fn assert_has_ttl(cache: &Cache, key: &RedisKey, max: Duration) -> Result<()> {
    let ms = pttl(cache, key).await?;
    ensure!(
        ms > 0 && ms <= max.as_millis() as i64,
        "{key} has PTTL {ms}, expected 1..={}",
        max.as_millis()
    );
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn profile(id: u64) -> Profile {
    Profile {
        id,
        name: format!("player-{id}"),
        tags: vec!["pvp".into(), "guild".into()],
    }
}

async fn should_round_trip_typed_values_with_a_ttl(ctx: TestCtx) -> Result<()> {
    for codec in [CodecKind::MessagePack, CodecKind::Json] {
        let cache = connect(&ctx, codec, CacheConfig::default().with_default_ttl(TTL)).await?;
        let key = cache.schema().user_profile(format!("{codec:?}"))?;
        cache.set(&key, &profile(1), Ttl::Default).await?;
        assert_eq!(cache.get::<Profile>(&key).await?, Some(profile(1)));
        assert_has_ttl(&cache, &key, TTL).await?;

        let short = cache.key("short").id(format!("{codec:?}")).build()?;
        cache.set(&short, "text", Duration::from_secs(30)).await?;
        assert_has_ttl(&cache, &short, Duration::from_secs(30)).await?;
        assert_eq!(cache.get::<String>(&short).await?.as_deref(), Some("text"));

        // a plain string written by another client reads back as a string
        let plain = cache.key("plain").id(format!("{codec:?}")).build()?;
        cache
            .redis()
            .client()
            .set::<(), _, _>(
                &plain,
                "hello from redis-cli",
                Some(Expiration::EX(60)),
                None,
                false,
            )
            .await?;
        assert_eq!(
            cache.get::<String>(&plain).await?.as_deref(),
            Some("hello from redis-cli")
        );
        let missing = cache.key("missing").build()?;
        assert_eq!(cache.get::<Profile>(&missing).await?, None);
        assert_eq!(cache.get_bytes(&missing).await?, None);
    }
    Ok(())
}

async fn should_support_basic_operations_with_ttls(ctx: TestCtx) -> Result<()> {
    let cache = cache(&ctx).await?;
    let key = cache.key("basic").id("k").build()?;

    assert!(!cache.exists(&key).await?);
    assert_eq!(cache.ttl(&key).await?, KeyTtl::Missing);
    assert!(!cache.expire(&key, Duration::from_secs(5)).await?);
    assert!(!cache.set_if_present(&key, &1u32, Ttl::Default).await?);
    assert!(!cache.exists(&key).await?);

    assert!(
        cache
            .set_if_absent(&key, &1u32, Duration::from_secs(50))
            .await?
    );
    assert_has_ttl(&cache, &key, Duration::from_secs(50)).await?;
    assert!(!cache.set_if_absent(&key, &2u32, Ttl::Default).await?);
    assert_eq!(cache.get::<u32>(&key).await?, Some(1));

    assert!(
        cache
            .set_if_present(&key, &3u32, Duration::from_secs(40))
            .await?
    );
    assert_eq!(cache.get::<u32>(&key).await?, Some(3));
    assert_has_ttl(&cache, &key, Duration::from_secs(40)).await?;

    assert!(cache.exists(&key).await?);
    assert!(cache.expire(&key, Duration::from_secs(20)).await?);
    match cache.ttl(&key).await? {
        KeyTtl::Expires(d) => ensure!(d <= Duration::from_secs(20) && d > Duration::from_secs(15)),
        other => anyhow::bail!("unexpected {other:?}"),
    }

    assert!(cache.delete(&key).await?);
    assert!(!cache.delete(&key).await?);
    assert!(!cache.exists(&key).await?);

    // a short real TTL expires
    let brief = cache.key("basic").id("brief").build()?;
    cache.set(&brief, &7u8, Duration::from_millis(50)).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cache.exists(&brief).await? {
        ensure!(tokio::time::Instant::now() < deadline, "key never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn should_write_keys_without_expiry_only_when_asked(ctx: TestCtx) -> Result<()> {
    let cache = cache(&ctx).await?;
    let key = cache.key("forever").build()?;
    cache.set_persistent(&key, &profile(2)).await?;
    assert_eq!(pttl(&cache, &key).await?, -1);
    assert_eq!(cache.ttl(&key).await?, KeyTtl::Persistent);
    // any later ordinary write puts a TTL back
    cache.set(&key, &profile(3), Ttl::Default).await?;
    assert_has_ttl(&cache, &key, TTL).await?;
    cache.delete(&key).await?;
    Ok(())
}

async fn should_refuse_bad_input_with_typed_errors(ctx: TestCtx) -> Result<()> {
    let config = CacheConfig::default()
        .with_default_ttl(TTL)
        .with_max_value_bytes(NonZeroU32::new(64).ok_or_else(|| anyhow::anyhow!("64"))?);
    let cache = connect(&ctx, CodecKind::MessagePack, config).await?;
    let key = cache.key("bad").id("big").build()?;

    match cache.set(&key, &"x".repeat(100), Ttl::Default).await {
        Err(Error::ValueTooLarge {
            key: k,
            size,
            limit,
        }) => {
            assert_eq!(k, key.as_str());
            assert!(size > 64 && limit == 64);
        }
        other => anyhow::bail!("expected ValueTooLarge, got {other:?}"),
    }
    let entries = vec![(key.clone(), "x".repeat(100))];
    assert!(matches!(
        cache.mset(&entries, Ttl::Default).await,
        Err(Error::ValueTooLarge { .. })
    ));
    assert!(!cache.exists(&key).await?, "nothing was written");

    for bad in [Duration::ZERO, Duration::from_micros(300)] {
        match cache.set(&key, &1u8, bad).await {
            Err(Error::InvalidTtl { key: k, ttl, .. }) => {
                assert_eq!(k, key.as_str());
                assert_eq!(ttl, bad);
            }
            other => anyhow::bail!("expected InvalidTtl, got {other:?}"),
        }
        assert!(matches!(
            cache.incr(&key, 1, bad).await,
            Err(Error::InvalidTtl { .. })
        ));
        assert!(matches!(
            cache.set_add(&key, &[1u8], bad).await,
            Err(Error::InvalidTtl { .. })
        ));
    }
    assert!(!cache.exists(&key).await?);

    let empty = cache.key("bad").id("").build();
    assert!(empty.is_err());
    let err = Error::from(empty.err().ok_or_else(|| anyhow::anyhow!("no error"))?);
    assert!(err.is_invalid_input());

    // undecodable bytes written by someone else
    let junk = cache.key("bad").id("junk").build()?;
    cache
        .redis()
        .client()
        .set::<(), _, _>(
            &junk,
            vec![0xc1u8, 0xff, 0x00],
            Some(Expiration::EX(60)),
            None,
            false,
        )
        .await?;
    match cache.get::<Profile>(&junk).await {
        Err(Error::Redis(aeturnis_redis_core::Error::Decode { key: k, .. })) => {
            assert_eq!(k, junk.as_str())
        }
        other => anyhow::bail!("expected Decode, got {other:?}"),
    }

    // wrong Redis type
    let list = cache.key("bad").id("list").build()?;
    cache.list_push_back(&list, &[1u8], Ttl::Default).await?;
    assert!(
        matches!(cache.get::<u8>(&list).await, Err(Error::WrongType { key: k }) if k == list.as_str())
    );
    assert!(matches!(
        cache.incr(&junk, 1, Ttl::Default).await,
        Err(Error::NotACounter { .. })
    ));
    assert!(matches!(
        cache
            .leaderboard_add(&list, "m", f64::NAN, Ttl::Default)
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    Ok(())
}

async fn should_spread_ttls_with_jitter(ctx: TestCtx) -> Result<()> {
    let ttl = Duration::from_secs(100);
    let cache = connect(
        &ctx,
        CodecKind::MessagePack,
        CacheConfig::default()
            .with_default_ttl(ttl)
            .with_ttl_jitter_percent(50),
    )
    .await?;
    let entries: Vec<(RedisKey, u32)> = (0..40)
        .map(|i| Ok((cache.key("jitter").id(i.to_string()).build()?, i)))
        .collect::<Result<_>>()?;
    cache.mset(&entries, Ttl::Default).await?;
    let mut seen = HashSet::new();
    for (key, _) in &entries {
        let ms = pttl(&cache, key).await?;
        ensure!((95_000..=150_000).contains(&ms), "{key}: {ms}");
        seen.insert(ms / 1000);
    }
    ensure!(seen.len() > 5, "TTLs were not spread: {seen:?}");
    Ok(())
}

async fn should_mget_and_mset_across_slots_in_callers_order(ctx: TestCtx) -> Result<()> {
    let cache = cache(&ctx).await?;
    let keys: Vec<RedisKey> = (0..600)
        .map(|i| Ok(cache.key("bulk").id(i.to_string()).build()?))
        .collect::<Result<_>>()?;
    let slots: HashSet<u16> = keys.iter().map(RedisKey::slot).collect();
    ensure!(slots.len() > 400, "keys spread over {} slots", slots.len());

    // write the even keys only
    let entries: Vec<(RedisKey, Profile)> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, k)| (k.clone(), profile(i as u64)))
        .collect();
    cache.mset(&entries, Duration::from_secs(120)).await?;
    for (key, _) in &entries {
        assert_has_ttl(&cache, key, Duration::from_secs(120)).await?;
    }

    // read in reverse order, with missing keys interleaved
    let order: Vec<RedisKey> = keys.iter().rev().cloned().collect();
    let values: Vec<Option<Profile>> = cache.mget(&order).await?;
    assert_eq!(values.len(), order.len());
    for (i, value) in values.iter().enumerate() {
        let original = keys.len() - 1 - i;
        if original % 2 == 0 {
            assert_eq!(value.as_ref(), Some(&profile(original as u64)), "index {i}");
        } else {
            assert_eq!(value, &None, "index {i}");
        }
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (300, 300));
    assert!(cache.mget::<Profile>(&[]).await?.is_empty());
    cache.mset::<u8>(&[], Ttl::Default).await?;
    // duplicate keys read fine
    let dup = vec![keys[0].clone(), keys[0].clone()];
    assert_eq!(
        cache.mget::<Profile>(&dup).await?,
        vec![Some(profile(0)), Some(profile(0))]
    );
    Ok(())
}

async fn should_count_with_a_ttl_set_once_and_never_missing(ctx: TestCtx) -> Result<()> {
    let cache = cache(&ctx).await?;
    let key = cache.key("counter").id("logins").build()?;
    assert_eq!(cache.counter(&key).await?, None);
    assert_eq!(cache.incr(&key, 5, Duration::from_secs(100)).await?, 5);
    assert_has_ttl(&cache, &key, Duration::from_secs(100)).await?;
    // later increments keep the window
    cache
        .redis()
        .client()
        .pexpire::<(), _>(&key, 30_000, None)
        .await?;
    assert_eq!(cache.incr(&key, 2, Duration::from_secs(100)).await?, 7);
    assert_has_ttl(&cache, &key, Duration::from_secs(30)).await?;
    assert_eq!(cache.decr(&key, 10, Duration::from_secs(100)).await?, -3);
    assert_eq!(cache.counter(&key).await?, Some(-3));

    // a counter some other client left immortal gets a TTL
    let legacy = cache.key("counter").id("legacy").build()?;
    cache
        .redis()
        .client()
        .set::<(), _, _>(&legacy, 40, None, None, false)
        .await?;
    assert_eq!(pttl(&cache, &legacy).await?, -1);
    assert_eq!(cache.incr(&legacy, 1, Ttl::Default).await?, 41);
    assert_has_ttl(&cache, &legacy, TTL).await?;

    // concurrent increments all count, exactly once
    let hot = cache.key("counter").id("hot").build()?;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (cache, hot) = (cache.clone(), hot.clone());
            tokio::spawn(async move {
                for _ in 0..25 {
                    cache.incr(&hot, 1, Ttl::Default).await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    assert_eq!(cache.counter(&hot).await?, Some(500));
    assert_has_ttl(&cache, &hot, TTL).await?;
    let overflow = cache.incr(&hot, i64::MAX, Ttl::Default).await;
    assert!(
        matches!(overflow, Err(Error::NotACounter { .. })),
        "{overflow:?}"
    );
    Ok(())
}

async fn should_set_a_ttl_on_every_set_and_list_write(ctx: TestCtx) -> Result<()> {
    let cache = cache(&ctx).await?;
    let set = cache.key("friends").tag("42").build()?;
    assert_eq!(
        cache
            .set_add(&set, &["ann", "bob", "ann"], Duration::from_secs(60))
            .await?,
        2
    );
    assert_has_ttl(&cache, &set, Duration::from_secs(60)).await?;
    assert_eq!(
        cache
            .set_add(&set, &["bob", "cid"], Duration::from_secs(90))
            .await?,
        1
    );
    assert_has_ttl(&cache, &set, Duration::from_secs(90)).await?;
    assert!(cache.set_contains(&set, "cid").await?);
    assert!(!cache.set_contains(&set, "dan").await?);
    assert_eq!(cache.set_len(&set).await?, 3);
    let mut members: Vec<String> = cache.set_members(&set).await?;
    members.sort();
    assert_eq!(members, ["ann", "bob", "cid"]);
    assert_eq!(cache.set_remove(&set, &["ann", "zed"]).await?, 1);
    assert_eq!(cache.set_len(&set).await?, 2);
    assert!(matches!(
        cache.set_add::<String>(&set, &[], Ttl::Default).await,
        Err(Error::InvalidArgument { .. })
    ));

    // more members than one Lua unpack can take
    let big = cache.key("bigset").build()?;
    let many: Vec<u32> = (0..2500).collect();
    assert_eq!(cache.set_add(&big, &many, Ttl::Default).await?, 2500);
    assert_eq!(cache.set_len(&big).await?, 2500);
    assert_has_ttl(&cache, &big, TTL).await?;

    let list = cache.key("events").tag("42").build()?;
    assert_eq!(
        cache
            .list_push_back(&list, &[profile(1), profile(2)], Duration::from_secs(60))
            .await?,
        2
    );
    assert_has_ttl(&cache, &list, Duration::from_secs(60)).await?;
    assert_eq!(
        cache
            .list_push_front(&list, &[profile(0)], Ttl::Default)
            .await?,
        3
    );
    assert_has_ttl(&cache, &list, TTL).await?;
    let all: Vec<Profile> = cache.list_range(&list, 0, -1).await?;
    assert_eq!(all, vec![profile(0), profile(1), profile(2)]);
    assert_eq!(cache.list_len(&list).await?, 3);
    assert_eq!(
        cache.list_pop_front::<Profile>(&list).await?,
        Some(profile(0))
    );
    assert_eq!(
        cache.list_pop_back::<Profile>(&list).await?,
        Some(profile(2))
    );
    cache
        .list_push_back(&list, &[profile(3), profile(4)], Ttl::Default)
        .await?;
    cache.list_trim(&list, -2, -1).await?;
    assert_eq!(
        cache.list_range::<Profile>(&list, 0, -1).await?,
        vec![profile(3), profile(4)]
    );
    assert_has_ttl(&cache, &list, TTL).await?;
    let empty = cache.key("events").tag("none").build()?;
    assert_eq!(cache.list_pop_front::<Profile>(&empty).await?, None);
    Ok(())
}

async fn should_rank_leaderboards(ctx: TestCtx) -> Result<()> {
    let cache = cache(&ctx).await?;
    let board = cache.schema().leaderboard("pvp")?;
    let day = Duration::from_secs(86_400);
    for (i, name) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
        cache
            .leaderboard_add(&board, name, (i as f64) * 10.0, day)
            .await?;
    }
    assert_has_ttl(&cache, &board, day).await?;
    // g=60 f=50 e=40 d=30 c=20 b=10 a=0; a gains 45 -> a=45
    assert_eq!(cache.leaderboard_incr(&board, "a", 45.0, day).await?, 45.0);
    assert_eq!(cache.leaderboard_incr(&board, "new", 1.5, day).await?, 1.5);
    assert_has_ttl(&cache, &board, day).await?;

    let top = cache
        .leaderboard_top(&board, NonZeroU32::MIN.saturating_add(2))
        .await?;
    let rows: Vec<(u64, &str, f64)> = top
        .iter()
        .map(|e| (e.rank, e.member.as_str(), e.score))
        .collect();
    assert_eq!(rows, vec![(1, "g", 60.0), (2, "f", 50.0), (3, "a", 45.0)]);

    assert_eq!(cache.leaderboard_rank(&board, "g").await?, Some(1));
    assert_eq!(cache.leaderboard_rank(&board, "e").await?, Some(4));
    assert_eq!(cache.leaderboard_rank(&board, "nobody").await?, None);
    assert_eq!(cache.zset_score(&board, "a").await?, Some(45.0));
    assert_eq!(cache.zset_len(&board).await?, 8);

    let around = cache
        .leaderboard_around(&board, "e", 1)
        .await?
        .ok_or_else(|| anyhow::anyhow!("e is on the board"))?;
    let rows: Vec<(u64, &str)> = around.iter().map(|e| (e.rank, e.member.as_str())).collect();
    assert_eq!(rows, vec![(3, "a"), (4, "e"), (5, "d")]);
    let at_top = cache
        .leaderboard_around(&board, "g", 2)
        .await?
        .unwrap_or_default();
    let rows: Vec<(u64, &str)> = at_top.iter().map(|e| (e.rank, e.member.as_str())).collect();
    assert_eq!(rows, vec![(1, "g"), (2, "f"), (3, "a")]);
    assert_eq!(cache.leaderboard_around(&board, "nobody", 2).await?, None);

    assert_eq!(
        cache
            .zset_add(&board, &[("h", 5.0), ("g", 1.0)], day)
            .await?,
        1
    );
    // f a e d c b h new g
    assert_eq!(cache.leaderboard_rank(&board, "g").await?, Some(9));
    assert_eq!(cache.zset_remove(&board, &["h", "zz"]).await?, 1);
    Ok(())
}

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
    assert!(cache.delete_matching(MatchPattern::raw("")).await.is_err());
    Ok(())
}

async fn should_count_stats_correctly_under_concurrency(ctx: TestCtx) -> Result<()> {
    let cache = cache(&ctx).await?;
    let keys: Vec<RedisKey> = (0..10)
        .map(|i| Ok(cache.key("stats").id(i.to_string()).build()?))
        .collect::<Result<_>>()?;
    for key in keys.iter().step_by(2) {
        cache.set(key, &1u8, Ttl::Default).await?;
    }
    let wrong = cache.key("stats").id("list").build()?;
    cache.list_push_back(&wrong, &[1u8], Ttl::Default).await?;
    cache.reset_stats();

    let tasks: Vec<_> = (0..50)
        .map(|t| {
            let (cache, keys, wrong) = (cache.clone(), keys.clone(), wrong.clone());
            tokio::spawn(async move {
                for i in 0..40 {
                    let _: Option<u8> = cache.get(&keys[(t + i) % 10]).await?;
                }
                // one failing read per task
                assert!(cache.get::<u8>(&wrong).await.is_err());
                Ok::<_, Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (1000, 1000));
    assert_eq!(stats.hit_rate(), Some(0.5));
    let get = stats
        .op(OpKind::Get)
        .ok_or_else(|| anyhow::anyhow!("get stats"))?;
    assert_eq!((get.count, get.errors), (2050, 50));
    assert!(get.mean_latency().is_some_and(|d| d > Duration::ZERO));
    assert_eq!(stats.total_ops(), 2050);

    let redis = cache.redis_stats().await?;
    assert_eq!(redis.keys, 6);
    assert!(redis.used_memory > 0);
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

aeturnis_testkit::topology_tests!(
    should_round_trip_typed_values_with_a_ttl,
    should_support_basic_operations_with_ttls,
    should_write_keys_without_expiry_only_when_asked,
    should_refuse_bad_input_with_typed_errors,
    should_spread_ttls_with_jitter,
    should_mget_and_mset_across_slots_in_callers_order,
    should_count_with_a_ttl_set_once_and_never_missing,
    should_set_a_ttl_on_every_set_and_list_write,
    should_rank_leaderboards,
    should_delete_matching_keys_without_widening_globs,
    should_count_stats_correctly_under_concurrency,
);
