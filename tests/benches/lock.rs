//! Lock bench: `aeturnis-lock` against raw fred and `rslock`, in one run.
//!
//! 1. **Uncontended**, 50 tasks on a 2-worker runtime, every operation on a
//!    resource of its own: `try_acquire` + `release` with the default
//!    configuration (fencing on: one native `SET NX PX GET`, the fence
//!    issued on demand, here never asked for), the same with
//!    `guard.fence()` asked once (one more script: what a fence costs), and
//!    unfenced (`LockConfig::with_fencing(false)`: the same native acquire),
//!    each against (a) raw fred on the same client, `SET key token NX PX
//!    ttl` + `EVALSHA` compare-and-delete, sent as a custom command
//!    (auto-pipelined like every fred command; what the core's
//!    `Redis::script` sends) and, for the unfenced row, also through fred's
//!    `evalsha` (which fred never pipelines), and (b) `rslock` (`lock` +
//!    `unlock`, one server). Neither baseline issues fencing tokens. A
//!    last row sets raw fred itself against `rslock`: rslock runs on
//!    redis-rs, and that row is the gap between the two client libraries
//!    for the same commands, which no layer over fred can close.
//! 2. **Contended**, 50 tasks on ONE resource: each operation is a waiting
//!    acquire, nothing, a release. Every task's acquire must return (no
//!    timeout) and no two holders may overlap; against `rslock::acquire`
//!    (its retry loop) with a retry delay of [`RSLOCK_RETRY_DELAY`]. A second
//!    row sets the same hand-offs against their floor: a script shaped like
//!    the hand-off's release ([`HANDOFF_FLOOR`]) sent one at a time by one
//!    task, since every hand-off waits for one such reply before the next
//!    holder may enter (a ratio of 1.0 is one round trip per hand-off).
//! 3. **Redlock N=3** acquire latency at c=1 (current-thread runtime) against
//!    a single-instance acquire on the first of the same masters, fenced
//!    (the default) and unfenced (each master gets a bare `SET NX PX`, the
//!    original algorithm). Only the
//!    acquire is timed: the guards are released after each run. Beside it,
//!    the floor for any Redlock client here: raw fred `SET NX PX` sent to
//!    all 3 masters at once and done at the 2nd answer, against the same
//!    command on one master (3 `redis-server`s and the client share 2 cores).
//!
//! The sides compared in a row run interleaved, after one unrecorded
//! warm-up run each: five rounds of one run per side, alternating the
//! order (A B, B A, …; the five uncontended sides 1..5, 5..1, …), and a
//! row reports the round whose ratio is the median
//! (`aeturnis_testkit::bench::interleaved_medians`, `median_pair`), so
//! the machine's drift weighs on both sides of every ratio. Run it with
//! `cargo xtask bench lock`.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aeturnis_lock::{Lock, LockConfig, LockGuard, LockManager, LockToken, Redlock, RedlockConfig};
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_testkit::bench::{
    append_records, interleaved_medians, interleaved_rounds, measure, median_pair, side,
    BenchRecord, BenchSide, Sample,
};
use aeturnis_tests::{
    bench_redis_url, bench_redlock_urls, current_thread_runtime, multi_thread_runtime,
};
use anyhow::{anyhow, bail, ensure};
use fred::bytes_utils::Str;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Value};
use futures::stream::{FuturesUnordered, StreamExt};

const LAYER: &str = "lock";
const TASKS: usize = 50;
/// Lock TTL everywhere: long enough never to expire during a bench.
const TTL: Duration = Duration::from_secs(10);
/// Operations per run (plus a 10 % warm-up).
const UNCONTENDED_OPS: usize = 20_000;
const CONTENDED_OPS: usize = 1_000;
const LATENCY_OPS: usize = 3_000;
/// `rslock` sleeps a random `0..delay` between attempts; aeturnis-lock's
/// waiters back off 1–2, 2–4, 4–8 … ms (capped at 100 ms) and are woken by
/// the release message.
const RSLOCK_RETRY_DELAY: Duration = Duration::from_millis(10);

