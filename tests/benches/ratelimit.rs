//! Rate-limit bench: each algorithm's `check` against raw fred sending
//! `EVALSHA` of the same Lua with the same arguments, on the same Redis, in
//! one run; GCRA against the sliding log; Redis bytes per limiter key.
//!
//! * c=50 on a 2-worker runtime, one shared client, over 1,000 distinct keys
//!   and over one hot key. No request is denied (the limit is far above the
//!   load), so every check does its full write.
//! * Baseline "fred EVALSHA (custom, pipelined)": `Client::custom` with
//!   `EVALSHA sha 1 key ARGV...` — the same frame the core's
//!   `Redis::script` sends, auto-pipelined like every other fred command,
//!   with the same arguments the limiter sends (the sliding log: a fresh
//!   UUID per call; the counters take no request id). fred's own
//!   `LuaInterface::evalsha` is never pipelined (fred treats `EVALSHA` as
//!   non-pipelinable), so it is recorded as a second, slower baseline for the
//!   1,000-key case.
//! * Peer rows: rate-limiter-flexible's `RateLimiterRedis.consume` on one
//!   ioredis client, run by Node (`benches/peer/rlflexible.js`, packages
//!   pinned in `benches/peer/package.json`, installed by `cargo xtask
//!   bench` into `target/bench/node`) with the same concurrency (50), keys
//!   (1,000), quota (1,000 per second per key) and number of calls, in the
//!   same interleaved rounds as the limiter's sliding log (the default),
//!   GCRA (its millisecond script at this quota) and fixed window. When
//!   xtask finds no `node`/`npm` the rows are skipped and the run says so.
//!   Beside them, in the same rounds, the floor of each: raw fred sending
//!   the same script with the limiter's arguments (pipelined `EVALSHA`),
//!   so a row says how much of the gap to the peer is the library and how
//!   much is one script per check on this client.
//! * `MEMORY USAGE` of one key per algorithm; for the sliding log, per entry
//!   (a key holding 100 entries, divided by 100). The key is a realistic
//!   one: limiter `api`, subject `LimitKey::ip(203.0.113.9)`, default prefix,
//!   so `aeturnis:rl:api:ip:203.0.113.9` (30 characters).
//!
//! What a key costs is mostly Redis's own overhead, which depends on the
//! key's length. On Redis 7.0 with jemalloc a string key whose value is an
//! integer (GCRA's arrival time, the fixed window's count) costs the
//! `dictEntry` (24 B) + the value's object header (16 B, the integer lives
//! in it) + the key's sds (1 B header + characters + NUL, up to 31
//! characters; 3 B header above), rounded up to jemalloc's size class
//! (8, 16, 32, 48 B):
//!
//! | key length | bytes |
//! |---|---:|
//! | ≤ 6 characters | 48 |
//! | 7–14 | 56 |
//! | 15–30 | 72 |
//! | 31–44 | 88 |
//!
//! So 64 B or less needs a key of at most 14 characters, and the default
//! prefix `aeturnis:` with the namespace `rl:` already takes 12: no key
//! under the default prefix reaches it. 72 B is the floor for keys of 15–30
//! characters: `aeturnis:rl:<name>:ip:<IPv4>` stays within 30 characters
//! when the name and the address together take at most 14 (`api` and up to
//! 11-character addresses such as `203.0.113.9`); `aeturnis:rl:<name>:u:<id>`
//! when the name and the user id take at most 15.
//!
//! A second GCRA row runs with short keys (prefix `a:`, limiter `a`,
//! subjects `u:0`..`u:999`: `a:rl:a:u:999`, 12 characters), where a key
//! costs 56 B: what GCRA's state costs once the key name is short.
//!
//! A case and its baseline run interleaved, after one unrecorded warm-up
//! run each: five rounds of one run per side, alternating the order, and
//! the row reports the round whose ratio is the median
//! ([`interleaved_medians`]). GCRA against the sliding log at 1,000/s
//! each runs four sides in the same rounds (the limiter's GCRA and sliding
//! log, and the same two scripts sent by raw fred: what the scripts
//! themselves allow here), so both ratios come from the same minutes, and
//! every round's pair of ratios is printed. So the machine's drift weighs
//! on both sides of every ratio. The second baseline (fred's
//! unpipelined `evalsha`) is the median of 3 runs after the pair. Run it
//! with `cargo xtask bench ratelimit`.

