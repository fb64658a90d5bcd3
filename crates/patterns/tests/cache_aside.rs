//! `CacheAside` against real Redis, on a standalone server and the 6-node
//! cluster: single flight, cancelled leaders, the invalidation race, negative
//! caching, stale-while-revalidate, early refresh, typed errors, write-through.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aeturnis_patterns::cache::{Cache, CacheConfig};
use aeturnis_patterns::core::fred::interfaces::KeysInterface;
use aeturnis_patterns::{CacheAside, Error, LoadPolicy, Policy, WriteMode, WriteOutcome};
use aeturnis_patterns::{Redis, RedisConfig, RedisKey};
use aeturnis_testkit::{eventually, TestCtx};
use tokio::sync::{oneshot, Notify};

#[derive(Debug, thiserror::Error)]
#[error("source failed: {0}")]
struct SourceError(&'static str);

/// What a test loader returns.
type LoadFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<String>, SourceError>> + Send>,
>;

/// The source of truth: a value and a count of reads.
#[derive(Clone, Default)]
struct Source {
    value: Arc<Mutex<Option<String>>>,
    reads: Arc<AtomicU32>,
}

impl Source {
    fn new(value: &str) -> Source {
        let s = Source::default();
        s.set(value);
        s
    }
    fn set(&self, value: &str) {
        *self.value.lock().unwrap() = Some(value.to_owned());
    }
    fn read(&self) -> Option<String> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.value.lock().unwrap().clone()
    }
    fn reads(&self) -> u32 {
        self.reads.load(Ordering::SeqCst)
    }
    /// A loader reading the source after `delay`.
    fn loader(&self, delay: Duration) -> impl Fn() -> LoadFuture + Clone + Send + Sync + 'static {
        let source = self.clone();
        move || {
            let source = source.clone();
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(source.read())
            })
        }
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
    let aside = CacheAside::new(&cache);
    Ok(Setup {
        redis,
        cache,
        aside,
    })
}

fn key(s: &Setup, id: &str) -> RedisKey {
    s.cache.key("profile").id(id).build().unwrap()
}

fn policy(ttl_secs: u64) -> Policy {
    LoadPolicy::new(Duration::from_secs(ttl_secs))
        .build()
        .unwrap()
}

