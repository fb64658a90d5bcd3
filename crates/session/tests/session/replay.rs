//! Commands fred may send twice: the fast read's `GETEX`, create and rotate.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::{ClusterHash, CustomCommand};
use aeturnis_session::{Error, SessionId};
use aeturnis_testkit::TestCtx;

use crate::support::*;

/// The fast path's `GETEX PX`, sent again late as fred would after a
/// dropped connection: it pushes the expiry at most one idle TTL further,
/// which near the end of a session's life is past its absolute expiry;
/// the next read caps it again, no read returns the session after its
/// absolute expiry (the next one deletes it), and a replay on a revoked
/// session writes nothing.
async fn should_replay_the_fast_path_getex_safely(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(
        &ctx,
        fast()
            .with_idle_ttl(Duration::from_secs(10))
            // the steps below must all run before it passes, even on a
            // stalled CI host
            .with_absolute_ttl(Duration::from_secs(3)),
    )
    .await?;
    let c = m.redis().client().clone();
    let u = user("replayer");
    let s = m.create(&u, meta()).await?;
    let key = session_key(&ctx, &s.id);
    let absolute = ms(s.absolute_expires_at);
    let getex = CustomCommand::new_static("GETEX", ClusterHash::FirstKey, false);
    let replay = |key: String| {
        let (c, getex) = (c.clone(), getex.clone());
        async move {
            c.custom::<Option<Vec<u8>>, _>(getex, vec![key.as_str(), "PX", "10000"])
                .await
                .unwrap()
        }
    };
    // a get near the end of life, then its GETEX replayed late
    m.get(&s.id).await?.unwrap();
    assert!(pexpire_time(&m, &key).await <= absolute);
    assert!(replay(key.clone()).await.is_some());
    assert!(
        pexpire_time(&m, &key).await > absolute,
        "a late replay slides past the absolute expiry"
    );
    // the next read caps it again
    m.get(&s.id).await?.unwrap();
    assert!(pexpire_time(&m, &key).await <= absolute);
    // the same get sent twice at once
    let (a, b) = tokio::join!(m.get(&s.id), m.get(&s.id));
    assert_eq!(a?.unwrap().id, b?.unwrap().id);
    assert!(pexpire_time(&m, &key).await <= absolute);
    // replayed once more, then the absolute expiry passes with the key
    // lingering: no read returns it, and the read deletes it
    assert!(replay(key.clone()).await.is_some());
    let end = s
        .absolute_expires_at
        .duration_since(SystemTime::UNIX_EPOCH)?;
    server_time_past(&m, end).await?;
    assert!(exists(&m, &key).await, "the key lingers");
    assert!(m.get(&s.id).await?.is_none(), "past the absolute expiry");
    assert!(!exists(&m, &key).await, "deleted by the read");
    // after a revoke, a replayed GETEX finds nothing and writes nothing
    let t = m.create(&u, meta()).await?;
    let other = session_key(&ctx, &t.id);
    assert!(m.revoke(&t.id).await?);
    assert_eq!(replay(other.clone()).await, None);
    assert!(!exists(&m, &other).await, "no resurrection by replay");
    assert!(m.get(&t.id).await?.is_none());
    assert!(!exists(&m, &other).await);
    Ok(())
}

async fn should_treat_a_replayed_create_or_rotate_as_a_no_op(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_max_per_user(NonZeroU32::new(2).unwrap())).await?;
    let u = user("peggy");
    let a = m.create(&u, meta()).await?;
    next_ms(&m).await?;
    let b = m.create(&u, meta()).await?;
    next_ms(&m).await?;
    let id = SessionId::generate(&u);
    let first = m.create_with_id(id.clone(), &u, meta()).await?;
    let again = m.create_with_id(id.clone(), &u, meta()).await?;
    assert_eq!(again.id, first.id);
    assert_eq!(
        again.created_at, first.created_at,
        "the replay finds its own session"
    );
    assert!(m.get(&a.id).await?.is_none(), "the first run evicted a");
    assert!(
        m.get(&b.id).await?.is_some(),
        "the replay evicted nothing more"
    );
    assert_eq!(m.list(&u).await?.len(), 2);
    // an id must carry its user's slot tag, and cannot be taken twice
    let stranger = (0..)
        .map(|i| user(&format!("stranger-{i}")))
        .find(|s| s.slot_tag() != u.slot_tag())
        .unwrap();
    assert!(matches!(
        m.create_with_id(SessionId::generate(&stranger), &u, meta())
            .await,
        Err(Error::IdConflict { .. })
    ));
    // rotate replayed with the same new id
    let new_id = SessionId::generate(&u);
    let r1 = m.rotate_to(&b.id, new_id.clone()).await?.unwrap();
    let r2 = m.rotate_to(&b.id, new_id.clone()).await?.unwrap();
    assert_eq!((r1.id.clone(), r1.created_at), (r2.id, r2.created_at));
    assert!(m.get(&b.id).await?.is_none());
    assert_eq!(m.list(&u).await?.len(), 2);
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_replay_the_fast_path_getex_safely,
    should_treat_a_replayed_create_or_rotate_as_a_no_op,
);