#![allow(clippy::print_stdout)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aeturnis_ratelimit::{
    Algorithm, FailurePolicy, LimitKey, Quota, RateLimitConfig, RateLimiter, RequestId,
};
use aeturnis_redis_core::fred::bytes_utils::Str;
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::{ClusterHash, CustomCommand, Value};
use aeturnis_redis_core::{Redis, RedisConfig, RedisKey};
use aeturnis_testkit::bench::{
    append_records, interleaved_medians, interleaved_rounds, measure, median_of_3, median_pair,
    side, BenchRecord, Sample,
};
use aeturnis_tests::{bench_redis_url, multi_thread_runtime};
use anyhow::Context;

const LAYER: &str = "ratelimit";
const KEYS: usize = 1000;
const CONCURRENCY: usize = 50;
const OPS: usize = 60_000;
const LIMIT: u32 = 1_000_000_000;
/// The quota of the GCRA-against-sliding-log rows: 1,000 per [`WINDOW`].
const REALISTIC_LIMIT: u32 = 1_000;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Limiter,
    RawCustom,
    RawEvalSha,
}

struct Fixture {
    limiter: RateLimiter,
    raw: Client,
    keys: Vec<LimitKey>,
    redis_keys: Vec<RedisKey>,
    limit_arg: i64,
    window_arg: i64,
    /// The sliding log takes a request id; the counters take none.
    sends_id: bool,
    /// The script's digest as shared bytes (each call clones a reference,
    /// as the core does).
    sha: Str,
}

fn main() -> anyhow::Result<()> {
    let url = bench_redis_url()?;
    let runtime = multi_thread_runtime()?;
    let records = runtime.block_on(run_all(&url))?;
    append_records(&records)
}

