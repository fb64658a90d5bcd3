//! Patterns bench: what `aeturnis-patterns` adds over the cache it sits on,
//! measured in one run against the same Redis.
//!
//! * `get_or_load` hit path against `Cache::get` of the same value (c=50 on
//!   2 workers, c=1 on a current-thread runtime), interleaved rounds;
//! * stampede: 1,000 concurrent misses of one key with a 20 ms loader, in
//!   one process and across 4 (each its own connection and `CacheAside`,
//!   with the lease wait): loader calls and the waiters' p50/p99, against
//!   naive cache-aside (`get`, load, `set`: every miss loads);
//! * early refresh: a hot key read at about 5,000 reads/s for 20 soft
//!   expiries with a 10 ms loader: synchronous misses and early refreshes,
//!   against the same reads without early refresh or soft TTL (a plain TTL);
//! * tag invalidation of 10,000 keys against deleting them by pattern
//!   (`Cache::delete_matching`, SCAN + UNLINK).
//!
//! Run it with `cargo xtask bench patterns`.

#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aeturnis_cache::{Cache, CacheConfig};
use aeturnis_patterns::{CacheAside, LoadPolicy, Policy, TagIndex};
use aeturnis_redis_core::{Redis, RedisConfig, RedisKey};
use aeturnis_testkit::bench::{append_records, interleaved_medians, measure, BenchRecord, Sample};
use aeturnis_tests::{bench_redis_url, current_thread_runtime, multi_thread_runtime};

const LAYER: &str = "patterns";
const KEYS: usize = 1000;

#[derive(Debug, thiserror::Error)]
#[error("never fails")]
struct Never;

fn main() -> anyhow::Result<()> {
    let url = bench_redis_url()?;
    let mut records = Vec::new();
    for (concurrency, ops) in [(50usize, 200_000usize), (1, 20_000)] {
        let (runtime, name) = if concurrency == 1 {
            (current_thread_runtime()?, "current_thread")
        } else {
            (multi_thread_runtime()?, "multi_thread(2)")
        };
        records.push(runtime.block_on(hit_path(&url, concurrency, ops, name))?);
    }
    let runtime = multi_thread_runtime()?;
    records.extend(runtime.block_on(stampede(&url))?);
    records.push(runtime.block_on(early_refresh(&url))?);
    records.push(runtime.block_on(tag_invalidation(&url))?);
    for r in &records {
        println!(
            "{LAYER} {:<70} c={:<4} {:>9.0} ops/s p50 {:>8.1} µs p99 {:>8.1} µs | {} {:>9.0} | ratio {:.2}",
            r.case, r.concurrency, r.ops_per_sec, r.p50_us, r.p99_us, r.baseline, r.baseline_ops_per_sec, r.ratio
        );
    }
    append_records(&records)
}

async fn connect(url: &str, prefix: &str) -> anyhow::Result<Cache> {
    let redis = Redis::connect(RedisConfig::from_url(url)?.with_key_prefix(prefix)).await?;
    Ok(Cache::new(redis, CacheConfig::default())?)
}

fn value() -> String {
    "x".repeat(98)
}

async fn hit_path(
    url: &str,
    concurrency: usize,
    ops: usize,
    runtime: &str,
) -> anyhow::Result<BenchRecord> {
    let cache = connect(url, "bench:patterns:hit:").await?;
    let aside = CacheAside::<String>::new(&cache);
    let policy = LoadPolicy::new(Duration::from_secs(3600)).build()?;
    let aside_keys: Vec<RedisKey> = (0..KEYS)
        .map(|i| cache.key("aside").id(i.to_string()).build())
        .collect::<Result<_, _>>()?;
    let plain_keys: Vec<RedisKey> = (0..KEYS)
        .map(|i| cache.key("plain").id(i.to_string()).build())
        .collect::<Result<_, _>>()?;
    for (a, p) in aside_keys.iter().zip(&plain_keys) {
        aside
            .get_or_load(a, &policy, || async { Ok::<_, Never>(Some(value())) })
            .await?;
        cache.set(p, &value(), Duration::from_secs(3600)).await?;
    }
    let (aside_keys, plain_keys) = (Arc::new(aside_keys), Arc::new(plain_keys));
    let (ours, base) = interleaved_medians(
        || {
            let (aside, keys, policy) = (aside.clone(), aside_keys.clone(), policy.clone());
            measure(concurrency, ops, move |i| {
                let (aside, keys, policy) = (aside.clone(), keys.clone(), policy.clone());
                async move {
                    let v = aside
                        .get_or_load(&keys[i % KEYS], &policy, || async {
                            Err::<Option<String>, _>(Never)
                        })
                        .await?;
                    anyhow::ensure!(v.is_some_and(|v| v.len() == 98), "missing value");
                    Ok(())
                }
            })
        },
        || {
            let (cache, keys) = (cache.clone(), plain_keys.clone());
            measure(concurrency, ops, move |i| {
                let (cache, keys) = (cache.clone(), keys.clone());
                async move {
                    let v: Option<String> = cache.get(&keys[i % KEYS]).await?;
                    anyhow::ensure!(v.is_some_and(|v| v.len() == 98), "missing value");
                    Ok(())
                }
            })
        },
    )
    .await?;
    // every measured read was a hit: none reached the (failing) loader
    anyhow::ensure!(aside.stats().load_errors == 0, "a measured read missed");
    cache.redis().shutdown().await?;
    Ok(BenchRecord::new(
        LAYER,
        "get_or_load hit 100B",
        concurrency,
        runtime,
        ours,
        "Cache::get (same value)",
        base.ops_per_sec,
    )
    .with_baseline_latency(base))
}

