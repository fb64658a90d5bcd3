//! Measuring helpers for `cargo xtask bench` targets.
//!
//! A bench target measures a case with [`measure`] (usually through [`median_of_3`]),
//! measures its baseline the same way or with [`redis_benchmark`], and appends
//! [`BenchRecord`]s with [`append_records`]. xtask merges them into
//! `target/bench/results.json` and the table in `docs/bench/results.md`.

use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;

/// Environment variable naming the records file. Default: `target/bench/records.jsonl`
/// in the workspace.
pub const OUT_ENV: &str = "AETURNIS_BENCH_OUT";

/// Throughput and latency of one measured run.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Sample {
    /// Completed operations per second over the whole run.
    pub ops_per_sec: f64,
    /// Median latency of one operation, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency of one operation, in microseconds.
    pub p99_us: f64,
}

impl Sample {
    /// A sample from its three figures.
    #[must_use]
    pub fn new(ops_per_sec: f64, p50_us: f64, p99_us: f64) -> Sample {
        Sample {
            ops_per_sec,
            p50_us,
            p99_us,
        }
    }

    /// A sample from the latencies of calls that together took `elapsed`
    /// (for runs [`measure`] does not fit, such as one burst of calls that
    /// must all start at once).
    #[must_use]
    pub fn from_latencies(
        mut latencies: Vec<std::time::Duration>,
        elapsed: std::time::Duration,
    ) -> Sample {
        latencies.sort();
        let us = |i: usize| latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6);
        let n = latencies.len();
        Sample {
            ops_per_sec: n as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
            p50_us: us(n / 2),
            p99_us: us(n * 99 / 100),
        }
    }
}

/// Runs `total_ops` calls of `op(i)` (i = 0..total_ops) spread over `concurrency`
/// tasks on the current runtime, after a warm-up of `total_ops / 10` calls (at least
/// `concurrency`), and reports throughput and per-call latency.
///
/// # Errors
/// Fails with the first error an operation returns, or when a task panics.
pub async fn measure<F, Fut>(concurrency: usize, total_ops: usize, op: F) -> anyhow::Result<Sample>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let concurrency = concurrency.max(1);
    let warmup = (total_ops / 10).max(concurrency);
    run(concurrency, warmup, op.clone()).await?;
    let started = Instant::now();
    let mut latencies = run(concurrency, total_ops, op).await?;
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok(Sample {
        ops_per_sec: total_ops as f64 / elapsed,
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
    })
}

/// Latencies in nanoseconds of `total` calls spread over `concurrency` tasks.
async fn run<F, Fut>(concurrency: usize, total: usize, op: F) -> anyhow::Result<Vec<u64>>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total / concurrency + 1);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok(latencies);
                }
                let start = Instant::now();
                op(i).await?;
                latencies.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
            }
        }));
    }
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await.context("a bench task panicked")??);
    }
    Ok(all)
}

fn percentile(sorted_nanos: &[u64], q: f64) -> f64 {
    if sorted_nanos.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_nanos.len() - 1) as f64 * q).round() as usize;
    sorted_nanos[rank.min(sorted_nanos.len() - 1)] as f64 / 1000.0
}

/// Runs `run` three times and returns the run with the median throughput.
///
/// # Errors
/// Fails with the first failing run's error.
pub async fn median_of_3<F, Fut>(mut run: F) -> anyhow::Result<Sample>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Sample>>,
{
    let mut samples = Vec::with_capacity(3);
    for _ in 0..3 {
        samples.push(run().await?);
    }
    Ok(median(samples))
}

/// Rounds [`interleaved_medians`] and [`interleaved_rounds`] measure.
pub const ROUNDS: usize = 5;