fn algorithms() -> [(&'static str, Algorithm); 4] {
    [
        ("sliding_log", Algorithm::SlidingLog),
        ("sliding_window", Algorithm::SlidingWindow),
        ("gcra", Algorithm::gcra()),
        ("fixed_window", Algorithm::FixedWindow),
    ]
}

async fn run_all(url: &str) -> anyhow::Result<Vec<BenchRecord>> {
    let redis = Redis::connect(RedisConfig::from_url(url)?).await?;
    let raw = Client::new(Config::from_url(url)?, None, None, None);
    raw.init().await?;
    let mut records = Vec::new();
    for (name, algorithm) in algorithms() {
        let fx = Arc::new(fixture(&redis, &raw, name, algorithm)?);
        let bytes = memory_per_item(&redis, &raw, name, algorithm).await?;
        for (hot, case_keys) in [(false, "1000 keys"), (true, "hot key")] {
            let (ours, raw_sample) = interleaved_medians(
                || run(Arc::clone(&fx), Side::Limiter, hot),
                || run(Arc::clone(&fx), Side::RawCustom, hot),
            )
            .await?;
            let case = format!("{name} check, {case_keys}");
            records.push(against_raw(&case, ours, raw_sample, bytes));
            if !hot {
                let unpipelined =
                    median_of_3(|| run(Arc::clone(&fx), Side::RawEvalSha, hot)).await?;
                let record = BenchRecord::new(
                    LAYER,
                    &case,
                    CONCURRENCY,
                    "multi_thread(2)",
                    ours,
                    "fred evalsha same Lua (not pipelined)",
                    unpipelined.ops_per_sec,
                )
                .with_baseline_latency(unpipelined);
                print(&record, unpipelined);
                records.push(record);
            }
        }
    }
    // GCRA with short keys: prefix `a`, limiter `a`, subjects `u:0`..`u:999`
    // (`a:rl:a:u:999`, at most 12 characters), the case where Redis's
    // per-key overhead leaves GCRA at 56 B
    {
        let short = Redis::connect(RedisConfig::from_url(url)?.with_key_prefix("a:")).await?;
        let fx = Arc::new(fixture_with(
            &short,
            &raw,
            "a",
            Algorithm::gcra(),
            LIMIT,
            |i| LimitKey::user(&i.to_string()),
        )?);
        let bytes = key_bytes(&fx).await?;
        let (ours, raw_sample) = interleaved_medians(
            || run(Arc::clone(&fx), Side::Limiter, false),
            || run(Arc::clone(&fx), Side::RawCustom, false),
        )
        .await?;
        records.push(against_raw(
            "gcra check, 1000 short keys (a:rl:a:u:N)",
            ours,
            raw_sample,
            bytes,
        ));
        short.shutdown().await?;
    }
    // GCRA against the sliding log at one realistic quota for both, 1,000
    // per second per subject, over the 1,000 keys (~50 checks per key and
    // second here: nothing is denied). GCRA's emission interval is then
    // 1 ms, so it runs its expiry-based millisecond script (the rows above,
    // at 10⁹ per second, run the µs script). Beside them, the same two
    // scripts sent by raw fred: what the scripts themselves allow on this
    // machine.
    let gcra_fx = Arc::new(fixture_with(
        &redis,
        &raw,
        "gcra_1k",
        Algorithm::gcra(),
        REALISTIC_LIMIT,
        |i| LimitKey::new(&i.to_string()),
    )?);
    let log_fx = Arc::new(fixture_with(
        &redis,
        &raw,
        "log_1k",
        Algorithm::SlidingLog,
        REALISTIC_LIMIT,
        |i| LimitKey::new(&i.to_string()),
    )?);
    // all four sides in the same rounds, so the limiter's ratio and the
    // raw scripts' ratio come from the same minutes of this machine
    let rounds = interleaved_rounds(vec![
        side(|| run(Arc::clone(&gcra_fx), Side::Limiter, false)),
        side(|| run(Arc::clone(&log_fx), Side::Limiter, false)),
        side(|| run(Arc::clone(&gcra_fx), Side::RawCustom, false)),
        side(|| run(Arc::clone(&log_fx), Side::RawCustom, false)),
    ])
    .await?;
    const GCRA: usize = 0;
    const LOG: usize = 1;
    const RAW_GCRA: usize = 2;
    const RAW_LOG: usize = 3;
    let (ours, raw_sample) = median_pair(&rounds, GCRA, RAW_GCRA)?;
    records.push(against_raw(
        "gcra (1 ms emission: 1000/s) check, 1000 keys",
        ours,
        raw_sample,
        key_bytes(&gcra_fx).await?,
    ));
    for (gcra_side, log_side, case, baseline) in [
        (
            GCRA,
            LOG,
            "gcra vs sliding log, 1000/s each, 1000 keys",
            "sliding log check",
        ),
        (
            RAW_GCRA,
            RAW_LOG,
            "raw fred: gcra script vs sliding log script, 1000/s each, 1000 keys",
            "raw fred: sliding log script",
        ),
    ] {
        let (gcra, log) = median_pair(&rounds, gcra_side, log_side)?;
        let record = BenchRecord::new(
            LAYER,
            case,
            CONCURRENCY,
            "multi_thread(2)",
            gcra,
            baseline,
            log.ops_per_sec,
        )
        .with_baseline_latency(log);
        print(&record, log);
        records.push(record);
    }
    // every round's two ratios, to show the spread behind the medians
    for (i, round) in rounds.iter().enumerate() {
        println!(
            "{LAYER} gcra/sliding log, round {}: limiter {:.2}, raw scripts {:.2}",
            i + 1,
            round[GCRA].ops_per_sec / round[LOG].ops_per_sec,
            round[RAW_GCRA].ops_per_sec / round[RAW_LOG].ops_per_sec,
        );
    }
    peer_rows(url, &redis, &raw, &gcra_fx, &log_fx, &mut records).await?;
    redis.shutdown().await?;
    raw.quit().await?;
    Ok(records)
}

/// Where `cargo xtask bench` installed the Node peer's packages
/// (`target/bench/node/node_modules`); unset when it found no `node`/`npm`.
const NODE_MODULES_ENV: &str = "AETURNIS_BENCH_NODE_MODULES";

/// rate-limiter-flexible's `RateLimiterRedis.consume` on ioredis, run by
/// Node (`tests/benches/peer/rlflexible.js`) with the same concurrency,
/// keys, quota (1,000 per second per key: nothing is denied) and number of
/// calls, in the same interleaved rounds as the limiter's sliding log (the
/// default), GCRA (its millisecond script at this quota) and fixed window.
/// Skipped, saying so, when xtask found no `node`/`npm`.
async fn peer_rows(
    url: &str,
    redis: &Redis,
    raw: &Client,
    gcra_fx: &Arc<Fixture>,
    log_fx: &Arc<Fixture>,
    records: &mut Vec<BenchRecord>,
) -> anyhow::Result<()> {
    let Ok(modules) = std::env::var(NODE_MODULES_ENV) else {
        println!(
            "{LAYER} rate-limiter-flexible rows skipped: {NODE_MODULES_ENV} is unset \
             (`cargo xtask bench` found no node/npm to install the peer with)"
        );
        return Ok(());
    };
    let fixed_fx = Arc::new(fixture_with(
        redis,
        raw,
        "fixed_1k",
        Algorithm::FixedWindow,
        REALISTIC_LIMIT,
        |i| LimitKey::new(&i.to_string()),
    )?);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer/rlflexible.js");
    let url = url.to_owned();
    let rounds = interleaved_rounds(vec![
        side(move || node_peer(url.clone(), modules.clone(), script.clone())),
        side(|| run(Arc::clone(log_fx), Side::Limiter, false)),
        side(|| run(Arc::clone(gcra_fx), Side::Limiter, false)),
        side(|| run(Arc::clone(&fixed_fx), Side::Limiter, false)),
        // the floors: raw fred sending each script with the limiter's
        // arguments, the least our client can do for the same check
        side(|| run(Arc::clone(log_fx), Side::RawCustom, false)),
        side(|| run(Arc::clone(gcra_fx), Side::RawCustom, false)),
        side(|| run(Arc::clone(&fixed_fx), Side::RawCustom, false)),
    ])
    .await?;
    let baseline = "rate-limiter-flexible 11.4.0 consume (ioredis 6.1.0, Node)";
    for (i, case) in [
        (
            1,
            "sliding log (default) check vs rate-limiter-flexible, 1000/s, 1000 keys",
        ),
        (
            2,
            "gcra (ms script) check vs rate-limiter-flexible, 1000/s, 1000 keys",
        ),
        (
            3,
            "fixed window check vs rate-limiter-flexible, 1000/s, 1000 keys",
        ),
        (
            4,
            "floor: raw fred EVALSHA sliding log script vs rate-limiter-flexible, 1000/s, 1000 keys",
        ),
        (
            5,
            "floor: raw fred EVALSHA gcra (ms) script vs rate-limiter-flexible, 1000/s, 1000 keys",
        ),
        (
            6,
            "floor: raw fred EVALSHA fixed window script vs rate-limiter-flexible, 1000/s, 1000 keys",
        ),
    ] {
        let (ours, peer) = median_pair(&rounds, i, 0)?;
        let record = BenchRecord::new(
            LAYER,
            case,
            CONCURRENCY,
            "multi_thread(2)",
            ours,
            baseline,
            peer.ops_per_sec,
        )
        .with_baseline_latency(peer);
        print(&record, peer);
        records.push(record);
    }
    for (i, round) in rounds.iter().enumerate() {
        println!(
            "{LAYER} vs rate-limiter-flexible, round {}: peer {:.0}/s; sliding log {:.2} (raw script {:.2}), gcra {:.2} (raw {:.2}), fixed window {:.2} (raw {:.2})",
            i + 1,
            round[0].ops_per_sec,
            round[1].ops_per_sec / round[0].ops_per_sec,
            round[4].ops_per_sec / round[0].ops_per_sec,
            round[2].ops_per_sec / round[0].ops_per_sec,
            round[5].ops_per_sec / round[0].ops_per_sec,
            round[3].ops_per_sec / round[0].ops_per_sec,
            round[6].ops_per_sec / round[0].ops_per_sec,
        );
    }
    Ok(())
}

/// One run of the Node peer; its keys (`rlflx:k0`..) are its own.
async fn node_peer(
    url: String,
    modules: String,
    script: std::path::PathBuf,
) -> anyhow::Result<Sample> {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("node")
            .arg(&script)
            .env("NODE_PATH", &modules)
            .env("REDIS_URL", &url)
            .env("POINTS", REALISTIC_LIMIT.to_string())
            .env("DURATION", WINDOW.as_secs().to_string())
            .env("KEY_PREFIX", "rlflx")
            .env("CONCURRENCY", CONCURRENCY.to_string())
            .env("KEYS", KEYS.to_string())
            .env("OPS", OPS.to_string())
            .output()
            .context("running node")?;
        anyhow::ensure!(
            out.status.success(),
            "the rate-limiter-flexible peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("peer output {:?}", String::from_utf8_lossy(&out.stdout)))?;
        let num = |k: &str| {
            v[k].as_f64()
                .with_context(|| format!("peer output lacks {k}"))
        };
        Ok(Sample::new(
            num("ops_per_sec")?,
            num("p50_us")?,
            num("p99_us")?,
        ))
    })
    .await?
}

