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
//!   (`Cache::delete_matching`, SCAN + UNLINK);
//! * `WriteBehind::write` (cache entry + `XADD`, one script) against
//!   `Cache::set` of the same value, and against the same script sent raw
//!   (c=50), interleaved rounds;
//! * write-behind drain: 100,000 entries over 4 streams written by 4
//!   workers to an in-memory writer, against raw `XREADGROUP` + `XACK` of
//!   the same entries by 4 tasks on dedicated connections (median of 3).
//!
//! Run it with `cargo xtask bench patterns`.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aeturnis_cache::{Cache, CacheConfig};
use aeturnis_patterns::{CacheAside, LoadPolicy, Pending, Policy, TagIndex};
use aeturnis_patterns::{WriteBehind, WriteBehindConfig, Writer};
use aeturnis_redis_core::{Redis, RedisConfig, RedisKey};
use aeturnis_testkit::bench::{
    append_records, interleaved_medians, interleaved_rounds, measure, median_pair, side,
    BenchRecord, Sample,
};
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
    records.extend(runtime.block_on(write_behind_write(&url))?);
    records.push(runtime.block_on(write_behind_drain(&url))?);
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

/// The in-memory writer of the write-behind rows: one map insert per entry.
#[derive(Default)]
struct MemWriter {
    rows: Mutex<HashMap<String, String>>,
}

impl Writer for MemWriter {
    type Value = String;
    type Error = Never;

    async fn write_batch(&self, batch: &[Pending<String>]) -> Result<(), Never> {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        for p in batch {
            rows.insert(p.key.clone(), p.value.clone());
        }
        Ok(())
    }
}

/// Removes a write-behind's streams (no group, no entries).
async fn drop_streams<W: Writer>(redis: &Redis, wb: &WriteBehind<W>) -> anyhow::Result<()> {
    use fred::interfaces::KeysInterface;
    for stream in wb.stream_keys() {
        let _: u64 = redis.client().del(stream).await?;
    }
    Ok(())
}