async fn should_load_once_for_concurrent_misses(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let source = Source::new("v1");
    let k = key(&s, "stampede");
    let p = policy(60);
    let reads = (0..200).map(|_| {
        let (aside, k, p, loader) = (
            s.aside.clone(),
            k.clone(),
            p.clone(),
            source.loader(Duration::from_millis(20)),
        );
        tokio::spawn(async move { aside.get_or_load(&k, &p, loader).await })
    });
    for r in futures::future::join_all(reads).await {
        assert_eq!(r??.as_deref(), Some("v1"));
    }
    assert_eq!(source.reads(), 1, "one load for 200 concurrent misses");
    // the next read is a hit
    let v = s
        .aside
        .get_or_load(&k, &p, source.loader(Duration::ZERO))
        .await?;
    assert_eq!(v.as_deref(), Some("v1"));
    assert_eq!(source.reads(), 1);
    let stats = s.aside.stats();
    assert_eq!((stats.loads, stats.hits), (1, 1), "{stats:?}");
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_not_strand_waiters_when_the_leader_is_cancelled(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let k = key(&s, "cancel");
    let p = policy(60);
    let release = Arc::new(Notify::new());
    let started = Arc::new(Notify::new());
    let loader = {
        let (release, started) = (release.clone(), started.clone());
        move || {
            let (release, started) = (release.clone(), started.clone());
            async move {
                started.notify_one();
                release.notified().await;
                Ok::<_, SourceError>(Some("loaded".to_owned()))
            }
        }
    };
    let leader = {
        let (aside, k, p, loader) = (s.aside.clone(), k.clone(), p.clone(), loader.clone());
        tokio::spawn(async move { aside.get_or_load(&k, &p, loader).await })
    };
    started.notified().await;
    let waiter = {
        let (aside, k, p) = (s.aside.clone(), k.clone(), p.clone());
        tokio::spawn(async move { aside.get_or_load(&k, &p, loader).await })
    };
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    release.notify_one();
    let v = tokio::time::timeout(Duration::from_secs(5), waiter).await???;
    assert_eq!(v.as_deref(), Some("loaded"));
    assert_eq!(s.aside.stats().loads, 1);
    s.redis.shutdown().await?;
    Ok(())
}

/// The classic race, made deterministic: the reader reads the old row and
/// is held before storing it; the writer updates the source and
/// invalidates; the reader is released. The old row must not be stored.
async fn should_not_store_a_stale_load_after_an_invalidation(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let k = key(&s, "race");
    let p = policy(60);
    let source = Source::new("old");
    let (read_tx, read_rx) = oneshot::channel::<()>();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let gates = Arc::new(Mutex::new(Some((read_tx, go_rx))));
    let loader = {
        let source = source.clone();
        move || {
            let (source, gates) = (source.clone(), gates.clone());
            async move {
                let row = source.read();
                let gate = gates.lock().unwrap().take();
                if let Some((read_tx, go_rx)) = gate {
                    read_tx.send(()).unwrap();
                    go_rx.await.unwrap();
                }
                Ok::<_, SourceError>(row)
            }
        }
    };
    let reader = {
        let (aside, k, p, loader) = (s.aside.clone(), k.clone(), p.clone(), loader.clone());
        tokio::spawn(async move { aside.get_or_load(&k, &p, loader).await })
    };
    read_rx.await?; // the reader holds the old row
    source.set("new");
    assert!(
        s.aside.invalidate(&k).await?,
        "the reader's lease was there"
    );
    go_tx.send(()).unwrap();
    assert_eq!(
        reader.await??.as_deref(),
        Some("old"),
        "the reader returns what it read"
    );
    assert_eq!(s.aside.stats().fills_refused, 1);
    let exists: u64 = s.redis.client().exists(&k).await?;
    assert_eq!(exists, 0, "the old row was not stored");
    let v = s.aside.get_or_load(&k, &p, loader).await?;
    assert_eq!(v.as_deref(), Some("new"));
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_cache_none_for_the_negative_ttl(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let k = key(&s, "missing");
    let source = Source::default();
    let p = LoadPolicy::new(Duration::from_secs(60))
        .with_negative_ttl(Duration::from_secs(5))
        .build()?;
    assert_eq!(
        s.aside
            .get_or_load(&k, &p, source.loader(Duration::ZERO))
            .await?,
        None
    );
    assert_eq!(
        s.aside
            .get_or_load(&k, &p, source.loader(Duration::ZERO))
            .await?,
        None
    );
    assert_eq!(source.reads(), 1);
    assert_eq!(s.aside.stats().negative_hits, 1);
    let ttl: i64 = s.redis.client().pttl(&k).await?;
    assert!(ttl > 0 && ttl <= 5000, "negative entry PTTL {ttl}");
    // without a negative TTL, None is not cached and the lease is removed
    let k2 = key(&s, "missing-uncached");
    let p2 = policy(60);
    assert_eq!(
        s.aside
            .get_or_load(&k2, &p2, source.loader(Duration::ZERO))
            .await?,
        None
    );
    let exists: u64 = s.redis.client().exists(&k2).await?;
    assert_eq!(exists, 0);
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_serve_stale_and_refresh_once_in_the_background(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let k = key(&s, "swr");
    let p = LoadPolicy::new(Duration::from_secs(60))
        .with_soft_ttl(Duration::from_millis(100))
        .with_beta(0.0)
        .build()?;
    let source = Source::new("v1");
    let gate = Arc::new(Notify::new());
    let loader = {
        let (source, gate) = (source.clone(), gate.clone());
        move || {
            let (source, gate) = (source.clone(), gate.clone());
            async move {
                if source.reads() > 0 {
                    gate.notified().await; // hold the refresh
                }
                Ok::<_, SourceError>(source.read())
            }
        }
    };
    assert_eq!(
        s.aside
            .get_or_load(&k, &p, loader.clone())
            .await?
            .as_deref(),
        Some("v1")
    );
    source.set("v2");
    // wait for the soft TTL to pass (by the server's clock): a read then is stale
    eventually("the entry goes stale", Duration::from_secs(5), || {
        let (aside, k, p, loader) = (s.aside.clone(), k.clone(), p.clone(), loader.clone());
        async move {
            let v = aside
                .get_or_load(&k, &p, loader)
                .await
                .map_err(|e| e.to_string())?;
            assert_eq!(
                v.as_deref(),
                Some("v1"),
                "stale value served while refreshing"
            );
            if aside.stats().stale_served > 0 {
                Ok(())
            } else {
                Err("fresh".to_owned())
            }
        }
    })
    .await?;
    for _ in 0..20 {
        let v = s.aside.get_or_load(&k, &p, loader.clone()).await?;
        assert_eq!(v.as_deref(), Some("v1"));
    }
    let stats = s.aside.stats();
    assert_eq!(
        stats.stale_refreshes, 1,
        "one refresh for every stale read: {stats:?}"
    );
    assert!(stats.stale_served >= 21, "{stats:?}");
    gate.notify_one();
    eventually("the refresh lands", Duration::from_secs(5), || {
        let (aside, k, p, loader) = (s.aside.clone(), k.clone(), p.clone(), loader.clone());
        async move {
            match aside
                .get_or_load(&k, &p, loader)
                .await
                .map_err(|e| e.to_string())?
                .as_deref()
            {
                Some("v2") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await?;
    // once it landed, the new entry goes stale 100 ms later and may be
    // refreshed again on a slow machine: only the count while the first
    // refresh was held (above) is exact
    let stats = s.aside.stats();
    assert!(stats.loads >= 2, "{stats:?}");
    assert_eq!(stats.misses, 1, "never a synchronous miss: {stats:?}");
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_keep_the_stale_value_when_a_refresh_fails(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let k = key(&s, "stale-if-error");
    let p = LoadPolicy::new(Duration::from_secs(60))
        .with_soft_ttl(Duration::from_millis(50))
        .with_beta(0.0)
        .build()?;
    let calls = Arc::new(AtomicU32::new(0));
    let loader = {
        let calls = calls.clone();
        move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Ok(Some("good".to_owned()))
                } else {
                    Err(SourceError("down"))
                }
            }
        }
    };
    s.aside.get_or_load(&k, &p, loader.clone()).await?;
    eventually(
        "a refresh fails and the stale value stays",
        Duration::from_secs(5),
        || {
            let (aside, k, p, loader) = (s.aside.clone(), k.clone(), p.clone(), loader.clone());
            async move {
                let v = aside
                    .get_or_load(&k, &p, loader)
                    .await
                    .map_err(|e| e.to_string())?;
                assert_eq!(v.as_deref(), Some("good"));
                if aside.stats().stale_on_error > 0 {
                    Ok(())
                } else {
                    Err("not yet".to_owned())
                }
            }
        },
    )
    .await?;
    assert!(s.aside.stats().load_errors >= 1);
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_refresh_a_hot_key_early(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let k = key(&s, "xfetch");
    let p = LoadPolicy::new(Duration::from_secs(60))
        .with_soft_ttl(Duration::from_millis(400))
        .build()?;
    let source = Source::new("v1");
    let loader = source.loader(Duration::from_millis(50));
    s.aside.get_or_load(&k, &p, loader.clone()).await?;
    eventually("a read refreshes early", Duration::from_secs(10), || {
        let (aside, k, p, loader) = (s.aside.clone(), k.clone(), p.clone(), loader.clone());
        async move {
            aside
                .get_or_load(&k, &p, loader)
                .await
                .map_err(|e| e.to_string())?;
            if aside.stats().early_refreshes > 0 {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        }
    })
    .await?;
    let stats = s.aside.stats();
    assert_eq!(stats.misses, 1, "the hot key never missed: {stats:?}");
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_give_typed_errors_for_foreign_values_and_failed_loads(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let foreign = key(&s, "foreign");
    s.cache
        .set(&foreign, "plain", Duration::from_secs(60))
        .await?;
    let err = s
        .aside
        .get_or_load(
            &foreign,
            &policy(60),
            Source::new("x").loader(Duration::ZERO),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Foreign { .. }), "{err:?}");

    let k = key(&s, "failing");
    let err = s
        .aside
        .get_or_load(&k, &policy(60), || async {
            Err::<Option<String>, _>(SourceError("db down"))
        })
        .await
        .unwrap_err();
    let Error::Load { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(source.downcast_ref::<SourceError>().is_some(), "{err:?}");
    let exists: u64 = s.redis.client().exists(&k).await?;
    assert_eq!(exists, 0, "the failed load's lease was released");

    // a plain Cache::get of an entry is a typed decode error, never garbage
    let entry = key(&s, "entry");
    s.aside
        .get_or_load(&entry, &policy(60), Source::new("v").loader(Duration::ZERO))
        .await?;
    assert!(s.cache.get::<String>(&entry).await.is_err());
    assert!(s.cache.get::<u64>(&entry).await.is_err());
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_write_through_the_source_first(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let k = key(&s, "wt");
    let p = policy(60);
    let source = Source::new("v1");
    // the writer fails: the cache is untouched
    s.aside
        .get_or_load(&k, &p, source.loader(Duration::ZERO))
        .await?;
    let err = s
        .aside
        .write_through(&k, &"v2".to_owned(), &p, WriteMode::Set, async {
            Err::<(), _>(SourceError("refused"))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Load { .. }));
    assert_eq!(
        s.aside
            .get_or_load(&k, &p, source.loader(Duration::ZERO))
            .await?
            .as_deref(),
        Some("v1")
    );
    // Set: the next read is a hit with the new value
    let src = source.clone();
    let outcome = s
        .aside
        .write_through(&k, &"v2".to_owned(), &p, WriteMode::Set, async move {
            src.set("v2");
            Ok::<_, SourceError>(())
        })
        .await?;
    assert_eq!(outcome, WriteOutcome::Cached);
    let reads = source.reads();
    assert_eq!(
        s.aside
            .get_or_load(&k, &p, source.loader(Duration::ZERO))
            .await?
            .as_deref(),
        Some("v2")
    );
    assert_eq!(source.reads(), reads, "served from the cache");
    // Invalidate: the next read loads the source
    let src = source.clone();
    s.aside
        .write_through(
            &k,
            &"v3".to_owned(),
            &p,
            WriteMode::Invalidate,
            async move {
                src.set("v3");
                Ok::<_, SourceError>(())
            },
        )
        .await?;
    assert_eq!(
        s.aside
            .get_or_load(&k, &p, source.loader(Duration::ZERO))
            .await?
            .as_deref(),
        Some("v3")
    );
    assert_eq!(source.reads(), reads + 1);
    s.redis.shutdown().await?;
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_load_once_for_concurrent_misses,
    should_not_strand_waiters_when_the_leader_is_cancelled,
    should_not_store_a_stale_load_after_an_invalidation,
    should_cache_none_for_the_negative_ttl,
    should_serve_stale_and_refresh_once_in_the_background,
    should_keep_the_stale_value_when_a_refresh_fails,
    should_refresh_a_hot_key_early,
    should_give_typed_errors_for_foreign_values_and_failed_loads,
    should_write_through_the_source_first,
);
