//! `chaos`: the mixed workload over every layer under injected faults, with
//! each layer's invariant checked at the end (issue 17). Run it with
//! `cargo xtask chaos`, which builds it and writes `docs/reliability.md`.
//!
//! ```text
//! chaos [--minutes N] [--seed S] [--topology standalone|cluster|sentinel|all|every] [--report PATH]
//! ```
//!
//! `--topology all` (the default) is what CI's short mode runs: standalone
//! and cluster; `every` adds the sentinel set, `sentinel` runs it alone.
//! Without `--minutes`, the short mode: every fault kind of the topology
//! once, in an order drawn from the seed (default 17). With `--minutes N`,
//! N minutes per topology of faults drawn at random from the seed. The
//! process exits non-zero when an invariant is broken.
//!
//! | module | what |
//! |---|---|
//! | `env` | the servers (standalone behind the fault proxy, a cluster, a sentinel set), the ACL user, the faults |
//! | `sentinel` | the sentinel set's faults |
//! | `lag` | a killed primary's replication-lag window, measured |
//! | `workload` | one paced worker per activity, through each layer's public API |
//! | `record` | every call's outcome, every fault's window and recovery |
//! | `check` | the invariants |
//! | `report` | the markdown report |
//! | `secrets` | TRACE capture of every log line, scanned for the password |
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test program: a panic is a failure
#![allow(clippy::print_stdout, clippy::print_stderr)] // the run's progress and report

mod check;
mod env;
mod lag;
mod record;
mod report;
mod secrets;
mod sentinel;
mod workload;

use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aeturnis_cache::{Cache, CacheConfig};
use aeturnis_lock::{LockConfig, LockManager};
use aeturnis_patterns::{CacheAside, LoadPolicy, WriteBehind, WriteBehindConfig};
use aeturnis_ratelimit::{Algorithm, FailurePolicy, Quota, RateLimitConfig, RateLimiter};
use aeturnis_session::{SessionConfig, SessionManager};
use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use env::{Env, Topology};
use record::Recorder;
use workload::{Layers, Logs, Rows, Workload};

/// The application's ACL user, its password (searched for in the logs) and
/// its key prefix.
pub(crate) const USER: &str = "chaos";
pub(crate) const PASSWORD: &str = "Chaos-Kestrel-5521-pw";
pub(crate) const PREFIX: &str = "chaos:";
/// The client's command timeout.
pub(crate) const CMD_TIMEOUT: Duration = Duration::from_secs(1);
/// The reconnect ceiling: the longest backoff between reconnect attempts.
pub(crate) const RECONNECT_MAX: Duration = Duration::from_millis(500);
/// Recovery bound after a fault is lifted: the reconnect ceiling + 1 s.
pub(crate) const RECOVERY_BOUND: Duration = Duration::from_millis(1500);
/// A call is hung when it has not answered within this long: three command
/// timeouts (the longest call, `get_or_load` on a miss, makes three round
/// trips) and 1 s.
pub(crate) const HANG_BOUND: Duration = Duration::from_secs(4);
/// The limiter's quota: `LIMIT` per `WINDOW` (sliding log).
pub(crate) const LIMIT: u32 = 20;
pub(crate) const WINDOW: Duration = Duration::from_secs(1);
/// The lock's TTL.
pub(crate) const LOCK_TTL: Duration = Duration::from_secs(2);

/// Panics anywhere in the process (the hook counts them).
static PANICS: AtomicU64 = AtomicU64::new(0);

struct Args {
    minutes: Option<f64>,
    seed: u64,
    topologies: Vec<Topology>,
    report: Option<std::path::PathBuf>,
}

fn parse() -> anyhow::Result<Args> {
    let mut args = Args {
        minutes: None,
        seed: 17,
        topologies: vec![Topology::Standalone, Topology::Cluster],
        report: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--minutes" => {
                let m: f64 = value()?.parse().context("--minutes: a number")?;
                if !(m > 0.0 && m <= 600.0) {
                    bail!("--minutes: between 0 and 600");
                }
                args.minutes = Some(m);
            }
            "--seed" => args.seed = value()?.parse().context("--seed: an integer")?,
            "--topology" => {
                let v = value()?;
                args.topologies = Topology::parse_list(&v).with_context(|| {
                    format!("--topology: standalone, cluster, sentinel, all or every, not {v:?}")
                })?;
            }
            "--report" => args.report = Some(value()?.into()),
            other => bail!(
                "unknown argument {other:?}; usage: chaos [--minutes N] [--seed S] \
                 [--topology standalone|cluster|sentinel|all|every] [--report PATH]"
            ),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        default_hook(info);
    }));
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("chaos: an invariant was broken (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let args = parse()?;
    let scan = secrets::capture(PASSWORD)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for &topology in &args.topologies {
        println!(
            "chaos: {} ({}), seed {}",
            topology.name(),
            args.minutes
                .map_or("short mode: every fault once".to_owned(), |m| format!(
                    "{m} minutes"
                )),
            args.seed
        );
        let result = runtime.block_on(one(topology, &args, &scan))?;
        report::print(&result);
        results.push(result);
    }
    let ok = results.iter().all(|r| r.verdicts.iter().all(|v| v.ok));
    if let Some(path) = &args.report {
        let text = report::markdown(&results, args.seed, args.minutes, &scan);
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("chaos: wrote {}", path.display());
        // the recovery figures, for the chart `cargo xtask chaos` draws
        let json = path.with_extension("json");
        let figures = serde_json::to_string_pretty(&report::recovery_json(&results))?;
        std::fs::write(&json, figures + "\n")
            .with_context(|| format!("writing {}", json.display()))?;
        println!("chaos: wrote {}", json.display());
    }
    Ok(ok)
}

