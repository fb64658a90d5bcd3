//! Redlock over independent masters.

use std::time::{Duration, Instant};

use aeturnis_lock::{Classify, Error, LockConfig, LockGuard, Redlock, RedlockConfig};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::InfoKind;
use aeturnis_redis_core::Redis;
use aeturnis_testkit::{eventually, Masters};

use crate::exclusion::PER_TASK;
use crate::support::{config, exact_increments};

/// A Redlock over `urls` with the loaded machine's master timeout (below).
async fn redlock(urls: &[String], prefix: &str) -> anyhow::Result<(Redlock, Vec<Redis>)> {
    redlock_with(
        urls,
        prefix,
        RedlockConfig::default().with_master_timeout(LOADED_MACHINE_MASTER_TIMEOUT),
    )
    .await
}

/// The master timeout of the tests whose rounds must succeed: the default
/// 50 ms is for a production network, and on a 2-core test machine under
/// load a master's reply can take longer, which turned those runs into
/// spurious `Quorum` errors. (Tests with short TTLs keep the default: a TTL
/// must leave validity beyond the master timeout.)
const LOADED_MACHINE_MASTER_TIMEOUT: Duration = Duration::from_millis(250);

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
    let unfenced = || {
        RedlockConfig::default()
            .with_lock(LockConfig::default().with_fencing(false))
            .with_master_timeout(LOADED_MACHINE_MASTER_TIMEOUT)
    };
    let (a, masters) = redlock_with(&urls, &prefix, unfenced()).await?;
    let (b, _) = redlock_with(&urls, &prefix, unfenced()).await?;
    let mut before = Vec::new();
    for m in &masters {
        before.push(set_and_script_calls(m).await?);
    }
    let g = a.try_acquire("res", Duration::from_secs(5)).await?;
    let err = g.fence().await.unwrap_err();
    assert!(matches!(err, Error::Unfenced { .. }), "{err:?}");
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
        let config = RedlockConfig::default().with_master_timeout(LOADED_MACHINE_MASTER_TIMEOUT);
        let (red, masters) = redlock_with(&urls, &prefix, config).await?;
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
        fences.push(g.fence().await?);
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
        took < timeout + Duration::from_secs(3),
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

/// The Redlock lock key of `resource` under `prefix`.
fn lock_key(prefix: &str, resource: &str) -> String {
    format!("{prefix}lock:{{{resource}}}")
}

/// How many masters hold `resource` for `guard`'s token.
async fn holders(masters: &[Redis], prefix: &str, guard: &LockGuard) -> anyhow::Result<usize> {
    let mut holding = 0;
    for m in masters {
        let v: Option<String> = m.client().get(lock_key(prefix, "res")).await?;
        holding += usize::from(v.is_some_and(|v| v.starts_with(guard.token().as_str())));
    }
    Ok(holding)
}

/// No master holds `resource` any more.
async fn free_everywhere(masters: &[Redis], prefix: &str) -> anyhow::Result<()> {
    for m in masters {
        let v: Option<String> = m.client().get(lock_key(prefix, "res")).await?;
        anyhow::ensure!(v.is_none(), "a master still holds it: {v:?}");
    }
    Ok(())
}

/// A critical section's own error type.
#[derive(Debug)]
enum SectionError {
    Lock(Error),
    Boom,
}

impl From<Error> for SectionError {
    fn from(e: Error) -> Self {
        SectionError::Lock(e)
    }
}

