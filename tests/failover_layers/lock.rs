//! Locks: grants and fences survive the switch, and a lock granted by the
//! old primary after the switch (a second holder) has its writes refused by
//! fencing on the new primary.

use std::sync::Arc;
use std::time::Duration;

use aeturnis_lock::{
    Classify, Error, ErrorClass, FencingToken, LockConfig, LockManager, StaleFence,
};
use aeturnis_testkit::eventually;

use super::support::*;

const RES: &str = "fo-account";
const HELD: &str = "fo-held";
/// Short, so a lock whose release was refused mid-switch blocks the worker
/// for at most this long.
const STEP_TTL: Duration = Duration::from_secs(1);

/// One step: its fence and what the fenced write answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grant {
    fence: u64,
    value: u64,
    stale: Option<FencingToken>,
}

/// A sequential worker across `fault`: `try_acquire`, `fenced_write` of the
/// step number with the guard's fence, `release`. A lock taken before the
/// fault (TTL 60 s) is held across it. Checks on the new primary: the held
/// lock is still held, the fences kept increasing across the switch, no
/// fenced write was refused, and `fenced_read` returns the last
/// acknowledged write.
async fn grants_survive(fault: Fault) -> anyhow::Result<()> {
    let set = sentinel_set().await?;
    let redis = connect(&set).await?;
    let locks = LockManager::new(redis.clone(), LockConfig::default())?;
    let held = locks.try_acquire(HELD, Duration::from_secs(60)).await?;
    // the grant is on the replica before the fault (no replication-lag caveat for it)
    let on_replica = LockManager::new(pinned(set.replica().port()).await?, LockConfig::default())?;
    eventually(
        "the held lock on the replica",
        Duration::from_secs(5),
        || {
            let r = on_replica.clone();
            async move {
                match r.remaining(HELD).await {
                    Ok(Some(_)) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await?;
    on_replica.redis().shutdown().await?;

    let l = locks.clone();
    let (log, switched) = across(set, fault, WARM_UP, move |i| {
        let l = l.clone();
        Box::pin(async move {
            let guard = l
                .try_acquire(RES, STEP_TTL)
                .await
                .map_err(|e| e.to_string())?;
            let fence = guard.fence().await.map_err(|e| e.to_string())?;
            let wrote = l.fenced_write(RES, fence, &i).await;
            let _ = guard.release().await;
            let stale = wrote
                .map_err(|e| e.to_string())?
                .err()
                .map(|StaleFence { current, .. }| current);
            Ok(Grant {
                fence: fence.get(),
                value: i,
                stale,
            })
        })
    })
    .await?;
    redis.shutdown().await?;

    let reader = LockManager::new(pinned(switched.new_port).await?, LockConfig::default())?;
    let second = reader.try_acquire(HELD, STEP_TTL).await;
    assert!(
        matches!(second, Err(Error::Contended { .. })),
        "the lock held across the switch was granted again: {second:?}"
    );
    let mut max = 0;
    let mut repeated = Vec::new();
    for (_, grant) in &log.acked {
        if grant.fence <= max {
            repeated.push(grant.fence);
        }
        max = max.max(grant.fence);
    }
    let refused: Vec<&Grant> = log
        .acked
        .iter()
        .map(|(_, g)| g)
        .filter(|g| g.stale.is_some())
        .collect();
    let last = log
        .acked
        .iter()
        .rev()
        .map(|(_, g)| g)
        .find(|g| g.stale.is_none())
        .copied()
        .expect("an accepted fenced write");
    let read: Option<(FencingToken, u64)> = reader.fenced_read(RES).await?;
    reader.redis().shutdown().await?;
    drop(held);
    report_and_check_recovery(
        "lock acquire + fenced write",
        fault,
        &log,
        repeated.len(),
        &format!(
            "; fences up to {max}, {} repeated {repeated:?}, {} fenced writes refused, \
             last write (fence {}, value {}) read back as {read:?}",
            repeated.len(),
            refused.len(),
            last.fence,
            last.value
        ),
    );
    check_loss("lock fences", fault, &log, switched.at, repeated.len());
    if fault == Fault::Planned {
        assert!(refused.is_empty(), "fenced writes refused: {refused:?}");
    }
    assert_eq!(
        read,
        Some((FencingToken::new(last.fence), last.value)),
        "the last acknowledged fenced write on the new primary"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_grants_and_increasing_fences_across_a_planned_failover() -> anyhow::Result<()>
{
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    grants_survive(Fault::Planned).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_repeat_only_fences_inside_the_replication_lag_when_the_primary_is_killed(
) -> anyhow::Result<()> {
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    grants_survive(Fault::Killed).await
}

/// The split brain, built by hand:
///
/// 1. A manager in sentinel mode (`locks`) takes the lock and writes with
///    its fence; a second manager (`stale`) is pinned to the primary with a
///    plain standalone URL, as a process that never learns of the switch.
/// 2. A bare `SENTINEL FAILOVER` (not the testkit's, which demotes the old
///    primary at once): the sentinels promote the replica and the watcher
///    moves `locks` there, while the old primary still answers as a master
///    (the sentinels demote it at an `INFO` round at least 8 s later; they
///    are paused with SIGSTOP for the rest of the test so that stays true).
/// 3. With the shipped `min-replicas-to-write 1`, the old primary lost its
///    replica at the promotion and refuses the stale grant (`NOREPLICAS`,
///    class `Unavailable`): the server-side bound.
/// 4. Without that bound (`min-replicas-to-write 0` on both servers: a
///    deployment that traded it for availability, or the up to
///    `min-replicas-max-lag` seconds an isolated primary keeps accepting), the
///    old primary grants the lock: a second holder, with a fence from its own
///    copy of the counter. Meanwhile the resource stays in use on the new
///    primary: two grants, each writing with its fence.
/// 5. The stale holder's write reaches the new primary (its process's client
///    follows the switch, or the protected store lives there). Both sides
///    count fences from the same replicated value, so after one grant on
///    each side the two holders carry the **same** fence: the write is
///    refused all the same (`StaleFence { offered: f, current: f }`),
///    because the record keeps the holder's token and an equal fence is
///    accepted only from that holder (a replay). After a second grant on
///    the new side, the stale fence is lower and refused as such; the new
///    holders' writes stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_refuse_the_writes_of_a_lock_granted_by_the_old_primary_after_the_switch(
) -> anyhow::Result<()> {
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    let set = Arc::new(sentinel_set().await?);
    let (old, new) = (set.primary().port(), set.replica().port());
    let redis = connect(&set).await?;
    let locks = LockManager::new(redis.clone(), LockConfig::default())?;
    let stale = LockManager::new(pinned(old).await?, LockConfig::default())?;

    // 1. before the switch, on the replica too
    let guard = locks.try_acquire(RES, STEP_TTL).await?;
    let before = guard.fence().await?;
    assert_eq!(locks.fenced_write(RES, before, "before").await?, Ok(()));
    guard.release().await?;
    let on_new = LockManager::new(pinned(new).await?, LockConfig::default())?;
    eventually("the write on the replica", Duration::from_secs(5), || {
        let r = on_new.clone();
        async move {
            match r.fenced_read::<String>(RES).await {
                Ok(Some((fence, _))) if fence == before => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await?;

    // 2. the switch, the old primary left a master
    let s = set.clone();
    tokio::task::spawn_blocking(move || s.start_failover()).await??;
    eventually(
        "the watcher to move the client",
        Duration::from_secs(5),
        || {
            let on = all_on(&redis, new);
            async move {
                if on {
                    Ok(())
                } else {
                    Err("not yet")
                }
            }
        },
    )
    .await?;
    for sentinel in set.sentinels() {
        sentinel.pause()?;
    }
    let info = set.primary().cli(&["INFO", "replication"])?;
    assert!(info.contains("role:master"), "old primary {old}: {info}");

    // 3. the shipped bound: no grant on the old primary
    let refused = stale.try_acquire(RES, Duration::from_secs(10)).await;
    match &refused {
        Err(e @ Error::Redis(_)) => {
            assert_eq!(e.class(), ErrorClass::Unavailable, "{e}");
            assert!(e.to_string().contains("NOREPLICAS"), "{e}");
        }
        other => panic!("the old primary answered {other:?}, want NOREPLICAS"),
    }

    // 4. without it: a second holder on the old primary, and the new side goes on
    for port in [old, new] {
        let server = if port == old {
            set.primary()
        } else {
            set.replica()
        };
        let reply = server.cli(&["CONFIG", "SET", "min-replicas-to-write", "0"])?;
        assert_eq!(reply.trim(), "OK", "port {port}");
    }
    let second_holder = stale.try_acquire(RES, Duration::from_secs(10)).await?;
    let stale_fence = second_holder.fence().await?;
    for round in 0..2 {
        let guard = locks.try_acquire(RES, STEP_TTL).await?;
        let newest = guard.fence().await?;
        let wrote = locks
            .fenced_write(RES, newest, &format!("new {round}"))
            .await?;
        assert_eq!(wrote, Ok(()), "the new primary's holder");
        guard.release().await?;

        // 5. the stale holder writes on the new primary: first with a fence
        // equal to the new holder's, then with a lower one
        let stale_write = on_new.fenced_write(RES, stale_fence, "stale").await?;
        let read: Option<(FencingToken, String)> = on_new.fenced_read(RES).await?;
        println!(
            "split brain, round {round}: fence before the switch {before}, granted by the old \
             primary after it {stale_fence}, newest on the new primary {newest}; the stale \
             write got {stale_write:?}, the record holds {read:?}"
        );
        if round == 0 {
            assert_eq!(
                stale_fence, newest,
                "both sides issued the same fence from the replicated counter"
            );
        } else {
            assert!(stale_fence < newest, "{stale_fence} then {newest}");
        }
        match stale_write {
            Err(StaleFence {
                offered, current, ..
            }) => assert_eq!((offered, current), (stale_fence, newest)),
            Ok(()) => panic!("fencing let the old primary's holder write (round {round})"),
        }
        assert_eq!(read, Some((newest, format!("new {round}"))));
    }

    drop(second_holder);
    stale.redis().shutdown().await?;
    on_new.redis().shutdown().await?;
    for sentinel in set.sentinels() {
        sentinel.resume()?;
    }
    redis.shutdown().await?;
    Ok(())
}