/// The raw baseline's release: compare-and-delete.
const RAW_RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// What a local hand-off's release script does (read the lock, set it to
/// the next holder; a hand-off issues no fence since fences are issued on
/// demand), sent one at a time: the contended case's floor, since every
/// hand-off waits for that reply.
const HANDOFF_FLOOR: &str = r"
local v = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', 10000)
return v
";

/// Distinguishes the resources of successive runs.
static RUN: AtomicUsize = AtomicUsize::new(0);

fn next_run() -> usize {
    RUN.fetch_add(1, Ordering::Relaxed)
}

fn main() -> anyhow::Result<()> {
    let url = bench_redis_url()?;
    let masters = bench_redlock_urls()?;
    let mut records = Vec::new();
    let runtime = multi_thread_runtime()?;
    records.extend(runtime.block_on(uncontended(&url))?);
    records.extend(runtime.block_on(contended(&url))?);
    drop(runtime);
    records.extend(current_thread_runtime()?.block_on(redlock_latency(&masters))?);
    for r in &records {
        println!(
            "{LAYER} {:<44} c={:<3} {:>8.0} ops/s  p50 {:>8.1} µs  p99 {:>8.1} µs | {:<34} {:>8.0} ops/s | ratio {:.2}",
            r.case, r.concurrency, r.ops_per_sec, r.p50_us, r.p99_us, r.baseline, r.baseline_ops_per_sec, r.ratio
        );
    }
    append_records(&records)
}

async fn connect(url: &str) -> anyhow::Result<Redis> {
    Ok(Redis::connect(RedisConfig::from_url(url)?).await?)
}

fn rslock_error(e: &rslock::LockError) -> anyhow::Error {
    anyhow!("rslock: {e}")
}

/// Case 1: acquire + release on distinct resources, 50 tasks.
async fn uncontended(url: &str) -> anyhow::Result<Vec<BenchRecord>> {
    let redis = connect(url).await?;
    let locks = LockManager::new(redis.clone(), LockConfig::default())?;
    let plain = LockManager::new(redis.clone(), LockConfig::default().with_fencing(false))?;
    let client = redis.client().clone();
    // the digest as shared bytes: each call clones a reference, as the
    // core does, so the baseline pays no copy the core does not
    let sha = Str::from(client.script_load::<String, _>(RAW_RELEASE).await?);
    let rs = rslock::LockManager::new(vec![url.to_owned()]);

    let ours = |locks: LockManager, tag: &'static str, fence: bool| -> BenchSide<'static> {
        Box::new(move || {
            let locks = locks.clone();
            let run = next_run();
            Box::pin(measure(TASKS, UNCONTENDED_OPS, move |i| {
                let locks = locks.clone();
                async move {
                    let guard = locks.try_acquire(&format!("{tag}{run}:{i}"), TTL).await?;
                    if fence {
                        ensure!(guard.fence().await?.get() > 0, "no fence");
                    }
                    guard.release().await?;
                    Ok(())
                }
            }))
        })
    };
    let raw = |pipelined: bool| -> BenchSide<'_> {
        let client = client.clone();
        let sha = sha.clone();
        Box::new(move || {
            let client = client.clone();
            let sha = sha.clone();
            let run = next_run();
            Box::pin(measure(TASKS, UNCONTENDED_OPS, move |i| {
                let client = client.clone();
                let sha = sha.clone();
                async move { raw_acquire_release(&client, &sha, run, i, pipelined).await }
            }))
        })
    };
    let theirs: BenchSide<'_> = Box::new(|| {
        let rs = rs.clone();
        let run = next_run();
        Box::pin(measure(TASKS, UNCONTENDED_OPS, move |i| {
            let rs = rs.clone();
            async move {
                let resource = format!("rslock:u{run}:{i}");
                let lock = rs
                    .lock(resource.as_bytes(), TTL)
                    .await
                    .map_err(|e| rslock_error(&e))?;
                rs.unlock(&lock).await;
                Ok(())
            }
        }))
    });
    let rounds = interleaved_rounds(vec![
        ours(locks.clone(), "u", false),
        ours(plain.clone(), "p", false),
        raw(true),
        raw(false),
        theirs,
        ours(locks.clone(), "f", true),
    ])
    .await?;
    const DEFAULT_SIDE: usize = 0;
    const UNFENCED_SIDE: usize = 1;
    const RAW_PIPED_SIDE: usize = 2;
    const RAW_EVALSHA_SIDE: usize = 3;
    const RSLOCK_SIDE: usize = 4;
    const FENCE_ASKED_SIDE: usize = 5;

    redis.shutdown().await?;
    let runtime = "multi_thread(2)";
    let record = |case: &str, sample: Sample, baseline: &str, base: Sample| {
        BenchRecord::new(
            LAYER,
            case,
            TASKS,
            runtime,
            sample,
            baseline,
            base.ops_per_sec,
        )
        .with_baseline_latency(base)
    };
    const RAW_PIPED: &str = "fred SET NX PX + EVALSHA release (custom, pipelined)";
    const RAW_EVALSHA: &str = "fred SET NX PX + evalsha release (not pipelined)";
    const RSLOCK: &str = "rslock 0.10 lock + unlock";
    const DEFAULT: &str =
        "acquire+release, distinct resources (default: fencing on, fence not asked)";
    const FENCE_ASKED: &str = "acquire+fence()+release, distinct resources (default config)";
    const UNFENCED: &str = "acquire+release, distinct resources (unfenced)";
    let row = |case: &str, a: usize, baseline: &str, b: usize| -> anyhow::Result<BenchRecord> {
        let (sample, base) = median_pair(&rounds, a, b)?;
        Ok(record(case, sample, baseline, base))
    };
    Ok(vec![
        row(DEFAULT, DEFAULT_SIDE, RAW_PIPED, RAW_PIPED_SIDE)?,
        row(DEFAULT, DEFAULT_SIDE, RSLOCK, RSLOCK_SIDE)?,
        row(FENCE_ASKED, FENCE_ASKED_SIDE, RAW_PIPED, RAW_PIPED_SIDE)?,
        row(FENCE_ASKED, FENCE_ASKED_SIDE, RSLOCK, RSLOCK_SIDE)?,
        row(UNFENCED, UNFENCED_SIDE, RAW_PIPED, RAW_PIPED_SIDE)?,
        row(UNFENCED, UNFENCED_SIDE, RAW_EVALSHA, RAW_EVALSHA_SIDE)?,
        row(UNFENCED, UNFENCED_SIDE, RSLOCK, RSLOCK_SIDE)?,
        // the client libraries themselves: rslock runs on redis-rs
        row(
            "raw fred SET NX PX + EVALSHA (pipelined), distinct resources",
            RAW_PIPED_SIDE,
            RSLOCK,
            RSLOCK_SIDE,
        )?,
    ])
}