/// `Redlock::with_lock`: the section runs holding a quorum (another client
/// is refused inside it) and returns its value; the lock is released on
/// every master after success and after the section's own error; a lock
/// error comes back through `E: From<Error>` without running the section;
/// a section that outlives its lease is answered `LockLost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_run_a_section_with_lock_over_redlock() -> anyhow::Result<()> {
    let urls = aeturnis_testkit::redlock_urls().await;
    let prefix = format!("t:redlock-with:{}:", std::process::id());
    let short_wait = RedlockConfig::default()
        .with_lock(LockConfig::default().with_wait_timeout(Duration::from_millis(200)));
    let (red, masters) = redlock_with(&urls, &prefix, short_wait).await?;
    let (other, _) = redlock(&urls, &prefix).await?;
    let ttl = Duration::from_secs(5);

    let inside = {
        let (other, masters, prefix) = (other.clone(), masters.clone(), prefix.clone());
        red.with_lock("res", ttl, |ctx| async move {
            let e = other.try_acquire("res", ttl).await.unwrap_err();
            assert!(e.is_contended(), "{e:?}");
            let mut holding = 0;
            for m in &masters {
                let v: Option<String> = m
                    .client()
                    .get(lock_key(&prefix, "res"))
                    .await
                    .map_err(aeturnis_redis_core::Error::from)?;
                let fence = format!(":{}", ctx.fence().await?.get());
                holding += usize::from(v.is_some_and(|v| v.ends_with(&fence)));
            }
            Ok::<_, Error>((ctx.fence().await?, holding))
        })
        .await?
    };
    let (fence, holding) = inside;
    assert!(fence.get() > 0, "a fenced Redlock section has a fence");
    assert!(holding >= red.quorum(), "{holding} masters held it inside");
    free_everywhere(&masters, &prefix).await?;

    // the section's own error: typed, and the lock is released
    let out: Result<(), SectionError> = red
        .with_lock("res", ttl, |_ctx| async { Err(SectionError::Boom) })
        .await;
    assert!(matches!(out, Err(SectionError::Boom)), "{out:?}");
    free_everywhere(&masters, &prefix).await?;

    // a lock error: the section never runs
    let held = other.try_acquire("res", ttl).await?;
    let ran = std::sync::atomic::AtomicBool::new(false);
    let out: Result<(), SectionError> = red
        .with_lock("res", ttl, |_ctx| async {
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })
        .await;
    assert!(
        matches!(out, Err(SectionError::Lock(Error::Timeout { .. }))),
        "{out:?}"
    );
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    held.release().await?;
    let out: Result<(), SectionError> = red
        .with_lock("res", Duration::ZERO, |_ctx| async { Ok(()) })
        .await;
    assert!(
        matches!(out, Err(SectionError::Lock(Error::InvalidTtl { .. }))),
        "{out:?}"
    );

    // a section that outlives its lease: its output is discarded
    let out: Result<u32, SectionError> = red
        .with_lock("res", Duration::from_millis(200), |_ctx| {
            let (masters, prefix) = (masters.clone(), prefix.clone());
            async move {
                eventually("the lease to run out", Duration::from_secs(3), || async {
                    free_everywhere(&masters, &prefix)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|_| SectionError::Boom)?;
                Ok(7)
            }
        })
        .await;
    assert!(
        matches!(out, Err(SectionError::Lock(ref e)) if e.is_lock_lost()),
        "{out:?}"
    );
    Ok(())
}

/// The watchdog on Redlock: it extends a quorum every `ttl / 3` while the
/// guard lives, so long work keeps the lock; when the lock is taken away
/// it fires the lost signal, which a task holding only
/// `LockGuard::lost_token` sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_a_watched_redlock_alive_and_signal_its_loss() -> anyhow::Result<()> {
    let urls = aeturnis_testkit::redlock_urls().await;
    let prefix = format!("t:redlock-watch:{}:", std::process::id());
    let watched = RedlockConfig::default()
        .with_lock(LockConfig::default().with_watchdog(true))
        .with_master_timeout(LOADED_MACHINE_MASTER_TIMEOUT);
    let (red, masters) = redlock_with(&urls, &prefix, watched).await?;
    let (other, _) = redlock(&urls, &prefix).await?;
    // renewed every 500 ms: a stall of the loaded CI host under a second
    // cannot let the lease lapse between two renewals
    let ttl = Duration::from_millis(1_500);
    let guard = red.try_acquire("res", ttl).await?;
    let token = guard.lost_token();
    let watcher = tokio::spawn(async move {
        token.cancelled().await;
    });

    // long work: well past the 1.5 s lease
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let e = other.try_acquire("res", ttl).await.unwrap_err();
    assert!(e.is_contended(), "{e:?}");
    assert!(holders(&masters, &prefix, &guard).await? >= red.quorum());
    assert!(!guard.is_lost() && !watcher.is_finished());
    let stats = red.stats();
    assert!(stats.extends >= 2, "{stats:?}");

    // an admin deletes it on every master: the watchdog finds a majority
    // saying "not yours" and fires the signal the other task waits on
    for m in &masters {
        let _: i64 = m.client().del(lock_key(&prefix, "res")).await?;
    }
    tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .map_err(|_| anyhow::anyhow!("the lost token never fired"))??;
    assert!(guard.is_lost());
    let e = guard.release().await.unwrap_err();
    assert!(e.is_lock_lost(), "{e:?}");
    assert!(red.stats().losses >= 1, "{:?}", red.stats());

    // the same inside `with_lock`: a section that sees `lost()` fire is
    // answered `LockLost`, its output discarded, though its lease had
    // time left
    let out: Result<u32, Error> = red
        .with_lock("res", Duration::from_secs(3), |ctx| {
            let (masters, prefix) = (masters.clone(), prefix.clone());
            async move {
                for m in &masters {
                    let _: i64 = m
                        .client()
                        .del(lock_key(&prefix, "res"))
                        .await
                        .map_err(aeturnis_redis_core::Error::from)?;
                }
                tokio::time::timeout(Duration::from_secs(3), ctx.lost())
                    .await
                    .expect("the watchdog never found the lock lost");
                Ok(7)
            }
        })
        .await;
    assert!(matches!(&out, Err(e) if e.is_lock_lost()), "{out:?}");
    Ok(())
}

