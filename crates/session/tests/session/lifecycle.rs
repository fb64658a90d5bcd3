//! Create, get and slide, throttled touches, extend, character binding and metadata.

use std::time::{Duration, SystemTime};

use aeturnis_redis_core::duration::MAX_DURATION;
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::SetOptions;
use aeturnis_session::Classify;
use aeturnis_session::{CharacterId, Error, SessionConfig, SessionId, SessionMetadata};
use aeturnis_testkit::TestCtx;

use crate::support::*;

async fn should_create_and_get_a_session(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let u = user("alice:{1}");
    let before = SystemTime::now() - Duration::from_secs(1);
    let s = m.create(&u, meta()).await?;
    assert_eq!(s.user, u);
    assert_eq!(s.metadata, meta());
    assert_eq!(s.character, None);
    assert!(s.created_at >= before);
    assert_eq!(s.created_at, s.last_seen);
    assert_eq!(
        s.expires_at.duration_since(s.created_at)?,
        Duration::from_secs(1800)
    );
    assert_eq!(
        s.absolute_expires_at.duration_since(s.created_at)?,
        Duration::from_secs(24 * 3600)
    );
    let got = m.get(&s.id).await?.expect("the session exists");
    assert_eq!(
        (&got.id, &got.user, &got.metadata),
        (&s.id, &s.user, &s.metadata)
    );
    assert!(got.last_seen >= s.last_seen);
    let by_token = m.get_by_token(s.id.as_str()).await?.expect("by token");
    assert_eq!(by_token.id, s.id);
    // a well-formed token that was never issued
    assert!(m.get(&SessionId::generate(&u)).await?.is_none());
    Ok(())
}

async fn should_slide_idle_expiry_on_activity(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_idle_ttl(Duration::from_secs(10))).await?;
    let s = m.create(&user("bob"), meta()).await?;
    let key = session_key(&ctx, &s.id);
    let _: () = m.redis().client().pexpire(&key, 2_000, None).await?;
    assert!(pttl(&m, &key).await <= 2_000);
    let got = m.get(&s.id).await?.unwrap();
    let after = pttl(&m, &key).await;
    assert!(after > 9_000, "PTTL grew to the idle TTL, got {after}");
    assert!(got.expires_at > s.created_at + Duration::from_secs(9));
    // the user's index lives at least as long as the session
    assert!(pttl(&m, &index_key(&ctx, &s.user)).await >= after);
    Ok(())
}

async fn should_slide_but_throttle_last_seen_writes(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(
        &ctx,
        SessionConfig::default()
            .with_idle_ttl(Duration::from_secs(10))
            .with_touch_interval(Duration::from_secs(5)),
    )
    .await?;
    let s = m.create(&user("carol"), meta()).await?;
    let key = session_key(&ctx, &s.id);
    let index = index_key(&ctx, &s.user);
    let score = index_score(&m, &index, &s.id).await;
    let _: () = m.redis().client().pexpire(&key, 2_000, None).await?;
    next_ms(&m).await?;
    // within the touch interval: the fast path (GETEX PX)
    let got = m.get(&s.id).await?.unwrap();
    assert_eq!(
        got.last_seen, s.created_at,
        "a recent touch is not rewritten"
    );
    let after = pttl(&m, &key).await;
    assert!(after > 9_000, "but the expiry still slides, got {after}");
    assert!(got.expires_at >= s.created_at + Duration::from_secs(10));
    assert_eq!(
        index_score(&m, &index, &s.id).await,
        score,
        "nor is the LRU order"
    );
    assert!(
        pttl(&m, &index).await >= after,
        "the index still outlives the session"
    );
    // once the recorded touch is older than the interval, the script records it
    let _: () = m.redis().client().pexpire(&key, 2_000, None).await?;
    let stale = s.created_at - Duration::from_secs(6);
    let mut patched: Vec<u8> = m.redis().client().get(&key).await?;
    patched[9..17].copy_from_slice(&u64::try_from(ms(stale))?.to_be_bytes());
    let _: () = m
        .redis()
        .client()
        .set(&key, patched, None, Some(SetOptions::XX), false)
        .await?;
    let _: () = m.redis().client().pexpire(&key, 2_000, None).await?;
    let touched = m.get(&s.id).await?.unwrap();
    assert!(touched.last_seen > s.created_at, "last seen recorded");
    assert!(pttl(&m, &key).await > 9_000, "and slid");
    let new_score = index_score(&m, &index, &s.id).await.unwrap();
    assert!(
        new_score > score.unwrap(),
        "LRU order recorded: {new_score} vs {score:?}"
    );
    Ok(())
}

