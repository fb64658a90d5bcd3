//! In-process statistics under concurrency, and the Redis figures.
use std::time::Duration;

use aeturnis_cache::{Error, OpKind, RedisKey, Ttl};
use aeturnis_testkit::TestCtx;
use anyhow::Result;

use crate::support::*;

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
                let err = cache.get::<u8>(&wrong).await.err();
                assert!(
                    matches!(&err, Some(Error::WrongType { key }) if key == wrong.as_str()),
                    "{err:?}"
                );
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

aeturnis_testkit::topology_tests!(should_count_stats_correctly_under_concurrency,);
