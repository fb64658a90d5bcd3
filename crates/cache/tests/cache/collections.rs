//! Redis sets (`members_*`) and lists: every write sets the TTL.
use std::time::Duration;

use aeturnis_cache::{Error, Ttl};
use aeturnis_testkit::TestCtx;
use anyhow::Result;

use crate::support::*;

async fn should_set_a_ttl_on_every_set_and_list_write(ctx: TestCtx) -> Result<()> {
    let cache = cache(&ctx).await?;
    let set = cache.key("friends").tag("42").build()?;
    assert_eq!(
        cache
            .members_add(&set, &["ann", "bob", "ann"], Duration::from_secs(60))
            .await?,
        2
    );
    assert_has_ttl(&cache, &set, Duration::from_secs(60)).await?;
    assert_eq!(
        cache
            .members_add(&set, &["bob", "cid"], Duration::from_secs(90))
            .await?,
        1
    );
    assert_has_ttl(&cache, &set, Duration::from_secs(90)).await?;
    assert!(cache.members_contains(&set, "cid").await?);
    assert!(!cache.members_contains(&set, "dan").await?);
    assert_eq!(cache.members_len(&set).await?, 3);
    let mut members: Vec<String> = cache.members(&set).await?;
    members.sort();
    assert_eq!(members, ["ann", "bob", "cid"]);
    assert_eq!(cache.members_remove(&set, &["ann", "zed"]).await?, 1);
    assert_eq!(cache.members_len(&set).await?, 2);
    assert!(matches!(
        cache.members_add::<String>(&set, &[], Ttl::Default).await,
        Err(Error::InvalidArgument { .. })
    ));

    // more members than one Lua unpack can take
    let big = cache.key("bigset").build()?;
    let many: Vec<u32> = (0..2500).collect();
    assert_eq!(cache.members_add(&big, &many, Ttl::Default).await?, 2500);
    assert_eq!(cache.members_len(&big).await?, 2500);
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

aeturnis_testkit::topology_tests!(should_set_a_ttl_on_every_set_and_list_write,);
