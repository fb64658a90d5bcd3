//! The Lua scripts called one by one (through the hidden `test-hooks`
//! API): replay safety, FIFO hand-off, leaving waiters, dead waiters, data
//! loss, fence floors, the unfenced path, fenced writes, local hand-off.

use aeturnis_lock::raw::{
    acquire, acquire_unfenced, extend, fence as issue_fence, fence_of, fenced_write, release,
    release_to_local, wait, Attempt, LockKeys, ReleaseMode, ReleaseOutcome, WaitAttempt, NAMES,
};
use aeturnis_lock::{LockConfig, LockManager, LockToken, Redlock, RedlockConfig};
use aeturnis_redis_core::fred::interfaces::{HashesInterface, KeysInterface};
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_testkit::TestCtx;

trait Handed {
    /// The new holder's lock value, when the release handed the lock over.
    fn handed(self) -> Option<String>;
}

impl Handed for ReleaseOutcome {
    fn handed(self) -> Option<String> {
        match self {
            ReleaseOutcome::Released(handed) => handed,
            _ => None,
        }
    }
}

const DAY: u64 = 86_400_000;

async fn connect(ctx: &TestCtx) -> anyhow::Result<Redis> {
    Ok(Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?)
}

fn tok() -> String {
    LockToken::random().as_str().to_owned()
}

/// fred re-sends a script whose connection dropped; sending the same
/// invocation twice is what a replay looks like to the server.
async fn should_answer_replayed_scripts_the_same(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let keys = LockKeys::new(redis.keys(), "replayed")?;
    let (a, b, c) = (tok(), tok(), tok());
    let first = acquire(&redis, &keys, &a, 5_000, DAY, 0).await?;
    let replay = acquire(&redis, &keys, &a, 5_000, DAY, 0).await?;
    assert_eq!(first, Attempt::Acquired(1));
    assert_eq!(
        replay, first,
        "a replayed acquire must report the fence it issued"
    );
    assert!(matches!(
        acquire(&redis, &keys, &b, 5_000, DAY, 0).await?,
        Attempt::Held(ms) if ms > 0 && ms <= 5_000
    ));
    assert!(extend(&redis, &keys, &a, 5_000).await?);
    assert!(extend(&redis, &keys, &a, 5_000).await?);
    assert!(!extend(&redis, &keys, &b, 5_000).await?);
    let release_a = || release(&redis, &keys, &a, 1, ReleaseMode::Release);
    assert_eq!(release_a().await?, ReleaseOutcome::Released(None));
    assert_eq!(
        release_a().await?,
        ReleaseOutcome::NotOurs,
        "a replayed release finds nothing: the client decides by its lease"
    );
    assert_eq!(
        release(&redis, &keys, &b, 0, ReleaseMode::Release).await?,
        ReleaseOutcome::NotOurs
    );
    let exists: i64 = redis.client().exists(&keys.lock).await?;
    assert_eq!(exists, 0);
    let state_ttl: i64 = redis.client().pttl(keys.state()).await?;
    assert!(state_ttl > 0, "the fence counter must carry a TTL");
    match acquire(&redis, &keys, &c, 5_000, DAY, 0).await? {
        Attempt::Acquired(f) => assert!(f > 1, "fences must grow: got {f}"),
        other => panic!("expected the free lock, got {other:?}"),
    }
    Ok(())
}

