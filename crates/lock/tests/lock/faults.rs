//! Faults on a server of the test's own: connections cut mid-run.

use std::sync::Arc;
use std::time::Duration;

use aeturnis_lock::{LockConfig, LockManager};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::Redis;
use aeturnis_testkit::RedisServer;

use crate::exclusion::PER_TASK;
use crate::support::{check_sections, config, increments, Locker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_exclude_while_connections_are_killed() -> anyhow::Result<()> {
    let server = Arc::new(RedisServer::start_standalone()?);
    let prefix = "kill:";
    let mut lockers = Vec::new();
    for _ in 0..4 {
        let redis = Redis::connect(config(&server.url(), prefix)?).await?;
        let locks = LockManager::new(redis.clone(), LockConfig::default())?;
        lockers.push((Locker::Single(locks), redis));
    }
    let counter = format!("{prefix}counter");
    let work = tokio::spawn(increments(
        lockers.clone(),
        counter.clone(),
        4,
        PER_TASK / 2,
        Duration::from_secs(5),
    ));
    // cut every normal client connection ten times while the run goes on
    let mut kills = 0;
    while !work.is_finished() && kills < 10 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let s = Arc::clone(&server);
        let out = tokio::task::spawn_blocking(move || s.cli(&["CLIENT", "KILL", "TYPE", "normal"]))
            .await??;
        if out.trim().parse::<u32>().unwrap_or(0) > 0 {
            kills += 1;
        }
    }
    let sections = work.await??;
    assert!(
        kills >= 3,
        "the run ended before connections could be cut ({kills} kills)"
    );
    let total = 4 * 4 * (PER_TASK / 2);
    let value: i64 = lockers[0].1.client().get(&counter).await?;
    assert_eq!(value, i64::try_from(total)?);
    check_sections(&sections, true)?;
    for (locker, _) in &lockers {
        if let Locker::Single(m) = locker {
            assert_eq!(
                m.stats().losses,
                0,
                "a replayed script must not lose a held lock"
            );
        }
    }
    println!("{total} sections, {kills} kills, no overlap");
    Ok(())
}
