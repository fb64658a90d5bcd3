//! The fleet-wide single flight: processes that find another process's
//! lease wait for its value (woken by sharded pub/sub) instead of loading.
//! Each "process" is a `CacheAside` on a connection of its own, sharing
//! nothing but Redis. Standalone and cluster.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)] // test code: a panic is a failure; figures are printed

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aeturnis_patterns::cache::{Cache, CacheConfig};
use aeturnis_patterns::{CacheAside, LoadPolicy, Redis, RedisConfig};
use aeturnis_testkit::TestCtx;
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

async fn process(ctx: &TestCtx) -> anyhow::Result<(Redis, Cache, CacheAside<String>)> {
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    let aside = CacheAside::new(&cache);
    Ok((redis, cache, aside))
}

/// 1,000 concurrent misses on one key across 4 processes, a 20 ms loader:
/// one load in all.
async fn should_load_once_across_processes(ctx: TestCtx) -> anyhow::Result<()> {
    let mut processes = Vec::new();
    for _ in 0..4 {
        processes.push(process(&ctx).await?);
    }
    let key = processes[0].1.key("zone").id("capital").build()?;
    let policy = LoadPolicy::new(Duration::from_secs(60))
        .with_lease_wait(Duration::from_secs(5))
        .build()?;
    let loads = Arc::new(AtomicU32::new(0));
    let mut reads = Vec::new();
    for i in 0..1000 {
        let aside = processes[i % 4].2.clone();
        let (key, policy, loads) = (key.clone(), policy.clone(), loads.clone());
        reads.push(tokio::spawn(async move {
            let started = Instant::now();
            let v = aside
                .get_or_load(&key, &policy, move || {
                    let loads = loads.clone();
                    async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, Never>(Some("map".to_owned()))
                    }
                })
                .await;
            (v, started.elapsed())
        }));
    }
    let mut waits = Vec::new();
    for r in reads {
        let (v, took) = r.await?;
        assert_eq!(v?.as_deref(), Some("map"));
        waits.push(took);
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "one load across 4 processes"
    );
    waits.sort();
    println!(
        "waiters: p50 {:?}, p99 {:?}",
        waits[waits.len() / 2],
        waits[waits.len() * 99 / 100]
    );
    let waited: u64 = processes.iter().map(|p| p.2.stats().lease_waited).sum();
    let contended: u64 = processes.iter().map(|p| p.2.stats().lease_contended).sum();
    assert_eq!(contended, 0, "nobody gave up waiting");
    println!("processes served by another's load: {waited}");
    for (redis, ..) in processes {
        redis.shutdown().await?;
    }
    Ok(())
}

/// A lease holder that never stores: the waiter loads by itself once its
/// bounded wait is over, without storing over the lease.
async fn should_load_alone_after_the_bounded_wait(ctx: TestCtx) -> anyhow::Result<()> {
    let (redis_a, cache, a) = process(&ctx).await?;
    let (redis_b, _, b) = process(&ctx).await?;
    let key = cache.key("zone").id("stuck").build()?;
    let policy = LoadPolicy::new(Duration::from_secs(60))
        .with_lease_wait(Duration::from_millis(300))
        .build()?;
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let holder = {
        let (a, key, policy) = (a.clone(), key.clone(), policy.clone());
        let (started, release) = (started.clone(), release.clone());
        tokio::spawn(async move {
            a.get_or_load(&key, &policy, move || {
                let (started, release) = (started.clone(), release.clone());
                async move {
                    started.notify_one();
                    release.notified().await;
                    Ok::<_, Never>(Some("late".to_owned()))
                }
            })
            .await
        })
    };
    started.notified().await;
    let t = Instant::now();
    let v = b
        .get_or_load(&key, &policy, || async {
            Ok::<_, Never>(Some("own".to_owned()))
        })
        .await?;
    let waited = t.elapsed();
    assert_eq!(v.as_deref(), Some("own"));
    assert!(waited >= Duration::from_millis(300), "waited {waited:?}");
    assert_eq!(b.stats().lease_contended, 1);
    release.notify_one();
    assert_eq!(holder.await??.as_deref(), Some("late"));
    // the holder's lease was intact, so its value is the one stored
    let never = || async { Err::<Option<String>, _>(Never) };
    assert_eq!(
        b.get_or_load(&key, &policy, never).await?.as_deref(),
        Some("late")
    );
    redis_a.shutdown().await?;
    redis_b.shutdown().await?;
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_load_once_across_processes,
    should_load_alone_after_the_bounded_wait,
);
