//! Sessions on a server the test owns: killed and restarted mid-run, and
//! connections killed under create and read storms (fred replays in-flight
//! scripts and `GETEX`). Each storm round holds the writes with `CLIENT
//! PAUSE WRITE`, so the connection it kills provably has commands in
//! flight, then keeps killing while the re-sent commands run (where a
//! command may run and lose its reply).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{ReconnectConfig, Redis, RedisConfig};
use aeturnis_session::{Classify, Error, SessionConfig, SessionManager, SessionMetadata, UserId};
use aeturnis_testkit::{eventually, RedisServer};

const DEADLINE: Duration = Duration::from_secs(30);

async fn manager(url: &str, config: SessionConfig) -> anyhow::Result<SessionManager> {
    let mut reconnect = ReconnectConfig::default();
    reconnect.min_delay = Duration::from_millis(50);
    reconnect.max_delay = Duration::from_millis(500);
    let redis = Redis::connect(
        RedisConfig::from_url(url)?
            .with_key_prefix("faults:")
            .with_command_timeout(Duration::from_millis(500))
            .with_connect_timeout(Duration::from_secs(2))
            .with_reconnect(reconnect),
    )
    .await?;
    Ok(SessionManager::new(redis, config)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fail_with_typed_errors_while_redis_is_down_and_recover() -> anyhow::Result<()> {
    let mut server = RedisServer::start_standalone()?;
    let m = manager(&server.url(), SessionConfig::default()).await?;
    let user = UserId::new("survivor")?;
    let s = m.create(&user, SessionMetadata::new()).await?;

    server.kill()?;
    for _ in 0..3 {
        let started = Instant::now();
        let err = m.get(&s.id).await.unwrap_err();
        assert!(err.is_retryable() && err.is_unavailable(), "{err:?}");
        assert!(
            matches!(&err, Error::Redis(e) if e.is_timeout() || e.is_connection()),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        let err = m.create(&user, SessionMetadata::new()).await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
    }

    server.restart()?;
    // the restarted server has no data (no persistence) and no scripts:
    // NOSCRIPT is handled, and the old session is simply gone
    let fresh = eventually("a create after the restart", DEADLINE, || async {
        m.create(&user, SessionMetadata::new()).await.map_err(|e| {
            assert!(e.is_retryable(), "{e:?}");
            format!("{e:?}")
        })
    })
    .await?;
    assert!(m.get(&s.id).await?.is_none());
    assert_eq!(m.get(&fresh.id).await?.unwrap().user, user);
    assert_eq!(m.list(&user).await?.len(), 1);
    Ok(())
}

/// Storm rounds, each with one kill of a connection holding commands.
const ROUNDS: usize = 3;

/// A failure under a dropped connection: retryable, unavailable, and a
/// timeout or connection error (nothing else).
fn assert_unavailable(e: &Error) {
    assert!(
        e.is_retryable()
            && e.is_unavailable()
            && matches!(e, Error::Redis(r) if r.is_timeout() || r.is_connection()),
        "only typed connection errors: {e:?}"
    );
}

/// Tries to kill every connection of `server` every 5 ms while any of
/// `tasks` runs (for at most 200 ms, and at most twice with effect): the
/// reconnect re-sends the held commands at once, so a kill may land after
/// a command ran and before its reply arrived. Returns the connections
/// closed.
async fn kill_while_running<T>(
    server: &RedisServer,
    tasks: &[tokio::task::JoinHandle<T>],
) -> anyhow::Result<u32> {
    let (mut closed, mut landed) = (0, 0);
    for _ in 0..40 {
        if landed == 2 || tasks.iter().all(tokio::task::JoinHandle::is_finished) {
            break;
        }
        let n = server.kill_normal_clients()?;
        closed += n;
        landed += u32::from(n > 0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_the_limit_when_connections_drop_under_a_create_storm() -> anyhow::Result<()> {
    const PER_ROUND: usize = 150;
    let server = RedisServer::start_standalone()?;
    let m = manager(
        &server.url(),
        SessionConfig::default().with_max_per_user(NonZeroU32::new(3).unwrap()),
    )
    .await?;
    // the held command is the create script itself, not a NOSCRIPT answer
    m.redis().load_scripts().await?;
    let user = UserId::new("storm")?;
    let (mut ok, mut failed, mut held, mut closed) = (0, 0, 0, 0);
    for _ in 0..ROUNDS {
        server.pause_writes()?;
        let tasks: Vec<_> = (0..PER_ROUND)
            .map(|_| {
                let (m, user) = (m.clone(), user.clone());
                tokio::spawn(async move { m.create(&user, SessionMetadata::new()).await })
            })
            .collect();
        assert_eq!(
            server.kill_held(|c| c.cmd == "evalsha").await?.cmd,
            "evalsha"
        );
        held += 1;
        closed += kill_while_running(&server, &tasks).await?;
        for t in tasks {
            match t.await? {
                Ok(s) => {
                    assert_eq!(s.user, user);
                    ok += 1;
                }
                Err(e) => {
                    assert_unavailable(&e);
                    failed += 1;
                }
            }
        }
    }
    assert_eq!(
        held, ROUNDS,
        "every round killed a connection holding creates"
    );
    assert_eq!(ok + failed, ROUNDS * PER_ROUND, "every create answered");
    assert!(ok > 0, "the creates went through after the reconnects");
    // whatever ran once or twice, the user has exactly the limit, the
    // index lists exactly the live session keys, and nothing else is left
    let listed = eventually("a list after the storm", DEADLINE, || async {
        m.list(&user).await.map_err(|e| format!("{e:?}"))
    })
    .await?;
    assert_eq!(listed.len(), 3);
    let c = m.redis().client().clone();
    let tag = user.slot_tag();
    let members: Vec<String> = c
        .zrange(
            format!("faults:su:{{{tag}}}:storm"),
            0,
            -1,
            None,
            false,
            None,
            false,
        )
        .await?;
    assert_eq!(members.len(), 3, "no orphan index entries: {members:?}");
    for member in &members {
        let exists: i64 = c.exists(format!("faults:s:{{{tag}}}:{member}")).await?;
        assert_eq!(exists, 1, "index entry {member} has no session");
    }
    let census = m.recount().await?;
    assert_eq!(
        (census.sessions, census.users),
        (3, 1),
        "no orphan session keys"
    );
    println!("{ok} created, {failed} failed, {held} held kills, {closed} more connections closed");
    Ok(())
}

/// fred re-sends the fast path's `GETEX PX` and the scripts after a
/// dropped connection. Under a read storm near the end of the sessions'
/// absolute lifetime (the idle TTL is longer than the whole lifetime, so
/// every read's `GETEX` slides past the absolute expiry and the script
/// then pulls it back), with half of them revoked mid-storm and
/// connections killed: no revoked session comes back, every read either
/// answers or fails with an unavailable error (the counts add up), and
/// every session all of whose reads succeeded expires no later than its
/// absolute expiry (a read that failed may leave its key's expiry past it,
/// but no call returns such a session and the next read caps it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_stay_capped_and_revoked_when_connections_drop_under_a_read_storm(
) -> anyhow::Result<()> {
    /// Reads per session per phase; the odd sessions are revoked at the
    /// start of phase 2.
    const READS: usize = 5;
    const PHASES: usize = 4;

    let server = RedisServer::start_standalone()?;
    let m = manager(
        &server.url(),
        SessionConfig::default()
            .with_idle_ttl(Duration::from_secs(120))
            .with_absolute_ttl(Duration::from_secs(60))
            .with_touch_interval(Duration::from_secs(30)),
    )
    .await?;
    m.redis().load_scripts().await?;
    let mut sessions = Vec::new();
    for u in 0..40 {
        let user = UserId::new(format!("reader-{u}"))?;
        for _ in 0..5 {
            sessions.push(m.create(&user, SessionMetadata::new()).await?);
        }
    }
    // per session: (some, none, failed) reads, and whether a read failed
    let mut counts = vec![(0_usize, 0_usize, 0_usize); sessions.len()];
    let (mut held, mut closed) = (0, 0);
    for phase in 0..PHASES {
        server.pause_writes()?;
        let tasks: Vec<_> = sessions
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (m, id) = (m.clone(), s.id.clone());
                tokio::spawn(async move {
                    let revoked = i % 2 == 1 && phase >= 2;
                    if i % 2 == 1 && phase == 2 {
                        // a failed revoke is retried until it answers
                        eventually("the revoke goes through", DEADLINE, || async {
                            m.revoke(&id).await.map_err(|e| format!("{e:?}"))
                        })
                        .await
                        .unwrap();
                    }
                    let (mut some, mut none, mut failed) = (0, 0, 0);
                    for _ in 0..READS {
                        match m.get(&id).await {
                            Ok(Some(got)) => {
                                assert!(!revoked, "a revoked session was read back");
                                assert!(got.expires_at <= got.absolute_expires_at);
                                some += 1;
                            }
                            Ok(None) => {
                                assert!(revoked, "a live session was lost");
                                none += 1;
                            }
                            Err(e) => {
                                assert_unavailable(&e);
                                failed += 1;
                            }
                        }
                    }
                    (some, none, failed)
                })
            })
            .collect();
        server
            .kill_held(|c| ["getex", "evalsha"].contains(&c.cmd.as_str()))
            .await?;
        held += 1;
        closed += kill_while_running(&server, &tasks).await?;
        for (i, t) in tasks.into_iter().enumerate() {
            let (some, none, failed) = t.await?;
            counts[i].0 += some;
            counts[i].1 += none;
            counts[i].2 += failed;
        }
    }
    assert_eq!(
        held, PHASES,
        "every phase killed a connection holding reads"
    );
    for (i, (some, none, failed)) in counts.iter().enumerate() {
        assert_eq!(
            some + none + failed,
            PHASES * READS,
            "session {i}: every read answered"
        );
        if i % 2 == 1 {
            assert!(
                *some <= 2 * READS,
                "session {i}: read back after the revoke"
            );
        } else {
            assert_eq!(*none, 0, "session {i}: a live session was lost");
        }
    }
    let c = m.redis().client().clone();
    let key = |id: &aeturnis_session::SessionId| {
        let s = id.as_str();
        format!("faults:s:{{{}}}:{}", &s[..4], &s[5..])
    };
    eventually("the connection is back", DEADLINE, || async {
        m.redis().server_time().await.map_err(|e| format!("{e:?}"))
    })
    .await?;
    let mut failures = 0;
    for (i, s) in sessions.iter().enumerate() {
        let exists: i64 = c.exists(key(&s.id)).await?;
        if i % 2 == 1 {
            assert_eq!(exists, 0, "a revoked session came back");
            continue;
        }
        assert_eq!(exists, 1, "a live session was lost");
        let absolute = i64::try_from(
            s.absolute_expires_at
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis(),
        )?;
        if counts[i].2 > 0 {
            failures += 1;
            // the next read caps it
            m.get(&s.id).await?.unwrap();
        }
        let expiry: i64 = c.pexpire_time(key(&s.id)).await?;
        assert!(expiry <= absolute, "{expiry} > {absolute}");
    }
    let failed_reads: usize = counts.iter().map(|c| c.2).sum();
    println!(
        "{failed_reads} failed reads; {failures} of {} live sessions saw one; {held} held kills, {closed} more connections closed",
        sessions.len() / 2
    );
    Ok(())
}

/// `extend` is sent without replay: a connection killed while the extend
/// is held in flight gives an unavailable error, and fred does not send it
/// again after the reconnect (the expiry has not moved at all). The next
/// extend moves it exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_not_resend_an_extend_whose_connection_drops() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let m = manager(&server.url(), SessionConfig::default()).await?;
    m.redis().load_scripts().await?;
    let s = m
        .create(&UserId::new("stretch")?, SessionMetadata::new())
        .await?;
    let key = {
        let t = s.id.as_str();
        format!("faults:s:{{{}}}:{}", &t[..4], &t[5..])
    };
    let c = m.redis().client().clone();
    let before: i64 = c.pexpire_time(&key).await?;
    let by = Duration::from_secs(600);

    server.pause_writes()?;
    let extend = tokio::spawn({
        let (m, id) = (m.clone(), s.id.clone());
        async move { m.extend(&id, by).await }
    });
    assert_eq!(
        server.kill_held(|c| c.cmd == "evalsha").await?.cmd,
        "evalsha"
    );
    let err = extend.await?.unwrap_err();
    assert_unavailable(&err);
    eventually("the connection is back", DEADLINE, || async {
        m.redis().server_time().await.map_err(|e| format!("{e:?}"))
    })
    .await?;
    let after: i64 = c.pexpire_time(&key).await?;
    assert_eq!(after, before, "the dropped extend was sent again");

    let got = m.extend(&s.id, by).await?.unwrap();
    let moved: i64 = c.pexpire_time(&key).await?;
    let by_ms = i64::try_from(by.as_millis())?;
    assert!(
        (moved - before - by_ms).abs() <= 10,
        "moved by {} ms, not once by {by_ms}",
        moved - before
    );
    assert!(got.expires_at > s.expires_at);
    Ok(())
}

/// The stats flush is sent without replay: a flush whose connection is
/// killed while it is held in flight fails with an unavailable error, and
/// its deltas are lost, not applied after the reconnect (where an applied
/// copy plus a re-sent one would count them twice). Later deltas are
/// written exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_not_count_stats_twice_when_a_flush_loses_its_connection() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let m = manager(&server.url(), SessionConfig::default()).await?;
    m.redis().load_scripts().await?;
    for i in 0..5 {
        m.create(&UserId::new(format!("lost-{i}"))?, SessionMetadata::new())
            .await?;
    }
    // the five creates' deltas are pending (the background task writes
    // first one interval after the first create)
    server.pause_writes()?;
    let flush = tokio::spawn({
        let m = m.clone();
        async move { m.flush_stats().await }
    });
    assert_eq!(
        server.kill_held(|c| c.cmd == "evalsha").await?.cmd,
        "evalsha"
    );
    let err = flush.await?.unwrap_err();
    assert_unavailable(&err);
    let stats = eventually("stats after the reconnect", DEADLINE, || async {
        m.stats().await.map_err(|e| format!("{e:?}"))
    })
    .await?;
    assert_eq!(
        (stats.created, stats.active, stats.unique_users),
        (0, 0, 0),
        "the dropped flush was applied: {stats:?}"
    );
    for i in 0..2 {
        m.create(&UserId::new(format!("kept-{i}"))?, SessionMetadata::new())
            .await?;
    }
    m.flush_stats().await?;
    m.flush_stats().await?; // nothing pending: writes nothing
    let stats = m.stats().await?;
    assert_eq!(
        (stats.created, stats.active, stats.unique_users),
        (2, 2, 2),
        "{stats:?}"
    );
    // free running: a flush and a kill at once, where the kill may land
    // after the flush ran and before its reply arrived. Every delta is
    // recorded by a create that answered, and applied at most once.
    let (mut created, mut closed) = (0_u64, 0);
    for i in 0..30 {
        let user = UserId::new(format!("race-{i}"))?;
        let made = eventually("a create between the kills", DEADLINE, || async {
            m.create(&user, SessionMetadata::new())
                .await
                .map_err(|e| format!("{e:?}"))
        })
        .await;
        created += u64::from(made.is_ok());
        let (flushed, killed) =
            tokio::join!(m.flush_stats(), async { server.kill_normal_clients() });
        if let Err(e) = flushed {
            assert_unavailable(&e);
        }
        closed += killed?;
    }
    let stats = eventually("stats after the kills", DEADLINE, || async {
        m.stats().await.map_err(|e| format!("{e:?}"))
    })
    .await?;
    assert!(
        stats.created <= 2 + created,
        "{} counted for {} answered creates: a flush was applied twice",
        stats.created,
        2 + created
    );
    println!(
        "{} of {} creates counted, {closed} connections closed",
        stats.created,
        2 + created
    );
    Ok(())
}
