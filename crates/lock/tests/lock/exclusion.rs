//! Mutual exclusion: 4 clients × 4 tasks of read-modify-write increments
//! of a plain counter under the lock, on standalone and cluster.

use std::time::{Duration, Instant};

use aeturnis_lock::{LockConfig, LockManager};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_testkit::TestCtx;

use crate::support::{check_sections, connect, increments, Locker};

/// Increments per task. The issue asks for 1,000; 100 keeps this suite
/// near a minute on 2 shared, busy cores (1,600 critical sections per run).
pub(crate) const PER_TASK: usize = 1000;

async fn should_exclude_16_tasks_on_4_clients(ctx: TestCtx) -> anyhow::Result<()> {
    let mut lockers = Vec::new();
    for _ in 0..4 {
        let redis = connect(&ctx).await?;
        let locks = LockManager::new(redis.clone(), LockConfig::default())?;
        lockers.push((Locker::Single(locks), redis));
    }
    let counter = format!("{}counter", ctx.prefix);
    let started = Instant::now();
    let sections = increments(
        lockers.clone(),
        counter.clone(),
        4,
        PER_TASK,
        Duration::from_secs(5),
    )
    .await?;
    let total = 4 * 4 * PER_TASK;
    let value: i64 = lockers[0].1.client().get(&counter).await?;
    assert_eq!(
        value,
        i64::try_from(total)?,
        "lost updates: the lock let two writers in"
    );
    assert_eq!(sections.len(), total);
    check_sections(&sections, true)?;
    println!(
        "[{:?}] {total} sections in {:?}",
        ctx.topology,
        started.elapsed()
    );
    Ok(())
}

aeturnis_testkit::topology_tests!(should_exclude_16_tasks_on_4_clients);