async fn should_extend_up_to_the_absolute_expiry(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(
        &ctx,
        eager()
            .with_idle_ttl(Duration::from_secs(10))
            .with_absolute_ttl(Duration::from_secs(30)),
    )
    .await?;
    let s = m.create(&user("dave"), meta()).await?;
    let key = session_key(&ctx, &s.id);
    let e = m.extend(&s.id, Duration::from_secs(5)).await?.unwrap();
    let p = pttl(&m, &key).await;
    assert!((14_000..=15_000).contains(&p), "extended to ~15 s, got {p}");
    assert!(e.expires_at >= s.expires_at + Duration::from_secs(4));
    m.extend(&s.id, Duration::from_secs(3600)).await?.unwrap();
    let p = pttl(&m, &key).await;
    assert!(
        (28_000..=30_000).contains(&p),
        "capped at the absolute expiry, got {p}"
    );
    for bad in [
        Duration::ZERO,
        MAX_DURATION + Duration::from_nanos(1),
        Duration::MAX,
    ] {
        let e = m.extend(&s.id, bad).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidDuration {
                    what: "extension",
                    ..
                }
            ),
            "{bad:?}: {e:?}"
        );
        assert!(e.is_invalid_input());
    }
    // a sub-millisecond extension rounds up to 1 ms, like every duration
    assert!(m.extend(&s.id, Duration::from_nanos(1)).await?.is_some());
    let p = pttl(&m, &key).await;
    assert!((28_000..=30_000).contains(&p), "still capped, got {p}");
    m.revoke(&s.id).await?;
    assert!(m.extend(&s.id, Duration::from_secs(5)).await?.is_none());
    assert!(
        !exists(&m, &key).await,
        "extend never writes a revoked session"
    );
    Ok(())
}

async fn should_bind_characters_and_update_metadata(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let s = m.create(&user("erin"), meta()).await?;
    let key = session_key(&ctx, &s.id);
    let hero = CharacterId::new("hero-7")?;
    let b = m.bind_character(&s.id, &hero).await?.unwrap();
    assert_eq!(b.character.as_ref(), Some(&hero));
    assert_eq!(b.metadata, meta());
    let _: () = m.redis().client().pexpire(&key, 5_000, None).await?;
    let new_meta = SessionMetadata::new()
        .with_ip_address("2001:db8::7".parse()?)
        .with_device("phone");
    let u = m.update_metadata(&s.id, new_meta.clone()).await?.unwrap();
    assert_eq!(u.metadata, new_meta);
    assert_eq!(u.character.as_ref(), Some(&hero), "other fields are kept");
    assert!(pttl(&m, &key).await <= 5_000, "an update keeps the TTL");
    let g = m.get(&s.id).await?.unwrap();
    assert_eq!((g.metadata, g.character), (new_meta, Some(hero)));
    let n = m.unbind_character(&s.id).await?.unwrap();
    assert_eq!(n.character, None);
    assert_eq!(m.get(&s.id).await?.unwrap().character, None);
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_create_and_get_a_session,
    should_slide_idle_expiry_on_activity,
    should_slide_but_throttle_last_seen_writes,
    should_extend_up_to_the_absolute_expiry,
    should_bind_characters_and_update_metadata,
);