/// The raw baseline: `SET key token NX PX ttl`, then the compare-and-delete
/// by `EVALSHA`, either as a custom command (auto-pipelined like every
/// other fred command; what the core's `Redis::script` sends) or through
/// fred's `evalsha` (which fred never pipelines).
async fn raw_acquire_release(
    client: &Client,
    sha: &Str,
    run: usize,
    i: usize,
    pipelined: bool,
) -> anyhow::Result<()> {
    let key = format!("raw{}:{run}:{i}", u8::from(pipelined));
    let token = LockToken::random();
    raw_set_nx(client, &key, &token).await?;
    let deleted: i64 = if pipelined {
        raw_evalsha(client, sha, &key, token.as_str()).await?
    } else {
        client
            .evalsha(sha.clone(), key.as_str(), token.as_str())
            .await?
    };
    ensure!(deleted == 1, "raw release did not delete {key}");
    Ok(())
}

/// `EVALSHA sha 1 key arg` as a custom command (auto-pipelined like every
/// other fred command; what the core sends).
async fn raw_evalsha<R: FromValue>(
    client: &Client,
    sha: &Str,
    key: &str,
    arg: &str,
) -> anyhow::Result<R> {
    let slot = aeturnis_redis_core::hash_slot(key);
    Ok(client
        .custom(
            CustomCommand::new_static("EVALSHA", ClusterHash::Custom(slot), false),
            vec![
                Value::String(sha.clone()),
                Value::from(1),
                Value::from(key),
                Value::from(arg),
            ],
        )
        .await?)
}