async fn should_hand_the_lock_to_the_oldest_waiter(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let keys = LockKeys::new(redis.keys(), "handoff")?;
    let (holder, first, second, late) = (tok(), tok(), tok(), tok());
    assert_eq!(
        acquire(&redis, &keys, &holder, 5_000, DAY, 0).await?,
        Attempt::Acquired(1)
    );
    for waiter in [&first, &second] {
        assert!(matches!(
            wait(&redis, &keys, waiter, 7_000, 5_000).await?,
            WaitAttempt::Held(ms) if ms > 0
        ));
    }
    let handed = release(&redis, &keys, &holder, 0, ReleaseMode::Release)
        .await?
        .handed()
        .expect("the release must hand the lock over");
    assert!(
        handed.starts_with(first.as_str()),
        "the oldest waiter goes first"
    );
    assert_eq!(
        fence_of(&handed),
        0,
        "a hand-off issues no fence: the new holder asks for one"
    );
    let pttl: i64 = redis.client().pttl(&keys.lock).await?;
    assert!(
        pttl > 5_000,
        "the lock carries the waiter's own TTL, got {pttl}"
    );
    assert!(
        matches!(
            acquire(&redis, &keys, &late, 5_000, DAY, 0).await?,
            Attempt::Held(_)
        ),
        "nobody can barge in during a hand-off"
    );
    assert!(matches!(
        wait(&redis, &keys, &second, 7_000, 5_000).await?,
        WaitAttempt::Held(_)
    ));
    assert_eq!(
        wait(&redis, &keys, &first, 7_000, 5_000).await?,
        WaitAttempt::Acquired(handed.clone()),
        "a waiter that missed the message finds the lock its own"
    );
    assert!(extend(&redis, &keys, &first, 5_000).await?);
    let fence = issue_fence(&redis, &keys, &first, DAY)
        .await?
        .expect("the holder gets a fence");
    assert!(fence > 1, "above the previous holder's, got {fence}");
    // force release hands over too
    let forced = release(&redis, &keys, "", 0, ReleaseMode::Force)
        .await?
        .handed()
        .expect("force release must hand over to the next waiter");
    assert!(forced.starts_with(second.as_str()));
    assert_eq!(
        issue_fence(&redis, &keys, &first, DAY).await?,
        None,
        "a holder that lost the lock never gets a fence"
    );
    let after = issue_fence(&redis, &keys, &second, DAY).await?;
    assert!(after.is_some_and(|f| f > fence), "{after:?} after {fence}");
    assert_eq!(
        release(&redis, &keys, &first, fence, ReleaseMode::Release).await?,
        ReleaseOutcome::Lost,
        "a force-released holder learns it lost the lock"
    );
    assert_eq!(
        release(&redis, &keys, &second, 0, ReleaseMode::Release).await?,
        ReleaseOutcome::Released(None),
        "the last waiter's release frees the lock"
    );
    assert_eq!(
        release(&redis, &keys, "", 0, ReleaseMode::Force).await?,
        ReleaseOutcome::NotOurs
    );
    Ok(())
}

async fn should_release_what_a_leaving_waiter_was_handed(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let keys = LockKeys::new(redis.keys(), "leave")?;
    let (holder, gone, next) = (tok(), tok(), tok());
    acquire(&redis, &keys, &holder, 5_000, DAY, 0).await?;
    for waiter in [&gone, &next] {
        wait(&redis, &keys, waiter, 5_000, 5_000).await?;
    }
    release(&redis, &keys, &holder, 0, ReleaseMode::Release).await?;
    // `gone` was handed the lock, but gives up before it hears of it
    let handed = release(&redis, &keys, &gone, 0, ReleaseMode::Leave)
        .await?
        .handed()
        .expect("leaving must pass the lock on");
    assert!(handed.starts_with(next.as_str()));
    Ok(())
}

async fn should_skip_dead_waiters(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let keys = LockKeys::new(redis.keys(), "dead")?;
    let (holder, dead, live) = (tok(), tok(), tok());
    acquire(&redis, &keys, &holder, 5_000, DAY, 0).await?;
    wait(&redis, &keys, &dead, 5_000, 5_000).await?;
    wait(&redis, &keys, &live, 5_000, 5_000).await?;
    // the first waiter's lease ran out (its process died)
    let _: i64 = redis
        .client()
        .hset(format!("{}:alive", keys.lock), (dead.as_str(), "1:5000"))
        .await?;
    let handed = release(&redis, &keys, &holder, 0, ReleaseMode::Release)
        .await?
        .handed()
        .expect("the live waiter must get the lock");
    assert!(handed.starts_with(live.as_str()));
    Ok(())
}

async fn should_report_a_lock_whose_data_redis_lost(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let keys = LockKeys::new(redis.keys(), "wiped")?;
    let (a, b) = (tok(), tok());
    let Attempt::Acquired(fence) = acquire(&redis, &keys, &a, 5_000, DAY, 7).await? else {
        panic!("the free lock must be granted");
    };
    // Redis loses the lock and its counter (a restart without
    // persistence); someone else takes the lock afresh
    let _: i64 = redis
        .client()
        .del(vec![keys.lock.to_string(), keys.state()])
        .await?;
    assert_eq!(
        acquire(&redis, &keys, &b, 5_000, DAY, 0).await?,
        Attempt::Acquired(1)
    );
    assert_eq!(
        release(&redis, &keys, &a, fence, ReleaseMode::Release).await?,
        ReleaseOutcome::Lost,
        "a counter below our fence means the lock's data was lost"
    );
    Ok(())
}

async fn should_raise_lagging_counters_to_the_floor(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let keys = LockKeys::new(redis.keys(), "floored")?;
    let (t1, t2) = (tok(), tok());
    assert_eq!(
        acquire(&redis, &keys, &t1, 5_000, DAY, 41).await?,
        Attempt::Acquired(42)
    );
    assert_eq!(
        release(&redis, &keys, &t1, 42, ReleaseMode::Release).await?,
        ReleaseOutcome::Released(None)
    );
    assert_eq!(
        acquire(&redis, &keys, &t2, 5_000, DAY, 0).await?,
        Attempt::Acquired(43)
    );
    Ok(())
}

