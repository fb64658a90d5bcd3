//! `WarmScheduler` against real Redis: a hot key never expires while it
//! is read, a cold key is never refreshed, the sampler stays bounded, the
//! settings are checked, and `stop` ends it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aeturnis_patterns::cache::{Cache, CacheConfig};
use aeturnis_patterns::core::fred::interfaces::KeysInterface;
use aeturnis_patterns::{CacheAside, Error, LoadPolicy, Policy, Redis, RedisConfig, RedisKey};
use aeturnis_patterns::{WarmScheduler, WarmSchedulerConfig};
use aeturnis_testkit::{eventually, TestCtx};
use futures::StreamExt;

#[derive(Debug, thiserror::Error)]
#[error("no such row")]
struct RowError;

/// Loads per key; the value is `<key> #<n>` for the key's n-th load.
#[derive(Clone, Default)]
struct Source {
    loads: Arc<Mutex<HashMap<String, u64>>>,
}

impl Source {
    fn loader(
        &self,
    ) -> impl Fn(RedisKey) -> futures::future::Ready<Result<Option<String>, RowError>>
           + Send
           + Sync
           + Clone
           + 'static {
        let loads = self.loads.clone();
        move |key: RedisKey| {
            let mut loads = loads.lock().unwrap();
            let n = loads.entry(key.as_str().to_owned()).or_insert(0);
            *n += 1;
            futures::future::ready(Ok(Some(format!("{key} #{n}"))))
        }
    }

    fn loads(&self, key: &RedisKey) -> u64 {
        self.loads
            .lock()
            .unwrap()
            .get(key.as_str())
            .copied()
            .unwrap_or(0)
    }
}

struct Setup {
    redis: Redis,
    cache: Cache,
    aside: CacheAside<String>,
}

async fn setup(ctx: &TestCtx) -> anyhow::Result<Setup> {
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    let aside = CacheAside::<String>::new(&cache);
    Ok(Setup {
        redis,
        cache,
        aside,
    })
}

fn n(v: usize) -> NonZeroUsize {
    NonZeroUsize::new(v).unwrap()
}

/// No XFetch (β = 0) and no soft TTL: only the scheduler refreshes.
fn policy(ttl_ms: u64) -> Policy {
    LoadPolicy::new(Duration::from_millis(ttl_ms))
        .with_beta(0.0)
        .build()
        .unwrap()
}