async fn write_behind_write(url: &str) -> anyhow::Result<Vec<BenchRecord>> {
    use fred::interfaces::{ClientLike, LuaInterface};
    use fred::types::{ClusterHash, CustomCommand, Value};
    let cache = connect(url, "bench:patterns:wb:").await?;
    let wb = WriteBehind::new(&cache, WriteBehindConfig::new("w"), MemWriter::default())?;
    let raw = WriteBehind::new(&cache, WriteBehindConfig::new("raw"), MemWriter::default())?;
    let keys = |kind: &str| -> anyhow::Result<Arc<Vec<RedisKey>>> {
        Ok(Arc::new(
            (0..KEYS)
                .map(|i| cache.key(kind).id(i.to_string()).build())
                .collect::<Result<_, _>>()?,
        ))
    };
    let (wb_keys, plain_keys, raw_keys) = (keys("wb")?, keys("plain")?, keys("raw")?);
    // the floor: the same script, sent raw with the same sizes (an entry
    // of 29 + 100 bytes; the value as the codec encodes it)
    let sha: String = cache
        .redis()
        .client()
        .script_load(include_str!(
            "../../crates/patterns/src/write_behind/write.lua"
        ))
        .await?;
    let encoded = fred::bytes::Bytes::from(cache.redis().codec().encode("v", &value())?);
    let entry = fred::bytes::Bytes::from(vec![0xC1u8; 29 + encoded.len()]);
    let ops = 50_000;
    let rounds = interleaved_rounds(vec![
        side(|| {
            let (wb, keys, redis) = (wb.clone(), wb_keys.clone(), cache.redis().clone());
            async move {
                // no workers: the streams only grow; start each run empty
                drop_streams(&redis, &wb).await?;
                measure(50, ops, move |i| {
                    let (wb, keys) = (wb.clone(), keys.clone());
                    async move {
                        wb.write(&keys[i % KEYS], &value()).await?;
                        Ok(())
                    }
                })
                .await
            }
        }),
        side(|| {
            let (cache, keys) = (cache.clone(), plain_keys.clone());
            measure(50, ops, move |i| {
                let (cache, keys) = (cache.clone(), keys.clone());
                async move {
                    cache
                        .set(&keys[i % KEYS], &value(), Duration::from_secs(3600))
                        .await?;
                    Ok(())
                }
            })
        }),
        side(|| {
            let (raw, keys, redis) = (raw.clone(), raw_keys.clone(), cache.redis().clone());
            let (sha, encoded, entry) = (sha.clone(), encoded.clone(), entry.clone());
            async move {
                drop_streams(&redis, &raw).await?;
                measure(50, ops, move |i| {
                    let key = &keys[i % KEYS];
                    let frame = vec![
                        Value::from(sha.as_str()),
                        Value::Integer(2),
                        Value::from(key.as_str()),
                        Value::from(raw.stream_of(key).as_str()),
                        Value::Bytes(entry.clone()),
                        Value::Integer(3_600_000),
                        Value::from(key.as_str()),
                        Value::Bytes(encoded.clone()),
                    ];
                    let client = redis.no_replay();
                    async move {
                        let _: String = client
                            .custom(
                                CustomCommand::new_static("EVALSHA", ClusterHash::FirstKey, false),
                                frame,
                            )
                            .await?;
                        Ok(())
                    }
                })
                .await
            }
        }),
        side(|| {
            let (raw, keys, redis) = (raw.clone(), raw_keys.clone(), cache.redis().clone());
            let (encoded, entry) = (encoded.clone(), entry.clone());
            async move {
                use fred::interfaces::{KeysInterface, StreamsInterface};
                use fred::types::Expiration;
                drop_streams(&redis, &raw).await?;
                measure(50, ops, move |i| {
                    let key = keys[i % KEYS].clone();
                    let stream = raw.stream_of(&key).clone();
                    let (client, entry, encoded) =
                        (redis.no_replay(), entry.clone(), encoded.clone());
                    async move {
                        let set = client.set::<(), _, _>(
                            &key,
                            entry,
                            Some(Expiration::PX(3_600_000)),
                            None,
                            false,
                        );
                        let xadd = client.xadd::<String, _, _, _, _>(
                            &stream,
                            false,
                            None,
                            "*",
                            vec![
                                ("k", Value::from(key.as_str())),
                                ("v", Value::Bytes(encoded)),
                            ],
                        );
                        tokio::try_join!(set, xadd)?;
                        Ok(())
                    }
                })
                .await
            }
        }),
    ])
    .await?;
    let (ours, set) = median_pair(&rounds, 0, 1)?;
    let (two, two_vs_set) = median_pair(&rounds, 3, 1)?;
    let (ours_vs_raw, raw_sample) = median_pair(&rounds, 0, 2)?;
    drop_streams(cache.redis(), &wb).await?;
    drop_streams(cache.redis(), &raw).await?;
    cache.redis().shutdown().await?;
    Ok(vec![
        BenchRecord::new(
            LAYER,
            "WriteBehind::write 100B (cache entry + XADD, one script)",
            50,
            "multi_thread(2)",
            ours,
            "Cache::set (same value)",
            set.ops_per_sec,
        )
        .with_baseline_latency(set),
        BenchRecord::new(
            LAYER,
            "WriteBehind::write 100B (cache entry + XADD, one script)",
            50,
            "multi_thread(2)",
            ours_vs_raw,
            "raw fred EVALSHA of the same script, same sizes (the floor)",
            raw_sample.ops_per_sec,
        )
        .with_baseline_latency(raw_sample),
        BenchRecord::new(
            LAYER,
            "raw fred SET PX + XADD, sent together without a script (context)",
            50,
            "multi_thread(2)",
            two,
            "Cache::set (same value)",
            two_vs_set.ops_per_sec,
        )
        .with_baseline_latency(two_vs_set),
    ])
}

const DRAIN: usize = 100_000;

/// Writes `DRAIN` entries of distinct keys through `wb` (no workers).
async fn fill<W: Writer<Value = String>>(cache: &Cache, wb: &WriteBehind<W>) -> anyhow::Result<()> {
    let keys: Vec<RedisKey> = (0..DRAIN)
        .map(|i| cache.key("drain").id(i.to_string()).build())
        .collect::<Result<_, _>>()?;
    let v = value();
    for chunk in keys.chunks(500) {
        futures::future::try_join_all(chunk.iter().map(|k| wb.write(k, &v))).await?;
    }
    Ok(())
}

