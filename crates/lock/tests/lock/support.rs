//! Shared helpers: connections and the mutual-exclusion workload, written
//! once over the [`Lock`] trait (single-instance or Redlock).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aeturnis_lock::{Classify, Lock, LockConfig, LockManager};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{ReconnectConfig, Redis, RedisConfig};
use aeturnis_testkit::TestCtx;

pub(crate) fn config(url: &str, prefix: &str) -> anyhow::Result<RedisConfig> {
    let mut reconnect = ReconnectConfig::default();
    reconnect.min_delay = Duration::from_millis(5);
    reconnect.max_delay = Duration::from_millis(50);
    reconnect.jitter = Duration::from_millis(5);
    Ok(RedisConfig::from_url(url)?
        .with_key_prefix(prefix)
        .with_reconnect(reconnect)
        .with_max_command_attempts(std::num::NonZeroU32::new(10).expect("10 > 0")))
}

pub(crate) async fn connect(ctx: &TestCtx) -> anyhow::Result<Redis> {
    Ok(Redis::connect(config(&ctx.url, &ctx.prefix)?).await?)
}

pub(crate) async fn manager(ctx: &TestCtx, lock: LockConfig) -> anyhow::Result<LockManager> {
    Ok(LockManager::new(connect(ctx).await?, lock)?)
}

/// One critical section: its fencing token and when it ran.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Section {
    pub(crate) fence: u64,
    pub(crate) enter: Instant,
    pub(crate) exit: Instant,
}

/// Whether the run injects faults (connections cut): only then may an
/// acquire fail as unavailable and be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Faults {
    /// No fault is injected: every error fails the run.
    None,
    /// Connections are cut: an unavailable acquire is tried again (at
    /// most 100 times per task).
    ConnectionsCut,
}

/// Each locker (with the Redis client next to it that holds the counter)
/// runs `tasks` tasks of `per_task` read-modify-write increments of a
/// plain counter under the lock. Returns every critical section.
pub(crate) async fn increments<L: Lock + Clone + 'static>(
    lockers: Vec<(L, Redis)>,
    counter: String,
    tasks: usize,
    per_task: usize,
    ttl: Duration,
    faults: Faults,
) -> anyhow::Result<Vec<Section>> {
    let sections = Arc::new(Mutex::new(Vec::new()));
    let inside = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for (locker, redis) in lockers {
        for _ in 0..tasks {
            let (locker, redis, counter) = (locker.clone(), redis.clone(), counter.clone());
            let (sections, inside) = (Arc::clone(&sections), Arc::clone(&inside));
            set.spawn(async move {
                let mut done = 0;
                let mut acquire_errors = 0;
                while done < per_task {
                    let guard = match locker.acquire("counter", ttl).await {
                        Ok(g) => g,
                        // a connection cut mid-acquire: try the same increment again
                        Err(e)
                            if faults == Faults::ConnectionsCut
                                && e.is_unavailable()
                                && acquire_errors < 100 =>
                        {
                            acquire_errors += 1;
                            continue;
                        }
                        Err(e) => return Err(anyhow::Error::from(e)),
                    };
                    let enter = Instant::now();
                    anyhow::ensure!(
                        inside.fetch_add(1, Ordering::SeqCst) == 0,
                        "two tasks inside the critical section"
                    );
                    let v: Option<i64> = redis.client().get(&counter).await?;
                    redis
                        .client()
                        .set::<(), _, _>(
                            &counter,
                            v.unwrap_or(0) + 1,
                            Some(Expiration::EX(600)),
                            None,
                            false,
                        )
                        .await?;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    let exit = Instant::now();
                    // a fence on demand, still inside the section (ordering
                    // checks need one; an unfenced lock has none)
                    let fence = match guard.fence().await {
                        Ok(fence) => fence.get(),
                        Err(aeturnis_lock::Error::Unfenced { .. }) => 0,
                        Err(e) => return Err(e.into()),
                    };
                    guard.release().await?;
                    sections
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .push(Section { fence, enter, exit });
                    done += 1;
                }
                anyhow::Ok(())
            });
        }
    }
    while let Some(joined) = set.join_next().await {
        joined??;
    }
    let mut sections =
        std::mem::take(&mut *sections.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    sections.sort_by_key(|s| s.enter);
    Ok(sections)
}

/// [`increments`] with a 5 s lock TTL, then the exact count: the counter
/// holds every increment (a lost update means two writers were in at
/// once), there is one section per increment, and [`check_sections`]
/// passes. Returns the sections.
pub(crate) async fn exact_increments<L: Lock + Clone + 'static>(
    lockers: Vec<(L, Redis)>,
    counter: &str,
    tasks: usize,
    per_task: usize,
    fences_ordered: bool,
) -> anyhow::Result<Vec<Section>> {
    let total = lockers.len() * tasks * per_task;
    let redis = lockers
        .first()
        .map(|(_, redis)| redis.clone())
        .ok_or_else(|| anyhow::anyhow!("no lockers"))?;
    let sections = increments(
        lockers,
        counter.to_owned(),
        tasks,
        per_task,
        // no fault here can orphan a lock, so nothing waits out this lease;
        // it only has to outlast a stall of the host (a CI run once saw
        // every 5 s lease of the suite lapse across a VM pause)
        Duration::from_secs(30),
        Faults::None,
    )
    .await?;
    let value: i64 = redis.client().get(counter).await?;
    anyhow::ensure!(
        value == i64::try_from(total)?,
        "lost updates: the lock let two writers in ({value} of {total})"
    );
    anyhow::ensure!(sections.len() == total, "{} sections", sections.len());
    check_sections(&sections, fences_ordered)?;
    Ok(sections)
}

/// No two sections overlap; with `fences_ordered`, fencing tokens strictly
/// increase in the order the sections ran.
pub(crate) fn check_sections(sections: &[Section], fences_ordered: bool) -> anyhow::Result<()> {
    for pair in sections.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        anyhow::ensure!(a.exit <= b.enter, "sections overlap: {a:?} and {b:?}");
        if fences_ordered {
            anyhow::ensure!(a.fence < b.fence, "fences out of order: {a:?} then {b:?}");
        }
    }
    Ok(())
}