/// A master that stops answering (SIGSTOP: its socket stays open, unlike a
/// killed one) costs at most the master timeout (500 ms here), never the
/// client's 5 s command timeout: acquire, extend and release go on with the
/// other two and still exclude; with two paused the acquisition fails
/// typed within its bound; once they resume, every command they had queued
/// runs and the lock is consistent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_work_past_a_paused_master_and_fail_typed_with_two() -> anyhow::Result<()> {
    const MASTER_TIMEOUT: Duration = Duration::from_millis(500);
    // what waiting on the paused master would cost: far above any bound below
    const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
    let masters = Masters::start(3)?;
    let prefix = "paused:";
    let connect = || async {
        let mut handles = Vec::new();
        for url in masters.urls() {
            let redis = config(&url, prefix)?.with_command_timeout(COMMAND_TIMEOUT);
            handles.push(Redis::connect(redis).await?);
        }
        let config = RedlockConfig::default().with_master_timeout(MASTER_TIMEOUT);
        anyhow::Ok((Redlock::new(handles.clone(), config)?, handles))
    };
    let (red, handles) = connect().await?;
    let (other, _) = connect().await?;
    let ttl = Duration::from_secs(2);
    // scripts loaded on every master before any pause
    red.acquire("res", ttl).await?.release().await?;
    other.acquire("res", ttl).await?.release().await?;

    masters.servers[2].pause()?;
    let bound = MASTER_TIMEOUT * 3;
    let timed = |what: &'static str, started: Instant| {
        let took = started.elapsed();
        assert!(took < bound, "{what} took {took:?}");
    };
    let mut fences = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let g = red.acquire("res", ttl).await?;
        timed("acquire", started);
        let e = other.try_acquire("res", ttl).await.unwrap_err();
        assert!(e.is_contended(), "{e:?}");
        let started = Instant::now();
        g.extend(ttl).await?;
        timed("extend", started);
        fences.push(g.fence().await?);
        let started = Instant::now();
        g.release().await?;
        timed("release", started);
    }
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "{fences:?}");

    masters.servers[1].pause()?;
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = red.acquire_within("res", ttl, timeout).await.unwrap_err();
    let took = started.elapsed();
    masters.servers[1].resume()?;
    masters.servers[2].resume()?;
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
    assert!(took < timeout + bound, "took {took:?}");

    // the queued acquires and releases run on resume; the lock settles
    // free, and a new holder gets every master
    eventually(
        "every master free again",
        Duration::from_secs(5),
        || async {
            free_everywhere(&handles, prefix)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await?;
    let g = eventually("a lock on all three", Duration::from_secs(5), || async {
        let g = other
            .try_acquire("res", ttl)
            .await
            .map_err(|e| e.to_string())?;
        match holders(&handles, prefix, &g).await {
            Ok(3) => Ok(g),
            held => {
                g.release().await.map_err(|e| e.to_string())?;
                Err(format!("held on {held:?} masters"))
            }
        }
    })
    .await?;
    let e = red.try_acquire("res", ttl).await.unwrap_err();
    assert!(e.is_contended(), "{e:?}");
    g.release().await?;
    Ok(())
}
