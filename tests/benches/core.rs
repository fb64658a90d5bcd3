//! Core bench: raw fred GET and SET of 100-byte values against `redis-benchmark`
//! with the same parameters, on the same Redis.
//!
//! One fred `Client` shared by all tasks: c=1 on a current-thread runtime, c=50 on a
//! 2-worker multi-thread runtime, each against `redis-benchmark -c 1|50 -d 100`.
//! Every figure is the median of 3 runs. Run it with `cargo xtask bench core`.

#![allow(clippy::print_stdout)]

use aeturnis_testkit::bench::{
    append_records, measure, median_of_3, median_of_3_blocking, redis_benchmark, BenchRecord,
    Sample,
};
use aeturnis_tests::{
    bench_redis_port, bench_redis_url, current_thread_runtime, multi_thread_runtime,
};
use fred::bytes::Bytes;
use fred::prelude::*;

const LAYER: &str = "core";
const VALUE_SIZE: usize = 100;
/// The key `redis-benchmark -t get|set` uses without `-r`, so both read the same value.
const KEY: &str = "key:__rand_int__";

/// (concurrency, operations per run)
const CASES: [(usize, usize); 2] = [(1, 20_000), (50, 200_000)];

fn main() -> anyhow::Result<()> {
    let url = bench_redis_url()?;
    let port = bench_redis_port()?;
    let mut records = Vec::new();
    for (concurrency, ops) in CASES {
        let (runtime, runtime_name) = if concurrency == 1 {
            (current_thread_runtime()?, "current_thread")
        } else {
            (multi_thread_runtime()?, "multi_thread(2)")
        };
        for command in ["get", "set"] {
            let sample = runtime.block_on(fred_case(&url, command, concurrency, ops))?;
            let baseline = median_of_3_blocking(|| {
                redis_benchmark(port, command, concurrency, ops, VALUE_SIZE)
            })?;
            let record = BenchRecord::new(
                LAYER,
                &format!("{} {VALUE_SIZE}B", command.to_uppercase()),
                concurrency,
                runtime_name,
                sample,
                &format!("redis-benchmark -c {concurrency} -d {VALUE_SIZE}"),
                baseline,
            );
            println!(
                "{LAYER} {:<9} c={concurrency:<3} {runtime_name:<16} {:>9.0} ops/s  p50 {:>7.1} µs  p99 {:>7.1} µs | redis-benchmark {:>9.0} ops/s | ratio {:.2}",
                record.case, record.ops_per_sec, record.p50_us, record.p99_us, baseline, record.ratio
            );
            records.push(record);
        }
    }
    append_records(&records)
}

/// Median of 3 runs of `command` through one shared fred client.
async fn fred_case(
    url: &str,
    command: &str,
    concurrency: usize,
    ops: usize,
) -> anyhow::Result<Sample> {
    let client = Client::new(Config::from_url(url)?, None, None, None);
    client.init().await?;
    let value = Bytes::from(vec![b'x'; VALUE_SIZE]);
    let () = client.set(KEY, value.clone(), None, None, false).await?;
    let sample = median_of_3(|| {
        let client = client.clone();
        let value = value.clone();
        let is_get = command == "get";
        async move {
            measure(concurrency, ops, move |_| {
                let client = client.clone();
                let value = value.clone();
                async move {
                    if is_get {
                        let got: Bytes = client.get(KEY).await?;
                        anyhow::ensure!(got.len() == VALUE_SIZE, "short value");
                    } else {
                        let () = client.set(KEY, value, None, None, false).await?;
                    }
                    Ok(())
                }
            })
            .await
        }
    })
    .await?;
    client.quit().await?;
    Ok(sample)
}