async fn should_acquire_unfenced_with_one_native_set(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let keys = LockKeys::new(redis.keys(), "unfenced")?;
    let (a, b) = (tok(), tok());
    assert_eq!(
        acquire_unfenced(&redis, &keys, &a, 5_000).await?,
        Attempt::Acquired(0)
    );
    assert_eq!(
        acquire_unfenced(&redis, &keys, &a, 5_000).await?,
        Attempt::Acquired(0),
        "a replayed SET NX GET finds our own token: still acquired"
    );
    assert!(matches!(
        acquire_unfenced(&redis, &keys, &b, 5_000).await?,
        Attempt::Held(ms) if ms > 0 && ms <= 5_000
    ));
    let state: i64 = redis.client().exists(keys.state()).await?;
    assert_eq!(state, 0, "unfenced locks keep no counter");
    assert_eq!(
        release(&redis, &keys, &a, 0, ReleaseMode::Release).await?,
        ReleaseOutcome::Released(None)
    );
    assert_eq!(
        release(&redis, &keys, &a, 0, ReleaseMode::Release).await?,
        ReleaseOutcome::NotOurs
    );
    Ok(())
}

async fn should_refuse_only_older_fences(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let keys = LockKeys::new(redis.keys(), "fenced")?;
    let (h1, h2) = (tok(), tok());
    let write = |f: u64, holder: &str, v: &'static [u8]| {
        let holder = holder.to_owned();
        let (redis, keys) = (&redis, &keys);
        async move {
            fenced_write(
                redis,
                keys.fenced(),
                keys.state(),
                f,
                &holder,
                v.to_vec(),
                DAY,
            )
            .await
        }
    };
    assert_eq!(write(5, &h1, b"a").await?, Ok(0));
    assert_eq!(
        write(5, &h1, b"a").await?,
        Ok(5),
        "a replay (same fence, same holder) is accepted"
    );
    assert_eq!(
        write(5, &h2, b"x").await?,
        Err(5),
        "the same fence from another holder (a split brain) is refused"
    );
    assert_eq!(
        write(5, "", b"x").await?,
        Err(5),
        "an equal fence that names no holder is refused"
    );
    assert_eq!(write(4, &h1, b"x").await?, Err(5));
    assert_eq!(write(6, &h2, b"b").await?, Ok(5));
    let stored: (String, String) = redis.client().hmget(keys.fenced(), vec!["v", "h"]).await?;
    assert_eq!(stored, ("b".to_owned(), h2.clone()));
    let ttl: i64 = redis.client().pttl(keys.fenced()).await?;
    assert!(ttl > 0);
    Ok(())
}

/// Mode `h`: the holder hands the lock to a waiter of its own process
/// in one call; a replay of that call answers the same grant (never
/// "not ours"); remote waiters still come first.
async fn should_hand_to_local_idempotently(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    for fenced in [true, false] {
        let keys = LockKeys::new(redis.keys(), if fenced { "local" } else { "local_plain" })?;
        let (holder, next, remote, after) = (tok(), tok(), tok(), tok());
        assert_eq!(
            acquire_unfenced(&redis, &keys, &holder, 5_000).await?,
            Attempt::Acquired(0)
        );
        let fence = if fenced {
            issue_fence(&redis, &keys, &holder, DAY)
                .await?
                .expect("the holder gets a fence")
        } else {
            0
        };
        let hand = |from: &str, to: &str| {
            let (from, to) = (from.to_owned(), to.to_owned());
            let (redis, keys) = (&redis, &keys);
            async move { release_to_local(redis, keys, &from, fence, &to, 9_000).await }
        };
        let first = hand(&holder, &next)
            .await?
            .handed()
            .expect("the lock must be handed to the local waiter");
        let replay = hand(&holder, &next).await?.handed();
        assert_eq!(
            replay.as_deref(),
            Some(first.as_str()),
            "a replayed hand-off answers the same grant"
        );
        assert!(first.starts_with(next.as_str()));
        assert_eq!(
            first, next,
            "a hand-off carries no fence: the value is the token"
        );
        let next_fence = if fenced {
            let f = issue_fence(&redis, &keys, &next, DAY).await?;
            assert!(f.is_some_and(|f| f > fence), "{f:?} after {fence}");
            f.unwrap_or(0)
        } else {
            0
        };
        let pttl: i64 = redis.client().pttl(&keys.lock).await?;
        assert!(
            pttl > 5_000,
            "the lock carries the waiter's TTL, got {pttl}"
        );
        // a remote waiter queues: the next release serves it first,
        // however many local waiters there are
        assert!(matches!(
            wait(&redis, &keys, &remote, 5_000, 5_000).await?,
            WaitAttempt::Held(_)
        ));
        let to_remote = release_to_local(&redis, &keys, &next, next_fence, &after, 9_000)
            .await?
            .handed()
            .expect("the remote waiter must get the lock");
        assert!(
            to_remote.starts_with(remote.as_str()),
            "remote waiters take precedence"
        );
        assert_eq!(
            release(&redis, &keys, &remote, 0, ReleaseMode::Release).await?,
            ReleaseOutcome::Released(None)
        );
    }
    Ok(())
}

