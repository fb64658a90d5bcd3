//! `check_all` on servers of its own: one pipelined round trip (counted
//! with `INFO commandstats`), and a refund that cannot reach Redis.

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_ratelimit::{check_all, Algorithm, LimitKey, RateLimiter};
use aeturnis_testkit::{eventually, RedisServer};
use anyhow::ensure;

use crate::support::{calls, config, connect_url, ALGORITHMS, HOUR};

/// Commands a limiter could send besides its scripts' `EVALSHA` (loading,
/// plain `EVAL`, transactions, probes). `INFO commandstats` also counts the
/// commands a script runs inside (`TIME`, `GET`, `ZADD`, ...), so those
/// cannot be told from direct calls and are not listed.
const AROUND: [&str; 6] = ["script|load", "eval", "multi", "exec", "ping", "evalsha_ro"];

/// The `EVALSHA` calls since the last reset, after checking that none of
/// [`AROUND`] ran.
fn evalsha_only(server: &RedisServer) -> anyhow::Result<u64> {
    let calls = calls(server)?;
    let others: Vec<&str> = AROUND
        .iter()
        .copied()
        .filter(|c| calls.contains_key(*c))
        .collect();
    ensure!(others.is_empty(), "other commands ran: {calls:?}");
    Ok(calls.get("evalsha").copied().unwrap_or(0))
}

/// One `check_all` over the four algorithms is four `EVALSHA`s and nothing
/// else, sent together: with writes held, the first check waits at the
/// server with the other three already queued behind it on the same
/// connection. A denial adds one refund per limiter that admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_check_all_limits_in_one_pipelined_round_trip() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = connect_url(&server.url(), "all:", Duration::from_secs(2)).await?;
    // the fixed window's limit is 1: the second `check_all` is denied there
    let limiters = ALGORITHMS
        .iter()
        .map(|a| {
            let limit = if *a == Algorithm::FixedWindow { 1 } else { 2 };
            Ok(RateLimiter::new(
                redis.clone(),
                config(a.name(), *a, limit, HOUR)?.with_deny_cache(false),
            )?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // loaded now that the limiters registered them: no NOSCRIPT below
    redis.load_scripts().await?;
    let key = LimitKey::user("all")?;
    let checks: Vec<(&RateLimiter, &LimitKey)> = limiters.iter().map(|l| (l, &key)).collect();

    server.cli(&["CONFIG", "RESETSTAT"])?;
    server.pause_writes()?;
    let (decision, queued) = tokio::join!(check_all(&checks, NonZeroU32::MIN), async {
        let h = server
            .held_client(|h| h.cmd == "evalsha" && h.queued > 0)
            .await;
        server.unpause()?;
        anyhow::Ok(h?.queued)
    });
    let queued = queued?;
    let decision = decision?;
    ensure!(decision.allowed, "{decision:?}");
    ensure!(
        evalsha_only(&server)? == 4,
        "one EVALSHA per limiter ({queued} bytes queued behind the first)"
    );

    server.cli(&["CONFIG", "RESETSTAT"])?;
    let decision = check_all(&checks, NonZeroU32::MIN).await?;
    ensure!(!decision.allowed && decision.denied_by().collect::<Vec<_>>() == [3]);
    ensure!(
        evalsha_only(&server)? == 4 + 3,
        "four checks, then three refunds"
    );
    for l in &limiters[..3] {
        let left = l.peek(&key, NonZeroU32::MIN).await?;
        ensure!(
            left.remaining == 1,
            "{}: refunded: {left:?}",
            l.config().name
        );
    }
    Ok(())
}

/// A refund that cannot reach Redis leaves the unit consumed. Limiter `a`
/// (a counter: its refund is sent without replay) is on server `x`, `b`
/// (full) on server `y`. `b`'s check is held on `y` until `a`'s check has
/// counted on `x`; then writes on `x` are held, `b` denies, and the
/// connection holding `a`'s refund is killed. `check_all` still answers
/// (denied), and after the reconnect `a` has one unit fewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_leave_the_unit_consumed_when_a_refund_fails() -> anyhow::Result<()> {
    let (x, y) = (
        RedisServer::start_standalone()?,
        RedisServer::start_standalone()?,
    );
    let rx = connect_url(&x.url(), "refund:", Duration::from_secs(2)).await?;
    let ry = connect_url(&y.url(), "refund:", Duration::from_secs(2)).await?;
    let key = LimitKey::user("refund")?;
    for algorithm in [
        Algorithm::gcra(),
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
    ] {
        let name = algorithm.name();
        let a = RateLimiter::new(
            rx.clone(),
            config(&format!("a-{name}"), algorithm, 5, HOUR)?.with_deny_cache(false),
        )?;
        let b = RateLimiter::new(
            ry.clone(),
            config(&format!("b-{name}"), algorithm, 1, HOUR)?.with_deny_cache(false),
        )?;
        rx.load_scripts().await?;
        ry.load_scripts().await?;
        ensure!(b.check(&key).await?.allowed);

        // a working refund gives the unit back
        let d = check_all(&[(&a, &key), (&b, &key)], NonZeroU32::MIN).await?;
        ensure!(!d.allowed, "{name}: {d:?}");
        ensure!(a.peek(&key, NonZeroU32::MIN).await?.remaining == 5);

        y.pause_writes()?;
        let both = [(&a, &key), (&b, &key)];
        let (decision, faults) = tokio::join!(check_all(&both, NonZeroU32::MIN), async {
            y.held_client(|h| h.cmd == "evalsha").await?; // b's check waits on y
            eventually(
                "a's check counted on x",
                Duration::from_secs(10),
                || async {
                    match a.peek(&key, NonZeroU32::MIN).await {
                        Ok(d) if d.remaining == 4 => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                },
            )
            .await?;
            x.pause_writes()?;
            y.unpause()?; // b denies: a's refund is sent to x, and held
            x.kill_held(|h| h.cmd == "evalsha").await.map(drop)
        });
        faults?;
        let d = decision?;
        ensure!(
            !d.allowed && d.denied_by().collect::<Vec<_>>() == [1],
            "{name}: {d:?}"
        );
        let left = eventually(
            "a peek after the reconnect",
            Duration::from_secs(10),
            || a.peek(&key, NonZeroU32::MIN),
        )
        .await?;
        ensure!(
            left.remaining == 4,
            "{name}: the failed refund gave the unit back (or was re-sent): {left:?}"
        );
    }
    Ok(())
}
