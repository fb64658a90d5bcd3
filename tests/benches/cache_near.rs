//! Near-cache rows of the cache bench (feature `near` of aeturnis-cache).
//!
//! * near hit: `NearCache::get` of a value held locally against
//!   `Cache::get` of the same 100-byte value from Redis, c=50; beside it the
//!   floor: a bare `moka::sync::Cache::get` of the same values in the same
//!   harness against the same `Cache::get` (the most any near cache built on
//!   moka can reach here, harness included);
//! * Zipf(1.0) reads over 100,000 keys, 1 % of the operations writes by a
//!   second client: reads through a near cache against reads through a
//!   plain `Cache`, with the local hit rate and the p99 delay from a write
//!   being sent to its invalidation arriving at the reader.
//!
//! Each pair alternates (3 rounds), median run of each side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aeturnis_cache::near::{NearCache, NearConfig};
use aeturnis_cache::{Cache, CacheConfig, Ttl};
use aeturnis_redis_core::fred::interfaces::TrackingInterface;
use aeturnis_redis_core::{Redis, RedisConfig, RedisKey};
use aeturnis_testkit::bench::{measure, BenchRecord, Sample};
use rand::Rng;

const LAYER: &str = "cache";
const NS: &str = "zone";
const HIT_KEYS: usize = 1000;
const ZIPF_KEYS: usize = 100_000;
const ZIPF_OPS: usize = 200_000;

async fn cache(url: &str) -> anyhow::Result<Cache> {
    let redis = Redis::connect(RedisConfig::from_url(url)?.with_key_prefix("bench:near:")).await?;
    Ok(Cache::new(
        redis,
        CacheConfig::default().with_default_ttl(Duration::from_secs(3600)),
    )?)
}

async fn keys(cache: &Cache, n: usize) -> anyhow::Result<Vec<RedisKey>> {
    let value = "x".repeat(98); // 100 bytes encoded
    let keys: Vec<RedisKey> = (0..n)
        .map(|i| cache.key(NS).id(i.to_string()).build())
        .collect::<Result<_, _>>()?;
    for chunk in keys.chunks(1000) {
        let entries: Vec<(RedisKey, &String)> = chunk.iter().map(|k| (k.clone(), &value)).collect();
        cache.mset(&entries, Ttl::Default).await?;
    }
    Ok(keys)
}

fn median(mut runs: Vec<Sample>) -> Sample {
    runs.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    runs[runs.len() / 2]
}

/// The near rows, on the 2-worker runtime the caller runs.
pub(crate) async fn rows(url: &str) -> anyhow::Result<Vec<BenchRecord>> {
    let mut records = hit_rows(url).await?;
    records.extend(zipf_rows(url).await?);
    Ok(records)
}