/// One drain by 4 workers to an in-memory writer: entries per second.
async fn drain_ours(cache: &Cache, round: usize) -> anyhow::Result<f64> {
    let config =
        WriteBehindConfig::new(&format!("drain{round}")).with_block(Duration::from_millis(100));
    let wb = WriteBehind::new(cache, config, MemWriter::default())?;
    fill(cache, &wb).await?;
    // the workers start reading as `start` returns (it only spawns them
    // after connecting): the raw side's connections are made untimed too
    wb.start().await?;
    let t = Instant::now();
    wb.flush().await?;
    let secs = t.elapsed().as_secs_f64();
    let written = wb.stats().await?.written;
    wb.shutdown().await;
    anyhow::ensure!(written == DRAIN as u64, "wrote {written}");
    anyhow::ensure!(wb.writer().rows.lock().map(|r| r.len()).unwrap_or(0) == DRAIN);
    drop_streams(cache.redis(), &wb).await?;
    Ok(DRAIN as f64 / secs)
}

/// The ids in an `XREADGROUP` answer.
fn ids(value: fred::types::Value) -> Vec<String> {
    use fred::types::Value;
    let entries = |v: Value| -> Vec<String> {
        match v {
            Value::Array(es) => es
                .into_iter()
                .filter_map(|e| match e {
                    Value::Array(mut pair) if !pair.is_empty() => pair.swap_remove(0).as_string(),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    match value {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => entries(pair.swap_remove(1)),
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(m) => m.inner().into_values().flat_map(entries).collect(),
        _ => Vec::new(),
    }
}

/// The same entries read and acknowledged raw (`XREADGROUP COUNT 256` +
/// `XACK`) by 4 tasks, one per stream, on dedicated connections.
async fn drain_raw(cache: &Cache, round: usize) -> anyhow::Result<f64> {
    use fred::interfaces::{ClientLike, StreamsInterface};
    let name = format!("raw{round}");
    let wb = WriteBehind::new(cache, WriteBehindConfig::new(&name), MemWriter::default())?;
    fill(cache, &wb).await?;
    let mut clients = Vec::new();
    for stream in wb.stream_keys() {
        let _: fred::types::Value = cache
            .redis()
            .client()
            .xgroup_create(stream, name.as_str(), "0", true)
            .await?;
        clients.push((stream.clone(), cache.redis().dedicated_client().await?));
    }
    let t = Instant::now();
    let tasks = clients.into_iter().map(|(stream, client)| {
        let group = name.clone();
        tokio::spawn(async move {
            let mut n = 0usize;
            loop {
                let read: fred::types::Value = client
                    .xreadgroup(group.as_str(), "c", Some(256), None, false, &stream, ">")
                    .await?;
                let ids = ids(read);
                if ids.is_empty() {
                    break;
                }
                n += ids.len();
                let _: u64 = client.xack(&stream, group.as_str(), ids).await?;
            }
            let _ = client.quit().await;
            anyhow::Ok(n)
        })
    });
    let mut total = 0;
    for task in futures::future::join_all(tasks).await {
        total += task??;
    }
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(total == DRAIN, "read {total}");
    drop_streams(cache.redis(), &wb).await?;
    Ok(DRAIN as f64 / secs)
}

async fn write_behind_drain(url: &str) -> anyhow::Result<BenchRecord> {
    let cache = connect(url, "bench:patterns:drain:").await?;
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 0..3 {
        // alternate which goes first
        if round % 2 == 0 {
            ours.push(drain_ours(&cache, round).await?);
            raw.push(drain_raw(&cache, round).await?);
        } else {
            raw.push(drain_raw(&cache, round).await?);
            ours.push(drain_ours(&cache, round).await?);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ours, raw) = (median(&mut ours), median(&mut raw));
    cache.redis().shutdown().await?;
    let us = DRAIN as f64 / ours * 1e6;
    Ok(BenchRecord::new(
        LAYER,
        &format!(
            "write-behind drain, {DRAIN} entries, 4 streams, in-memory writer: {ours:.0} entries/s (floor 50,000)"
        ),
        4,
        "multi_thread(2)",
        Sample::new(ours, us, us),
        "raw XREADGROUP COUNT 256 + XACK, 4 tasks",
        raw,
    ))
}
