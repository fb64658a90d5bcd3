//! Mutual exclusion: 4 clients × 4 tasks of read-modify-write increments
//! of a plain counter under the lock, on standalone and cluster.

use std::time::Instant;

use aeturnis_lock::{LockConfig, LockManager};
use aeturnis_testkit::TestCtx;

use crate::support::{connect, exact_increments};

/// Increments per task. The issue asks for 1,000; 100 keeps this suite
/// near a minute on 2 shared, busy cores (1,600 critical sections per run).
pub(crate) const PER_TASK: usize = 1000;

async fn should_exclude_16_tasks_on_4_clients(ctx: TestCtx) -> anyhow::Result<()> {
    let mut lockers = Vec::new();
    for _ in 0..4 {
        let redis = connect(&ctx).await?;
        let locks = LockManager::new(redis.clone(), LockConfig::default())?;
        lockers.push((locks, redis));
    }
    let counter = format!("{}counter", ctx.prefix);
    let started = Instant::now();
    let sections = exact_increments(lockers, &counter, 4, PER_TASK, true).await?;
    let total = sections.len();
    println!(
        "[{:?}] {total} sections in {:?}",
        ctx.topology,
        started.elapsed()
    );
    Ok(())
}

aeturnis_testkit::topology_tests!(should_exclude_16_tasks_on_4_clients);
