//! Sessions on a server the test owns: killed and restarted mid-run, and
//! connections killed under a create storm (fred replays in-flight scripts).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use aeturnis_redis_core::{ReconnectConfig, Redis, RedisConfig};
use aeturnis_session::{SessionConfig, SessionManager, SessionMetadata, UserId};
use aeturnis_testkit::RedisServer;

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
        assert!(err.is_retryable(), "{err:?}");
        assert!(err.is_timeout() || err.is_connection(), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        let err = m.create(&user, SessionMetadata::new()).await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
    }

    server.restart()?;
    // the restarted server has no data (no persistence) and no scripts:
    // NOSCRIPT is handled, and the old session is simply gone
    let deadline = Instant::now() + DEADLINE;
    let fresh = loop {
        match m.create(&user, SessionMetadata::new()).await {
            Ok(fresh) => break fresh,
            Err(e) => {
                assert!(e.is_retryable(), "{e:?}");
                assert!(Instant::now() < deadline, "no recovery: {e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
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
    let deadline = Instant::now() + DEADLINE;
    let listed = loop {
        match m.list(&user).await {
            Ok(l) => break l,
            Err(e) => assert!(Instant::now() < deadline, "{e:?}"),
        }
    };
    assert_eq!(listed.len(), 3);
    let census = m.recount().await?;
    assert_eq!(
        (census.sessions, census.users),
        (3, 1),
        "no orphan session keys"
    );
    Ok(())
}