/// Mutual exclusion and service checks for the contended case.
#[derive(Default)]
struct Exclusion {
    held: AtomicBool,
    served: Mutex<HashMap<tokio::task::Id, usize>>,
}

impl Exclusion {
    fn enter(&self) -> anyhow::Result<()> {
        if self.held.swap(true, Ordering::AcqRel) {
            bail!("two tasks held the contended lock at once");
        }
        if let Ok(mut served) = self.served.lock() {
            *served.entry(tokio::task::id()).or_default() += 1;
        }
        Ok(())
    }

    fn leave(&self) {
        self.held.store(false, Ordering::Release);
    }

    /// (tasks served, fewest and most acquisitions of one task), warm-up included.
    fn summary(&self) -> (usize, usize, usize) {
        let served = self.served.lock().map(|m| m.clone()).unwrap_or_default();
        let min = served.values().copied().min().unwrap_or(0);
        let max = served.values().copied().max().unwrap_or(0);
        (served.len(), min, max)
    }
}

/// Case 2: 50 tasks on one resource, waiting acquire + release.
async fn contended(url: &str) -> anyhow::Result<Vec<BenchRecord>> {
    let redis = connect(url).await?;
    let locks = LockManager::new(
        redis.clone(),
        LockConfig::default().with_wait_timeout(Duration::from_secs(60)),
    )?;
    let mut rs = rslock::LockManager::new(vec![url.to_owned()]);
    rs.set_retry(3, RSLOCK_RETRY_DELAY);

    let handoff_sha = Str::from(
        redis
            .client()
            .script_load::<String, _>(HANDOFF_FLOOR)
            .await?,
    );
    let client = redis.client().clone();
    let rounds = interleaved_rounds(vec![
        side(|| {
            let locks = locks.clone();
            let resource = format!("contended:{}", next_run());
            served("aeturnis-lock", move |check| {
                let (locks, resource) = (locks.clone(), resource.clone());
                async move {
                    let guard = locks.acquire(&resource, TTL).await?;
                    check.enter()?;
                    check.leave();
                    guard.release().await?;
                    Ok(())
                }
            })
        }),
        side(|| {
            let rs = rs.clone();
            let resource = format!("rslock:contended:{}", next_run());
            served("rslock", move |check| {
                let (rs, resource) = (rs.clone(), resource.clone());
                async move {
                    let guard = rs
                        .acquire(resource.as_bytes(), TTL)
                        .await
                        .map_err(|e| rslock_error(&e))?;
                    check.enter()?;
                    check.leave();
                    guard.release().await;
                    Ok(())
                }
            })
        }),
        // the floor: one script round trip at a time, what each hand-off
        // must wait for (the release script's reply) before the next
        // holder may enter
        side(|| {
            let client = client.clone();
            let sha = handoff_sha.clone();
            let key = format!("floor:{}", next_run());
            measure(1, CONTENDED_OPS, move |i| {
                let client = client.clone();
                let sha = sha.clone();
                let key = key.clone();
                async move {
                    let token = format!("{}:{i}", LockToken::random().as_str());
                    let _: Value = raw_evalsha(&client, &sha, &key, &token).await?;
                    Ok(())
                }
            })
        }),
    ])
    .await?;
    let (ours, theirs) = median_pair(&rounds, 0, 1)?;
    let (at_floor, floor) = median_pair(&rounds, 0, 2)?;

    redis.shutdown().await?;
    Ok(vec![
        BenchRecord::new(
            LAYER,
            "acquire (waiting)+release, ONE resource",
            TASKS,
            "multi_thread(2)",
            ours,
            &format!(
                "rslock 0.10 acquire, retry delay {} ms",
                RSLOCK_RETRY_DELAY.as_millis()
            ),
            theirs.ops_per_sec,
        )
        .with_baseline_latency(theirs),
        // hand-offs per second against script round trips per second: 1.0
        // means each hand-off costs exactly one round trip
        BenchRecord::new(
            LAYER,
            "acquire (waiting)+release, ONE resource: hand-offs",
            TASKS,
            "multi_thread(2)",
            at_floor,
            "one hand-off-shaped script at a time, c=1 (the floor)",
            floor.ops_per_sec,
        )
        .with_baseline_latency(floor),
    ])
}