/// Measures a case (`a`) and its baseline (`b`) in [`ROUNDS`] rounds, each
/// one run of both, alternating which goes first (A B, B A, A B, …), after
/// one unrecorded warm-up run of each; returns the pair `(a, b)` of the
/// round whose ratio `a ÷ b` is the median.
///
/// On a shared machine whose speed drifts over a bench run (a VM with busy
/// neighbours: on the bench machine two back-to-back runs of the same code
/// differed by up to 30 %), runs of one side followed by runs of the other
/// put the two sides in different conditions. The two runs of a round are
/// adjacent in time, so their ratio is taken under the same conditions;
/// alternating the order cancels what going first or second does, and the
/// median round drops the rounds a burst of noise hit.
///
/// # Errors
/// Fails with the first failing run's error.
pub async fn interleaved_medians<'a, FA, FutA, FB, FutB>(
    a: FA,
    b: FB,
) -> anyhow::Result<(Sample, Sample)>
where
    FA: FnMut() -> FutA + 'a,
    FutA: Future<Output = anyhow::Result<Sample>> + Send + 'static,
    FB: FnMut() -> FutB + 'a,
    FutB: Future<Output = anyhow::Result<Sample>> + Send + 'static,
{
    let rounds = interleaved_rounds(vec![side(a), side(b)]).await?;
    median_pair(&rounds, 0, 1)
}

/// A side of [`interleaved_rounds`]: starts one measured run.
pub type BenchSide<'a> =
    Box<dyn FnMut() -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<Sample>> + Send>> + 'a>;

/// Wraps a closure that starts a measured run as a [`BenchSide`].
pub fn side<'a, F, Fut>(mut run: F) -> BenchSide<'a>
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = anyhow::Result<Sample>> + Send + 'static,
{
    Box::new(move || Box::pin(run()))
}

/// [`interleaved_medians`] for any number of sides compared with each
/// other in several rows: after one unrecorded warm-up run of each,
/// [`ROUNDS`] rounds of one run per side, every other round in reverse
/// order (0 1 2, 2 1 0, …). Returns the samples by round (`[round][side]`,
/// sides in the order given); [`median_pair`] picks a row's figures.
///
/// # Errors
/// Fails with the first failing run's error.
pub async fn interleaved_rounds(mut sides: Vec<BenchSide<'_>>) -> anyhow::Result<Vec<Vec<Sample>>> {
    let n = sides.len();
    for side in &mut sides {
        side().await?;
    }
    let mut rounds = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let mut samples: Vec<Option<Sample>> = vec![None; n];
        for k in 0..n {
            let i = if round % 2 == 1 { n - 1 - k } else { k };
            samples[i] = Some(sides[i]().await?);
        }
        rounds.push(samples.into_iter().flatten().collect());
    }
    Ok(rounds)
}

/// From [`interleaved_rounds`]' output, the pair `(side a, side b)` of the
/// round whose ratio `a ÷ b` is the median (as [`interleaved_medians`]).
///
/// # Errors
/// Fails when a side index is out of range or there are no rounds.
pub fn median_pair(rounds: &[Vec<Sample>], a: usize, b: usize) -> anyhow::Result<(Sample, Sample)> {
    let mut pairs = rounds
        .iter()
        .map(|r| Some((*r.get(a)?, *r.get(b)?)))
        .collect::<Option<Vec<_>>>()
        .context("median_pair: no such side")?;
    if pairs.is_empty() {
        bail!("median_pair: no rounds");
    }
    let ratio = |(x, y): &(Sample, Sample)| x.ops_per_sec / y.ops_per_sec.max(f64::MIN_POSITIVE);
    pairs.sort_by(|p, q| ratio(p).total_cmp(&ratio(q)));
    Ok(pairs[pairs.len() / 2])
}

fn median(mut samples: Vec<Sample>) -> Sample {
    samples.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    samples[samples.len() / 2]
}

/// [`median_of_3`] for blocking baselines such as [`redis_benchmark`].
///
/// # Errors
/// Fails with the first failing run's error.
pub fn median_of_3_blocking(mut run: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut values = [run()?, run()?, run()?];
    values.sort_by(f64::total_cmp);
    Ok(values[1])
}

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BenchRecord {
    /// Layer: `core`, `cache`, `session`, `lock`, `ratelimit`, `patterns` or `tower`.
    pub layer: String,
    /// What was measured, e.g. `GET 100B`.
    pub case: String,
    /// Concurrent tasks (or clients, for the baseline).
    pub concurrency: usize,
    /// Tokio runtime flavour, e.g. `current_thread` or `multi_thread(2)`.
    pub runtime: String,
    /// Throughput of the case.
    pub ops_per_sec: f64,
    /// Median latency of the case, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency of the case, in microseconds.
    pub p99_us: f64,
    /// What the case is compared with, e.g. `redis-benchmark -c 50 -d 100`.
    pub baseline: String,
    /// Throughput of the baseline.
    pub baseline_ops_per_sec: f64,
    /// `ops_per_sec / baseline_ops_per_sec`: higher is better.
    pub ratio: f64,
    /// Median latency of the baseline, when it was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_p50_us: Option<f64>,
    /// 99th percentile latency of the baseline, when it was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_p99_us: Option<f64>,
    /// Redis memory per stored item (`MEMORY USAGE`), where meaningful.
    pub redis_bytes_per_item: Option<f64>,
}

