//! Cache bench: the typed cache against raw fred doing the same commands with
//! the same bytes, on the same Redis, in one run.
//!
//! * c=50 on a 2-worker runtime, one shared client: typed `get` / `set` of a
//!   100-byte encoded value against raw `GET` / `SET ... PX` of those bytes,
//!   and `mget` of 100 keys against raw `MGET` of the same keys;
//! * c=1 on a current-thread runtime: the same get / set, for p50/p99 latency
//!   next to raw fred's.
//!
//! * the near cache (`near` module): a local hit against `Cache::get`, and a
//!   Zipf(1.0) workload with 1 % writes from a second client.
//!
//! Raw and typed runs alternate (3 rounds); every figure is the median of
//! its 3 runs. Run it with `cargo xtask bench cache`.

#![allow(clippy::print_stdout)]

#[path = "cache_near.rs"]
mod near;

use std::sync::Arc;

use aeturnis_cache::{Cache, CacheConfig, Ttl};
use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::Expiration;
use aeturnis_redis_core::{Redis, RedisConfig, RedisKey};
use aeturnis_testkit::bench::{append_records, measure, BenchRecord, Sample};
use aeturnis_tests::{bench_redis_url, current_thread_runtime, multi_thread_runtime};

const LAYER: &str = "cache";
const KEYS: usize = 1000;
const MGET_KEYS: usize = 100;
const TTL_MS: i64 = 3_600_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Set,
    MGet,
}

/// The same keys and bytes for both sides.
struct Fixture {
    cache: Cache,
    raw: Client,
    keys: Vec<RedisKey>,
    value: String,
    bytes: Bytes,
}

fn main() -> anyhow::Result<()> {
    let url = bench_redis_url()?;
    let mut records = Vec::new();
    let cases: [(usize, usize, &[Op]); 2] = [
        (50, 200_000, &[Op::Get, Op::Set, Op::MGet]),
        (1, 20_000, &[Op::Get, Op::Set]),
    ];
    for (concurrency, ops, kinds) in cases {
        let (runtime, runtime_name) = if concurrency == 1 {
            (current_thread_runtime()?, "current_thread")
        } else {
            (multi_thread_runtime()?, "multi_thread(2)")
        };
        runtime.block_on(async {
            let fixture = Arc::new(fixture(&url).await?);
            for &op in kinds {
                let n = if op == Op::MGet { ops / 10 } else { ops };
                let (raw, typed) = interleaved(&fixture, op, concurrency, n).await?;
                let (case, baseline) = match op {
                    Op::Get => ("typed get 100B", "fred GET (same bytes)"),
                    Op::Set => ("typed set 100B PX", "fred SET PX (same bytes)"),
                    Op::MGet => ("mget 100 keys 100B", "fred MGET 100 keys"),
                };
                let mut record = BenchRecord::new(
                    LAYER,
                    case,
                    concurrency,
                    runtime_name,
                    typed,
                    baseline,
                    raw.ops_per_sec,
                )
                .with_baseline_latency(raw);
                if op == Op::Set {
                    let usage: Option<i64> = fixture
                        .raw
                        .memory_usage(fixture.keys[0].as_str(), None)
                        .await?;
                    if let Some(bytes) = usage {
                        record = record.with_redis_bytes_per_item(bytes as f64);
                    }
                }
                println!(
                    "{LAYER} {:<20} c={concurrency:<3} {runtime_name:<16} {:>9.0} ops/s p50 {:>7.1} µs p99 {:>7.1} µs | {baseline} {:>9.0} ops/s p50 {:>7.1} µs p99 {:>7.1} µs | ratio {:.2}",
                    record.case, record.ops_per_sec, record.p50_us, record.p99_us,
                    raw.ops_per_sec, raw.p50_us, raw.p99_us, record.ratio
                );
                records.push(record);
            }
            fixture.cache.redis().shutdown().await?;
            fixture.raw.quit().await?;
            anyhow::Ok(())
        })?;
    }
    records.extend(multi_thread_runtime()?.block_on(near::rows(&url))?);
    append_records(&records)
}

