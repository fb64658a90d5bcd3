//! Shared helpers: connections, polling, and the mutual-exclusion workload.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aeturnis_lock::{LockConfig, LockGuard, LockManager, Redlock};
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

/// Polls `check` until it is true, failing after `within`.
pub(crate) async fn eventually<F, Fut>(
    within: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A single-instance manager or a Redlock, for the shared workload.
#[derive(Clone)]
pub(crate) enum Locker {
    Single(LockManager),
    Red(Redlock),
}

impl Locker {
    async fn acquire(&self, resource: &str, ttl: Duration) -> aeturnis_lock::Result<LockGuard> {
        match self {
            Locker::Single(m) => m.acquire(resource, ttl).await,
            Locker::Red(r) => r.acquire(resource, ttl).await,
        }
    }
}

/// One critical section: its fencing token and when it ran.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Section {
    pub(crate) fence: u64,
    pub(crate) enter: Instant,
    pub(crate) exit: Instant,
}

/// Each locker (with the Redis client next to it that holds the counter)
/// runs `tasks` tasks of `per_task` read-modify-write increments of a
/// plain counter under the lock. Returns every critical section.
pub(crate) async fn increments(
    lockers: Vec<(Locker, Redis)>,
    counter: String,
    tasks: usize,
    per_task: usize,
    ttl: Duration,
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
                        Err(e) if e.is_unavailable() && acquire_errors < 100 => {
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
                    let fence = guard.fence().get();
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
pub(crate) async fn exact_increments(
    lockers: Vec<(Locker, Redis)>,
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
        Duration::from_secs(5),
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
