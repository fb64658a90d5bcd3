//! Rotation and revocation, and that no race brings a revoked session back.

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_session::{CharacterId, Error, SessionConfig, SessionId};
use aeturnis_testkit::TestCtx;

use crate::support::*;

async fn should_rotate_to_a_new_id_and_kill_the_old_one(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let u = user("judy");
    let s = m.create(&u, meta()).await?;
    let hero = CharacterId::new("mage")?;
    m.bind_character(&s.id, &hero).await?;
    let r = m.rotate(&s.id).await?.unwrap();
    assert_ne!(r.id, s.id);
    assert!(m.get(&s.id).await?.is_none(), "the old id is dead");
    assert!(!exists(&m, &session_key(&ctx, &s.id)).await);
    let got = m.get(&r.id).await?.unwrap();
    assert_eq!(
        (got.user, got.character, got.metadata),
        (u.clone(), Some(hero), meta())
    );
    assert_eq!(got.created_at, s.created_at);
    let listed: Vec<SessionId> = m.list(&u).await?.into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![r.id.clone()]);
    assert!(
        m.rotate(&s.id).await?.is_none(),
        "a dead id cannot be rotated"
    );
    Ok(())
}

/// Rotation moves the session (`RENAME`, which keeps the TTL) and its
/// index entry keeps the old score: the expiry is the same to the
/// millisecond, and the rotated session is evicted in the old one's turn.
async fn should_keep_the_expiry_and_lru_place_when_rotating(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_max_per_user(NonZeroU32::new(3).unwrap())).await?;
    let u = user("rotor");
    let index = index_key(&ctx, &u);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(m.create(&u, meta()).await?);
        next_ms(&m).await?; // distinct LRU scores: oldest first
    }
    let (a, b, c) = (
        sessions[0].id.clone(),
        sessions[1].id.clone(),
        sessions[2].id.clone(),
    );
    let expiry = pexpire_time(&m, &session_key(&ctx, &b)).await;
    let score = index_score(&m, &index, &b).await.unwrap();
    let r = m.rotate(&b).await?.unwrap();
    assert_eq!(pexpire_time(&m, &session_key(&ctx, &r.id)).await, expiry);
    assert_eq!(r.absolute_expires_at, sessions[1].absolute_expires_at);
    assert_eq!(r.created_at, sessions[1].created_at);
    assert_eq!(index_score(&m, &index, &r.id).await, Some(score));
    assert_eq!(index_score(&m, &index, &b).await, None);
    // LRU order is a, r (b's place), c: the next creates evict a, then r
    next_ms(&m).await?;
    m.create(&u, meta()).await?;
    assert!(!exists(&m, &session_key(&ctx, &a)).await, "a is the oldest");
    assert!(exists(&m, &session_key(&ctx, &r.id)).await);
    next_ms(&m).await?;
    m.create(&u, meta()).await?;
    assert!(
        !exists(&m, &session_key(&ctx, &r.id)).await,
        "the rotated session is evicted in b's turn"
    );
    assert!(
        exists(&m, &session_key(&ctx, &c)).await,
        "c is newer than b"
    );
    Ok(())
}

async fn should_revoke_one_all_and_others(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let u = user("mallory");
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(m.create(&u, meta()).await?.id);
    }
    assert!(m.revoke(&ids[0]).await?);
    assert!(!m.revoke(&ids[0]).await?, "revoke is idempotent");
    assert!(m.get(&ids[0]).await?.is_none());
    assert_eq!(m.revoke_others(&u, &ids[1]).await?, 2);
    let listed: Vec<SessionId> = m.list(&u).await?.into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![ids[1].clone()]);
    assert!(m.get(&ids[2]).await?.is_none() && m.get(&ids[3]).await?.is_none());
    // the "current" session must be a live session of this user
    let other = m.create(&user("oscar"), meta()).await?;
    assert!(matches!(
        m.revoke_others(&u, &other.id).await,
        Err(Error::UnknownSession { .. })
    ));
    assert!(matches!(
        m.revoke_others(&u, &ids[0]).await,
        Err(Error::UnknownSession { .. })
    ));
    assert!(
        m.get(&ids[1]).await?.is_some(),
        "a refused revoke_others revokes nothing"
    );
    assert_eq!(m.revoke_all(&u).await?, 1);
    assert!(m.list(&u).await?.is_empty());
    assert!(!exists(&m, &index_key(&ctx, &u)).await);
    assert_eq!(
        m.revoke_all(&u).await?,
        0,
        "revoking an unknown user's sessions is a no-op"
    );
    assert!(
        m.get(&other.id).await?.is_some(),
        "other users are untouched"
    );
    Ok(())
}

/// 1,000 races of revoke against get, bind and extend: 0 resurrections,
/// 0 index leftovers.
async fn never_resurrects(ctx: &TestCtx, config: SessionConfig) -> anyhow::Result<()> {
    let m = manager(ctx, config.with_max_per_user(NonZeroU32::new(100).unwrap())).await?;
    let hero = CharacterId::new("ghost")?;
    let mut resurrections = 0;
    for batch in 0..20 {
        let u = user(&format!("racer-{batch}"));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let s = m.create(&u, meta()).await?;
            let (m1, m2, m3, m4) = (m.clone(), m.clone(), m.clone(), m.clone());
            let (id1, id2, id3, id4) = (s.id.clone(), s.id.clone(), s.id.clone(), s.id.clone());
            let hero = hero.clone();
            tasks.push(tokio::spawn(async move {
                let (revoked, _, _, _) = tokio::join!(
                    m1.revoke(&id1),
                    m2.get(&id2),
                    m3.bind_character(&id3, &hero),
                    m4.extend(&id4, Duration::from_secs(60)),
                );
                revoked.map(|_| s.id)
            }));
        }
        for t in tasks {
            let id = t.await??;
            if m.get(&id).await?.is_some() || exists(&m, &session_key(ctx, &id)).await {
                resurrections += 1;
            }
        }
        assert!(m.list(&u).await?.is_empty());
        let members: i64 = m.redis().client().zcard(index_key(ctx, &u)).await?;
        assert_eq!(members, 0, "no index entry survives a revoke");
    }
    assert_eq!(resurrections, 0, "1,000 logout-vs-touch races");
    Ok(())
}

async fn should_never_resurrect_a_revoked_session(ctx: TestCtx) -> anyhow::Result<()> {
    never_resurrects(&ctx, eager()).await
}

/// The same races with every get on the fast path (`GETEX` on a revoked
/// key writes nothing).
async fn should_never_resurrect_a_revoked_session_on_the_fast_path(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    never_resurrects(&ctx, fast()).await
}

aeturnis_testkit::topology_tests!(
    should_rotate_to_a_new_id_and_kill_the_old_one,
    should_keep_the_expiry_and_lru_place_when_rotating,
    should_revoke_one_all_and_others,
    should_never_resurrect_a_revoked_session,
    should_never_resurrect_a_revoked_session_on_the_fast_path,
);
