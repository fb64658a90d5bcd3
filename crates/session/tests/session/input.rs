//! Bad input gets a typed error without a round trip.

use std::time::{Duration, Instant};

use aeturnis_redis_core::duration::MAX_DURATION;
use aeturnis_session::Classify;
use aeturnis_session::{
    CharacterId, Error, SessionConfig, SessionId, SessionManager, SessionMetadata, TokenError,
    UserId, MAX_USER_AGENT_LEN,
};
use aeturnis_testkit::TestCtx;

use crate::support::*;

async fn should_reject_bad_input_without_a_round_trip(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let u = user("trent");
    // once shut down, any round trip would fail with Error::Shutdown
    m.redis().shutdown().await?;
    // a well-formed token does make the call: the fast read path fails at
    // once with the typed error, like a script call, not after a timeout
    let err = m
        .get(&SessionId::generate(&u))
        .await
        .expect_err("a read after shutdown must fail");
    assert!(
        matches!(
            err,
            aeturnis_session::Error::Redis(aeturnis_redis_core::Error::Shutdown)
        ),
        "{err:?}"
    );
    let long = "a".repeat(100_000);
    let good = SessionId::generate(&u).to_string();
    for token in [
        "",
        "abc",
        long.as_str(),
        &good[..good.len() - 1],
        &good.replace('.', "!"),
    ] {
        assert!(m.get_by_token(token).await?.is_none(), "{token:.30}");
    }
    assert!(matches!(SessionId::parse(""), Err(TokenError::Empty)));
    assert!(matches!(
        UserId::new(""),
        Err(Error::InvalidId {
            what: "user id",
            ..
        })
    ));
    assert!(matches!(
        CharacterId::new("x".repeat(200)),
        Err(Error::InvalidId { .. })
    ));
    let fat = SessionMetadata::new().with_user_agent("u".repeat(MAX_USER_AGENT_LEN + 1));
    let e = m.create(&u, fat.clone()).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::MetadataTooLong {
                field: "user_agent",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_invalid_input() && !e.is_retryable());
    let id = SessionId::parse(&good)?;
    assert!(matches!(
        m.update_metadata(&id, fat).await,
        Err(Error::MetadataTooLong { .. })
    ));
    // after shutdown, a round trip would fail with Error::Redis(Shutdown)
    for bad in [
        Duration::ZERO,
        MAX_DURATION + Duration::from_nanos(1),
        Duration::MAX,
    ] {
        let e = m.extend(&id, bad).await.unwrap_err();
        assert!(matches!(e, Error::InvalidDuration { .. }), "{bad:?}: {e:?}");
    }
    // a duration Redis cannot take is refused when the manager is built,
    // naming the setting, not at the first read
    for (setting, config) in [
        (
            "idle_ttl",
            SessionConfig::default().with_idle_ttl(Duration::ZERO),
        ),
        (
            "idle_ttl",
            SessionConfig::default().with_idle_ttl(Duration::MAX),
        ),
        (
            "absolute_ttl",
            SessionConfig::default().with_absolute_ttl(Duration::MAX),
        ),
        (
            "touch_interval",
            SessionConfig::default().with_touch_interval(Duration::MAX),
        ),
    ] {
        let e = SessionManager::new(m.redis().clone(), config).unwrap_err();
        assert!(
            matches!(&e, Error::Config(c) if c.variable() == setting),
            "{setting}: {e:?}"
        );
        assert!(e.is_invalid_input());
    }
    // a real round trip after shutdown is a typed error, not a panic,
    // on the script path and on the fast path alike
    let shut = |r: Result<Option<aeturnis_session::Session>, Error>| {
        matches!(r, Err(Error::Redis(aeturnis_redis_core::Error::Shutdown)))
    };
    let r = m.get(&id).await;
    assert!(shut(r), "the script path after shutdown");
    let fast = SessionManager::new(m.redis().clone(), fast())?;
    let started = Instant::now();
    let r = fast.get(&id).await;
    assert!(shut(r), "the fast path after shutdown");
    assert!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}

/// The longest lifetimes the config accepts (100 years, idle and
/// absolute) work at every call, on the script path and the fast path:
/// what `SessionConfig::validate` lets through, Redis takes.
async fn should_serve_sessions_with_the_longest_accepted_lifetimes(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    for config in [eager(), fast()] {
        let m = manager(
            &ctx,
            config
                .with_idle_ttl(MAX_DURATION)
                .with_absolute_ttl(MAX_DURATION),
        )
        .await?;
        let u = user("methuselah");
        let s = m.create(&u, meta()).await?;
        let key = session_key(&ctx, &s.id);
        let p = pttl(&m, &key).await;
        let max_ms = i64::try_from(MAX_DURATION.as_millis())?;
        assert!(p > max_ms - 60_000 && p <= max_ms, "PTTL {p}");
        let got = m.get(&s.id).await?.unwrap();
        assert_eq!(got.absolute_expires_at, s.absolute_expires_at);
        assert!(got.expires_at <= got.absolute_expires_at);
        assert!(m.extend(&s.id, MAX_DURATION).await?.is_some());
        assert!(pexpire_time(&m, &key).await <= ms(s.absolute_expires_at));
        assert_eq!(m.list(&u).await?.len(), 1);
        let r = m.rotate(&s.id).await?.unwrap();
        assert!(m.revoke(&r.id).await?);
        assert!(m.get(&r.id).await?.is_none());
    }
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_reject_bad_input_without_a_round_trip,
    should_serve_sessions_with_the_longest_accepted_lifetimes,
);