/// One contended run: [`TASKS`] tasks doing [`CONTENDED_OPS`] operations
/// in all, each `op` with the run's exclusion check; prints who was served.
async fn served<F, Fut>(name: &'static str, op: F) -> anyhow::Result<Sample>
where
    F: Fn(Arc<Exclusion>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let check = Arc::new(Exclusion::default());
    let probe = Arc::clone(&check);
    let sample = measure(TASKS, CONTENDED_OPS, move |_| op(Arc::clone(&probe))).await?;
    report_service(name, &check);
    Ok(sample)
}

fn report_service(name: &str, check: &Exclusion) {
    let (tasks, min, max) = check.summary();
    println!(
        "{LAYER} contended {name}: {tasks} tasks served (warm-up and measured runs), {min}..{max} acquisitions each"
    );
}

/// Case 3: Redlock over 3 masters against one of them alone, c=1, acquire
/// only; and the same comparison for raw fred (one `SET NX PX` against the
/// same command sent to all 3 masters at once, done at the 2nd answer), the
/// floor any Redlock client meets on this machine.
async fn redlock_latency(urls: &[String]) -> anyhow::Result<Vec<BenchRecord>> {
    ensure!(
        urls.len() == 3,
        "expected 3 Redlock masters, got {}",
        urls.len()
    );
    let mut masters = Vec::with_capacity(urls.len());
    for url in urls {
        masters.push(connect(url).await?);
    }
    let single = LockManager::new(masters[0].clone(), LockConfig::default())?;
    let redlock = Redlock::new(masters.clone(), RedlockConfig::default())?;
    let plain = LockConfig::default().with_fencing(false);
    let single_plain = LockManager::new(masters[0].clone(), plain.clone())?;
    let redlock_plain = Redlock::new(masters.clone(), RedlockConfig::default().with_lock(plain))?;

    let (redlock_sample, single_sample) = redlock_vs_single(&redlock, &single).await?;
    let (redlock_plain_sample, single_plain_sample) =
        redlock_vs_single(&redlock_plain, &single_plain).await?;

    let raw_clients: Vec<Client> = masters.iter().map(|m| m.client().clone()).collect();
    let (raw_fan_out, raw_single) = interleaved_medians(
        || {
            let clients = raw_clients.clone();
            measure(1, LATENCY_OPS, move |_| {
                let clients = clients.clone();
                async move {
                    let key = format!("rawfan:{}", next_run());
                    // one token for every master, as Redlock sends
                    let token = LockToken::random();
                    let mut pending: FuturesUnordered<_> = clients
                        .iter()
                        .map(|c| raw_set_nx(c, &key, &token))
                        .collect();
                    let mut answered = 0;
                    while let Some(done) = pending.next().await {
                        done?;
                        answered += 1;
                        if answered == 2 {
                            break;
                        }
                    }
                    Ok(())
                }
            })
        },
        || {
            let client = raw_clients[0].clone();
            // numbered by the global counter: the warm-up restarts `i` at 0
            measure(1, LATENCY_OPS, move |_| {
                let client = client.clone();
                async move {
                    let key = format!("rawsingle:{}", next_run());
                    raw_set_nx(&client, &key, &LockToken::random()).await?;
                    Ok(())
                }
            })
        },
    )
    .await?;

    for m in &masters {
        m.shutdown().await?;
    }
    let raw_ratio = raw_fan_out.p50_us / raw_single.p50_us;
    println!(
        "{LAYER} raw fan-out floor: p50 {:.1} µs (3 masters, done at the 2nd answer) vs {:.1} µs (one) = {raw_ratio:.2}×",
        raw_fan_out.p50_us, raw_single.p50_us
    );
    let p50_ratio = redlock_sample.p50_us / single_sample.p50_us;
    println!(
        "{LAYER} redlock: p50 {:.1} µs vs single {:.1} µs = {p50_ratio:.2}× (target ≤ 1.30×); p99 {:.1} vs {:.1} µs",
        redlock_sample.p50_us, single_sample.p50_us, redlock_sample.p99_us, single_sample.p99_us
    );
    let plain_ratio = redlock_plain_sample.p50_us / single_plain_sample.p50_us;
    println!(
        "{LAYER} redlock unfenced: p50 {:.1} µs vs single unfenced {:.1} µs = {plain_ratio:.2}×",
        redlock_plain_sample.p50_us, single_plain_sample.p50_us
    );
    Ok(vec![
        BenchRecord::new(
            LAYER,
            &format!("Redlock N=3 acquire, unfenced (p50 {plain_ratio:.2}× single)"),
            1,
            "current_thread",
            redlock_plain_sample,
            "single-instance acquire, unfenced, same master",
            single_plain_sample.ops_per_sec,
        )
        .with_baseline_latency(single_plain_sample),
        BenchRecord::new(
            LAYER,
            &format!("Redlock N=3 acquire (p50 {p50_ratio:.2}× single)"),
            1,
            "current_thread",
            redlock_sample,
            "single-instance acquire, same master",
            single_sample.ops_per_sec,
        )
        .with_baseline_latency(single_sample),
        BenchRecord::new(
            LAYER,
            &format!("raw fred SET NX PX to 3 masters, 2nd answer (p50 {raw_ratio:.2}× one)"),
            1,
            "current_thread",
            raw_fan_out,
            "raw fred SET NX PX, one master",
            raw_single.ops_per_sec,
        )
        .with_baseline_latency(raw_single),
    ])
}

/// `SET key token NX PX ttl` on one master (the raw fan-out floor).
/// `try_acquire` latency of `redlock` against `single`, interleaved.
async fn redlock_vs_single(
    redlock: &Redlock,
    single: &LockManager,
) -> anyhow::Result<(Sample, Sample)> {
    interleaved_medians(
        || try_acquire_only(redlock.clone()),
        || try_acquire_only(single.clone()),
    )
    .await
}

/// [`acquire_only`] over `try_acquire` of any [`Lock`].
fn try_acquire_only<L: Lock + Clone + 'static>(
    locks: L,
) -> impl std::future::Future<Output = anyhow::Result<Sample>> + Send + 'static {
    acquire_only(move |resource| {
        let locks = locks.clone();
        async move { Ok(locks.try_acquire(&resource, TTL).await?) }
    })
}