async fn hit_rows(url: &str) -> anyhow::Result<Vec<BenchRecord>> {
    // leaked for the process: the per-operation closures copy references
    // instead of bumping shared reference counts, which would weigh on the
    // sub-microsecond side only
    let plain: &'static Cache = Box::leak(Box::new(cache(url).await?));
    let keys: &'static [RedisKey] = Box::leak(keys(plain, HIT_KEYS).await?.into_boxed_slice());
    let near: &'static NearCache = Box::leak(Box::new(
        NearCache::new(cache(url).await?, NearConfig::for_namespaces([NS])).await?,
    ));
    let bare: &'static moka::sync::Cache<RedisKey, Arc<String>> =
        Box::leak(Box::new(moka::sync::Cache::new(HIT_KEYS as u64 * 2)));
    for key in keys {
        bare.insert(key.clone(), Arc::new("x".repeat(98)));
    }
    let (mut redis_runs, mut near_runs, mut bare_runs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        redis_runs.push(
            measure(50, 200_000, move |i| async move {
                let v: Option<String> = plain.get(&keys[i % HIT_KEYS]).await?;
                anyhow::ensure!(v.is_some(), "missing value");
                Ok(())
            })
            .await?,
        );
        near_runs.push(
            measure(50, 2_000_000, move |i| async move {
                let v: Option<String> = near.get(&keys[i % HIT_KEYS]).await?;
                anyhow::ensure!(v.is_some(), "missing value");
                Ok(())
            })
            .await?,
        );
        bare_runs.push(
            measure(50, 2_000_000, move |i| async move {
                let v: Option<String> = bare.get(&keys[i % HIT_KEYS]).map(|v| (*v).clone());
                anyhow::ensure!(v.is_some(), "missing value");
                Ok(())
            })
            .await?,
        );
    }
    let stats = near.stats();
    anyhow::ensure!(stats.entries == HIT_KEYS as u64, "not all held: {stats:?}");
    hit_path(near, keys).await?;
    let (redis_s, near_s, bare_s) = (median(redis_runs), median(near_runs), median(bare_runs));
    let record = BenchRecord::new(
        LAYER,
        "near hit 100B",
        50,
        "multi_thread(2)",
        near_s,
        "Cache::get (Redis) same value",
        redis_s.ops_per_sec,
    )
    .with_baseline_latency(redis_s);
    print_row(&record, &redis_s, "");
    let floor = BenchRecord::new(
        LAYER,
        "near hit floor: bare moka get + clone 100B",
        50,
        "multi_thread(2)",
        bare_s,
        "Cache::get (Redis) same value",
        redis_s.ops_per_sec,
    )
    .with_baseline_latency(redis_s);
    print_row(&floor, &redis_s, "");
    near.shutdown().await?;
    plain.redis().shutdown().await?;
    Ok(vec![record, floor])
}

/// What one hit costs without the harness (no shared counter, no clock
/// per call): one task reading held keys in a tight loop, per read API.
#[allow(clippy::print_stdout)]
async fn hit_path(near: &NearCache, keys: &[RedisKey]) -> anyhow::Result<()> {
    const N: usize = 1_000_000;
    let mut line = String::from("cache near hit path, one task, ns per hit:");
    for api in ["get", "get_shared", "get_bytes"] {
        let started = Instant::now();
        for i in 0..N {
            let key = &keys[i % HIT_KEYS];
            let found = match api {
                "get" => std::hint::black_box(near.get::<String>(key).await?).is_some(),
                "get_shared" => {
                    std::hint::black_box(near.get_shared::<String>(key).await?).is_some()
                }
                _ => std::hint::black_box(near.get_bytes(key).await?).is_some(),
            };
            anyhow::ensure!(found, "missing value");
        }
        let ns = started.elapsed().as_nanos() as f64 / N as f64;
        line.push_str(&format!(" {api} {ns:.0}"));
    }
    println!("{line}");
    Ok(())
}

/// Zipf(1.0) ranks over `n` keys, precomputed so sampling costs nothing
/// during the runs.
fn zipf_ranks(n: usize, samples: usize) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(n);
    let mut sum = 0.0;
    for k in 1..=n {
        sum += 1.0 / k as f64;
        cdf.push(sum);
    }
    let mut rng = rand::thread_rng();
    (0..samples)
        .map(|_| {
            let u = rng.gen::<f64>() * sum;
            cdf.partition_point(|&c| c < u).min(n - 1) as u32
        })
        .collect()
}

type Pending = Arc<Mutex<HashMap<String, Instant>>>;

