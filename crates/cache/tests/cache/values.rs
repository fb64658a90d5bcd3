//! Single-key operations: typed round trips, TTLs, NX/XX, persistent
//! writes, jitter and the typed refusals of bad input.
use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_cache::core::duration::MAX_DURATION;
use aeturnis_cache::core::prelude::*;
use aeturnis_cache::core::{CodecKind, KeyError};
use aeturnis_cache::{CacheConfig, Classify, Error, KeyTtl, RedisKey, Ttl};
use aeturnis_testkit::TestCtx;
use anyhow::{ensure, Result};

use crate::support::*;

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
    aeturnis_testkit::eventually("the key to expire", Duration::from_secs(5), || async {
        match cache.exists(&brief).await {
            Ok(false) => Ok(()),
            Ok(true) => Err("still there".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await?;
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

    // zero and above the workspace bound (100 years); a sub-millisecond
    // TTL is not refused: it rounds up to 1 ms (the core duration rule)
    for bad in [
        Duration::ZERO,
        MAX_DURATION + Duration::from_nanos(1),
        Duration::MAX,
    ] {
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
            cache.members_add(&key, &[1u8], bad).await,
            Err(Error::InvalidTtl { .. })
        ));
    }
    assert!(!cache.exists(&key).await?);

    let empty = cache.key("bad").id("").build();
    assert!(matches!(empty, Err(KeyError::Empty)), "{empty:?}");
    let err = Error::from(empty.err().ok_or_else(|| anyhow::anyhow!("no error"))?);
    assert!(matches!(err, Error::Key(_)), "{err:?}");
    assert!(err.is_invalid_input());
    // a key error from an operation is typed the same way, not a Redis error
    let err = cache
        .delete_matching(cache.pattern("bad").id(""))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an empty segment was accepted"))?;
    assert!(matches!(err, Error::Key(_)), "{err:?}");
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

aeturnis_testkit::topology_tests!(
    should_round_trip_typed_values_with_a_ttl,
    should_support_basic_operations_with_ttls,
    should_write_keys_without_expiry_only_when_asked,
    should_refuse_bad_input_with_typed_errors,
    should_spread_ttls_with_jitter,
);
