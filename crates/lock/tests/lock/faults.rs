//! Faults on a server of the test's own: connections cut mid-run.

use std::sync::Arc;
use std::time::Duration;

use aeturnis_lock::{LockConfig, LockManager};
use aeturnis_redis_core::fred::error::ErrorKind;
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::Redis;
use aeturnis_testkit::RedisServer;

use crate::exclusion::PER_TASK;
use crate::support::{check_sections, config, increments, Faults};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_exclude_while_connections_are_killed() -> anyhow::Result<()> {
    let server = Arc::new(RedisServer::start_standalone()?);
    let prefix = "kill:";
    let mut lockers = Vec::new();
    for _ in 0..4 {
        let redis = Redis::connect(config(&server.url(), prefix)?).await?;
        let locks = LockManager::new(redis.clone(), LockConfig::default())?;
        lockers.push((locks, redis));
    }
    let counter = format!("{prefix}counter");
    let work = tokio::spawn(increments(
        lockers.clone(),
        counter.clone(),
        4,
        PER_TASK / 2,
        Duration::from_secs(5),
        Faults::ConnectionsCut,
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
    for (locks, _) in &lockers {
        assert_eq!(
            locks.stats().losses,
            0,
            "a replayed script must not lose a held lock"
        );
    }
    println!("{total} sections, {kills} kills, no overlap");
    Ok(())
}

/// A release in flight when the connection dies (the server stops
/// answering; fred's unresponsive check closes the connection) is replayed
/// by fred after the reconnect. The first copy already ran when the server
/// resumed, so the replay finds the lock gone: it must still answer
/// "released" (the lease shows nobody else can have taken it), fenced and
/// unfenced, and count no loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_answer_a_replayed_release_released() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis_config = config(&server.url(), "cut:")?
        .with_command_timeout(Duration::from_secs(20))
        .with_unresponsive_timeout(Some(Duration::from_millis(300)));
    let redis = Redis::connect(redis_config).await?;
    let fenced = LockManager::new(redis.clone(), LockConfig::default())?;
    let unfenced = LockManager::new(redis.clone(), LockConfig::default().with_fencing(false))?;
    let a = fenced.try_acquire("a", Duration::from_secs(60)).await?;
    let b = unfenced.try_acquire("b", Duration::from_secs(60)).await?;
    let probe = redis.keys().key("probe").build()?;

    server.pause()?;
    let ra = tokio::spawn(a.release());
    let rb = tokio::spawn(b.release());
    // the replayed INCR shows the connection was cut with commands in flight
    let incr = {
        let (redis, probe) = (redis.clone(), probe.clone());
        tokio::spawn(async move { redis.client().incr::<i64, _>(&probe).await })
    };
    // a command sent without replay fails once fred declares the
    // connection dead: from then on the releases wait to be replayed
    let cut = redis.no_replay().ping::<String>(None).await;
    assert!(
        matches!(&cut, Err(e) if *e.kind() == ErrorKind::IO),
        "the paused server cannot answer: fred closes the unresponsive connection: {cut:?}"
    );
    server.resume()?;
    let (ra, rb) = (ra.await?, rb.await?);
    ra.map_err(|e| anyhow::anyhow!("fenced: a replayed release must answer released: {e}"))?;
    rb.map_err(|e| anyhow::anyhow!("unfenced: a replayed release must answer released: {e}"))?;
    assert_eq!(incr.await??, 2, "the in-flight commands were replayed");

    assert_eq!(fenced.remaining("a").await?, None);
    assert_eq!(unfenced.remaining("b").await?, None);
    assert_eq!(fenced.stats().losses + unfenced.stats().losses, 0);
    redis.shutdown().await?;
    Ok(())
}

/// A fence request and a fenced write in flight when the connection dies
/// are replayed by fred after the reconnect, after their first copies ran:
/// the fence replay answers the fence already issued (the counter moved
/// once), and the write replay (same fence, same holder) is accepted, so
/// both callers see success and the record holds their write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_answer_replayed_fences_and_fenced_writes_the_same() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis_config = config(&server.url(), "cutf:")?
        .with_command_timeout(Duration::from_secs(20))
        .with_unresponsive_timeout(Some(Duration::from_millis(300)));
    let redis = Redis::connect(redis_config).await?;
    let locks = LockManager::new(redis.clone(), LockConfig::default())?;
    let asking = locks.try_acquire("asking", Duration::from_secs(60)).await?;
    let writing = locks
        .try_acquire("writing", Duration::from_secs(60))
        .await?;
    let fence = writing.fence().await?;
    let probe = redis.keys().key("probe").build()?;

    server.pause()?;
    let asked = tokio::spawn(async move {
        let fence = asking.fence().await?;
        anyhow::Ok((asking, fence))
    });
    let wrote = {
        let locks = locks.clone();
        tokio::spawn(async move { locks.fenced_write("writing", fence, "once").await })
    };
    let incr = {
        let (redis, probe) = (redis.clone(), probe.clone());
        tokio::spawn(async move { redis.client().incr::<i64, _>(&probe).await })
    };
    let cut = redis.no_replay().ping::<String>(None).await;
    assert!(
        matches!(&cut, Err(e) if *e.kind() == ErrorKind::IO),
        "the paused server cannot answer: fred closes the unresponsive connection: {cut:?}"
    );
    server.resume()?;
    let (asking, asked) = asked.await??;
    let wrote = wrote.await??;
    assert_eq!(incr.await??, 2, "the in-flight commands were replayed");

    assert_eq!(wrote, Ok(()), "a replayed fenced write is accepted");
    let keys = aeturnis_lock::raw::LockKeys::new(redis.keys(), "asking")?;
    let counter: u64 = redis.client().hget(keys.state(), "n").await?;
    assert_eq!(
        (asked.get(), counter),
        (1, 1),
        "one fence issued, and the replay answered it"
    );
    assert_eq!(asking.fence().await?, asked);
    let (stored, value): (_, String) = locks.fenced_read("writing").await?.unwrap();
    assert_eq!((stored, value.as_str()), (fence, "once"));
    asking.release().await?;
    writing.release().await?;
    redis.shutdown().await?;
    Ok(())
}