async fn zipf_rows(url: &str) -> anyhow::Result<Vec<BenchRecord>> {
    let writer = cache(url).await?;
    let keys = keys(&writer, ZIPF_KEYS).await?;
    let z: &'static Zipf = Box::leak(Box::new(Zipf {
        plain: cache(url).await?,
        near: NearCache::new(cache(url).await?, NearConfig::for_namespaces([NS])).await?,
        writer,
        keys,
        ranks: zipf_ranks(ZIPF_KEYS, ZIPF_OPS),
        value: "y".repeat(98),
        pending: Arc::new(Mutex::new(HashMap::new())),
    }));
    let (near, pending) = (&z.near, &z.pending);

    // invalidation delay: write sent -> invalidation at the reader
    let delays = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let listener = {
        let mut rx = near.tracking_client().invalidation_rx();
        let (pending, delays) = (Arc::clone(pending), Arc::clone(&delays));
        tokio::spawn(async move {
            while let Ok(inv) = rx.recv().await {
                let now = Instant::now();
                let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                for key in inv.keys.iter().filter_map(|k| k.as_str()) {
                    if let Some(sent) = p.remove(key) {
                        delays
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(now - sent);
                    }
                }
            }
        })
    };

    let (mut plain_runs, mut near_runs) = (Vec::new(), Vec::new());
    let mut hit_rates = Vec::new();
    for _ in 0..3 {
        plain_runs.push(zipf_run(z, false).await?);
        let before = near.stats();
        near_runs.push(zipf_run(z, true).await?);
        // a write whose invalidation did not come during its run is not
        // matched with one caused by a later run's write
        pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let after = near.stats();
        let (h, m) = (after.hits - before.hits, after.misses - before.misses);
        hit_rates.push(h as f64 / (h + m).max(1) as f64);
    }
    listener.abort();
    let (plain_s, near_s) = (median(plain_runs), median(near_runs));
    hit_rates.sort_by(f64::total_cmp);
    let hit_rate = hit_rates[1];
    let mut d = delays.lock().unwrap_or_else(|e| e.into_inner()).clone();
    d.sort_unstable();
    let p = |q: f64| {
        d.get(((d.len().max(1) - 1) as f64 * q) as usize)
            .map_or(0.0, |x| x.as_secs_f64() * 1e6)
    };
    let record = BenchRecord::new(
        LAYER,
        "near zipf1.0 100k keys 1% writes",
        50,
        "multi_thread(2)",
        near_s,
        "same workload, plain Cache",
        plain_s.ops_per_sec,
    )
    .with_baseline_latency(plain_s);
    print_row(
        &record,
        &plain_s,
        &format!(
            " | local hit rate {:.1} % | invalidation delay (write sent -> arrival) p50 {:.0} µs p99 {:.0} µs over {} writes",
            hit_rate * 100.0,
            p(0.5),
            p(0.99),
            d.len()
        ),
    );
    near.shutdown().await?;
    z.plain.redis().shutdown().await?;
    z.writer.redis().shutdown().await?;
    Ok(vec![record])
}

/// Everything a Zipf run touches, leaked for the process: the closures copy
/// one reference instead of bumping shared reference counts per operation.
struct Zipf {
    plain: Cache,
    near: NearCache,
    writer: Cache,
    keys: Vec<RedisKey>,
    ranks: Vec<u32>,
    value: String,
    pending: Pending,
}

async fn zipf_run(z: &'static Zipf, with_near: bool) -> anyhow::Result<Sample> {
    measure(50, ZIPF_OPS, move |i| async move {
        let key = &z.keys[z.ranks[i % z.ranks.len()] as usize];
        if i % 100 == 99 {
            // 1 %: the other process writes; a write to a key the reader
            // holds (so tracks) must reach it
            if with_near && z.near.is_held(key) {
                let mut p = z.pending.lock().unwrap_or_else(|e| e.into_inner());
                p.insert(key.as_str().to_owned(), Instant::now());
            }
            z.writer.set(key, z.value.as_str(), Ttl::Default).await?;
        } else {
            let v: Option<String> = if with_near {
                z.near.get(key).await?
            } else {
                z.plain.get(key).await?
            };
            anyhow::ensure!(v.is_some(), "missing value");
        }
        Ok(())
    })
    .await
}

#[allow(clippy::print_stdout)]
fn print_row(record: &BenchRecord, baseline: &Sample, extra: &str) {
    println!(
        "{LAYER} {:<34} c=50 {:>10.0} ops/s p50 {:>7.1} µs p99 {:>7.1} µs | {} {:>9.0} ops/s p50 {:>7.1} µs p99 {:>7.1} µs | ratio {:.2}{extra}",
        record.case, record.ops_per_sec, record.p50_us, record.p99_us,
        record.baseline, baseline.ops_per_sec, baseline.p50_us, baseline.p99_us, record.ratio
    );
}