/// `MEMORY USAGE` of one key (GCRA, counters) or, for the sliding log, of a
/// key holding 100 entries divided by 100.
async fn memory_per_item(
    redis: &Redis,
    raw: &Client,
    name: &str,
    algorithm: Algorithm,
) -> anyhow::Result<f64> {
    // a realistic key: a short limiter name and an IPv4 subject
    let limiter = RateLimiter::new(
        redis.clone(),
        RateLimitConfig::new("api", Quota::new(nz(100), Duration::from_secs(3600))?)
            .with_algorithm(algorithm),
    )?;
    let key = LimitKey::ip("203.0.113.9".parse()?);
    limiter.reset(&key).await?;
    let entries = if algorithm == Algorithm::SlidingLog {
        100
    } else {
        1
    };
    for _ in 0..entries {
        anyhow::ensure!(limiter.check(&key).await?.allowed, "memory fixture denied");
    }
    let rkey = limiter.redis_key(&key)?;
    let bytes: Option<i64> = raw.memory_usage(rkey.as_str(), Some(0)).await?;
    let total = bytes.unwrap_or(0) as f64;
    let per_item = total / f64::from(entries);
    println!(
        "{LAYER} {name}: {per_item:.1} B per {} (key `{rkey}`, {} chars; {total} B for {entries})",
        if entries > 1 { "entry" } else { "key" },
        rkey.as_str().len()
    );
    limiter.reset(&key).await?;
    Ok(per_item)
}

