//! Faults: script cache flushes, Redis restarts, Redis down, dropped
//! connections.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aeturnis_ratelimit::core::prelude::*;
use aeturnis_ratelimit::{
    Algorithm, DecisionSource, FailurePolicy, LimitKey, Quota, RateLimitConfig, RateLimiter,
};
use aeturnis_testkit::{eventually, topology_tests, RedisServer, TestCtx};
use anyhow::ensure;

use crate::support::{connect_url, nz, ALGORITHMS, HOUR};

/// `limit` per `window`, errors returned, no deny cache (every check
/// reaches Redis).
fn config(
    name: &str,
    algorithm: Algorithm,
    limit: u32,
    window: Duration,
) -> anyhow::Result<RateLimitConfig> {
    Ok(crate::support::config(name, algorithm, limit, window)?.with_deny_cache(false))
}

async fn should_survive_script_flush_mid_run(ctx: TestCtx) -> anyhow::Result<()> {
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connect_url(&ctx.url, &ctx.prefix, Duration::from_secs(5)).await?);
    }
    for algorithm in ALGORITHMS {
        let limiters: Vec<RateLimiter> = clients
            .iter()
            .map(|r| {
                RateLimiter::new(r.clone(), config("flush", algorithm, 100, HOUR)?)
                    .map_err(anyhow::Error::from)
            })
            .collect::<anyhow::Result<_>>()?;
        let key = LimitKey::new(algorithm.name())?;
        let mut tasks = Vec::new();
        for i in 0..300 {
            let limiter = limiters[i % 4].clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                if i % 60 == 0 {
                    limiter.redis().client().script_flush_cluster(false).await?;
                }
                anyhow::Ok(limiter.check(&key).await?)
            }));
        }
        let mut admitted = 0;
        for t in tasks {
            if t.await??.allowed {
                admitted += 1;
            }
        }
        ensure!(admitted == 100, "{}: {admitted} admitted", algorithm.name());
    }
    Ok(())
}

topology_tests!(should_survive_script_flush_mid_run);