impl BenchRecord {
    /// A record comparing `sample` with a baseline throughput; the ratio is computed.
    pub fn new(
        layer: &str,
        case: &str,
        concurrency: usize,
        runtime: &str,
        sample: Sample,
        baseline: &str,
        baseline_ops_per_sec: f64,
    ) -> BenchRecord {
        BenchRecord {
            layer: layer.to_owned(),
            case: case.to_owned(),
            concurrency,
            runtime: runtime.to_owned(),
            ops_per_sec: sample.ops_per_sec,
            p50_us: sample.p50_us,
            p99_us: sample.p99_us,
            baseline: baseline.to_owned(),
            baseline_ops_per_sec,
            ratio: if baseline_ops_per_sec > 0.0 {
                sample.ops_per_sec / baseline_ops_per_sec
            } else {
                0.0
            },
            baseline_p50_us: None,
            baseline_p99_us: None,
            redis_bytes_per_item: None,
        }
    }

    /// Adds the baseline's latencies.
    #[must_use]
    pub fn with_baseline_latency(mut self, baseline: Sample) -> BenchRecord {
        self.baseline_p50_us = Some(baseline.p50_us);
        self.baseline_p99_us = Some(baseline.p99_us);
        self
    }

    /// Adds Redis memory per stored item.
    #[must_use]
    pub fn with_redis_bytes_per_item(mut self, bytes: f64) -> BenchRecord {
        self.redis_bytes_per_item = Some(bytes);
        self
    }
}

/// Runs `redis-benchmark -p PORT -t TEST -c CLIENTS -n REQUESTS -d DATA_SIZE --csv -q`
/// and returns its requests per second.
///
/// # Errors
/// Fails when redis-benchmark fails or its CSV has no line for `test`.
pub fn redis_benchmark(
    port: u16,
    test: &str,
    clients: usize,
    requests: usize,
    data_size: usize,
) -> anyhow::Result<f64> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", test])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-d", &data_size.to_string(), "--csv", "-q"])
        .output()
        .context("running redis-benchmark")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "redis-benchmark failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_csv(&stdout, test)
        .with_context(|| format!("no {test} line in redis-benchmark output:\n{stdout}"))
}

/// `"GET","123456.79",...` → 123456.79 for test `get`.
fn parse_csv(csv: &str, test: &str) -> Option<f64> {
    csv.lines().find_map(|line| {
        let mut fields = line.split(',').map(|f| f.trim_matches('"'));
        let name = fields.next()?;
        if !name.eq_ignore_ascii_case(test) {
            return None;
        }
        fields.next()?.parse().ok()
    })
}

/// Appends records, one JSON object a line, to `$AETURNIS_BENCH_OUT` or
/// `target/bench/records.jsonl` in the workspace.
///
/// # Errors
/// Fails when the file cannot be written.
pub fn append_records(records: &[BenchRecord]) -> anyhow::Result<()> {
    let path = std::env::var_os(OUT_ENV).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/records.jsonl"),
        PathBuf::from,
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut text = String::new();
    for record in records {
        text.push_str(&serde_json::to_string(record)?);
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_redis_benchmark_csv() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\"\n\"GET\",\"81234.56\",\"0.3\"\n";
        assert_eq!(parse_csv(csv, "get"), Some(81234.56));
        assert_eq!(parse_csv(csv, "set"), None);
    }

    #[test]
    fn should_pick_percentiles_from_sorted_latencies() {
        let nanos: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&nanos, 0.5), 51.0);
        assert_eq!(percentile(&nanos, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[tokio::test]
    async fn should_count_every_operation() -> anyhow::Result<()> {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let sample = measure(4, 1000, move |_| {
            let calls = Arc::clone(&counted);
            async move {
                calls.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        })
        .await?;
        // 1000 measured + 100 warm-up
        assert_eq!(calls.load(Ordering::Relaxed), 1100);
        assert!(sample.ops_per_sec > 0.0);
        Ok(())
    }
}
