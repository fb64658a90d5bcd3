//! Sessions on a server the test owns: killed and restarted mid-run, and
//! connections killed under a create storm (fred replays in-flight scripts).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_the_limit_when_connections_drop_under_a_create_storm() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let m = manager(
        &server.url(),
        SessionConfig::default().with_max_per_user(NonZeroU32::new(3).unwrap()),
    )
    .await?;
    let user = UserId::new("storm")?;
    let mut tasks = Vec::new();
    for _ in 0..400 {
        let (m, user) = (m.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            m.create(&user, SessionMetadata::new()).await
        }));
    }
    for _ in 0..5 {
        server.cli(&["CLIENT", "KILL", "TYPE", "normal"])?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut ok = 0;
    for t in tasks {
        match t.await? {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.is_retryable(), "only typed connection errors: {e:?}"),
        }
    }
    assert!(ok > 0);
    // whatever ran once or twice, the user has exactly the limit, and the
    // index lists exactly the live session keys
    let listed = eventually("a list after the storm", DEADLINE, || async {
        m.list(&user).await.map_err(|e| format!("{e:?}"))
    })
    .await?;
    assert_eq!(listed.len(), 3);
    let census = m.recount().await?;
    assert_eq!(
        (census.sessions, census.users),
        (3, 1),
        "no orphan session keys"
    );
    Ok(())
}

/// fred re-sends the fast path's `GETEX PX` and the scripts after a
/// dropped connection. Under a read storm near the end of the sessions'
/// absolute lifetime (the idle TTL is longer than the whole lifetime, so
/// every read's `GETEX` slides past the absolute expiry and the script
/// then pulls it back), with half of them revoked mid-storm and
/// connections killed: no revoked session comes back, and every session
/// all of whose reads succeeded expires no later than its absolute expiry
/// (a read that failed may leave its key's expiry past it, but no call
/// returns such a session and the next read caps or deletes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_stay_capped_and_revoked_when_connections_drop_under_a_read_storm(
) -> anyhow::Result<()> {
    use aeturnis_redis_core::fred::prelude::*;

    let server = RedisServer::start_standalone()?;
    let m = manager(
        &server.url(),
        SessionConfig::default()
            .with_idle_ttl(Duration::from_secs(120))
            .with_absolute_ttl(Duration::from_secs(60))
            .with_touch_interval(Duration::from_secs(30)),
    )
    .await?;
    let mut sessions = Vec::new();
    for u in 0..40 {
        let user = UserId::new(format!("reader-{u}"))?;
        for _ in 0..5 {
            sessions.push(m.create(&user, SessionMetadata::new()).await?);
        }
    }
    let mut tasks = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let (m, id) = (m.clone(), s.id.clone());
        tasks.push(tokio::spawn(async move {
            let (mut failed, mut revoked) = (false, false);
            for round in 0..20 {
                if i % 2 == 1 && round == 10 {
                    // a failed revoke is retried until it answers
                    eventually("the revoke goes through", DEADLINE, || async {
                        m.revoke(&id).await.map_err(|e| format!("{e:?}"))
                    })
                    .await
                    .unwrap();
                    revoked = true;
                }
                match m.get(&id).await {
                    Ok(Some(got)) => {
                        assert!(!revoked, "a revoked session was read back");
                        assert!(got.expires_at <= got.absolute_expires_at);
                    }
                    Ok(None) => assert!(revoked, "a live session was lost"),
                    Err(e) => {
                        assert!(e.is_retryable(), "only typed connection errors: {e:?}");
                        failed = true;
                    }
                }
            }
            (id, failed, revoked)
        }));
    }
    for _ in 0..5 {
        server.cli(&["CLIENT", "KILL", "TYPE", "normal"])?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await?);
    }
    let c = m.redis().client().clone();
    let key = |id: &aeturnis_session::SessionId| {
        let s = id.as_str();
        format!("faults:s:{{{}}}:{}", &s[..4], &s[5..])
    };
    let absolute = |id: &aeturnis_session::SessionId| {
        let s = sessions.iter().find(|s| &s.id == id).unwrap();
        let at = s.absolute_expires_at.duration_since(std::time::UNIX_EPOCH);
        i64::try_from(at.unwrap().as_millis()).unwrap()
    };
    eventually("the connection is back", DEADLINE, || async {
        m.redis().server_time().await.map_err(|e| format!("{e:?}"))
    })
    .await?;
    let mut failures = 0;
    for (id, failed, revoked) in &outcomes {
        let exists: i64 = c.exists(key(id)).await?;
        if *revoked {
            assert_eq!(exists, 0, "a revoked session came back");
            continue;
        }
        assert_eq!(exists, 1, "a live session was lost");
        let expiry: i64 = c.pexpire_time(key(id)).await?;
        if *failed {
            failures += 1;
            // the next read caps it
            m.get(id).await?.unwrap();
            let expiry: i64 = c.pexpire_time(key(id)).await?;
            assert!(expiry <= absolute(id), "{expiry} > {}", absolute(id));
        } else {
            assert!(expiry <= absolute(id), "{expiry} > {}", absolute(id));
        }
    }
    println!(
        "{failures} of {} live sessions saw a failed read",
        outcomes.len() / 2
    );
    Ok(())
}
