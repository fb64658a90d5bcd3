//! Single-instance behaviour, on standalone and on the 6-node cluster.

use std::time::{Duration, Instant};

use aeturnis_lock::core::fred::interfaces::KeysInterface;
use aeturnis_lock::core::KeyError;
use aeturnis_lock::{
    Classify, Error, FencingToken, LockConfig, Redlock, RedlockConfig, StaleFence,
};
use aeturnis_testkit::TestCtx;

use aeturnis_testkit::eventually;

use crate::support::{connect, manager};

const LONG: Duration = Duration::from_secs(30);

async fn should_acquire_release_with_rising_fences(ctx: TestCtx) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default()).await?;
    let first = locks.try_acquire("res", LONG).await?;
    let remaining = locks.remaining("res").await?;
    assert!(remaining.is_some_and(|r| r > Duration::from_secs(25) && r <= LONG));
    let f1 = first.fence().await?;
    assert_eq!(first.fence().await?, f1, "asked again: the same fence");
    first.release().await?;
    assert_eq!(locks.remaining("res").await?, None);
    let second = locks.try_acquire("res", LONG).await?;
    assert!(second.fence().await? > f1, "fences must strictly increase");
    assert_ne!(second.token().as_str(), "");
    second.release().await?;
    let stats = locks.stats();
    assert_eq!((stats.acquired, stats.released, stats.losses), (2, 2, 0));
    Ok(())
}

async fn should_deny_a_held_lock_with_retry_after(ctx: TestCtx) -> anyhow::Result<()> {
    let a = manager(&ctx, LockConfig::default()).await?;
    let b = manager(&ctx, LockConfig::default()).await?;
    let held = a.try_acquire("res", Duration::from_secs(5)).await?;
    let err = b
        .try_acquire("res", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.is_contended(), "{err:?}");
    let after = err.retry_after().unwrap();
    assert!(after > Duration::ZERO && after <= Duration::from_secs(5));
    let err = b
        .acquire_within("res", Duration::from_secs(5), Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(b.stats().failed, 2);
    held.release().await?;
    Ok(())
}

async fn should_wake_a_waiter_on_release(ctx: TestCtx) -> anyhow::Result<()> {
    // polling alone would take up to 10 s here: only the release message can wake it sooner
    let slow_poll =
        LockConfig::default().with_backoff(Duration::from_secs(10), Duration::from_secs(10));
    let holder = manager(&ctx, LockConfig::default()).await?;
    let waiter = manager(&ctx, slow_poll).await?;
    let waiting = waiter.clone();
    let held = holder.try_acquire("res", LONG).await?;
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let g = waiter.acquire("res", LONG).await?;
        let waited = started.elapsed();
        g.release().await?;
        anyhow::Ok((waited, waiter.stats()))
    });
    // `waits` counts a waiter once it is registered for wake-ups
    eventually("the waiter is waiting", Duration::from_secs(5), || async {
        anyhow::ensure!(waiting.stats().waits == 1, "not yet");
        anyhow::Ok(())
    })
    .await?;
    held.release().await?;
    let (waited, stats) = task.await??;
    assert!(
        waited < Duration::from_secs(5),
        "woken by release, not by the 10 s poll: {waited:?}"
    );
    assert_eq!(stats.waits, 1);
    Ok(())
}