/// One topology's run and its verdicts.
pub(crate) struct TopologyRun {
    pub(crate) topology: Topology,
    pub(crate) seconds: f64,
    pub(crate) rec: Recorder,
    pub(crate) verdicts: Vec<check::Verdict>,
    /// What each data-losing fault lost within its window.
    pub(crate) losses: Vec<check::Loss>,
}

async fn layers(env: &Env) -> anyhow::Result<(Layers, Rows)> {
    let redis = env.connect().await?;
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    let rows = Rows::default();
    let behind = WriteBehind::new(
        &cache,
        WriteBehindConfig::new("chaos")
            .with_block(Duration::from_millis(200))
            .with_claim_idle(Duration::from_secs(2)),
        rows.clone(),
    )?;
    behind.start().await?;
    let layers = Layers {
        aside: CacheAside::new(&cache),
        policy: LoadPolicy::new(Duration::from_secs(600)).build()?,
        behind,
        sessions: SessionManager::new(
            redis.clone(),
            SessionConfig::default()
                .with_max_per_user(NonZeroU32::new(workload::MAX_PER_USER).context("limit")?),
        )?,
        limiter: RateLimiter::new(
            redis.clone(),
            RateLimitConfig::new(
                "chaos",
                Quota::new(NonZeroU32::new(LIMIT).context("limit")?, WINDOW)?,
            )
            .with_algorithm(Algorithm::SlidingLog)
            .with_failure_policy(FailurePolicy::FailClosed),
        )?,
        locks: LockManager::new(redis.clone(), LockConfig::default())?,
        cache,
    };
    Ok((layers, rows))
}

async fn one(topology: Topology, args: &Args, scan: &secrets::Scan) -> anyhow::Result<TopologyRun> {
    // a sentinel set judges liveness by timeouts: one failing over at a time
    let _gate = if topology == Topology::Sentinel {
        Some(aeturnis_testkit::one_failover_at_a_time().await)
    } else {
        None
    };
    let env = Env::start(topology).await?;
    let rec = Arc::new(Recorder::new());
    let (layers, rows) = layers(&env).await?;
    let logs = Arc::new(Logs::default());
    let mut rng = StdRng::seed_from_u64(args.seed);
    let workload = Workload::start(&layers, &rec, &logs, args.seed);

    let probe_key = layers.key("probe", 0);
    let probe = || {
        let (cache, key) = (layers.cache.clone(), probe_key.clone());
        async move {
            match tokio::time::timeout(
                CMD_TIMEOUT,
                cache.set(&key, &1u8, aeturnis_cache::Ttl::Default),
            )
            .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("probe timed out".to_owned()),
            }
        }
    };
    // steady state first
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kinds = topology.kinds();
    let hold = |rng: &mut StdRng| {
        let max = if topology == Topology::Cluster {
            1000
        } else {
            1500
        };
        Duration::from_millis(rng.gen_range(600..=max))
    };
    match args.minutes {
        None => {
            let mut order = kinds.to_vec();
            order.shuffle(&mut rng);
            for kind in order {
                let h = hold(&mut rng);
                env.inject(&rec, kind, h, &mut rng, probe).await;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(500..1000))).await;
            }
        }
        Some(minutes) => {
            let end = Duration::from_secs_f64(minutes * 60.0);
            while rec.now() < end {
                let kind = kinds[rng.gen_range(0..kinds.len())];
                let h = hold(&mut rng);
                env.inject(&rec, kind, h, &mut rng, probe).await;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(1000..3000))).await;
            }
        }
    }
    // steady state last
    tokio::time::sleep(Duration::from_secs(2)).await;
    let panics = workload.finish().await + PANICS.load(Ordering::Relaxed);
    let leaks = scan.leaks.load(Ordering::Relaxed);
    let (ledger, losses) = check::ledger(&rec, &layers, &logs).await;
    let mut verdicts = check::all(&rec, &layers, &logs, &rows, panics, leaks).await;
    verdicts.insert(2, ledger);
    layers.behind.shutdown().await;
    let _ = layers.cache.redis().shutdown().await;
    let seconds = rec.now().as_secs_f64();
    drop(env);
    let rec = Arc::try_unwrap(rec).map_err(|_| anyhow::anyhow!("recorder still shared"))?;
    Ok(TopologyRun {
        topology,
        seconds,
        rec,
        verdicts,
        losses,
    })
}