/// `MEMORY USAGE` of the longest of a fixture's keys after one check.
async fn key_bytes(fx: &Fixture) -> anyhow::Result<f64> {
    let key = fx.keys.last().context("no keys")?;
    fx.limiter.reset(key).await?;
    anyhow::ensure!(
        fx.limiter.check(key).await?.allowed,
        "memory fixture denied"
    );
    let rkey = fx.limiter.redis_key(key)?;
    let bytes: Option<i64> = fx.raw.memory_usage(rkey.as_str(), Some(0)).await?;
    let bytes = bytes.unwrap_or(0) as f64;
    println!(
        "{LAYER} gcra: {bytes:.1} B per key (key `{rkey}`, {} chars)",
        rkey.as_str().len()
    );
    fx.limiter.reset(key).await?;
    Ok(bytes)
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// A limiter row against raw fred's pipelined `EVALSHA` of the same Lua,
/// printed as it is recorded.
fn against_raw(case: &str, ours: Sample, raw: Sample, bytes: f64) -> BenchRecord {
    let record = BenchRecord::new(
        LAYER,
        case,
        CONCURRENCY,
        "multi_thread(2)",
        ours,
        "fred EVALSHA same Lua (custom, pipelined)",
        raw.ops_per_sec,
    )
    .with_baseline_latency(raw)
    .with_redis_bytes_per_item(bytes);
    print(&record, raw);
    record
}

fn print(record: &BenchRecord, baseline: Sample) {
    println!(
        "{LAYER} {:<34} c={CONCURRENCY} {:>9.0} ops/s p50 {:>7.1} µs p99 {:>7.1} µs | {} {:>9.0} ops/s p50 {:>7.1} µs p99 {:>7.1} µs | ratio {:.2}",
        record.case, record.ops_per_sec, record.p50_us, record.p99_us,
        record.baseline, baseline.ops_per_sec, baseline.p50_us, baseline.p99_us, record.ratio
    );
}

fn fixture(
    redis: &Redis,
    raw: &Client,
    name: &str,
    algorithm: Algorithm,
) -> anyhow::Result<Fixture> {
    fixture_with(redis, raw, name, algorithm, LIMIT, |i| {
        LimitKey::new(&i.to_string())
    })
}

fn fixture_with(
    redis: &Redis,
    raw: &Client,
    name: &str,
    algorithm: Algorithm,
    limit: u32,
    subject: impl Fn(usize) -> Result<LimitKey, aeturnis_ratelimit::Error>,
) -> anyhow::Result<Fixture> {
    let limiter = RateLimiter::new(
        redis.clone(),
        RateLimitConfig::new(name, Quota::new(nz(limit), WINDOW)?)
            .with_algorithm(algorithm)
            .with_deny_cache(false)
            .with_failure_policy(FailurePolicy::Propagate),
    )?;
    let keys: Vec<LimitKey> = (0..KEYS).map(subject).collect::<Result<_, _>>()?;
    let redis_keys = keys
        .iter()
        .map(|k| limiter.redis_key(k))
        .collect::<Result<_, _>>()?;
    // exactly the arguments the limiter sends
    let (limit_arg, window_arg, _block) = limiter.script_args();
    let sha = Str::from(limiter.script().sha1());
    Ok(Fixture {
        limiter,
        raw: raw.clone(),
        keys,
        redis_keys,
        limit_arg,
        window_arg,
        sends_id: algorithm == Algorithm::SlidingLog,
        sha,
    })
}

async fn run(fx: Arc<Fixture>, side: Side, hot: bool) -> anyhow::Result<Sample> {
    // load the script once, so neither side pays for NOSCRIPT
    fx.limiter.script().load(&fx.raw).await?;
    measure(CONCURRENCY, OPS, move |i| {
        let fx = Arc::clone(&fx);
        async move {
            let k = if hot { 0 } else { i % KEYS };
            match side {
                Side::Limiter => {
                    let d = fx.limiter.check(&fx.keys[k]).await?;
                    anyhow::ensure!(d.allowed, "denied");
                }
                Side::RawCustom | Side::RawEvalSha => {
                    let key = fx.redis_keys[k].as_str();
                    let mut args: Vec<Value> = vec![
                        "c".into(),
                        fx.limit_arg.into(),
                        fx.window_arg.into(),
                        1_i64.into(),
                        0_i64.into(),
                    ];
                    if fx.sends_id {
                        args.push(RequestId::new().to_string().into());
                    }
                    let reply: Vec<i64> = if side == Side::RawCustom {
                        let mut frame: Vec<Value> = Vec::with_capacity(9);
                        frame.push(Value::String(fx.sha.clone()));
                        frame.push(1_i64.into());
                        frame.push(key.into());
                        frame.extend(args);
                        let slot = aeturnis_redis_core::hash_slot(key);
                        fx.raw
                            .custom(
                                CustomCommand::new_static(
                                    "EVALSHA",
                                    ClusterHash::Custom(slot),
                                    false,
                                ),
                                frame,
                            )
                            .await?
                    } else {
                        fx.raw.evalsha(fx.sha.clone(), key, args).await?
                    };
                    anyhow::ensure!(reply.first() == Some(&1), "denied");
                }
            }
            Ok(())
        }
    })
    .await
}
