//! Counters: the TTL set once and never missing, exact concurrent
//! increments, overflow as a typed error.
use std::time::Duration;

use aeturnis_cache::core::prelude::*;
use aeturnis_cache::{Error, Ttl};
use aeturnis_testkit::TestCtx;
use anyhow::Result;

use crate::support::*;

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

aeturnis_testkit::topology_tests!(should_count_with_a_ttl_set_once_and_never_missing,);