/// A fence on demand: issued only to the holder, once (a replay or a second
/// call answers the same fence and bumps nothing), written into the lock
/// value with its TTL and its `!` mark kept, so the release still hands
/// the lock over.
async fn should_issue_fences_only_to_the_holder_once(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let keys = LockKeys::new(redis.keys(), "on-demand")?;
    let (a, b) = (tok(), tok());
    assert_eq!(
        issue_fence(&redis, &keys, &a, DAY).await?,
        None,
        "free lock"
    );
    assert_eq!(
        acquire_unfenced(&redis, &keys, &a, 5_000).await?,
        Attempt::Acquired(0)
    );
    assert!(matches!(
        wait(&redis, &keys, &b, 5_000, 5_000).await?,
        WaitAttempt::Held(_)
    ));
    let first = issue_fence(&redis, &keys, &a, DAY).await?;
    assert_eq!(first, Some(1));
    assert_eq!(
        issue_fence(&redis, &keys, &a, DAY).await?,
        first,
        "a replay answers the same fence"
    );
    assert_eq!(issue_fence(&redis, &keys, &b, DAY).await?, None);
    let counter: u64 = redis.client().hget(keys.state(), "n").await?;
    assert_eq!(counter, 1, "one fence issued in all");
    let state_ttl: i64 = redis.client().pttl(keys.state()).await?;
    assert!(state_ttl > 0, "the counter carries a TTL");
    let value: String = redis.client().get(&keys.lock).await?;
    assert_eq!(value, format!("{a}:1!"), "fence written, `!` kept");
    let pttl: i64 = redis.client().pttl(&keys.lock).await?;
    assert!(pttl > 0 && pttl <= 5_000, "TTL kept: {pttl}");
    assert!(extend(&redis, &keys, &a, 5_000).await?);
    let handed = release(&redis, &keys, &a, 1, ReleaseMode::Release)
        .await?
        .handed();
    assert_eq!(handed.as_deref(), Some(b.as_str()), "handed over to b");
    assert_eq!(issue_fence(&redis, &keys, &a, DAY).await?, None);
    assert_eq!(issue_fence(&redis, &keys, &b, DAY).await?, Some(2));
    Ok(())
}

/// Building a manager (or a Redlock, on every master) registers all six
/// scripts once, so `load_scripts` loads them all.
async fn should_register_every_script_at_construction(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let ours = |redis: &Redis| -> Vec<&'static str> {
        redis
            .registered_scripts()
            .into_iter()
            .filter(|n| n.starts_with("lock_"))
            .collect()
    };
    assert!(ours(&redis).is_empty());
    let locks = LockManager::new(redis.clone(), LockConfig::default())?;
    assert_eq!(ours(&redis), NAMES);
    // a second manager on the same handle registers nothing twice
    let _again = LockManager::new(redis.clone(), LockConfig::default().with_fencing(false))?;
    assert_eq!(ours(&redis), NAMES);
    let registered = redis.registered_scripts().len();
    assert_eq!(redis.load_scripts().await?, registered);
    assert!(registered >= NAMES.len());
    locks
        .try_acquire("loaded", std::time::Duration::from_secs(5))
        .await?
        .release()
        .await?;
    let masters = vec![
        connect(&ctx).await?,
        connect(&ctx).await?,
        connect(&ctx).await?,
    ];
    let _red = Redlock::new(masters.clone(), RedlockConfig::default())?;
    for m in &masters {
        assert_eq!(ours(m), NAMES);
    }
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_register_every_script_at_construction,
    should_answer_replayed_scripts_the_same,
    should_hand_the_lock_to_the_oldest_waiter,
    should_release_what_a_leaving_waiter_was_handed,
    should_skip_dead_waiters,
    should_report_a_lock_whose_data_redis_lost,
    should_raise_lagging_counters_to_the_floor,
    should_acquire_unfenced_with_one_native_set,
    should_refuse_only_older_fences,
    should_hand_to_local_idempotently,
    should_issue_fences_only_to_the_holder_once,
);
