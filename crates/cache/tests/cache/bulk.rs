//! `mget` / `mset` across hash slots, in the caller's order.
use std::collections::HashSet;
use std::time::Duration;

use aeturnis_cache::{RedisKey, Ttl};
use aeturnis_testkit::TestCtx;
use anyhow::{ensure, Result};

use crate::support::*;

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

aeturnis_testkit::topology_tests!(should_mget_and_mset_across_slots_in_callers_order,);