async fn should_never_release_another_holders_lock(ctx: TestCtx) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default()).await?;
    let stale = locks.try_acquire("res", Duration::from_millis(100)).await?;
    let stale_fence = stale.fence().await?;
    eventually("the lease expires", Duration::from_secs(3), || async {
        anyhow::ensure!(locks.remaining("res").await?.is_none(), "not yet");
        anyhow::Ok(())
    })
    .await?;
    let fresh = locks.try_acquire("res", LONG).await?;
    let fresh_fence = fresh.fence().await?;
    assert!(fresh_fence > stale_fence);
    // the stale holder: extend and release both fail, neither touches the new lock
    let err = stale.extend(LONG).await.unwrap_err();
    assert!(err.is_lock_lost(), "{err:?}");
    assert!(
        stale.is_lost(),
        "extend finding the lock lost fires the signal"
    );
    tokio::time::timeout(Duration::from_secs(1), stale.lost()).await?;
    // a fenced write with the stale token is refused after the new holder wrote
    locks
        .fenced_write("res", fresh_fence, "new")
        .await?
        .unwrap();
    let refused = locks.fenced_write("res", stale_fence, "old").await?;
    let refused: StaleFence = refused.unwrap_err();
    assert_eq!(
        (refused.offered, refused.current),
        (stale_fence, fresh_fence)
    );
    let (fence, value): (_, String) = locks.fenced_read("res").await?.unwrap();
    assert_eq!((fence, value.as_str()), (fresh_fence, "new"));
    assert!(stale.release().await.unwrap_err().is_lock_lost());
    assert!(
        locks.remaining("res").await?.is_some(),
        "the new holder's lock survives"
    );
    fresh.extend(LONG).await?;
    fresh.release().await?;
    Ok(())
}

async fn should_keep_a_watched_lock_alive(ctx: TestCtx) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default().with_watchdog(true)).await?;
    let other = manager(&ctx, LockConfig::default()).await?;
    // a lease the watchdog renews every 500 ms: a stall of the loaded CI
    // host under a second cannot let it lapse between two renewals
    let guard = locks
        .try_acquire("res", Duration::from_millis(1_500))
        .await?;
    // long work: well past the 1.5 s lease
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    assert!(other
        .try_acquire("res", LONG)
        .await
        .unwrap_err()
        .is_contended());
    assert!(!guard.is_lost());
    assert!(locks.stats().extends >= 2, "{:?}", locks.stats());
    // an admin takes it away: the watchdog notices and fires the signal
    assert!(other.force_release("res").await?);
    tokio::time::timeout(Duration::from_secs(10), guard.lost()).await?;
    assert!(guard.release().await.unwrap_err().is_lock_lost());
    let stats = locks.stats();
    assert!(stats.losses >= 1, "{stats:?}");
    assert_eq!(other.stats().forced, 1);

    // the key vanishes with no forced-release marker (data loss): the
    // lease still looks valid, yet a release after the watchdog found the
    // lock lost answers LockLost
    let guard = locks
        .try_acquire("gone", Duration::from_millis(1_500))
        .await?;
    let redis = connect(&ctx).await?;
    let key = redis.keys().key("lock").tag("gone").build()?;
    let deleted: i64 = redis.client().del(&key).await?;
    assert_eq!(deleted, 1, "{key}");
    tokio::time::timeout(Duration::from_secs(10), guard.lost()).await?;
    let e = guard.release().await.unwrap_err();
    assert!(e.is_lock_lost(), "{e:?}");
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

fn panic_inside() -> Result<(), Error> {
    panic!("inside the lock")
}