/// A restart that keeps the data (`SHUTDOWN SAVE`, then the same port and
/// directory): callers see errors only while the server is down, then
/// everything works again, and the limit is never exceeded across it. (A
/// restart that loses the data forgets every window: that is data loss,
/// not something a limiter can undo.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_recover_after_a_redis_restart_without_over_admitting() -> anyhow::Result<()> {
    let mut server = RedisServer::start_standalone()?;
    // 2 s: after the reconnect no check may fail, even on a stalled CI host
    let redis = connect_url(&server.url(), "restart:", Duration::from_secs(2)).await?;
    let key = LimitKey::user("restart")?;
    let limiters: Vec<RateLimiter> = ALGORITHMS
        .iter()
        .map(|a| {
            RateLimiter::new(redis.clone(), config(a.name(), *a, 100, HOUR)?)
                .map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<_>>()?;
    let admitted = Arc::new([(); 4].map(|()| AtomicUsize::new(0)));
    let errors = Arc::new([(); 4].map(|()| AtomicUsize::new(0)));
    let recovered = Arc::new(AtomicBool::new(false));
    let errors_after_recovery = Arc::new(AtomicUsize::new(0));
    // a denial after the restart: the limit is reached in Redis
    let full = Arc::new([(); 4].map(|()| AtomicBool::new(false)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, limiter) in limiters.iter().enumerate() {
        let (limiter, key) = (limiter.clone(), key.clone());
        let (admitted, errors, stop) = (admitted.clone(), errors.clone(), stop.clone());
        let (recovered, errors_after_recovery) = (recovered.clone(), errors_after_recovery.clone());
        let full = full.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let after = recovered.load(Ordering::Acquire);
                match limiter.check(&key).await {
                    Ok(d) if d.allowed => drop(admitted[i].fetch_add(1, Ordering::AcqRel)),
                    Ok(_) => full[i].store(after, Ordering::Release),
                    Err(e) => {
                        anyhow::ensure!(e.is_retryable(), "not an availability error: {e}");
                        errors[i].fetch_add(1, Ordering::AcqRel);
                        if after {
                            errors_after_recovery.fetch_add(1, Ordering::AcqRel);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            anyhow::Ok(())
        }));
    }
    // let some checks through, then restart mid-run
    eventually(
        "20 checks admitted by every limiter",
        Duration::from_secs(10),
        || {
            let started = admitted.iter().all(|a| a.load(Ordering::Acquire) >= 20);
            let state = format!("{admitted:?}");
            async move {
                if started {
                    Ok(())
                } else {
                    Err(state)
                }
            }
        },
    )
    .await?;
    let _ = server.cli(&["SHUTDOWN", "SAVE"]); // the connection drops: no reply
    tokio::time::sleep(Duration::from_millis(300)).await; // the outage
    server.restart()?;
    // wait for the client to reconnect (a PING that answers)
    eventually(
        "a reconnect (PING answers)",
        Duration::from_secs(20),
        || redis.client().ping::<String>(None),
    )
    .await?;
    recovered.store(true, Ordering::Release);
    // every limiter reaches its limit (a check whose reply was lost in the
    // shutdown may have been counted without being admitted: the
    // admitted totals are checked against the errors below, not waited for)
    eventually(
        "every limit reached after the restart",
        Duration::from_secs(20),
        || {
            let reached = full.iter().all(|f| f.load(Ordering::Acquire));
            let state = format!("{admitted:?} admitted, {errors:?} errors");
            async move {
                if reached {
                    Ok(())
                } else {
                    Err(state)
                }
            }
        },
    )
    .await?;
    // keep checking a little past the limit
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Release);
    for t in tasks {
        t.await??;
    }
    ensure!(
        errors_after_recovery.load(Ordering::Acquire) == 0,
        "errors after recovery"
    );
    for (i, a) in ALGORITHMS.iter().enumerate() {
        let n = admitted[i].load(Ordering::Acquire);
        let e = errors[i].load(Ordering::Acquire);
        // a check that failed during the outage may have been counted
        // before the save (never twice): admitted = 100 - (those)
        ensure!(
            n <= 100 && n + e >= 100,
            "{}: {n} admitted, {e} errors",
            a.name()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_follow_each_failure_policy_with_redis_killed() -> anyhow::Result<()> {
    let mut server = RedisServer::start_standalone()?;
    // 1 s: the checks before the kill must not time out on a stalled CI host
    let redis = connect_url(&server.url(), "down:", Duration::from_secs(1)).await?;
    let make = |name: &str, policy: FailurePolicy| -> anyhow::Result<RateLimiter> {
        Ok(RateLimiter::new(
            redis.clone(),
            RateLimitConfig::new(name, Quota::new(nz(3), HOUR)?)
                .with_algorithm(Algorithm::gcra())
                .with_failure_policy(policy)
                .with_unavailable_retry_after(Duration::from_secs(2)),
        )?)
    };
    let open = make("open", FailurePolicy::FailOpen)?;
    let closed = make("closed", FailurePolicy::FailClosed)?;
    let local = make("local", FailurePolicy::LocalFallback)?;
    let propagate = make("propagate", FailurePolicy::Propagate)?;
    let key = LimitKey::user("p")?;
    let blocked = LimitKey::user("blocked")?;
    for i in 0..4 {
        let d = closed.check(&blocked).await?;
        ensure!(
            d.allowed == (i < 3) && d.source == DecisionSource::Redis,
            "{d:?}"
        );
    }
    ensure!(closed.check(&blocked).await?.source == DecisionSource::DenyCache);

    server.kill()?;
    let (o, c, p) = tokio::join!(open.check(&key), closed.check(&key), propagate.check(&key));
    let o = o?;
    ensure!(o.allowed && o.source == DecisionSource::FailOpen, "{o:?}");
    let c = c?;
    ensure!(
        !c.allowed && c.source == DecisionSource::FailClosed,
        "{c:?}"
    );
    ensure!(c.retry_after == Some(Duration::from_secs(2)));
    ensure!(matches!(&p, Err(e) if e.is_retryable()), "{p:?}");
    // the local fallback grants the same quota per instance
    let decisions = futures::future::join_all((0..5).map(|_| local.check(&key))).await;
    let mut allowed = 0;
    for d in decisions {
        let d = d?;
        ensure!(d.source == DecisionSource::LocalFallback, "{d:?}");
        allowed += usize::from(d.allowed);
    }
    ensure!(allowed == 3, "{allowed} admitted locally");
    // a key known to be blocked is refused without a round trip: the one
    // failed call is the check of `key` above
    let d = closed.check(&blocked).await?;
    ensure!(!d.allowed && d.source == DecisionSource::DenyCache, "{d:?}");
    ensure!(
        closed.stats().redis_unavailable == 1,
        "the deny cache asked Redis: {:?}",
        closed.stats()
    );
    ensure!(local.stats().redis_unavailable == 5);

    server.restart()?;
    let d = eventually(
        "recovery after the restart",
        Duration::from_secs(20),
        || propagate.check(&key),
    )
    .await?;
    ensure!(d.source == DecisionSource::Redis, "{d:?}");
    let d = local.check(&key).await?;
    ensure!(d.allowed && d.source == DecisionSource::Redis, "{d:?}");
    Ok(())
}

/// Connections killed while checks are in flight: each check is counted at
/// most once (counters are sent with replay disabled; the sliding log's
/// replays are recognised by request id). Each round holds the writes
/// (`CLIENT PAUSE WRITE`), so the connection it kills provably has checks
/// in flight, then keeps killing while the re-sent checks run (where a
/// check may run and lose its reply).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_never_count_a_check_twice_when_connections_drop() -> anyhow::Result<()> {
    const ROUNDS: u32 = 3;
    const PER_ROUND: u32 = 300;
    let server = RedisServer::start_standalone()?;
    let redis = connect_url(&server.url(), "kill:", Duration::from_secs(2)).await?;
    // a window so long that nothing refills during the test
    let window = Duration::from_secs(300 * 24 * 3600);
    let key = LimitKey::user("k")?;
    // GCRA twice: 10⁶ per 300 days is an emission interval of whole
    // milliseconds (the expiry-based script), 1,000,003 is not (the µs one)
    let cases = ALGORITHMS
        .iter()
        .map(|a| (*a, 1_000_000_u32))
        .chain([(Algorithm::gcra(), 1_000_003)]);
    for (algorithm, limit) in cases {
        let name = algorithm.name();
        let limiter = RateLimiter::new(
            redis.clone(),
            config(&format!("{name}-{limit}"), algorithm, limit, window)?,
        )?;
        // loaded once registered: the held command is the check itself,
        // not a NOSCRIPT answer
        redis.load_scripts().await?;
        let (mut ok, mut failed, mut held, mut closed) = (0_u32, 0_u32, 0_u32, 0_u32);
        let spawn = || -> Vec<_> {
            (0..PER_ROUND)
                .map(|_| {
                    let (l, k) = (limiter.clone(), key.clone());
                    tokio::spawn(async move { l.check(&k).await })
                })
                .collect()
        };
        for round in 0..2 * ROUNDS {
            let batch = if round % 2 == 0 {
                // free running: killed as soon as the checks are sent
                let batch = spawn();
                tokio::task::yield_now().await;
                batch
            } else {
                // held: the killed connection has every check in flight
                server.pause_writes()?;
                let batch = spawn();
                server.kill_held(|c| c.cmd == "evalsha").await?;
                held += 1;
                batch
            };
            // kill while the (re-sent) checks run: at most twice with
            // effect, for at most 200 ms
            let mut landed = 0;
            for _ in 0..40 {
                if landed == 2 || batch.iter().all(tokio::task::JoinHandle::is_finished) {
                    break;
                }
                let n = server.kill_normal_clients()?;
                closed += n;
                landed += u32::from(n > 0);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            for t in batch {
                match t.await? {
                    Ok(d) => {
                        ensure!(d.allowed && d.source == DecisionSource::Redis, "{d:?}");
                        ok += 1;
                    }
                    Err(e) => {
                        ensure!(
                            e.is_retryable()
                                && e.is_unavailable()
                                && matches!(&e, aeturnis_ratelimit::Error::Redis(r)
                                    if r.is_timeout() || r.is_connection()),
                            "{name}: {e:?}"
                        );
                        failed += 1;
                    }
                }
            }
        }
        // after the faults (once a PING answers), every check counts again
        eventually(
            "a reconnect (PING answers)",
            Duration::from_secs(10),
            || redis.client().ping::<String>(None),
        )
        .await?;
        for _ in 0..100 {
            ensure!(limiter.check(&key).await?.allowed);
            ok += 1;
        }
        ensure!(held == ROUNDS, "{name}: {held} held kills");
        ensure!(
            ok + failed == 2 * ROUNDS * PER_ROUND + 100,
            "{name}: every check answered ({ok} ok, {failed} failed)"
        );
        if !algorithm.is_replay_safe() {
            // the held checks are not re-sent: they fail
            ensure!(
                failed > 0,
                "{name}: no check failed although connections holding checks were killed"
            );
        }
        let peek = eventually("a peek after the kills", Duration::from_secs(10), || {
            limiter.peek(&key, NonZeroU32::MIN)
        })
        .await?;
        let counted = limit - peek.remaining;
        ensure!(
            counted >= ok && counted <= ok + failed,
            "{name}: counted {counted}, {ok} admitted, {failed} failed"
        );
        println!("{name}-{limit}: {ok} admitted, {failed} failed, {counted} counted, {held} held kills, {closed} more connections closed");
    }
    drop(server);
    Ok(())
}

/// Under OOM (`maxmemory` with `noeviction`) Redis refuses every limiter
/// script before it runs (the scripts declare `#!lua`): every check, peek
/// and refund of every algorithm fails with the OOM error, classed
/// unavailable, writes nothing, and the failure policy decides a check.
/// Before the shebang the sliding log's first write (`ZREMRANGEBYSCORE`,
/// not blocked by OOM) let its `ZADD` write past the cap and answer
/// "allowed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_refuse_every_call_of_every_algorithm_under_oom_without_writing(
) -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = connect_url(&server.url(), "oom:", Duration::from_secs(5)).await?;
    // GCRA twice: 100 an hour runs the millisecond script; 7 an hour (an
    // interval of 514,285.714 ms) the microsecond one
    let cases = [
        (ALGORITHMS[0], 100),
        (ALGORITHMS[1], 100),
        (ALGORITHMS[2], 100),
        (Algorithm::gcra(), 7),
        (ALGORITHMS[3], 100),
    ];
    let mut limiters = Vec::new();
    for (i, (algorithm, limit)) in cases.iter().enumerate() {
        let name = format!("oom{i}");
        limiters.push((
            RateLimiter::new(redis.clone(), config(&name, *algorithm, *limit, HOUR)?)?,
            RateLimiter::new(
                redis.clone(),
                config(&name, *algorithm, *limit, HOUR)?
                    .with_failure_policy(FailurePolicy::FailClosed),
            )?,
            *limit,
        ));
    }
    let used = LimitKey::user("used")?;
    let fresh = LimitKey::user("fresh")?;
    for (limiter, _, _) in &limiters {
        ensure!(limiter.check(&used).await?.allowed);
    }
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])?;
    server.cli(&["CONFIG", "SET", "maxmemory", "1"])?;
    let is_oom = |what: &str, r: Result<(), aeturnis_ratelimit::Error>| -> anyhow::Result<()> {
        match r {
            Err(aeturnis_ratelimit::Error::Redis(e)) if e.is_out_of_memory() => {
                ensure!(
                    e.is_unavailable() && e.is_retryable(),
                    "{what}: {e} not retryable"
                );
                Ok(())
            }
            other => anyhow::bail!("{what}: expected the OOM error, got {other:?}"),
        }
    };
    for (limiter, closed, _) in &limiters {
        let name = limiter.config().algorithm.name();
        for key in [&used, &fresh] {
            is_oom(name, limiter.check(key).await.map(drop))?;
            is_oom(name, limiter.peek(key, NonZeroU32::MIN).await.map(drop))?;
            is_oom(
                name,
                limiter
                    .refund(key, NonZeroU32::MIN, aeturnis_ratelimit::RequestId::new())
                    .await,
            )?;
            let decided = closed.check(key).await?;
            ensure!(
                !decided.allowed && decided.source == DecisionSource::FailClosed,
                "{name}: the failure policy did not decide: {decided:?}"
            );
        }
    }
    server.cli(&["CONFIG", "SET", "maxmemory", "0"])?;
    for (limiter, _, limit) in &limiters {
        let name = limiter.config().algorithm.name();
        // only the check before OOM was counted; nothing was written since
        let left = limiter.peek(&used, NonZeroU32::MIN).await?.remaining;
        ensure!(left == limit - 1, "{name}: {left} left of {limit}");
        let exists: i64 = redis.client().exists(&limiter.redis_key(&fresh)?).await?;
        ensure!(exists == 0, "{name}: a refused check wrote its key");
    }
    Ok(())
}
