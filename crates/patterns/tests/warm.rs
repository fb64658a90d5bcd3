//! `CacheAside::warm` against real Redis, standalone and cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aeturnis_patterns::cache::{Cache, CacheConfig};
use aeturnis_patterns::{CacheAside, LoadPolicy, Redis, RedisConfig, RedisKey, WarmProgress};
use aeturnis_testkit::TestCtx;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
#[error("no such row")]
struct RowError;

async fn should_warm_missing_keys_with_bounded_concurrency(ctx: TestCtx) -> anyhow::Result<()> {
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    let aside = CacheAside::<String>::new(&cache);
    let policy = LoadPolicy::new(Duration::from_secs(60)).build()?;
    let keys: Vec<RedisKey> = (0..200)
        .map(|i| cache.key("zone").id(i.to_string()).build().unwrap())
        .collect();
    // 50 already cached
    for k in &keys[..50] {
        aside
            .get_or_load(k, &policy, || async {
                Ok::<_, RowError>(Some("early".to_owned()))
            })
            .await?;
    }
    let (in_flight, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let loader = {
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        move |key: RedisKey| {
            let (in_flight, peak) = (in_flight.clone(), peak.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                if key.as_str().ends_with('7') {
                    Err(RowError)
                } else {
                    Ok(Some(format!("warm {key}")))
                }
            }
        }
    };
    let (tx, rx) = watch::channel(WarmProgress::default());
    let concurrency = NonZeroUsize::new(8).unwrap();
    let summary = aside
        .warm(keys.clone(), &policy, loader, concurrency, Some(&tx))
        .await;
    // keys 57, 67, ..., 197 (15 of the 150 missing) fail
    assert_eq!(
        (
            summary.total,
            summary.skipped,
            summary.failed,
            summary.loaded
        ),
        (200, 50, 15, 135)
    );
    assert!(summary.done);
    assert_eq!(*rx.borrow(), summary);
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        (2..=8).contains(&peak),
        "at most 8 loads at once, and more than one: {peak}"
    );
    // what warming stored is served without loading; what was there stays
    let never = || async { Err::<Option<String>, _>(RowError) };
    assert_eq!(
        aside
            .get_or_load(&keys[0], &policy, never)
            .await?
            .as_deref(),
        Some("early")
    );
    let warmed = aside.get_or_load(&keys[100], &policy, never).await?;
    assert_eq!(warmed, Some(format!("warm {}", keys[100])));
    redis.shutdown().await?;
    Ok(())
}

aeturnis_testkit::topology_tests!(should_warm_missing_keys_with_bounded_concurrency);
