//! Redlock over independent masters.

use std::time::{Duration, Instant};

use aeturnis_lock::{Classify, Error, LockConfig, LockGuard, Redlock, RedlockConfig};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::InfoKind;
use aeturnis_redis_core::Redis;
use aeturnis_testkit::Masters;

use crate::exclusion::PER_TASK;
use crate::support::{config, exact_increments};

async fn redlock(urls: &[String], prefix: &str) -> anyhow::Result<(Redlock, Vec<Redis>)> {
    redlock_with(urls, prefix, RedlockConfig::default()).await
}

async fn redlock_with(
    urls: &[String],
    prefix: &str,
    config_: RedlockConfig,
) -> anyhow::Result<(Redlock, Vec<Redis>)> {
    let mut masters = Vec::new();
    for url in urls {
        masters.push(
            Redis::connect(config(url, prefix)?.with_command_timeout(Duration::from_secs(1)))
                .await?,
        );
    }
    Ok((Redlock::new(masters.clone(), config_)?, masters))
}

/// While `g` holds `res`, `other` is refused as contended; once `g` is
/// released, no master holds `res`.
async fn excludes_then_frees(
    g: LockGuard,
    other: &Redlock,
    masters: &[Redis],
    prefix: &str,
) -> anyhow::Result<()> {
    let e = other
        .try_acquire("res", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(e.is_contended(), "{e:?}");
    g.release().await?;
    for m in masters {
        let v: Option<String> = m.client().get(format!("{prefix}lock:{{res}}")).await?;
        assert!(v.is_none(), "released everywhere");
    }
    Ok(())
}

/// `(SET calls, EVALSHA calls)` a master has served so far.
async fn set_and_script_calls(master: &Redis) -> anyhow::Result<(u64, u64)> {
    let info: String = master.client().info(Some(InfoKind::CommandStats)).await?;
    let calls = |cmd: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok((calls("set"), calls("evalsha")))
}

/// With fencing off, a Redlock acquisition sends each master the original
/// algorithm's bare `SET NX PX` (no script), guards carry fence 0, it
/// still excludes other clients, and 2 clients × 4 tasks of
/// read-modify-write increments still add up with no overlapping section.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_run_unfenced_redlock_on_native_set() -> anyhow::Result<()> {
    // masters of its own: `INFO commandstats` must see this test's calls only
    let own = Masters::start(3)?;
    let urls = own.urls();
    let prefix = format!("t:redlock-unfenced:{}:", std::process::id());
    let unfenced = || RedlockConfig::default().with_lock(LockConfig::default().with_fencing(false));
    let (a, masters) = redlock_with(&urls, &prefix, unfenced()).await?;
    let (b, _) = redlock_with(&urls, &prefix, unfenced()).await?;
    let mut before = Vec::new();
    for m in &masters {
        before.push(set_and_script_calls(m).await?);
    }
    let g = a.try_acquire("res", Duration::from_secs(5)).await?;
    assert_eq!(g.fence().get(), 0);
    let mut sets = 0;
    for (m, (set0, script0)) in masters.iter().zip(&before) {
        let (set1, script1) = set_and_script_calls(m).await?;
        sets += set1 - set0;
        // the `INFO` calls are not scripts: no EVALSHA for the acquire
        assert_eq!(script1, *script0, "an unfenced acquire ran a script");
    }
    assert!(sets >= 2, "a quorum got SET NX PX: {sets}");
    excludes_then_frees(g, &b, &masters, &prefix).await?;

    let mut lockers = Vec::new();
    for _ in 0..2 {
        let (red, masters) = redlock_with(&urls, &prefix, unfenced()).await?;
        lockers.push((red, masters[0].clone()));
    }
    let counter = format!("{prefix}counter");
    let per_task = 50;
    exact_increments(lockers, &counter, 4, per_task, false).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_exclude_16_tasks_on_4_redlock_clients() -> anyhow::Result<()> {
    let urls = aeturnis_testkit::redlock_urls().await;
    let prefix = format!("t:redlock-excl:{}:", std::process::id());
    let mut lockers = Vec::new();
    for _ in 0..4 {
        let (red, masters) = redlock(&urls, &prefix).await?;
        lockers.push((red, masters[0].clone()));
    }
    let counter = format!("{prefix}counter");
    let per_task = PER_TASK / 4;
    // across independent Redlock clients fences are not a total order (see the crate docs)
    exact_increments(lockers, &counter, 4, per_task, false).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_survive_one_dead_master_and_fail_typed_with_two() -> anyhow::Result<()> {
    let mut masters = Masters::start(3)?;
    let (red, _handles) = redlock(&masters.urls(), "rl:").await?;
    let ttl = Duration::from_secs(2);
    for _ in 0..20 {
        red.acquire("res", ttl).await?.release().await?;
    }
    masters.servers[2].kill()?;
    let mut fences = Vec::new();
    for _ in 0..20 {
        let g = red.acquire("res", ttl).await?;
        fences.push(g.fence());
        g.extend(ttl).await?; // extend needs (and has) a quorum
        g.release().await?;
    }
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "{fences:?}");
    masters.servers[1].kill()?;
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = red.acquire_within("res", ttl, timeout).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            Error::Quorum {
                needed: 2,
                masters: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_unavailable());
    assert!(
        took < timeout + Duration::from_secs(1),
        "quorum error took {took:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_hold_redlock_only_with_quorum_and_validity() -> anyhow::Result<()> {
    let urls = aeturnis_testkit::redlock_urls().await;
    let prefix = format!("t:redlock-q:{}:", std::process::id());
    let (a, masters) = redlock(&urls, &prefix).await?;
    let (b, _) = redlock(&urls, &prefix).await?;
    let g = a.try_acquire("res", Duration::from_secs(5)).await?;
    // at least a quorum holds it (the round returns as soon as a quorum granted)
    let mut holding = 0;
    for m in &masters {
        let v: Option<String> = m.client().get(format!("{prefix}lock:{{res}}")).await?;
        holding += usize::from(v.is_some_and(|v| v.starts_with(g.token().as_str())));
    }
    assert!(holding >= a.quorum(), "{holding} masters hold it");
    excludes_then_frees(g, &b, &masters, &prefix).await?;
    let g = b.try_acquire("res", Duration::from_secs(5)).await?;
    g.release().await?;
    Ok(())
}