async fn should_release_with_lock_on_error_panic_and_cancel(ctx: TestCtx) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default()).await?;
    // error: the section's own error comes back typed, the lock is released
    let out: Result<(), SectionError> = locks
        .with_lock("res", LONG, |_ctx| async { Err(SectionError::Boom) })
        .await;
    assert!(matches!(out, Err(SectionError::Boom)), "{out:?}");
    assert_eq!(locks.remaining("res").await?, None);
    // a lock error comes back through E: From<Error>
    let out: Result<(), SectionError> = locks
        .with_lock("busy", Duration::ZERO, |_ctx| async { Ok(()) })
        .await;
    assert!(
        matches!(out, Err(SectionError::Lock(Error::InvalidTtl { .. }))),
        "{out:?}"
    );
    // panic: unwinding drops the guard, which releases in a spawned task
    let l = locks.clone();
    let joined = tokio::spawn(async move {
        l.with_lock("res", LONG, |_ctx| async { panic_inside() })
            .await
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    eventually("released after panic", Duration::from_secs(2), || async {
        anyhow::ensure!(locks.remaining("res").await?.is_none(), "not yet");
        anyhow::Ok(())
    })
    .await?;
    // cancellation: the future is dropped mid-work (once the section runs,
    // not mid-acquire, however slow the host)
    let (entered, inside) = tokio::sync::oneshot::channel();
    let mut section = Box::pin(locks.with_lock("res", LONG, |_ctx| async move {
        let _ = entered.send(());
        std::future::pending::<Result<(), Error>>().await
    }));
    tokio::select! {
        out = &mut section => panic!("the section never ends: {out:?}"),
        _ = inside => {}
    }
    drop(section);
    eventually("released after cancel", Duration::from_secs(2), || async {
        anyhow::ensure!(locks.remaining("res").await?.is_none(), "not yet");
        anyhow::Ok(())
    })
    .await?;
    // and the context carries the fence
    let fence = locks
        .with_lock("res", LONG, |ctx| async move { ctx.fence().await })
        .await?;
    assert!(fence.get() >= 1);
    Ok(())
}

async fn should_refuse_bad_input_with_typed_errors(ctx: TestCtx) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default()).await?;
    let e = locks.try_acquire("", LONG).await.unwrap_err();
    assert!(matches!(e, Error::Key(KeyError::Empty)), "{e:?}");
    assert!(e.is_invalid_input(), "{e:?}");
    let e = locks.try_acquire("bad\u{7}name", LONG).await.unwrap_err();
    assert!(
        matches!(e, Error::Key(KeyError::ControlCharacter('\u{7}'))),
        "{e:?}"
    );
    assert!(e.is_invalid_input(), "{e:?}");
    let e = locks.try_acquire("res", Duration::ZERO).await.unwrap_err();
    assert!(matches!(e, Error::InvalidTtl { .. }), "{e:?}");
    let e = locks
        .try_acquire("res", Duration::from_millis(2))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidTtl { .. }), "{e:?}");
    // Redlock: fewer than 3, or an even count, is refused with a reason
    let r = connect(&ctx).await?;
    for n in [1, 2, 4] {
        let e = Redlock::new(vec![r.clone(); n], RedlockConfig::default()).unwrap_err();
        assert!(
            matches!(e, Error::InvalidMasters { masters, .. } if masters == n),
            "{e:?}"
        );
    }
    let red = Redlock::new(vec![r.clone(); 3], RedlockConfig::default())?;
    // 52 ms leaves nothing after the 50 ms master timeout and the 2.5 ms drift
    let e = red
        .try_acquire("res", Duration::from_millis(52))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidTtl { .. }), "{e:?}");
    Ok(())
}

async fn should_serve_all_50_contending_tasks(ctx: TestCtx) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default()).await?;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let locks = locks.clone();
        set.spawn(async move {
            let started = Instant::now();
            let guard = locks.acquire("hot", LONG).await?;
            let waited = started.elapsed();
            tokio::time::sleep(Duration::from_millis(1)).await; // the work
            guard.release().await?;
            anyhow::Ok(waited)
        });
    }
    let mut waits = Vec::new();
    while let Some(w) = set.join_next().await {
        waits.push(w??);
    }
    waits.sort();
    assert_eq!(waits.len(), 50, "every task is served");
    let pct = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize];
    println!(
        "[{:?}] wait distribution over 50 tasks: min {:?} p50 {:?} p90 {:?} p99 {:?} max {:?}",
        ctx.topology,
        waits[0],
        pct(0.5),
        pct(0.9),
        pct(0.99),
        waits[49]
    );
    let stats = locks.stats();
    assert_eq!((stats.acquired, stats.released, stats.failed), (50, 50, 0));
    assert!(stats.waits >= 1 && stats.average_wait() > Duration::ZERO);
    Ok(())
}