/// Three rounds of (raw, typed), alternating so both sides see the same
/// machine load; the median run of each side.
async fn interleaved(
    fx: &Arc<Fixture>,
    op: Op,
    concurrency: usize,
    n: usize,
) -> anyhow::Result<(Sample, Sample)> {
    let (mut raw, mut typed) = (Vec::with_capacity(3), Vec::with_capacity(3));
    for _ in 0..3 {
        raw.push(run(Arc::clone(fx), op, false, concurrency, n).await?);
        typed.push(run(Arc::clone(fx), op, true, concurrency, n).await?);
    }
    raw.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    typed.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    Ok((raw[1], typed[1]))
}

async fn fixture(url: &str) -> anyhow::Result<Fixture> {
    let redis = Redis::connect(RedisConfig::from_url(url)?.with_key_prefix("bench:cache:")).await?;
    let cache = Cache::new(redis, CacheConfig::default())?;
    let raw = Client::new(Config::from_url(url)?, None, None, None);
    raw.init().await?;
    let keys: Vec<RedisKey> = (0..KEYS)
        .map(|i| cache.key("item").id(i.to_string()).build())
        .collect::<Result<_, _>>()?;
    // a string whose MessagePack encoding is exactly 100 bytes (str8: 2-byte header)
    let value = "x".repeat(98);
    let bytes = Bytes::from(cache.redis().codec().encode("bench", &value)?);
    anyhow::ensure!(bytes.len() == 100, "encoded value is {} bytes", bytes.len());
    for key in &keys {
        cache.set(key, &value, Ttl::Default).await?;
    }
    Ok(Fixture {
        cache,
        raw,
        keys,
        value,
        bytes,
    })
}

async fn run(
    fx: Arc<Fixture>,
    op: Op,
    typed: bool,
    concurrency: usize,
    n: usize,
) -> anyhow::Result<Sample> {
    measure(concurrency, n, move |i| {
        let fx = Arc::clone(&fx);
        async move {
            let key = &fx.keys[i % KEYS];
            match (op, typed) {
                (Op::Get, true) => {
                    let v: Option<String> = fx.cache.get(key).await?;
                    anyhow::ensure!(v.is_some_and(|v| v.len() == 98), "missing value");
                }
                (Op::Get, false) => {
                    let v: Option<Bytes> = fx.raw.get(key.as_str()).await?;
                    anyhow::ensure!(v.is_some_and(|v| v.len() == 100), "missing value");
                }
                (Op::Set, true) => fx.cache.set(key, &fx.value, Ttl::Default).await?,
                (Op::Set, false) => {
                    fx.raw
                        .set::<(), _, _>(
                            key.as_str(),
                            fx.bytes.clone(),
                            Some(Expiration::PX(TTL_MS)),
                            None,
                            false,
                        )
                        .await?
                }
                (Op::MGet, true) => {
                    let start = (i * MGET_KEYS) % (KEYS - MGET_KEYS);
                    let values: Vec<Option<String>> =
                        fx.cache.mget(&fx.keys[start..start + MGET_KEYS]).await?;
                    anyhow::ensure!(values.iter().all(Option::is_some), "missing value");
                }
                (Op::MGet, false) => {
                    let start = (i * MGET_KEYS) % (KEYS - MGET_KEYS);
                    let keys: Vec<&str> = fx.keys[start..start + MGET_KEYS]
                        .iter()
                        .map(RedisKey::as_str)
                        .collect();
                    let values: Vec<Option<Bytes>> = fx.raw.mget(keys).await?;
                    anyhow::ensure!(values.iter().all(Option::is_some), "missing value");
                }
            }
            Ok(())
        }
    })
    .await
}
