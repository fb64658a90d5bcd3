//! The in-process queue: tasks of one manager coalesced in front of Redis.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aeturnis_lock::{Error, LockConfig, LockManager};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::Redis;
use aeturnis_testkit::{eventually, RedisServer, TestCtx};

use crate::support::{config, connect, exact_increments, manager};

const LONG: Duration = Duration::from_secs(30);

/// 50 tasks of one manager: exact count, no overlap, fences strictly
/// increasing in section order; every one was served.
async fn should_serve_50_local_tasks_in_fence_order(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let locks = LockManager::new(redis.clone(), LockConfig::default())?;
    let counter = format!("{}counter", ctx.prefix);
    let per_task = 20;
    exact_increments(
        vec![(locks.clone(), redis.clone())],
        &counter,
        50,
        per_task,
        true,
    )
    .await?;
    let total = 50 * per_task;
    let stats = locks.stats();
    assert_eq!(
        (stats.acquired, stats.released, stats.losses, stats.failed),
        (total as u64, total as u64, 0, 0)
    );
    assert!(stats.waits > 0, "tasks must have waited: {stats:?}");
    assert_eq!(locks.remaining("counter").await?, None);
    Ok(())
}

/// A remote waiter (another manager, another client) is served while 20
/// local tasks keep re-acquiring: remote waiters come first at a release.
async fn should_serve_a_remote_waiter_among_busy_local_tasks(ctx: TestCtx) -> anyhow::Result<()> {
    let busy = manager(&ctx, LockConfig::default()).await?;
    let remote = manager(&ctx, LockConfig::default()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (busy, stop, rounds) = (busy.clone(), Arc::clone(&stop), Arc::clone(&rounds));
        set.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let guard = busy.acquire("hot", LONG).await?;
                rounds.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                guard.release().await?;
            }
            anyhow::Ok(())
        });
    }
    // the local tasks are handing the lock around among themselves
    eventually("local hand-offs run", Duration::from_secs(10), || async {
        anyhow::ensure!(rounds.load(Ordering::SeqCst) >= 200, "not yet");
        anyhow::Ok(())
    })
    .await?;
    let before = rounds.load(Ordering::SeqCst);
    let started = Instant::now();
    let guard = remote
        .acquire_within("hot", LONG, Duration::from_secs(10))
        .await?;
    let waited = started.elapsed();
    let during = rounds.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::SeqCst);
    guard.release().await?;
    while let Some(done) = set.join_next().await {
        done??;
    }
    println!(
        "[{:?}] remote waiter served after {waited:?} ({during} local sections meanwhile)",
        ctx.topology
    );
    assert!(
        waited < Duration::from_secs(5),
        "the remote waiter starved: {waited:?}"
    );
    assert_eq!(remote.stats().acquired, 1);
    assert_eq!(busy.stats().losses, 0);
    Ok(())
}

/// A holder of this process that overruns its lease (stuck, no watchdog)
/// does not hold up the local queue past the lease: the head waiter takes
/// the slot over and gets the expired lock from Redis, and the stale
/// holder's release reports the loss.
async fn should_not_wait_locally_past_a_stuck_holders_lease(ctx: TestCtx) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default()).await?;
    // the clock starts before the lease does (whatever the host's stalls)
    let started = Instant::now();
    let stuck = locks.acquire("res", Duration::from_millis(300)).await?;
    let stuck_fence = stuck.fence().await?;
    let next = locks
        .acquire_within("res", LONG, Duration::from_secs(10))
        .await?;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_secs(5),
        "served once the stuck holder's lease ran out: {waited:?}"
    );
    assert!(next.fence().await? > stuck_fence);
    assert!(stuck.release().await.unwrap_err().is_lock_lost());
    next.release().await?;
    assert_eq!(locks.remaining("res").await?, None);
    Ok(())
}