/// `SET key token NX PX ttl`, which must succeed.
async fn raw_set_nx(client: &Client, key: &str, token: &LockToken) -> anyhow::Result<()> {
    let ttl_ms = i64::try_from(TTL.as_millis())?;
    let set: Option<String> = client
        .set(
            key,
            token.as_str(),
            Some(Expiration::PX(ttl_ms)),
            Some(SetOptions::NX),
            false,
        )
        .await?;
    ensure!(set.is_some(), "raw SET NX found {key} held");
    Ok(())
}

/// One run timing only `acquire(resource)` on fresh resources; the guards are
/// released after the run.
async fn acquire_only<F, Fut>(acquire: F) -> anyhow::Result<Sample>
where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<LockGuard>> + Send + 'static,
{
    let run = next_run();
    let held = Arc::new(Mutex::new(Vec::with_capacity(LATENCY_OPS * 11 / 10)));
    let keep = Arc::clone(&held);
    // the warm-up restarts `i` at 0 while its guards are still held: number
    // the resources with a counter of this run instead
    let next = Arc::new(AtomicUsize::new(0));
    let sample = measure(1, LATENCY_OPS, move |_| {
        let acquire = acquire.clone();
        let keep = Arc::clone(&keep);
        let n = next.fetch_add(1, Ordering::Relaxed);
        async move {
            let guard = acquire(format!("l{run}:{n}")).await?;
            keep.lock()
                .map_err(|_| anyhow!("guard list poisoned"))?
                .push(guard);
            Ok(())
        }
    })
    .await?;
    let guards = std::mem::take(&mut *held.lock().map_err(|_| anyhow!("guard list poisoned"))?);
    // a few at a time: thousands of Redlock fan-outs at once would run into
    // the per-master timeout
    let mut releases = tokio::task::JoinSet::new();
    for guard in guards {
        if releases.len() >= TASKS {
            if let Some(released) = releases.join_next().await {
                released??;
            }
        }
        releases.spawn(guard.release());
    }
    while let Some(released) = releases.join_next().await {
        released??;
    }
    Ok(sample)
}
