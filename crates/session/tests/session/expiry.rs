//! Idle and absolute expiry, on the script path and the fast path, also with a wrong clock estimate.

use std::time::{Duration, Instant, SystemTime};

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_session::{CharacterId, SessionConfig, SessionManager};
use aeturnis_testkit::{eventually, TestCtx};

use crate::support::*;

async fn should_end_idle_sessions(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_idle_ttl(Duration::from_millis(300))).await?;
    let u = user("heidi");
    let s = m.create(&u, meta()).await?;
    let key = session_key(&ctx, &s.id);
    eventually("the idle session expires", DEADLINE, || async {
        if exists(&m, &key).await {
            Err("the key is still there")
        } else {
            Ok(())
        }
    })
    .await?;
    assert!(m.get(&s.id).await?.is_none());
    assert!(m.list(&u).await?.is_empty());
    // the index outlives its last session by at most the touch interval
    eventually("the index expires", DEADLINE, || async {
        if exists(&m, &index_key(&ctx, &u)).await {
            Err("the index is still there")
        } else {
            Ok(())
        }
    })
    .await?;
    Ok(())
}

/// A session read every 25 ms still ends at its absolute expiry (2 s: room
/// for a stall of the loaded CI host among the reads), and no read ever
/// leaves its key's expiry past it.
async fn ends_at_the_absolute_lifetime(ctx: &TestCtx, config: SessionConfig) -> anyhow::Result<()> {
    let m = manager(
        ctx,
        config
            .with_idle_ttl(Duration::from_secs(10))
            .with_absolute_ttl(Duration::from_secs(2)),
    )
    .await?;
    let s = m.create(&user("ivan"), meta()).await?;
    let key = session_key(ctx, &s.id);
    assert!(pttl(&m, &key).await <= 2_000);
    let absolute = ms(s.absolute_expires_at);
    let deadline = Instant::now() + DEADLINE;
    let mut reads = 0;
    // keep it busy: activity does not save it
    while let Some(got) = m.get(&s.id).await? {
        reads += 1;
        assert_eq!(got.absolute_expires_at, s.absolute_expires_at);
        assert!(got.expires_at <= got.absolute_expires_at);
        let expiry = pexpire_time(&m, &key).await;
        assert!(
            expiry <= absolute,
            "a read left the key expiring {} ms past the absolute expiry",
            expiry - absolute
        );
        assert!(
            Instant::now() < deadline,
            "the session outlived its absolute lifetime"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reads > 5, "only {reads} reads");
    let ended = m.redis().server_time().await?;
    let created = s.created_at.duration_since(SystemTime::UNIX_EPOCH)?;
    assert!(
        ended >= created + Duration::from_millis(1_990),
        "ended after {:?}",
        ended - created
    );
    assert!(!exists(&m, &key).await, "and its key is gone");
    Ok(())
}

async fn should_end_sessions_at_the_absolute_lifetime(ctx: TestCtx) -> anyhow::Result<()> {
    ends_at_the_absolute_lifetime(&ctx, eager()).await
}

/// The same on the fast path: every read is `GETEX PX` and then the script,
/// which caps the expiry (the session is always within the last idle TTL
/// of its life).
async fn should_cap_fast_path_reads_at_the_absolute_lifetime(ctx: TestCtx) -> anyhow::Result<()> {
    ends_at_the_absolute_lifetime(&ctx, fast()).await?;
    // a key that lingers past the absolute expiry (a read's GETEX slid
    // it and the read died before the script capped it, or fred replayed
    // the GETEX late) is gone for every call, and the first read or list
    // that meets it deletes it
    let m = manager(
        &ctx,
        fast()
            .with_idle_ttl(Duration::from_secs(10))
            // long enough that both keys are still there for the PEXPIRE
            // below on a stalled CI host
            .with_absolute_ttl(Duration::from_secs(2)),
    )
    .await?;
    let u = user("ivy");
    let (s, t) = (m.create(&u, meta()).await?, m.create(&u, meta()).await?);
    let (key, other) = (session_key(&ctx, &s.id), session_key(&ctx, &t.id));
    for k in [&key, &other] {
        let _: () = m.redis().client().pexpire(k, 10_000, None).await?;
    }
    let absolute = s.absolute_expires_at.max(t.absolute_expires_at);
    let absolute = absolute.duration_since(SystemTime::UNIX_EPOCH)?;
    server_time_past(&m, absolute).await?;
    assert!(exists(&m, &key).await && exists(&m, &other).await);
    let hero = CharacterId::new("late")?;
    assert!(m.bind_character(&s.id, &hero).await?.is_none());
    assert!(m.extend(&s.id, Duration::from_secs(5)).await?.is_none());
    assert!(m.rotate(&s.id).await?.is_none());
    assert!(m.get(&s.id).await?.is_none(), "past the absolute expiry");
    assert!(!exists(&m, &key).await, "deleted by the read");
    assert!(m.list(&u).await?.is_empty());
    assert_eq!(
        index_score(&m, &index_key(&ctx, &u), &s.id).await,
        None,
        "the list dropped the index entries"
    );
    assert!(!exists(&m, &other).await, "deleted by the list");
    Ok(())
}

/// Reads every 10 ms through the end of a session's life (idle 1.6 s,
/// absolute 4 s, touch 1.4 s: a stall of the loaded CI host between two
/// reads stays below the idle TTL): the early reads are native, the last ones
/// (the last idle TTL) go through the script; after every read the key's
/// `PEXPIRETIME` is at most the absolute expiry, and the session ends
/// there.
async fn should_never_leave_the_expiry_past_the_absolute_one_near_the_end(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let m = manager(
        &ctx,
        SessionConfig::default()
            .with_idle_ttl(Duration::from_millis(1_600))
            .with_absolute_ttl(Duration::from_secs(4))
            .with_touch_interval(Duration::from_millis(1_400)),
    )
    .await?;
    let s = m.create(&user("closer"), meta()).await?;
    let key = session_key(&ctx, &s.id);
    let absolute = ms(s.absolute_expires_at);
    let deadline = Instant::now() + DEADLINE;
    let (mut slid, mut capped) = (0, 0);
    while let Some(got) = m.get(&s.id).await? {
        assert!(got.expires_at <= got.absolute_expires_at);
        let expiry = pexpire_time(&m, &key).await;
        assert!(
            expiry <= absolute,
            "a read left the key expiring {} ms past the absolute expiry",
            expiry - absolute
        );
        if expiry == absolute {
            capped += 1;
        } else {
            slid += 1;
        }
        assert!(
            Instant::now() < deadline,
            "the session outlived its absolute lifetime"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(slid > 5 && capped > 5, "{slid} slid, {capped} capped");
    let ended = ms(SystemTime::UNIX_EPOCH + m.redis().server_time().await?);
    assert!(
        ended >= absolute - 10,
        "ended {} ms early",
        absolute - ended
    );
    assert!(!exists(&m, &key).await, "and its key is gone");
    Ok(())
}

/// A manager whose clock estimate is 800 ms behind the server (beyond its
/// uncertainty; idle 1 s, absolute 2 s, touch 900 ms) slides the key's
/// expiry past the absolute one with its native reads (here by 300 ms or
/// more), but cannot keep the session alive past it: no read returns it once the server's clock has
/// passed the absolute expiry, no other call sees it, and the next read
/// deletes it.
async fn should_not_keep_a_session_past_its_absolute_expiry_with_a_wrong_clock(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let config = SessionConfig::default()
        .with_idle_ttl(Duration::from_secs(1))
        .with_absolute_ttl(Duration::from_secs(2))
        .with_touch_interval(Duration::from_millis(900));
    let m = manager(&ctx, config.clone()).await?;
    let wrong = SessionManager::new(m.redis().clone(), config)?.with_clock_skew_ms_for_tests(-800);
    let u = user("late-clock");
    let s = m.create(&u, meta()).await?;
    let key = session_key(&ctx, &s.id);
    let absolute = ms(s.absolute_expires_at);
    let end = s
        .absolute_expires_at
        .duration_since(SystemTime::UNIX_EPOCH)?;
    let deadline = Instant::now() + DEADLINE;
    let mut past = false;
    loop {
        let before = m.redis().server_time().await?;
        let Some(got) = wrong.get(&s.id).await? else {
            break;
        };
        assert!(before < end, "read back after its absolute expiry");
        assert_eq!(got.absolute_expires_at, s.absolute_expires_at);
        if pexpire_time(&m, &key).await > absolute + 300 {
            past = true;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session outlived its lifetime"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        past,
        "the wrong clock's reads slid the key past the absolute expiry"
    );
    server_time_past(&m, end).await?;
    assert!(exists(&m, &key).await, "the key lingers");
    let hero = CharacterId::new("late")?;
    assert!(m.bind_character(&s.id, &hero).await?.is_none());
    assert!(m.extend(&s.id, Duration::from_secs(5)).await?.is_none());
    assert!(m.rotate(&s.id).await?.is_none());
    assert!(
        wrong.get(&s.id).await?.is_none(),
        "past the absolute expiry"
    );
    assert!(!exists(&m, &key).await, "deleted by the read");
    assert!(m.list(&u).await?.is_empty());
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_end_idle_sessions,
    should_end_sessions_at_the_absolute_lifetime,
    should_cap_fast_path_reads_at_the_absolute_lifetime,
    should_never_leave_the_expiry_past_the_absolute_one_near_the_end,
    should_not_keep_a_session_past_its_absolute_expiry_with_a_wrong_clock,
);