/// Fencing off: native `SET NX PX GET` acquire, fence 0, a fenced write
/// refused with a typed error, and the same FIFO hand-off for waiters.
async fn should_lock_unfenced_with_the_same_waiting(ctx: TestCtx) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default().with_fencing(false)).await?;
    let guard = locks.try_acquire("plain", LONG).await?;
    let err = guard.fence().await.unwrap_err();
    assert!(matches!(err, Error::Unfenced { .. }), "{err:?}");
    let err = locks
        .fenced_write("plain", FencingToken::new(0), &1u8)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unfenced { .. }), "{err:?}");
    let err = locks.try_acquire("plain", LONG).await.unwrap_err();
    assert!(err.is_contended(), "{err:?}");
    assert!(err.retry_after().is_some_and(|r| r > Duration::ZERO));
    guard.release().await?;
    // 20 waiters on one resource, served one by one by hand-off
    let inside = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (locks, inside) = (locks.clone(), inside.clone());
        set.spawn(async move {
            let guard = locks.acquire("plain", LONG).await?;
            anyhow::ensure!(
                !inside.swap(true, std::sync::atomic::Ordering::SeqCst),
                "two holders at once"
            );
            tokio::task::yield_now().await;
            inside.store(false, std::sync::atomic::Ordering::SeqCst);
            guard.release().await?;
            anyhow::Ok(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    let stats = locks.stats();
    assert_eq!((stats.acquired, stats.released, stats.losses), (21, 21, 0));
    assert_eq!(locks.remaining("plain").await?, None);
    Ok(())
}

/// Two holders presenting the same fence (what the two sides of a sentinel
/// split brain issue from one replicated counter; the counter is rewound
/// by hand here): the second holder's fenced write is refused, while the
/// first holder writing again with its own fence (a replay) is accepted.
async fn should_refuse_an_equal_fence_from_another_holder(ctx: TestCtx) -> anyhow::Result<()> {
    use aeturnis_lock::core::fred::interfaces::HashesInterface;
    let locks = manager(&ctx, LockConfig::default()).await?;
    let keys = aeturnis_lock::raw::LockKeys::new(locks.redis().keys(), "split")?;
    let first = locks.try_acquire("split", LONG).await?;
    let f = first.fence().await?;
    assert_eq!(locks.fenced_write("split", f, "first").await?, Ok(()));
    assert_eq!(
        locks.fenced_write("split", f, "first again").await?,
        Ok(()),
        "the same holder with the same fence: a replay, accepted"
    );
    first.release().await?;
    // the other side of the split brain counts from one behind, and has
    // not seen the first holder's write (set aside while it issues)
    use aeturnis_lock::core::fred::interfaces::KeysInterface;
    let _: i64 = locks
        .redis()
        .client()
        .hset(keys.state(), ("n", f.get() - 1))
        .await?;
    let aside = format!("{}:aside", keys.fenced());
    let _: () = locks.redis().client().rename(keys.fenced(), &aside).await?;
    let second = locks.try_acquire("split", LONG).await?;
    let g = second.fence().await?;
    let _: () = locks.redis().client().rename(&aside, keys.fenced()).await?;
    assert_eq!(g.get(), f.get(), "two holders, one fence");
    match locks.fenced_write("split", g, "second").await? {
        Err(StaleFence {
            offered, current, ..
        }) => assert_eq!((offered.get(), current.get()), (f.get(), f.get())),
        Ok(()) => panic!("an equal fence from another holder was accepted"),
    }
    let (fence, value): (_, String) = locks.fenced_read("split").await?.unwrap();
    assert_eq!((fence.get(), value.as_str()), (f.get(), "first again"));
    // nor does a fence that names no holder pass on equality
    let anonymous = FencingToken::new(f.get());
    assert!(locks.fenced_write("split", anonymous, "x").await?.is_err());
    second.release().await?;
    Ok(())
}

/// A holder whose lease ran out without asking for a fence never gets one,
/// and the next holder's fence is above every fence issued before.
async fn should_never_issue_a_fence_to_a_stale_holder(ctx: TestCtx) -> anyhow::Result<()> {
    let locks = manager(&ctx, LockConfig::default()).await?;
    let earlier = locks.try_acquire("stale", LONG).await?;
    let f0 = earlier.fence().await?;
    earlier.release().await?;
    let stale = locks
        .try_acquire("stale", Duration::from_millis(100))
        .await?;
    eventually("the lease expires", Duration::from_secs(3), || async {
        anyhow::ensure!(locks.remaining("stale").await?.is_none(), "not yet");
        anyhow::Ok(())
    })
    .await?;
    // expired and free: still no fence for the stale holder
    let err = stale.fence().await.unwrap_err();
    assert!(err.is_lock_lost(), "{err:?}");
    assert!(stale.is_lost(), "finding the lock lost fires the signal");
    let fresh = locks.try_acquire("stale", LONG).await?;
    // taken by someone else: still none
    assert!(stale.fence().await.unwrap_err().is_lock_lost());
    let f1 = fresh.fence().await?;
    assert!(f1 > f0, "{f0} then {f1}");
    fresh.release().await?;
    assert!(stale.release().await.unwrap_err().is_lock_lost());
    Ok(())
}

/// After a data loss restarts the fencing counter (the state deleted here),
/// a fenced write from before the loss that lands on the emptied server
/// does not block the holders after it: their fences start above it.
async fn should_issue_fences_above_the_last_fenced_write_after_a_data_loss(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    use aeturnis_lock::core::fred::interfaces::KeysInterface;
    let locks = manager(&ctx, LockConfig::default()).await?;
    let keys = aeturnis_lock::raw::LockKeys::new(locks.redis().keys(), "lost")?;
    let old = locks.try_acquire("lost", LONG).await?;
    let f = old.fence().await?;
    old.release().await?;
    // the server loses the lock's keys; the old holder's write lands after
    let _: i64 = locks.redis().client().del(keys.state()).await?;
    let _: i64 = locks.redis().client().del(keys.fenced()).await?;
    let late = FencingToken::new(f.get() + 40);
    assert_eq!(
        locks.fenced_write("lost", late, "from before").await?,
        Ok(())
    );
    let next = locks.try_acquire("lost", LONG).await?;
    let g = next.fence().await?;
    assert_eq!(
        g.get(),
        late.get() + 1,
        "the counter starts above the last write"
    );
    assert_eq!(locks.fenced_write("lost", g, "after").await?, Ok(()));
    next.release().await?;
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_issue_fences_above_the_last_fenced_write_after_a_data_loss,
    should_lock_unfenced_with_the_same_waiting,
    should_refuse_an_equal_fence_from_another_holder,
    should_never_issue_a_fence_to_a_stale_holder,
    should_acquire_release_with_rising_fences,
    should_deny_a_held_lock_with_retry_after,
    should_wake_a_waiter_on_release,
    should_never_release_another_holders_lock,
    should_keep_a_watched_lock_alive,
    should_release_with_lock_on_error_panic_and_cancel,
    should_refuse_bad_input_with_typed_errors,
    should_serve_all_50_contending_tasks,
);

/// Drop runs on a single-threaded runtime: a `block_on` inside drop would
/// panic or deadlock here; the release must happen in a spawned task.
#[tokio::test(flavor = "current_thread")]
async fn should_release_on_drop_without_blocking() -> anyhow::Result<()> {
    let ctx = TestCtx::standalone("drop").await;
    let locks = manager(&ctx, LockConfig::default()).await?;
    let guard = locks.try_acquire("res", LONG).await?;
    let started = Instant::now();
    drop(guard);
    let drop_took = started.elapsed();
    eventually("released after drop", Duration::from_secs(2), || async {
        anyhow::ensure!(locks.remaining("res").await?.is_none(), "not yet");
        anyhow::Ok(())
    })
    .await?;
    assert_eq!(locks.stats().released, 1);
    // drop only spawns the release: a generous behaviour bound (a blocking
    // release would take a round trip), not a benchmark
    assert!(
        drop_took < Duration::from_millis(50),
        "drop must not block: it took {drop_took:?}"
    );
    Ok(())
}