/// The in-process table keeps an entry only while a slot is owned.
async fn should_leave_no_local_entry_behind(ctx: TestCtx) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default()).await?;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let locks = locks.clone();
        set.spawn(async move {
            let resource = format!("r{}", i % 4);
            for _ in 0..5 {
                locks
                    .acquire(&resource, Duration::from_secs(5))
                    .await?
                    .release()
                    .await?;
            }
            // a try_acquire beside a busy slot: the lock, or a refusal
            // saying how long the holder has; nothing else
            match locks.try_acquire(&resource, Duration::from_secs(5)).await {
                Ok(g) => g.release().await?,
                Err(Error::Contended { retry_after, .. }) => {
                    anyhow::ensure!(
                        retry_after > Duration::ZERO && retry_after <= Duration::from_secs(5),
                        "retry_after {retry_after:?}"
                    );
                }
                Err(e) => anyhow::bail!("try_acquire failed with {e:?}"),
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    // and a timed-out wait
    let held = locks.acquire("t", Duration::from_secs(5)).await?;
    let err = locks
        .acquire_within("t", Duration::from_secs(5), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    held.release().await?;
    assert_eq!(locks.local_slots(), 0, "idle slots must be removed");
    let stats = locks.stats();
    assert_eq!(stats.acquired, stats.released);
    assert_eq!(stats.losses, 0);
    Ok(())
}

/// A release with a local task waiting hands the lock over (counted once);
/// a release with nobody waiting frees it (not counted).
async fn should_count_a_hand_off_to_a_local_waiter(ctx: TestCtx) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default()).await?;
    let held = locks.acquire("handed", LONG).await?;
    let waiter = tokio::spawn({
        let locks = locks.clone();
        async move {
            let guard = locks.acquire("handed", LONG).await?;
            guard.release().await?;
            anyhow::Ok(())
        }
    });
    eventually("the second task waits", Duration::from_secs(5), || async {
        anyhow::ensure!(locks.stats().waits == 1, "not yet");
        anyhow::Ok(())
    })
    .await?;
    assert_eq!(locks.stats().handoffs, 0);
    held.release().await?;
    assert_eq!(locks.stats().handoffs, 1, "handed to the waiter");
    waiter.await??;
    let stats = locks.stats();
    assert_eq!(
        (stats.acquired, stats.released, stats.waits, stats.handoffs),
        (2, 2, 1, 1),
        "the waiter's own release had nobody to hand to: {stats:?}"
    );
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_count_a_hand_off_to_a_local_waiter,
    should_leave_no_local_entry_behind,
    should_not_wait_locally_past_a_stuck_holders_lease,
    should_serve_50_local_tasks_in_fence_order,
    should_serve_a_remote_waiter_among_busy_local_tasks,
);

/// How the local waiter that is handed the lock goes away.
#[derive(Debug, Clone, Copy)]
enum Vanish {
    /// Cancelled after the grant was delivered, before it looked.
    AfterDelivery,
    /// Cancelled after the release popped it, before the reply came.
    BeforeReply,
}

/// A local waiter that goes away around its hand-off: the lock passes on
/// to the next local waiter at once, never stuck until its 30 s TTL. On a
/// current-thread runtime, so the order of events is exact.
async fn passes_on_a_vanished_grant(ctx: TestCtx, how: Vanish) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default()).await?;
    let holder = locks.try_acquire("res", LONG).await?;
    let f0 = holder.fence().await?.get();
    let gone = {
        let locks = locks.clone();
        tokio::spawn(async move { locks.acquire("res", LONG).await })
    };
    eventually(
        "the first waiter queues",
        Duration::from_secs(5),
        || async {
            anyhow::ensure!(locks.stats().waits == 1, "not yet");
            anyhow::Ok(())
        },
    )
    .await?;
    let next = {
        let locks = locks.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let g = locks.acquire("res", LONG).await?;
            let waited = started.elapsed();
            let fence = g.fence().await?.get();
            g.release().await?;
            anyhow::Ok((waited, fence))
        })
    };
    eventually(
        "the second waiter queues",
        Duration::from_secs(5),
        || async {
            anyhow::ensure!(locks.stats().waits == 2, "not yet");
            anyhow::Ok(())
        },
    )
    .await?;
    match how {
        Vanish::AfterDelivery => {
            // the release delivers the grant; nothing else runs on this
            // thread before the abort
            holder.release().await?;
            gone.abort();
            assert!(gone.await.unwrap_err().is_cancelled());
        }
        Vanish::BeforeReply => {
            let release = tokio::spawn(holder.release());
            // the release task pops the waiter and sends its script
            tokio::task::yield_now().await;
            gone.abort();
            assert!(gone.await.unwrap_err().is_cancelled());
            release.await??;
        }
    }
    let (waited, fence) = tokio::time::timeout(Duration::from_secs(10), next).await???;
    assert!(
        waited < Duration::from_secs(10),
        "the lock was stuck: {waited:?}"
    );
    assert!(fence > f0, "fences grow: {f0} then {fence}");
    assert_eq!(locks.remaining("res").await?, None);
    assert_eq!(locks.stats().losses, 0);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn should_pass_on_a_grant_delivered_to_a_cancelled_waiter() -> anyhow::Result<()> {
    for ctx in [
        TestCtx::standalone("vanish_delivered").await,
        TestCtx::cluster("vanish_delivered").await,
    ] {
        passes_on_a_vanished_grant(ctx, Vanish::AfterDelivery).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn should_pass_on_a_grant_whose_waiter_left_before_the_reply() -> anyhow::Result<()> {
    for ctx in [
        TestCtx::standalone("vanish_popped").await,
        TestCtx::cluster("vanish_popped").await,
    ] {
        passes_on_a_vanished_grant(ctx, Vanish::BeforeReply).await?;
    }
    Ok(())
}

/// The first local waiter's wait runs out while the release that hands it
/// the lock is held up (the server is paused with the script in flight):
/// the waiter reports `Timeout`, and the releasing side passes the grant
/// that reached nobody on to the next local waiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_pass_on_a_grant_whose_waiter_timed_out() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = Redis::connect(config(&server.url(), "timeout:")?).await?;
    let locks = LockManager::new(redis.clone(), LockConfig::default())?;
    let holder = locks.try_acquire("res", LONG).await?;
    let gone = {
        let locks = locks.clone();
        tokio::spawn(async move {
            locks
                .acquire_within("res", LONG, Duration::from_secs(1))
                .await
        })
    };
    eventually(
        "the first waiter queues",
        Duration::from_secs(5),
        || async {
            anyhow::ensure!(locks.stats().waits == 1, "not yet");
            anyhow::Ok(())
        },
    )
    .await?;
    let next = {
        let locks = locks.clone();
        tokio::spawn(async move {
            let g = locks.acquire("res", LONG).await?;
            let fence = g.fence().await?.get();
            g.release().await?;
            anyhow::Ok(fence)
        })
    };
    eventually(
        "the second waiter queues",
        Duration::from_secs(5),
        || async {
            anyhow::ensure!(locks.stats().waits == 2, "not yet");
            anyhow::Ok(())
        },
    )
    .await?;
    server.pause()?;
    let release = tokio::spawn(holder.release());
    let err = gone.await?.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    server.resume()?;
    release.await??;
    let fence = tokio::time::timeout(Duration::from_secs(10), next).await???;
    assert!(fence > 0);
    let stats = locks.stats();
    assert_eq!((stats.acquired, stats.released, stats.losses), (2, 2, 0));
    assert_eq!(stats.failed, 1);
    assert_eq!(locks.remaining("res").await?, None);
    redis.shutdown().await?;
    Ok(())
}

fn command_calls(stats: &str, command: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// On a server of its own: with K tasks queued locally, the K hand-offs
/// and the last release are K + 1 script calls in all, with no PUBLISH,
/// no wait script, no pub/sub, and no fence issued (a holder that does not
/// ask for one pays nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_hand_off_locally_with_one_script_call_and_no_publish() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = Redis::connect(config(&server.url(), "stat:")?).await?;
    let locks = LockManager::new(redis.clone(), LockConfig::default())?;
    // load the scripts (a first EVALSHA of each answers NOSCRIPT)
    locks.try_acquire("warm", LONG).await?.release().await?;
    let holder = locks.try_acquire("res", LONG).await?;
    const K: usize = 10;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..K {
        let locks = locks.clone();
        set.spawn(async move {
            let g = locks.acquire("res", LONG).await?;
            g.release().await?;
            anyhow::Ok(())
        });
    }
    eventually("all waiters queue", Duration::from_secs(5), || async {
        anyhow::ensure!(locks.stats().waits == K as u64, "not yet");
        anyhow::Ok(())
    })
    .await?;
    let _: () = redis.client().config_resetstat().await?;
    holder.release().await?;
    while let Some(done) = set.join_next().await {
        done??;
    }
    let info: String = redis
        .client()
        .info(Some(
            aeturnis_redis_core::fred::types::InfoKind::CommandStats,
        ))
        .await?;
    let scripts = command_calls(&info, "evalsha") + command_calls(&info, "eval");
    assert_eq!(
        scripts,
        K as u64 + 1,
        "one script per hand-off plus the last release:\n{info}"
    );
    assert_eq!(
        command_calls(&info, "hincrby"),
        0,
        "a hand-off issues no fence:\n{info}"
    );
    assert_eq!(command_calls(&info, "publish"), 0, "no PUBLISH:\n{info}");
    assert_eq!(command_calls(&info, "spublish"), 0, "no SPUBLISH:\n{info}");
    assert_eq!(command_calls(&info, "subscribe"), 0, "no pub/sub:\n{info}");
    assert_eq!(command_calls(&info, "ssubscribe"), 0, "no pub/sub:\n{info}");
    assert_eq!(locks.remaining("res").await?, None);
    redis.shutdown().await?;
    Ok(())
}

/// On a server of its own: a waiter of another manager (another process)
/// is woken by sharded pub/sub (`SSUBSCRIBE` / `SPUBLISH`, which stays on
/// the lock's shard instead of crossing a cluster's bus), and the channel
/// is unsubscribed once its last waiter has gone (after the linger).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_wake_remote_waiters_by_sharded_pubsub_then_unsubscribe() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let a = Redis::connect(config(&server.url(), "shard:")?).await?;
    let b = Redis::connect(config(&server.url(), "shard:")?).await?;
    let holder_side = LockManager::new(a.clone(), LockConfig::default())?;
    let waiter_side = LockManager::new(b, LockConfig::default())?;
    // load the scripts (a first EVALSHA of each answers NOSCRIPT)
    holder_side
        .try_acquire("warm", LONG)
        .await?
        .release()
        .await?;
    let holder = holder_side.try_acquire("res", LONG).await?;
    let waiting = tokio::spawn({
        let locks = waiter_side.clone();
        async move {
            let g = locks.acquire("res", LONG).await?;
            let fence = g.fence().await?.get();
            g.release().await?;
            anyhow::Ok(fence)
        }
    });
    let client = a.client().clone();
    eventually("the waiter subscribes", Duration::from_secs(5), || {
        let client = client.clone();
        async move {
            let channels: Vec<String> = client.pubsub_shardchannels("*").await?;
            anyhow::ensure!(
                channels.len() == 1 && channels[0].ends_with(":released"),
                "not yet"
            );
            anyhow::Ok(())
        }
    })
    .await?;
    eventually("the waiter queues", Duration::from_secs(5), || async {
        anyhow::ensure!(waiter_side.stats().waits == 1, "not yet");
        anyhow::Ok(())
    })
    .await?;
    let _: () = client.config_resetstat().await?;
    let holder_fence = holder.fence().await?.get();
    holder.release().await?;
    let fence = tokio::time::timeout(Duration::from_secs(5), waiting).await???;
    assert!(fence > holder_fence, "handed over with a newer fence");
    let info: String = client
        .info(Some(
            aeturnis_redis_core::fred::types::InfoKind::CommandStats,
        ))
        .await?;
    assert_eq!(command_calls(&info, "spublish"), 1, "one SPUBLISH:\n{info}");
    assert_eq!(command_calls(&info, "publish"), 0, "no PUBLISH:\n{info}");
    eventually(
        "the channel is unsubscribed",
        Duration::from_secs(10),
        || {
            let client = client.clone();
            async move {
                let channels: Vec<String> = client.pubsub_shardchannels("*").await?;
                anyhow::ensure!(channels.is_empty(), "not yet");
                anyhow::Ok(())
            }
        },
    )
    .await?;
    Ok(())
}
