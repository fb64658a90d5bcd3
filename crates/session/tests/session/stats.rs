//! Statistics, the recount, key TTLs and script registration.

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_session::CharacterId;
use aeturnis_testkit::{eventually, TestCtx};

use crate::support::*;

async fn should_give_every_key_a_ttl(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let (u, v) = (user("victor"), user("walter"));
    let s = m.create(&u, meta()).await?;
    let t = m.create(&v, meta()).await?;
    m.get(&s.id).await?;
    m.bind_character(&t.id, &CharacterId::new("x")?).await?;
    let r = m.rotate(&t.id).await?.unwrap();
    m.extend(&s.id, Duration::from_secs(10)).await?;
    let stats_key = format!("{}session-stats:{{all}}:counters", ctx.prefix);
    let users_key = format!("{}session-stats:{{all}}:users", ctx.prefix);
    eventually("stats are written", DEADLINE, || async {
        if exists(&m, &users_key).await {
            Ok(())
        } else {
            Err("no unique-user key yet")
        }
    })
    .await?;
    for key in [
        session_key(&ctx, &s.id),
        session_key(&ctx, &r.id),
        index_key(&ctx, &u),
        index_key(&ctx, &v),
        stats_key,
        users_key,
    ] {
        let p = pttl(&m, &key).await;
        assert!(p > 0, "{key} has PTTL {p}");
    }
    for (id, user) in [(&s.id, &u), (&r.id, &v)] {
        assert!(pttl(&m, &index_key(&ctx, user)).await >= pttl(&m, &session_key(&ctx, id)).await);
    }
    let census = m.recount().await?;
    assert_eq!((census.sessions, census.users), (2, 2));
    Ok(())
}

async fn should_count_sessions_without_scanning(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_max_per_user(NonZeroU32::new(2).unwrap())).await?;
    let (u, v) = (user("xavier"), user("yvonne"));
    let a = m.create(&u, meta()).await?;
    next_ms(&m).await?; // a distinct LRU score, so a is the one evicted
    m.create(&u, meta()).await?;
    m.create(&u, meta()).await?; // evicts a
    m.create(&v, meta()).await?;
    m.revoke(&a.id).await?; // already evicted: not counted twice
    let b = m.list(&v).await?.remove(0);
    m.revoke(&b.id).await?;
    let s = eventually("the counters settle", DEADLINE, || async {
        let s = m.stats().await.map_err(|e| e.to_string())?;
        if s.created == 4 && s.ended == 2 {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await?;
    assert_eq!(s.active, 2);
    assert_eq!(s.unique_users, 2);
    assert!(s.average_duration.is_some());
    // expiry runs no script: recount makes `active` exact again
    let _: () = m.redis().client().del(index_key(&ctx, &u)).await?;
    let census = m.recount().await?;
    assert_eq!((census.sessions, census.users), (2, 0));
    let s = m.stats().await?;
    assert_eq!(s.active, 2);
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_give_every_key_a_ttl,
    should_count_sessions_without_scanning,
);