/// 1,000 concurrent reads of one missing key spread over the readers;
/// returns the loader calls and the reads' throughput and latencies.
async fn misses(
    caches: &[Cache],
    policy: &Policy,
    naive: bool,
    key: &RedisKey,
) -> anyhow::Result<(u32, Sample)> {
    let loads = Arc::new(AtomicU32::new(0));
    let asides: Vec<CacheAside<String>> = caches.iter().map(CacheAside::new).collect();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(1000);
    for i in 0..1000usize {
        let (aside, cache) = (
            asides[i % asides.len()].clone(),
            caches[i % caches.len()].clone(),
        );
        let (loads, key, policy) = (loads.clone(), key.clone(), policy.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let loader = move || {
                let loads = loads.clone();
                async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok::<_, Never>(Some(value()))
                }
            };
            if naive {
                let hit: Option<String> = cache.get(&key).await?;
                if hit.is_none() {
                    let v = loader().await?.unwrap_or_default();
                    cache.set(&key, &v, Duration::from_secs(60)).await?;
                }
            } else {
                let v = aside.get_or_load(&key, &policy, loader).await?;
                anyhow::ensure!(v.is_some(), "no value");
            }
            anyhow::Ok(t.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(1000);
    for t in tasks {
        latencies.push(t.await??);
    }
    Ok((
        loads.load(Ordering::SeqCst),
        Sample::from_latencies(latencies, started.elapsed()),
    ))
}

async fn stampede(url: &str) -> anyhow::Result<Vec<BenchRecord>> {
    let mut caches = Vec::new();
    for _ in 0..4 {
        caches.push(connect(url, "bench:patterns:stampede:").await?);
    }
    let policy = LoadPolicy::new(Duration::from_secs(60))
        .with_lease_wait(Duration::from_secs(5))
        .build()?;
    let mut records = Vec::new();
    for (processes, round) in [(1usize, 0u32), (4, 1)] {
        let key = caches[0].key("stampede").id(round.to_string()).build()?;
        let naive_key = caches[0].key("naive").id(round.to_string()).build()?;
        let (loads, ours) = misses(&caches[..processes], &policy, false, &key).await?;
        let (naive_loads, naive) = misses(&caches[..processes], &policy, true, &naive_key).await?;
        let case = format!(
            "stampede: 1000 misses, 20 ms loader, {processes} process(es): {loads} load(s) (naive: {naive_loads})"
        );
        records.push(
            BenchRecord::new(
                LAYER,
                &case,
                1000,
                "multi_thread(2)",
                ours,
                "naive cache-aside (get, load, set)",
                naive.ops_per_sec,
            )
            .with_baseline_latency(naive),
        );
        anyhow::ensure!(loads == 1, "{processes} process(es): {loads} loads");
    }
    for cache in caches {
        cache.redis().shutdown().await?;
    }
    Ok(records)
}

/// About 5,000 reads/s of one hot key for 20 soft expiries (200 ms soft
/// TTL, 10 ms loader): synchronous misses with early refresh and
/// stale-while-revalidate against a plain 200 ms TTL.
async fn hot_key_reads(
    cache: &Cache,
    policy: &Policy,
    key: &RedisKey,
) -> anyhow::Result<(CacheAside<String>, Sample)> {
    let aside = CacheAside::<String>::new(cache);
    // one read fills the key first, so the misses counted after it are the
    // ones expiry causes (not the cold start's concurrent first reads)
    aside
        .get_or_load(key, policy, || async { Ok::<_, Never>(Some(value())) })
        .await?;
    let reads = 20_000usize;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(reads);
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    for _ in 0..reads / 10 {
        tick.tick().await;
        let batch = (0..10).map(|_| {
            let (aside, key, policy) = (aside.clone(), key.clone(), policy.clone());
            async move {
                let t = Instant::now();
                aside
                    .get_or_load(&key, &policy, || async {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Ok::<_, Never>(Some(value()))
                    })
                    .await?;
                anyhow::Ok(t.elapsed())
            }
        });
        for d in futures::future::try_join_all(batch).await? {
            latencies.push(d);
        }
    }
    Ok((aside, Sample::from_latencies(latencies, started.elapsed())))
}

async fn early_refresh(url: &str) -> anyhow::Result<BenchRecord> {
    let cache = connect(url, "bench:patterns:xfetch:").await?;
    let xfetch = LoadPolicy::new(Duration::from_secs(60))
        .with_soft_ttl(Duration::from_millis(200))
        .build()?;
    let plain = LoadPolicy::new(Duration::from_millis(200))
        .with_beta(0.0)
        .build()?;
    let (ours, sample) = hot_key_reads(&cache, &xfetch, &cache.key("hot").id("x").build()?).await?;
    let (base, base_sample) =
        hot_key_reads(&cache, &plain, &cache.key("hot").id("plain").build()?).await?;
    let (s, b) = (ours.stats(), base.stats());
    let expiries = (20_000.0 / sample.ops_per_sec * 5.0).round();
    let case = format!(
        "hot key ~5000 reads/s, {expiries} soft expiries: sync misses {} (plain TTL: {}), early refreshes {}, stale served {}",
        s.misses.saturating_sub(1), b.misses.saturating_sub(1), s.early_refreshes, s.stale_served
    );
    cache.redis().shutdown().await?;
    Ok(BenchRecord::new(
        LAYER,
        &case,
        10,
        "multi_thread(2)",
        sample,
        "same reads, plain 200 ms TTL",
        base_sample.ops_per_sec,
    )
    .with_baseline_latency(base_sample))
}

async fn tag_invalidation(url: &str) -> anyhow::Result<BenchRecord> {
    let cache = connect(url, "bench:patterns:tags:").await?;
    let tags = TagIndex::new(&cache);
    let n = 10_000usize;
    let write = |kind: &'static str| {
        let (cache, tags) = (cache.clone(), tags.clone());
        async move {
            let keys: Vec<RedisKey> = (0..n)
                .map(|i| cache.key(kind).id(i.to_string()).build())
                .collect::<Result<_, _>>()?;
            let tag = [kind];
            for chunk in keys.chunks(1000) {
                let writes = chunk
                    .iter()
                    .map(|k| tags.set_tagged(k, "v", Duration::from_secs(600), &tag));
                futures::future::try_join_all(writes).await?;
            }
            anyhow::Ok(())
        }
    };
    let one = |elapsed: Duration| {
        let us = elapsed.as_secs_f64() * 1e6;
        Sample::new(n as f64 / elapsed.as_secs_f64(), us, us)
    };
    write("tagged").await?;
    let t = Instant::now();
    let removed = tags.invalidate_tag("tagged").await?;
    let ours = one(t.elapsed());
    anyhow::ensure!(removed == n as u64, "removed {removed}");
    write("bypattern").await?;
    let t = Instant::now();
    let deleted = cache
        .delete_matching(cache.pattern("bypattern").any())
        .await?;
    let base = one(t.elapsed());
    anyhow::ensure!(deleted == n as u64, "deleted {deleted}");
    cache.redis().shutdown().await?;
    Ok(BenchRecord::new(
        LAYER,
        &format!(
            "invalidate_tag, 10,000 keys ({:.1} ms; by pattern {:.1} ms)",
            ours.p50_us / 1e3,
            base.p50_us / 1e3
        ),
        1,
        "multi_thread(2)",
        ours,
        "Cache::delete_matching (SCAN + UNLINK)",
        base.ops_per_sec,
    ))
}