/// Reads `key` through `aside` until `stop`, pacing itself (a workload, not
/// a wait); returns how many reads it made.
fn reader(
    aside: &CacheAside<String>,
    key: &RedisKey,
    policy: &Policy,
    source: &Source,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let (aside, key, policy, stop) = (aside.clone(), key.clone(), policy.clone(), stop.clone());
    let load = source.loader();
    tokio::spawn(async move {
        let mut reads = 0;
        while !stop.load(Ordering::SeqCst) {
            let (l, k) = (load.clone(), key.clone());
            aside
                .get_or_load(&key, &policy, move || l(k.clone()))
                .await
                .unwrap();
            reads += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        reads
    })
}

async fn rewarmed_at_least(scheduler: &WarmScheduler, n: u64) -> anyhow::Result<()> {
    eventually("the scheduler to rewarm", Duration::from_secs(15), || {
        let stats = scheduler.stats();
        async move {
            if stats.rewarmed >= n {
                Ok(())
            } else {
                Err(format!("{stats:?}"))
            }
        }
    })
    .await
}

async fn should_keep_a_hot_key_from_ever_expiring_while_it_is_read(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    // a refresh every ~1.2 s, each 1.8 s before expiry: a stall of the
    // loaded CI host shorter than that cannot let the key expire
    let (source, ttl) = (Source::default(), Duration::from_millis(3000));
    let policy = policy(3000);
    let config = WarmSchedulerConfig::default()
        .with_top_k(n(4))
        .with_capacity(n(16))
        .with_interval(Duration::from_millis(100))
        .with_lead(Duration::from_millis(1800));
    let scheduler = s.aside.start_warming(config, &policy, source.loader())?;
    let hot = s.cache.key("item").id("hot").build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let task = reader(&s.aside, &hot, &policy, &source, &stop);
    // three refreshes, each at most `lead` before expiry: the first fill
    // would have expired by then
    rewarmed_at_least(&scheduler, 3).await?;
    assert!(started.elapsed() > ttl, "{:?}", started.elapsed());
    // a read now, after the first fill's TTL, is a hit on a refreshed value
    let never = || async { Err::<Option<String>, _>(RowError) };
    let value = s.aside.get_or_load(&hot, &policy, never).await?.unwrap();
    assert_ne!(value, format!("{hot} #1"));
    stop.store(true, Ordering::SeqCst);
    let reads = task.await?;
    let stats = s.aside.stats();
    assert_eq!(
        (stats.misses, stats.stale_served, stats.load_errors),
        (1, 0, 0),
        "only the first read missed: {stats:?}"
    );
    assert_eq!(stats.hits, reads, "{stats:?}");
    let warm = scheduler.stats();
    assert_eq!(source.loads(&hot), 1 + warm.rewarmed, "{warm:?}");
    assert_eq!(warm.failed, 0, "{warm:?}");
    scheduler.stop().await;
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_not_rewarm_a_key_read_once(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let source = Source::default();
    let policy = policy(800);
    let config = WarmSchedulerConfig::default()
        .with_top_k(n(4))
        .with_capacity(n(16))
        .with_interval(Duration::from_millis(50))
        .with_lead(Duration::from_millis(500));
    let scheduler = s.aside.start_warming(config, &policy, source.loader())?;
    let (hot, cold) = (
        s.cache.key("item").id("hot").build()?,
        s.cache.key("item").id("cold").build()?,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let task = reader(&s.aside, &hot, &policy, &source, &stop);
    let load = source.loader();
    let k = cold.clone();
    s.aside
        .get_or_load(&cold, &policy, move || load(k.clone()))
        .await?;
    // two refreshes of the hot key: the cold key, filled after the hot
    // one, has been due (within `lead` of expiry) for several ticks
    rewarmed_at_least(&scheduler, 2).await?;
    eventually("the cold key to expire", Duration::from_secs(5), || async {
        match s.redis.client().exists::<u64, _>(&cold).await {
            Ok(0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await?;
    assert_eq!(source.loads(&cold), 1, "the cold key was loaded again");
    assert!(source.loads(&hot) >= 3);
    stop.store(true, Ordering::SeqCst);
    task.await?;
    scheduler.stop().await;
    s.redis.shutdown().await?;
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_keep_a_hot_key_from_ever_expiring_while_it_is_read,
    should_not_rewarm_a_key_read_once,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_the_sampler_within_its_capacity_over_10000_distinct_keys() -> anyhow::Result<()>
{
    let ctx = TestCtx::standalone("warm_bounded").await;
    let s = setup(&ctx).await?;
    // a `None` without a negative TTL is not cached: every read misses
    let policy = LoadPolicy::new(Duration::from_secs(60)).build()?;
    let config = WarmSchedulerConfig::default()
        .with_top_k(n(8))
        .with_capacity(n(64))
        .with_interval(Duration::from_secs(60))
        .with_lead(Duration::from_secs(120));
    let scheduler = s
        .aside
        .start_warming(config, &policy, Source::default().loader())?;
    let keys: Vec<RedisKey> = (0..10_000)
        .map(|i| s.cache.key("item").id(i.to_string()).build().unwrap())
        .collect();
    let mut reads = futures::stream::iter(keys)
        .map(|key| {
            let aside = s.aside.clone();
            let policy = policy.clone();
            async move {
                aside
                    .get_or_load(&key, &policy, || async { Ok::<_, RowError>(None) })
                    .await
            }
        })
        .buffer_unordered(64);
    let mut most = 0;
    while let Some(read) = reads.next().await {
        assert_eq!(read?, None);
        most = most.max(scheduler.stats().tracked);
    }
    assert!((1..=64).contains(&most), "at most 64 keys counted: {most}");
    assert_eq!(s.aside.stats().misses, 10_000);
    scheduler.stop().await;
    s.redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_refuse_bad_settings_and_a_second_scheduler_naming_them() -> anyhow::Result<()> {
    let ctx = TestCtx::standalone("warm_config").await;
    let s = setup(&ctx).await?;
    let policy = policy(1000);
    let load = Source::default().loader();
    let base = WarmSchedulerConfig::default();
    let cases = [
        ("capacity", base.with_top_k(n(10)).with_capacity(n(9))),
        ("interval", base.with_interval(Duration::ZERO)),
        (
            "lead",
            base.with_interval(Duration::from_secs(2))
                .with_lead(Duration::from_secs(2)),
        ),
        ("min_reads", base.with_min_reads(0)),
    ];
    for (name, config) in cases {
        match s.aside.start_warming(config, &policy, load.clone()) {
            Err(Error::Config(c)) => assert_eq!(c.variable(), name),
            other => panic!("{name}: expected a config error, got {other:?}"),
        }
    }
    let env = |name: &str| match name {
        "PATTERNS_WARM_TOP_K" => Some("50".to_owned()),
        "PATTERNS_WARM_LEAD_MS" => Some("500".to_owned()),
        _ => None,
    };
    match WarmSchedulerConfig::from_lookup(env) {
        Err(c) => assert_eq!(c.variable(), "PATTERNS_WARM_LEAD_MS"),
        Ok(c) => panic!("lead 500 ms under a 1 s interval was accepted: {c:?}"),
    }
    let ok = WarmSchedulerConfig::from_lookup(|name| {
        (name == "PATTERNS_WARM_TOP_K").then(|| "50".to_owned())
    })?;
    assert_eq!(ok.top_k, n(50));
    // one at a time per reader; after `stop`, another may start
    let first = s.aside.start_warming(base, &policy, load.clone())?;
    match s.aside.start_warming(base, &policy, load.clone()) {
        Err(Error::Config(c)) => assert_eq!(c.variable(), "scheduler"),
        other => panic!("expected a second scheduler to be refused, got {other:?}"),
    }
    first.stop().await;
    let second = s.aside.start_warming(base, &policy, load)?;
    second.stop().await;
    s.redis.shutdown().await?;
    Ok(())
}
